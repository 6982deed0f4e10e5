using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Checkpoints;

/// <summary>
/// Safetensors checkpoints (TorchSharp-free): files written by real PyTorch (fixtures/safetensors, with the values
/// PyTorch's state_dict() held), round trips through the library, module prefixes of a whole model, the legacy [1]
/// count, and bad files that must be clear errors leaving the module exactly as it was.
/// </summary>
public sealed class SafetensorsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("bnparity-safetensors-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "safetensors", name);

    private static JsonObject Expected(string name) =>
        JsonNode.Parse(File.ReadAllText(Fixture(name + ".expected.json")))!["tensors"]!.AsObject();

    [Fact]
    public void Every_tensor_of_a_PyTorch_written_model_reads_with_PyTorchs_dtype_shape_and_values()
    {
        var tensors = Safetensors.Read(Fixture("pytorch-smallnet-f32.safetensors"));
        var expected = Expected("pytorch-smallnet-f32");
        Assert.Equal(expected.Select(e => e.Key), tensors.Keys);
        foreach (var (key, node) in expected)
        {
            var tensor = tensors[key];
            Assert.Equal(node!["shape"]!.AsArray().Select(d => (int)d!), tensor.Shape);
            Assert.Equal((string)node["dtype"]!, tensor.ElementType == typeof(float) ? "F32" : tensor.ElementType == typeof(long) ? "I64" : "F64");
            double[] values = node["data"]!.AsArray().Select(v => (double)v!).ToArray();
            double[] actual = tensor.Data.Cast<object>().Select(Convert.ToDouble).ToArray();
            Assert.Equal(values, actual);
        }

        Assert.Equal([], tensors["layer1.0.bn1.num_batches_tracked"].Shape);
    }

    [Theory]
    [InlineData("bn1")]
    [InlineData("layer1.0.bn1")]
    [InlineData("layer1.0.bn2.")]
    [InlineData("layer1.1.bn2")]
    public void A_BatchNorm2d_of_a_whole_model_loads_from_its_prefix(string prefix)
    {
        var module = new BatchNorm2d<float>(4);
        module.LoadSafetensors(Fixture("pytorch-smallnet-f32.safetensors"), prefix);
        var expected = Expected("pytorch-smallnet-f32");
        string start = prefix.TrimEnd('.') + ".";
        Assert.Equal(Floats(expected[start + "weight"]!), module.Weight);
        Assert.Equal(Floats(expected[start + "bias"]!), module.Bias);
        Assert.Equal(Floats(expected[start + "running_mean"]!), module.RunningMean);
        Assert.Equal(Floats(expected[start + "running_var"]!), module.RunningVar);
        Assert.Equal((long)expected[start + "num_batches_tracked"]!["data"]![0]!, module.NumBatchesTracked);
    }

    [Fact]
    public void A_prefix_with_no_tensor_is_an_error_unless_not_strict_and_strict_loading_of_the_whole_file_names_the_keys()
    {
        var head = new BatchNorm1d<float>(4, affine: false);
        head.LoadSafetensors(Fixture("pytorch-smallnet-f32.safetensors"), "head");
        Assert.Equal(Floats(Expected("pytorch-smallnet-f32")["head.running_var"]!), head.RunningVar);

        var absent = new BatchNorm1d<float>(4);
        var error = Assert.Throws<InvalidDataException>(() => absent.LoadSafetensors(Fixture("pytorch-smallnet-f32.safetensors"), "fc"));
        Assert.Contains("no tensor is under the prefix 'fc.'", error.Message, StringComparison.Ordinal);
        absent.LoadSafetensors(Fixture("pytorch-smallnet-f32.safetensors"), "fc", strict: false);

        var module = new BatchNorm2d<float>(4);
        string before = Snapshot(module);
        error = Assert.Throws<InvalidDataException>(() => module.LoadSafetensors(Fixture("pytorch-smallnet-f32.safetensors")));
        Assert.Contains("missing keys: [weight, bias, running_mean, running_var], unexpected keys: [bn1.bias,", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));
    }

    [Fact]
    public void A_float64_module_loads_a_PyTorch_double_file_and_a_float_module_rejects_it_unchanged()
    {
        var module = new BatchNorm2d<double>(3, momentum: 0.3);
        module.LoadSafetensors(Fixture("pytorch-bn2d-f64.safetensors"));
        var expected = Expected("pytorch-bn2d-f64");
        Assert.Equal(expected["running_var"]!["data"]!.AsArray().Select(v => (double)v!), module.RunningVar!);
        Assert.Equal(2L, module.NumBatchesTracked);

        var single = new BatchNorm2d<float>(3);
        string before = Snapshot(single);
        var error = Assert.Throws<InvalidDataException>(() => single.LoadSafetensors(Fixture("pytorch-bn2d-f64.safetensors")));
        Assert.Contains("dtype mismatch for weight: expected Single, got Double", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(single));
    }

    [Fact]
    public void A_num_batches_tracked_of_the_legacy_shape_1_loads_as_PyTorch_loads_it()
    {
        var module = new BatchNorm1d<float>(5);
        module.LoadSafetensors(Fixture("pytorch-bn1d-legacy-count-shape1.safetensors"));
        Assert.Equal(1L, module.NumBatchesTracked);
        Assert.Equal(Floats(Expected("pytorch-bn1d-legacy-count-shape1")["running_mean"]!), module.RunningMean);
    }

    [Fact]
    public void Saved_files_round_trip_with_the_prefix_and_have_PyTorchs_layout()
    {
        var module = new BatchNorm3d<float>(3, momentum: null);
        RandomAffine(module, 4);
        module.Forward(RandomTensor<float>(5, [2, 3, 2, 3, 2], mean: 1, std: 2));
        string path = Path.Combine(_directory, "bn.safetensors");
        module.SaveSafetensors(path, "features.7");

        var tensors = Safetensors.Read(path);
        Assert.Equal(["features.7.weight", "features.7.bias", "features.7.running_mean", "features.7.running_var", "features.7.num_batches_tracked"], tensors.Keys);
        Assert.Equal(typeof(long), tensors["features.7.num_batches_tracked"].ElementType);
        Assert.Equal([], tensors["features.7.num_batches_tracked"].Shape);
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes) % 8); // the data starts 8-byte aligned

        var copy = new BatchNorm3d<float>(3, momentum: null);
        copy.LoadSafetensors(path, "features.7.");
        Assert.Equal(Snapshot(module), Snapshot(copy));
    }

    /// <summary>The writer's bytes are the reference layout's bytes: given the tensors of a file written in that
    /// layout (compact JSON, keys dtype/shape/data_offsets, the header padded with spaces to a multiple of 8 so the
    /// F64/I64 data is aligned for zero-copy readers, raw little-endian data), in that file's order, it writes the
    /// same file byte for byte.</summary>
    [Theory]
    [InlineData("pytorch-smallnet-f32")]
    [InlineData("pytorch-bn2d-f64")]
    [InlineData("pytorch-bn1d-legacy-count-shape1")]
    public void The_writer_reproduces_a_reference_layout_file_byte_for_byte(string name)
    {
        byte[] reference = File.ReadAllBytes(Fixture(name + ".safetensors"));
        var tensors = Safetensors.Read(Fixture(name + ".safetensors"));
        using var written = new MemoryStream();
        Safetensors.Write(written, tensors);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(written.GetBuffer()) % 8);
        Assert.Equal(reference, written.ToArray());
    }

    [Fact]
    public void A_missing_num_batches_tracked_keeps_the_current_count()
    {
        var source = new BatchNorm2d<float>(2);
        string path = Path.Combine(_directory, "no-count.safetensors");
        Safetensors.Write(path, source.StateDict().Where(e => e.Key != "num_batches_tracked"));
        var module = new BatchNorm2d<float>(2) { NumBatchesTracked = 41 };
        module.LoadSafetensors(path);
        Assert.Equal(41L, module.NumBatchesTracked);
    }

    public static TheoryData<string, string> BadFiles() => new()
    {
        { "truncated data", "the tensors need 56 data bytes but the file has 52 after its header (truncated?)" },
        { "header length past the end", "runs past the end of the file" },
        { "overlapping offsets", "tensor 'bias' at bytes [8, 20) overlaps the tensor before it (which ends at 12)" },
        { "offsets out of range", "the tensors need 60 data bytes but the file has 56" },
        { "offsets disagree with the shape", "tensor 'running_var' (F32, shape [3]) needs 12 bytes but its data_offsets span 16" },
        { "unknown dtype", "tensor 'bias' has dtype F16; BnParity reads F32, F64 and I64" },
        { "header not JSON", "the header is not valid JSON" },
        { "hole in the data", "the last 4 data bytes belong to no tensor" },
        { "shorter than 8 bytes", "fewer than the 8-byte header length" },
        { "unknown key under strict loading", "unexpected keys: [extra]" },
        { "wrong count dtype", "dtype mismatch for num_batches_tracked: expected Int64, got Single" },
        { "wrong shape", "size mismatch for running_mean: expected shape [3], got [4]" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void A_bad_file_is_a_clear_error_and_leaves_the_module_unchanged(string defect, string message)
    {
        string path = Path.Combine(_directory, "bad.safetensors");
        File.WriteAllBytes(path, BadFile(defect));
        var module = new BatchNorm1d<float>(3);
        RandomAffine(module, 9);
        module.NumBatchesTracked = 6;
        string before = Snapshot(module);
        var error = Assert.Throws<InvalidDataException>(() => module.LoadSafetensors(path));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));
    }

    /// <summary>A valid BatchNorm1d(3) file (weight, bias, num_batches_tracked, running_mean, running_var: 56 data
    /// bytes), then one defect.</summary>
    private static byte[] BadFile(string defect)
    {
        var entries = new List<(string Key, string DType, int[] Shape, int Bytes)>
        {
            ("weight", "F32", [3], 12),
            ("bias", defect == "unknown dtype" ? "F16" : "F32", [3], defect == "unknown dtype" ? 6 : 12),
            ("num_batches_tracked", defect == "wrong count dtype" ? "F32" : "I64", [], defect == "wrong count dtype" ? 4 : 8),
            ("running_mean", "F32", defect == "wrong shape" ? [4] : [3], defect == "wrong shape" ? 16 : 12),
            ("running_var", "F32", defect == "offsets out of range" ? [4] : [3], defect is "offsets out of range" or "offsets disagree with the shape" ? 16 : 12),
        };
        if (defect == "unknown key under strict loading")
        {
            entries.Add(("extra", "F32", [1], 4));
        }

        var header = new JsonObject();
        long offset = 0;
        foreach (var (key, dtype, shape, bytes) in entries)
        {
            long begin = defect == "overlapping offsets" && key == "bias" ? 8 : offset;
            header[key] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(begin, begin + bytes),
            };
            offset = begin + bytes;
        }

        long data = defect switch
        {
            "truncated data" => offset - 4,
            "hole in the data" => offset + 4,
            "offsets out of range" or "offsets disagree with the shape" => offset - 4,
            _ => offset,
        };
        byte[] json = Encoding.UTF8.GetBytes(defect == "header not JSON" ? "{\"weight\": [" : header.ToJsonString());
        var file = new byte[8 + json.Length + data];
        ulong declared = defect == "header length past the end" ? (ulong)(json.Length + data + 1) : (ulong)json.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(file, declared);
        json.CopyTo(file, 8);
        return defect == "shorter than 8 bytes" ? file[..5] : file;
    }

    private static float[] Floats(JsonNode tensor) => tensor["data"]!.AsArray().Select(v => (float)(double)v!).ToArray();
}
