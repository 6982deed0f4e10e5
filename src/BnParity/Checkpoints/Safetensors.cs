using System.Buffers.Binary;
using System.Text.Json;

namespace BnParity;

/// <summary>
/// Reads and writes the safetensors format PyTorch users share weights in: an 8-byte little-endian header length N,
/// N bytes of UTF-8 JSON mapping every tensor name to <c>{"dtype", "shape", "data_offsets": [begin, end]}</c> (offsets
/// into the data that follows the header; an optional <c>"__metadata__"</c> object of strings), then the raw
/// little-endian data. Supported dtypes are <c>F32</c>, <c>F64</c> and <c>I64</c> (a BatchNorm's float, double and
/// <c>num_batches_tracked</c> entries); see <see cref="BatchNorm{T}.SaveSafetensors"/> and
/// <see cref="BatchNorm{T}.LoadSafetensors"/> for modules.
/// </summary>
/// <remarks>Reading is strict, as the reference implementation is: a header length past the end of the file, a header
/// that is not a JSON object, an unknown dtype, offsets out of range, overlapping, leaving holes or disagreeing with the
/// shape are <see cref="InvalidDataException"/>s naming the tensor, and nothing is returned.</remarks>
public static class Safetensors
{
    /// <summary>The largest header accepted (the reference implementation's limit).</summary>
    public const int MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    /// <summary>Writes <paramref name="tensors"/> (in their order) to <paramref name="path"/>.</summary>
    /// <exception cref="ArgumentException">A tensor has an unsupported element type or a key is empty or reserved.</exception>
    public static void Write(string path, IEnumerable<KeyValuePair<string, IStateTensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var stream = File.Create(path);
        Write(stream, tensors, metadata);
    }

    /// <summary>Writes <paramref name="tensors"/> (in their order) to <paramref name="stream"/>.</summary>
    /// <exception cref="ArgumentException">A tensor has an unsupported element type or a key is empty or reserved.</exception>
    public static void Write(Stream stream, IEnumerable<KeyValuePair<string, IStateTensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = tensors.ToList();
        using var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata)
                {
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
            }

