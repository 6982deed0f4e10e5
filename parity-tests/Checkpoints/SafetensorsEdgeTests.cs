using System.Buffers.Binary;
using System.Text;

namespace BnParity.ParityTests.Checkpoints;

/// <summary>
/// The safetensors reader and writer at their edges, written for the survivors of the Stryker run on `Checkpoints/`
/// (docs/mutation-testing.md): null arguments, metadata, every whole-byte dtype's size rule, tensors larger than one
/// I/O chunk, streams that cannot seek, cuts inside a skipped region, chains of symbolic links, and writer entries whose
/// shape and data disagree.
/// </summary>
public sealed class SafetensorsEdgeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("bnparity-safetensors-edge-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => Path.Combine(_directory, name);

    private static KeyValuePair<string, IStateTensor> Entry(string key, IStateTensor tensor) => KeyValuePair.Create(key, tensor);

    [Fact]
    public void Every_public_entry_point_rejects_null_arguments_naming_them()
    {
        string path = PathOf("ok.safetensors");
        var module = new BatchNorm1d<float>(2);
        module.SaveSafetensors(path);
        var entries = new[] { Entry("w", new DenseTensor<float>(2)) };
        using var stream = new MemoryStream();

        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => module.SaveSafetensors(null!)).ParamName);
        Assert.Equal("prefix", Assert.Throws<ArgumentNullException>(() => module.SaveSafetensors(path, null!)).ParamName);
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => module.LoadSafetensors(null!)).ParamName);
        Assert.Equal("prefix", Assert.Throws<ArgumentNullException>(() => module.LoadSafetensors(path, null!)).ParamName);
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => Safetensors.Write((string)null!, entries)).ParamName);
        Assert.Equal("tensors", Assert.Throws<ArgumentNullException>(() => Safetensors.Write(path, null!)).ParamName);
        Assert.Equal("stream", Assert.Throws<ArgumentNullException>(() => Safetensors.Write((Stream)null!, entries)).ParamName);
        Assert.Equal("tensors", Assert.Throws<ArgumentNullException>(() => Safetensors.Write(stream, [Entry("w", null!)])).ParamName);
        Assert.Equal("metadata", Assert.Throws<ArgumentNullException>(() => Safetensors.Write(stream, entries, new Dictionary<string, string> { ["k"] = null! })).ParamName);
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => Safetensors.Read((string)null!)).ParamName);
        Assert.Equal("include", Assert.Throws<ArgumentNullException>(() => Safetensors.Read(path, null!, out _)).ParamName);
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => Safetensors.ReadNames(null!)).ParamName);
        Assert.Equal("stream", Assert.Throws<ArgumentNullException>(() => Safetensors.Read((Stream)null!, _ => true, out _)).ParamName);
        Assert.Equal("include", Assert.Throws<ArgumentNullException>(() => Safetensors.Read(stream, null!, out _)).ParamName);
        Assert.Equal(0, stream.Length); // nothing was written by the calls that threw
    }

    [Fact]
    public void Metadata_round_trips_and_an_empty_metadata_writes_no_metadata_object()
    {
        string path = PathOf("meta.safetensors");
        var tensors = new[] { Entry("w", new DenseTensor<float>([1.5f, 2], 2)) };
        Safetensors.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "a \"quoted\" value" });
        var read = Safetensors.Read(path, out var metadata);
        Assert.Equal(["w"], read.Keys);
        Assert.Equal([1.5f, 2], (float[])read["w"].Data);
        Assert.Equal(2, metadata.Count);
        Assert.Equal("a \"quoted\" value", metadata["note"]);

        using var plain = new MemoryStream();
        using var empty = new MemoryStream();
        Safetensors.Write(plain, tensors);
        Safetensors.Write(empty, tensors, new Dictionary<string, string>());
        Assert.Equal(plain.ToArray(), empty.ToArray());
        Assert.DoesNotContain("__metadata__", Encoding.UTF8.GetString(plain.ToArray()), StringComparison.Ordinal);
    }

    private static byte[] WithHeader(string json)
    {
        byte[] text = Encoding.UTF8.GetBytes(json);
        byte[] bytes = new byte[8 + text.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)text.Length);
        text.CopyTo(bytes, 8);
        return bytes;
    }

    [Theory]
    [InlineData("[]", "safetensors: the header is not a JSON object.")]
    [InlineData("{\"__metadata__\":3}", "safetensors: \"__metadata__\" is not an object of strings.")]
    [InlineData("{\"__metadata__\":{\"a\":1}}", "safetensors: metadata 'a' is not a string.")]
    [InlineData("{\"__metadata__\":{\"a\":\"x\",\"a\":\"y\"}}", "safetensors: metadata 'a' is named twice.")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "safetensors: the header names 'w' twice.")]
    public void Header_errors_say_exactly_what_is_wrong(string json, string message)
    {
        var error = Assert.Throws<InvalidDataException>(() => Safetensors.Parse(WithHeader(json), out _));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void A_header_with_bytes_that_are_not_UTF_8_is_invalid_data()
    {
        byte[] bytes = WithHeader("{\"w\u00e9\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
        int at = Array.IndexOf(bytes, (byte)0xC3);
        bytes[at] = 0xFF; // a byte no UTF-8 text holds, inside the key
        Assert.Throws<InvalidDataException>(() => Safetensors.Parse(bytes, out _));
    }

    /// <summary>Each whole-byte dtype of the format: the right byte count loads (the tensor is another layer's), one
    /// element's bytes too many is a mismatch naming the size rule.</summary>
    [Theory]
    [InlineData("BOOL", 1)]
    [InlineData("U8", 1)]
    [InlineData("I8", 1)]
    [InlineData("F8_E5M2", 1)]
    [InlineData("F8_E4M3", 1)]
    [InlineData("F8_E8M0", 1)]
    [InlineData("I16", 2)]
    [InlineData("U16", 2)]
    [InlineData("F16", 2)]
    [InlineData("BF16", 2)]
    [InlineData("I32", 4)]
    [InlineData("U32", 4)]
    [InlineData("U64", 8)]
    [InlineData("C64", 8)]
    public void Every_whole_byte_dtype_has_its_size_checked_against_its_shape(string dtype, int size)
    {
        var right = new RawTensor("other.t", dtype, [2, 3], new byte[6 * size]);
        var module = new BatchNorm1d<float>(3);
        string good = PathOf("good.safetensors");
        File.WriteAllBytes(good, SafetensorsBytes.File([right, .. SafetensorsBytes.BatchNorm1dOfThree("bn.")]));
        module.LoadSafetensors(good, "bn");
        Assert.Equal(12L, module.NumBatchesTracked);

        var wrong = right with { Data = new byte[(6 * size) + size] };
        string bad = PathOf("bad.safetensors");
        File.WriteAllBytes(bad, SafetensorsBytes.File([wrong, .. SafetensorsBytes.BatchNorm1dOfThree("bn.")]));
        var error = Assert.Throws<InvalidDataException>(() => module.LoadSafetensors(bad, "bn"));
        Assert.Contains($"tensor 'other.t' ({dtype}, shape [2, 3]) needs {6 * size} bytes but its data_offsets span {7 * size}", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(100_003)]
    [InlineData(16_384)]
    [InlineData(16_385)]
    public void Tensors_larger_than_one_io_chunk_round_trip_exactly(int length)
    {
        var random = new Random(length);
        var floats = Enumerable.Range(0, length).Select(_ => (float)random.NextDouble()).ToArray();
        var doubles = Enumerable.Range(0, length).Select(_ => random.NextDouble()).ToArray();
        var longs = Enumerable.Range(0, length).Select(_ => random.NextInt64()).ToArray();
        string path = PathOf("large.safetensors");
        Safetensors.Write(path, [Entry("f", new DenseTensor<float>(floats, length)), Entry("d", new DenseTensor<double>(doubles, length)), Entry("l", new DenseTensor<long>(longs, length))]);

        var read = Safetensors.Read(path);
        Assert.Equal(floats, (float[])read["f"].Data);
        Assert.Equal(doubles, (double[])read["d"].Data);
        Assert.Equal(longs, (long[])read["l"].Data);
        byte[] bytes = File.ReadAllBytes(path);
        long dataStart = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(BitConverter.GetBytes(floats[^1]), bytes.AsSpan((int)dataStart + ((length - 1) * 4), 4).ToArray());
    }

    [Fact]
    public void A_stream_that_cannot_seek_reads_every_selected_tensor_in_file_order_and_reports_cuts_as_invalid_data()
    {
        byte[] bytes = SafetensorsBytes.File([new RawTensor("skip.me", "F16", [4], new byte[8]), .. SafetensorsBytes.BatchNorm1dOfThree("bn.")]);
        using (var pipe = new ForwardOnlyStream(bytes))
        {
            var read = Safetensors.Read(pipe, key => key.StartsWith("bn.", StringComparison.Ordinal), out _);
            Assert.Equal(["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"], read.Keys);
            Assert.Equal([3f, 4, 5], (float[])read["bn.running_mean"].Data);
            Assert.Equal([12L], (long[])read["bn.num_batches_tracked"].Data);
        }

        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using (var cutInSkip = new ForwardOnlyStream(bytes[..(headerEnd + 5)]))
        {
            var error = Assert.Throws<InvalidDataException>(() => Safetensors.Read(cutInSkip, key => key.StartsWith("bn.", StringComparison.Ordinal), out _));
            Assert.Contains("the data ends at byte 5 of the data", error.Message, StringComparison.Ordinal);
        }

        using (var cutInHeader = new ForwardOnlyStream(bytes[..(headerEnd - 10)]))
        {
            var error = Assert.Throws<InvalidDataException>(() => Safetensors.Read(cutInHeader, _ => true, out _));
            Assert.Contains($"the header length is {headerEnd - 8} but only {headerEnd - 18} bytes follow it", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ReadNames_of_a_bad_file_names_the_file()
    {
        string path = PathOf("bad-names.safetensors");
        File.WriteAllBytes(path, WithHeader("[]"));
        var error = Assert.Throws<InvalidDataException>(() => Safetensors.ReadNames(path));
        Assert.Equal($"{path}: safetensors: the header is not a JSON object.", error.Message);
    }

    [Fact]
    public void A_selected_tensor_with_more_elements_than_an_array_holds_is_invalid_data_not_out_of_memory()
    {
        // Sparse: an F32 weight of 2^31 elements (8 GB of holes) under the module's prefix.
        var huge = new RawTensor("bn.weight", "F32", [1L << 31], Data: null, Length: 4L << 31);
        byte[] header = SafetensorsBytes.File(SafetensorsBytes.Header([huge]), []);
        string path = PathOf("huge.safetensors");
        using (var file = new FileStream(path, FileMode.CreateNew))
        {
            file.Write(header);
            file.SetLength(header.Length + huge.ByteLength);
        }

        var error = Assert.Throws<InvalidDataException>(() => new BatchNorm1d<float>(3).LoadSafetensors(path, "bn", strict: false));
        Assert.Contains($"tensor 'bn.weight' (shape [2147483648]) has 2147483648 elements or a dimension past int32; a .NET array holds at most {Array.MaxLength}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_save_through_a_chain_of_symbolic_links_replaces_the_final_file_and_keeps_both_links()
    {
        string target = PathOf("real.safetensors");
        new BatchNorm1d<float>(2).SaveSafetensors(target);
        string middle = PathOf("middle.safetensors");
        string outer = PathOf("outer.safetensors");
        File.CreateSymbolicLink(middle, target);
        File.CreateSymbolicLink(outer, middle);

        var module = new BatchNorm1d<float>(2) { NumBatchesTracked = 9 };
        module.SaveSafetensors(outer);
        Assert.NotNull(new FileInfo(outer).LinkTarget);
        Assert.NotNull(new FileInfo(middle).LinkTarget);
        var copy = new BatchNorm1d<float>(2);
        copy.LoadSafetensors(target);
        Assert.Equal(9L, copy.NumBatchesTracked);
    }

    private sealed class LyingTensor(int[] shape, Array data) : IStateTensor
    {
        public int[] Shape => shape;
        public Type ElementType => typeof(float);
        public Array Data => data;
    }

    public static TheoryData<int[], int> DisagreeingEntries() => new()
    {
        { [2, 3], 2 },
        { [-1, -1], 1 },
        { [-1], 1 },
        { [65536, 65536, 65536, 65536], 0 },
        { [3], 2 },
    };

    [Theory]
    [MemberData(nameof(DisagreeingEntries))]
    public void A_writer_entry_whose_shape_and_data_disagree_is_rejected_before_anything_is_written(int[] shape, int values)
    {
        using var stream = new MemoryStream();
        var error = Assert.Throws<ArgumentException>(() => Safetensors.Write(stream, [Entry("w", new LyingTensor(shape, new float[values]))]));
        Assert.Equal("tensors", error.ParamName);
        Assert.Contains($"tensor 'w' has shape [{string.Join(", ", shape)}] but {values} values", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, stream.Length);
    }
}
