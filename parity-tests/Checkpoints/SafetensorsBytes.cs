using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace BnParity.ParityTests.Checkpoints;

/// <summary>One tensor entry of a hand-built safetensors file: dtype string, shape, and its data bytes (or only a
/// length, for files whose data is a hole: sparse files).</summary>
internal sealed record RawTensor(string Key, string DType, long[] Shape, byte[]? Data, long Length = -1)
{
    public long ByteLength => Data?.Length ?? Length;

    public static RawTensor Floats(string key, params float[] values) =>
        new(key, "F32", [values.Length], values.SelectMany(BitConverter.GetBytes).ToArray());

    public static RawTensor Count(string key, long value) => new(key, "I64", [], BitConverter.GetBytes(value));
}

/// <summary>Builds safetensors files byte by byte, so tests can state exactly what a file holds (including what the
/// library's writer would never write).</summary>
internal static class SafetensorsBytes
{
    /// <summary>The header JSON of <paramref name="tensors"/>, laid out back to back in the given order.</summary>
    public static string Header(IEnumerable<RawTensor> tensors)
    {
        var header = new JsonObject();
        long offset = 0;
        foreach (var tensor in tensors)
        {
            header[tensor.Key] = new JsonObject
            {
                ["dtype"] = tensor.DType,
                ["shape"] = new JsonArray(tensor.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + tensor.ByteLength),
            };
            offset += tensor.ByteLength;
        }

        return header.ToJsonString();
    }

    /// <summary>A whole file: length prefix, <paramref name="headerJson"/>, then the data of every tensor that has bytes.</summary>
    public static byte[] File(string headerJson, IEnumerable<RawTensor> tensors)
    {
        byte[] json = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new List<byte>(new byte[8]);
        BinaryPrimitives.WriteUInt64LittleEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes), (ulong)json.Length);
        bytes.AddRange(json);
        foreach (var tensor in tensors)
        {
            bytes.AddRange(tensor.Data ?? []);
        }

        return bytes.ToArray();
    }

    public static byte[] File(params RawTensor[] tensors) => File(Header(tensors), tensors);

    /// <summary>A valid BatchNorm1d(3) state under <paramref name="prefix"/> (weight, bias, running_mean, running_var,
    /// num_batches_tracked).</summary>
    public static RawTensor[] BatchNorm1dOfThree(string prefix) =>
    [
        RawTensor.Floats(prefix + "weight", 1.5f, -2, 0.25f),
        RawTensor.Floats(prefix + "bias", 0.5f, 0, -1),
        RawTensor.Floats(prefix + "running_mean", 3, 4, 5),
        RawTensor.Floats(prefix + "running_var", 6, 7, 8),
        RawTensor.Count(prefix + "num_batches_tracked", 12),
    ];
}

/// <summary>A stream that cannot seek and has no length (a pipe, a socket).</summary>
internal sealed class ForwardOnlyStream(byte[] bytes) : MemoryStream(bytes, writable: false)
{
    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin loc) => throw new NotSupportedException();
}
