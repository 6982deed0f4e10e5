using System.Buffers.Binary;
using System.Text;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Checkpoints;

/// <summary>
/// The checkpoint guarantees the README states: a save is atomic (a failure at any point, including midway through
/// the data, leaves the previous file byte-identical and no temporary file behind); a load is bounded (the header is
/// checked before anything sized by the file is allocated) and lazy (only the module's own tensors are read, so other
/// layers' dtypes do not matter and files over 2 GB load); every malformed file is an InvalidDataException naming the
/// file and the key, and leaves the module unchanged.
/// </summary>
public sealed class CheckpointGuaranteeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("bnparity-checkpoint-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => Path.Combine(_directory, name);

    private static BatchNorm2d<float> TrainedModule()
    {
        var module = new BatchNorm2d<float>(3);
        RandomAffine(module, 5);
        module.Forward(RandomTensor<float>(7, [4, 3, 5, 5], mean: 2, std: 3));
        return module;
    }

    // ---------------------------------------------------------------- atomic saves

    /// <summary>A stream that fails like a full disk once <paramref name="budget"/> bytes have been written.</summary>
    private sealed class DiskFullStream(Stream inner, long budget) : Stream
    {
        private long _written;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            long room = Math.Max(0, budget - _written);
            inner.Write(buffer[..(int)Math.Min(room, buffer.Length)]);
            _written += Math.Min(room, buffer.Length);
            if (buffer.Length > room)
            {
                throw new IOException("No space left on device (injected after " + budget + " bytes)");
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(100)]
    [InlineData(-12)] // counted from the end: inside the last tensor's data
    [InlineData(-1)]
    public void A_save_that_fails_midway_leaves_the_previous_checkpoint_byte_identical_and_no_temporary_file(int failAfter)
    {
        string path = PathOf("model.safetensors");
        var old = new BatchNorm2d<float>(3);
        old.SaveSafetensors(path, "features.1");
        byte[] before = File.ReadAllBytes(path);

        var module = TrainedModule();
        var entries = module.StateDict().Select(e => KeyValuePair.Create("features.1." + e.Key, e.Value)).ToList();
        using var probe = new MemoryStream();
        Safetensors.Write(probe, entries);
        long budget = failAfter >= 0 ? failAfter : probe.Length + failAfter;

        var error = Assert.Throws<IOException>(() => Safetensors.Write(path, entries, null, stream => new DiskFullStream(stream, budget)));
        Assert.Contains("No space left on device", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["model.safetensors"], Directory.GetFiles(_directory).Select(Path.GetFileName));
    }

    [Fact]
    public void A_save_with_an_invalid_entry_writes_nothing_and_leaves_the_previous_file()
    {
        string path = PathOf("model.safetensors");
        TrainedModule().SaveSafetensors(path);
        byte[] before = File.ReadAllBytes(path);

        var bad = new (string What, KeyValuePair<string, IStateTensor>[] Entries)[]
        {
            ("int data", [KeyValuePair.Create<string, IStateTensor>("w", new DenseTensor<float>(2)), KeyValuePair.Create<string, IStateTensor>("x", new DenseTensor<int>(2))]),
            ("repeated key", [KeyValuePair.Create<string, IStateTensor>("w", new DenseTensor<float>(2)), KeyValuePair.Create<string, IStateTensor>("w", new DenseTensor<float>(2))]),
            ("reserved key", [KeyValuePair.Create<string, IStateTensor>("__metadata__", new DenseTensor<float>(2))]),
            ("data shorter than the shape", [KeyValuePair.Create<string, IStateTensor>("w", new LyingTensor([3], typeof(float), new float[2]))]),
            ("data of another type", [KeyValuePair.Create<string, IStateTensor>("w", new LyingTensor([2], typeof(float), new double[2]))]),
        };
        foreach (var (what, entries) in bad)
        {
            var error = Assert.Throws<ArgumentException>(() => Safetensors.Write(path, entries));
            Assert.Equal("tensors", error.ParamName);
            Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(path)), $"[safetensors save] {what}: the previous file changed");
            Assert.Equal(["model.safetensors"], Directory.GetFiles(_directory).Select(Path.GetFileName));
        }
    }

    private sealed class LyingTensor(int[] shape, Type elementType, Array data) : IStateTensor
    {
        public int[] Shape => shape;
        public Type ElementType => elementType;
        public Array Data => data;
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void A_save_replaces_the_file_keeps_its_permissions_and_follows_a_symbolic_link()
    {
        string target = PathOf("real.safetensors");
        new BatchNorm2d<float>(3).SaveSafetensors(target);
        File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        string link = PathOf("latest.safetensors");
        File.CreateSymbolicLink(link, target);

        var module = TrainedModule();
        module.SaveSafetensors(link);

        Assert.NotNull(new FileInfo(link).LinkTarget); // still a link
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(target));
        var copy = new BatchNorm2d<float>(3);
        copy.LoadSafetensors(target);
        Assert.Equal(Snapshot(module), Snapshot(copy));
        Assert.Equal(2, Directory.GetFiles(_directory).Length);
    }

    // ---------------------------------------------------------------- bounded, lazy loads

    [Fact]
    public void A_header_length_larger_than_the_file_is_rejected_before_anything_of_that_size_is_allocated()
    {
        string path = PathOf("liar.safetensors");
        byte[] bytes = SafetensorsBytes.File(SafetensorsBytes.BatchNorm1dOfThree(""));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 90_000_000); // under the cap, far past the file
        File.WriteAllBytes(path, bytes);
        var module = new BatchNorm1d<float>(3);
        string before = Snapshot(module);

        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<InvalidDataException>(() => module.LoadSafetensors(path));
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        Assert.Contains("the header length 90000000 runs past the end of the file", error.Message, StringComparison.Ordinal);
        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.True(allocated < 1 << 20, $"[safetensors load] rejecting a lying header allocated {allocated} bytes");
        Assert.Equal(before, Snapshot(module));
    }

    [Fact]
    public void Dev_zero_is_rejected_quickly_as_not_safetensors()
    {
        var module = new BatchNorm1d<float>(3);
        var error = Assert.Throws<InvalidDataException>(() => module.LoadSafetensors("/dev/zero"));
        Assert.StartsWith("/dev/zero: safetensors: the header is not valid JSON", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_checkpoint_over_2_GB_loads_its_module_without_reading_the_other_tensors()
    {
        // A sparse file: a 3 GB F16 tensor of another layer (a hole on disk), then this module's entries.
        string path = PathOf("big.safetensors");
        var huge = new RawTensor("encoder.embedding.weight", "F16", [50_000, 30_000], Data: null, Length: 3_000_000_000L);
        var tensors = new[] { huge }.Concat(SafetensorsBytes.BatchNorm1dOfThree("head.bn.")).ToArray();
        byte[] header = SafetensorsBytes.File(SafetensorsBytes.Header(tensors), []);
        using (var file = new FileStream(path, FileMode.CreateNew))
        {
            file.Write(header);
            file.SetLength(header.Length + huge.ByteLength);
            file.Seek(0, SeekOrigin.End);
            foreach (var tensor in tensors.Skip(1))
            {
                file.Write(tensor.Data);
            }
        }

        Assert.True(new FileInfo(path).Length > 3_000_000_000L);
        var module = new BatchNorm1d<float>(3);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        module.LoadSafetensors(path, "head.bn");
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        Assert.Equal([1.5f, -2, 0.25f], module.Weight!);
        Assert.Equal([0.5f, 0, -1], module.Bias!);
        Assert.Equal([3f, 4, 5], module.RunningMean!);
        Assert.Equal([6f, 7, 8], module.RunningVar!);
        Assert.Equal(12L, module.NumBatchesTracked);
        Assert.True(allocated < 4 << 20, $"[safetensors load] loading 5 small tensors from a 3 GB file allocated {allocated} bytes");
        Assert.Equal(["encoder.embedding.weight", "head.bn.weight", "head.bn.bias", "head.bn.running_mean", "head.bn.running_var", "head.bn.num_batches_tracked"],
            Safetensors.ReadNames(path));
    }

    [Theory]
    [InlineData("F16", 2)]
    [InlineData("BF16", 2)]
    [InlineData("BOOL", 1)]
    [InlineData("I32", 4)]
    [InlineData("U8", 1)]
    [InlineData("F8_E4M3", 1)]
    public void Another_layers_tensor_of_any_dtype_does_not_stop_this_modules_load(string dtype, int size)
    {
        var other = new RawTensor("conv1.weight", dtype, [2, 3], new byte[6 * size]);
        var tensors = new[] { other }.Concat(SafetensorsBytes.BatchNorm1dOfThree("bn1.")).ToArray();
        string path = PathOf("mixed.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.File(tensors));

        var strictModule = new BatchNorm1d<float>(3);
        strictModule.LoadSafetensors(path, "bn1");
        Assert.Equal([3f, 4, 5], strictModule.RunningMean!);

        var lenient = new BatchNorm1d<float>(3);
        lenient.LoadSafetensors(path, "bn1", strict: false);
        Assert.Equal(12L, lenient.NumBatchesTracked);

        // Reading that tensor itself is still an error that names it.
        var error = Assert.Throws<InvalidDataException>(() => Safetensors.Read(path));
        Assert.Contains($"tensor 'conv1.weight' has dtype {dtype}; BnParity reads F32, F64 and I64", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_header_naming_a_key_twice_is_invalid_data_naming_the_file_and_the_key()
    {
        var tensors = SafetensorsBytes.BatchNorm1dOfThree("");
        string header = SafetensorsBytes.Header(tensors);
        string entry = "\"running_var\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[36,48]}";
        Assert.Contains(entry, header, StringComparison.Ordinal);
        header = header.Replace(entry, entry + "," + entry, StringComparison.Ordinal);
        string path = PathOf("twice.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.File(header, tensors));
        var module = new BatchNorm1d<float>(3);
        string before = Snapshot(module);

        var error = Assert.Throws<InvalidDataException>(() => module.LoadSafetensors(path));
        Assert.Equal($"{path}: safetensors: the header names 'running_var' twice.", error.Message);
        Assert.Equal(before, Snapshot(module));
        Assert.Throws<InvalidDataException>(() => Safetensors.Read(path));
    }

    [Theory]
    [InlineData(new long[] { 2147483647, 2147483647, 0 })]
    [InlineData(new long[] { 0, 2147483647, 2147483647 })]
    [InlineData(new long[] { 2147483647, 0, 2147483647 })]
    public void An_empty_tensor_with_huge_dimensions_is_empty_in_every_dimension_order(long[] shape)
    {
        var empty = new RawTensor("other.empty", "F32", shape, []);
        var tensors = new[] { empty }.Concat(SafetensorsBytes.BatchNorm1dOfThree("bn.")).ToArray();
        string path = PathOf("empty.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.File(tensors));
        var module = new BatchNorm1d<float>(3);
        module.LoadSafetensors(path, "bn");
        Assert.Equal(12L, module.NumBatchesTracked);
    }

    [Theory]
    [InlineData(new long[] { 4294967296, 4294967296, 2 })]
    [InlineData(new long[] { 2, 4294967296, 4294967296 })]
    [InlineData(new long[] { 9223372036854775807, 9223372036854775807 })]
    public void A_shape_whose_byte_count_overflows_is_a_mismatch_in_every_dimension_order(long[] shape)
    {
        var huge = new RawTensor("other.huge", "F32", shape, new byte[16]);
        string path = PathOf("overflow.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.File(huge));
        var error = Assert.Throws<InvalidDataException>(() => new BatchNorm1d<float>(3).LoadSafetensors(path, "bn", strict: false));
        Assert.Contains($"tensor 'other.huge' (F32, shape [{string.Join(", ", shape)}]) needs more than {long.MaxValue} bytes but its data_offsets span 16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_with_an_empty_name_under_the_prefix_is_named_in_the_error()
    {
        var tensors = SafetensorsBytes.BatchNorm1dOfThree("layer1.bn.").Append(RawTensor.Floats("layer1.bn.", 1)).ToArray();
        string path = PathOf("empty-name.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.File(tensors));
        var module = new BatchNorm1d<float>(3);
        string before = Snapshot(module);

        var error = Assert.Throws<InvalidDataException>(() => module.LoadSafetensors(path, "layer1.bn"));
        Assert.Contains("missing keys: [], unexpected keys: [layer1.bn.]", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));

        module.LoadSafetensors(path, "layer1.bn", strict: false);
        Assert.Equal(12L, module.NumBatchesTracked);
    }

    [Fact]
    public void Strict_errors_under_a_prefix_name_the_keys_as_the_file_does()
    {
        var tensors = SafetensorsBytes.BatchNorm1dOfThree("layer2.bn.").Where(t => !t.Key.EndsWith("bias", StringComparison.Ordinal))
            .Append(RawTensor.Floats("layer2.bn.scale", 1, 2, 3)).ToArray();
        string path = PathOf("keys.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.File(tensors));
        var error = Assert.Throws<InvalidDataException>(() => new BatchNorm1d<float>(3).LoadSafetensors(path, "layer2.bn"));
        Assert.Contains("missing keys: [layer2.bn.bias], unexpected keys: [layer2.bn.scale]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_cut_inside_the_data_is_invalid_data_and_a_pipe_like_stream_reads_the_same_tensors()
    {
        byte[] bytes = SafetensorsBytes.File(SafetensorsBytes.BatchNorm1dOfThree("bn."));
        var expected = Safetensors.Parse(bytes, out _);
        using (var pipe = new ForwardOnlyStream(bytes))
        {
            var read = Safetensors.Read(pipe, key => key.EndsWith("var", StringComparison.Ordinal), out _);
            Assert.Equal(["bn.running_var"], read.Keys);
            Assert.Equal(expected["bn.running_var"].Data, read["bn.running_var"].Data);
        }

        using var cut = new ForwardOnlyStream(bytes[..^3]);
        var error = Assert.Throws<InvalidDataException>(() => Safetensors.Read(cut, _ => true, out _));
        Assert.Contains("tensor 'bn.num_batches_tracked' is cut short", error.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => Safetensors.Parse(bytes.AsSpan(0, bytes.Length - 3), out _));
    }

    [Fact]
    public void Metadata_must_be_an_object_of_strings_named_once()
    {
        foreach (string metadata in new[] { "\"__metadata__\":3", "\"__metadata__\":{\"a\":1}", "\"__metadata__\":{\"a\":\"x\",\"a\":\"y\"}" })
        {
            byte[] json = Encoding.UTF8.GetBytes("{" + metadata + "}");
            byte[] bytes = new byte[8 + json.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
            json.CopyTo(bytes, 8);
            var error = Assert.Throws<InvalidDataException>(() => Safetensors.Parse(bytes, out _));
            Assert.Contains("metadata", error.Message, StringComparison.OrdinalIgnoreCase);
        }
    }
}