            long offset = 0;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (key, tensor) in entries)
            {
                if (string.IsNullOrEmpty(key) || key == MetadataKey || !seen.Add(key))
                {
                    throw new ArgumentException($"tensor name '{key}' is empty, reserved or repeated.", nameof(tensors));
                }

                ArgumentNullException.ThrowIfNull(tensor, nameof(tensors));
                (string dtype, int size) = DTypeOf(tensor.ElementType) is { } known
                    ? known
                    : throw new ArgumentException($"tensor '{key}' has element type {tensor.ElementType.Name}; safetensors output supports float, double and long.", nameof(tensors));
                long bytes = (long)tensor.Data.Length * size;
                json.WriteStartObject(key);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (int d in tensor.Shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }

            json.WriteEndObject();
        }

        // Pad the header with spaces to a multiple of 8 bytes, as the reference writer does, so the data is aligned.
        long headerLength = header.Length;
        long padded = (headerLength + 7) / 8 * 8;
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
        stream.Write(prefix);
        stream.Write(header.GetBuffer().AsSpan(0, (int)headerLength));
        for (long i = headerLength; i < padded; i++)
        {
            stream.WriteByte((byte)' ');
        }

        foreach (var (_, tensor) in entries)
        {
            WriteData(stream, tensor.Data);
        }
    }

    /// <summary>Reads every tensor of the file at <paramref name="path"/>, in header order.</summary>
    /// <exception cref="InvalidDataException">The file is not valid safetensors (the message says why and names the
    /// tensor).</exception>
    public static IReadOnlyDictionary<string, IStateTensor> Read(string path) => Read(path, out _);

    /// <summary>Reads every tensor of the file at <paramref name="path"/>, in header order, and its metadata.</summary>
    /// <exception cref="InvalidDataException">The file is not valid safetensors.</exception>
    public static IReadOnlyDictionary<string, IStateTensor> Read(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Parse(File.ReadAllBytes(path), out metadata);
    }

    /// <summary>Parses a whole safetensors file held in memory.</summary>
    /// <exception cref="InvalidDataException">The bytes are not valid safetensors.</exception>
    public static IReadOnlyDictionary<string, IStateTensor> Parse(ReadOnlySpan<byte> file, out IReadOnlyDictionary<string, string> metadata)
    {
        if (file.Length < 8)
        {
            throw new InvalidDataException($"safetensors: the file has {file.Length} bytes, fewer than the 8-byte header length.");
        }

        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (declared > MaxHeaderBytes || declared > (ulong)(file.Length - 8))
        {
            throw new InvalidDataException(
                $"safetensors: the header length {declared} runs past the end of the file ({file.Length - 8} bytes follow it) or exceeds {MaxHeaderBytes}.");
        }

        int headerLength = (int)declared;
        ReadOnlySpan<byte> data = file[(8 + headerLength)..];
        var tensors = new List<(string Key, string DType, int[] Shape, long Begin, long End)>();
        var meta = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var document = JsonDocument.Parse(file.Slice(8, headerLength).ToArray());
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException("safetensors: the header is not a JSON object.");
            }

            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    foreach (var item in property.Value.EnumerateObject())
                    {
                        meta[item.Name] = item.Value.ValueKind == JsonValueKind.String
                            ? item.Value.GetString()!
                            : throw new InvalidDataException($"safetensors: metadata '{item.Name}' is not a string.");
                    }

                    continue;
                }

                tensors.Add(Entry(property));
            }
        }
        catch (JsonException error)
        {
            throw new InvalidDataException($"safetensors: the header is not valid JSON: {error.Message}", error);
        }
        catch (InvalidOperationException error)
        {
            throw new InvalidDataException($"safetensors: the header has a value of the wrong kind: {error.Message}", error);
        }

        // The data must be indexed entirely, without holes or overlaps (the reference implementation's rule).
        long expectedBegin = 0;
        foreach (var entry in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (entry.Begin != expectedBegin)
            {
                throw new InvalidDataException(entry.Begin < expectedBegin
                    ? $"safetensors: tensor '{entry.Key}' at bytes [{entry.Begin}, {entry.End}) overlaps the tensor before it (which ends at {expectedBegin})."
                    : $"safetensors: bytes [{expectedBegin}, {entry.Begin}) before tensor '{entry.Key}' belong to no tensor.");
            }

            expectedBegin = entry.End;
        }

        if (expectedBegin != data.Length)
        {
            throw new InvalidDataException(expectedBegin > data.Length
                ? $"safetensors: the tensors need {expectedBegin} data bytes but the file has {data.Length} after its header (truncated?)."
                : $"safetensors: the last {data.Length - expectedBegin} data bytes belong to no tensor.");
        }

        var result = new OrderedDictionary<string, IStateTensor>(StringComparer.Ordinal);
        foreach (var (key, dtype, shape, begin, end) in tensors)
        {
            result.Add(key, Decode(dtype, shape, data[(int)begin..(int)end]));
        }

        metadata = meta;
        return result;
    }

    private static (string Key, string DType, int[] Shape, long Begin, long End) Entry(JsonProperty property)
    {
        string key = property.Name;
        var value = property.Value;
        if (value.ValueKind != JsonValueKind.Object
            || !value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !value.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
        {
            throw new InvalidDataException($"safetensors: tensor '{key}' needs \"dtype\" (a string), \"shape\" (an array) and \"data_offsets\" ([begin, end]).");
        }

        string dtype = dtypeElement.GetString()!;
        int size = SizeOf(dtype, key);
        int[] shape = shapeElement.EnumerateArray().Select(d => d.TryGetInt32(out int v) && v >= 0
            ? v
            : throw new InvalidDataException($"safetensors: tensor '{key}' has shape entry {d}, not a non-negative int32.")).ToArray();
        long[] offsets = offsetsElement.EnumerateArray().Select(o => o.TryGetInt64(out long v) && v >= 0
            ? v
            : throw new InvalidDataException($"safetensors: tensor '{key}' has data offset {o}, not a non-negative integer.")).ToArray();
        if (offsets[1] < offsets[0])
        {
            throw new InvalidDataException($"safetensors: tensor '{key}' ends (byte {offsets[1]}) before it begins (byte {offsets[0]}).");
        }

        long count = 1;
        foreach (int d in shape)
        {
            count *= d;
            if (count > int.MaxValue)
            {
                throw new InvalidDataException($"safetensors: tensor '{key}' has more than {int.MaxValue} elements.");
            }
        }

        if (offsets[1] - offsets[0] != count * size)
        {
            throw new InvalidDataException(
                $"safetensors: tensor '{key}' ({dtype}, shape {DenseTensor<byte>.FormatShape(shape)}) needs {count * size} bytes but its data_offsets span {offsets[1] - offsets[0]}.");
        }

        return (key, dtype, shape, offsets[0], offsets[1]);
    }

    private static int SizeOf(string dtype, string key) => dtype switch
    {
        "F32" => 4,
        "F64" => 8,
        "I64" => 8,
        _ => throw new InvalidDataException($"safetensors: tensor '{key}' has dtype {dtype}; BnParity reads F32, F64 and I64."),
    };

    private static (string DType, int Size)? DTypeOf(Type type) =>
        type == typeof(float) ? ("F32", 4)
        : type == typeof(double) ? ("F64", 8)
        : type == typeof(long) ? ("I64", 8)
        : null;

    private static IStateTensor Decode(string dtype, int[] shape, ReadOnlySpan<byte> bytes)
    {
        switch (dtype)
        {
            case "F32":
            {
                var values = new float[bytes.Length / 4];
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
                }

                return new DenseTensor<float>(values, shape);
            }

            case "F64":
            {
                var values = new double[bytes.Length / 8];
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = BinaryPrimitives.ReadDoubleLittleEndian(bytes[(i * 8)..]);
                }

                return new DenseTensor<double>(values, shape);
            }

            default:
            {
                var values = new long[bytes.Length / 8];
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes[(i * 8)..]);
                }

                return new DenseTensor<long>(values, shape);
            }
        }
    }

    private static void WriteData(Stream stream, Array data)
    {
        Span<byte> buffer = stackalloc byte[8];
        switch (data)
        {
            case float[] values:
                foreach (float v in values)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(buffer, v);
                    stream.Write(buffer[..4]);
                }

                break;
            case double[] values:
                foreach (double v in values)
                {
                    BinaryPrimitives.WriteDoubleLittleEndian(buffer, v);
                    stream.Write(buffer);
                }

                break;
            case long[] values:
                foreach (long v in values)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(buffer, v);
                    stream.Write(buffer);
                }

                break;
        }
    }
}
