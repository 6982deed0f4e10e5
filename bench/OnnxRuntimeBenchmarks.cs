using BenchmarkDotNet.Attributes;
using BnParity.Harness.Cases;
using BnParity.OnnxRuntime;
using Microsoft.ML.OnnxRuntime;

namespace BnParity.Benchmarks;

/// <summary>
/// ONNX Runtime (CPU provider) beside TorchSharp and C# on the rows ORT can run: BatchNorm eval on every channels-first
/// shape (BatchNormalization-15 with running statistics; ONNX tensors are channels-first, so ORT has no NHWC row), and
/// the forward of GroupNorm (GroupNormalization-21), InstanceNorm (InstanceNormalization: instance statistics; the
/// running-statistics update of the C# and TorchSharp rows is C-length work ORT leaves out), LayerNorm
/// (LayerNormalization-17) and RMSNorm (RMSNormalization-23). Same process and thread count as
/// <see cref="BatchNormBenchmarks"/> (intra-op threads pinned through <see cref="OnnxRuntimePeer"/>); the summary
/// matches rows by operation, Case and Threads. ORT writes into a preallocated output (its best case: TorchSharp
/// allocates one per call).
/// </summary>
[MemoryDiagnoser]
public class OnnxRuntimeBenchmarks : IDisposable
{
    private const int Seed = 20261128;
    private InferenceSession? _session;
    private OrtValue? _input;
    private OrtValue? _output;
    private RunOptions? _runOptions;

    /// <summary>The channels-first cases of <see cref="BatchNormBenchmarks"/>: BatchNorm for Eval, the other layers for
    /// TrainFwd.</summary>
    public static IEnumerable<BenchCase> Cases() => BatchNormBenchmarks.Cases().Where(c => c.Layout == MemoryLayout.ChannelsFirst);

    [ParamsSource(nameof(Cases))]
    public BenchCase Case { get; set; } = null!;

    [Params(2, 1)]
    public int Threads { get; set; }

    private bool IsBatchNorm => Case.Module is null;

    [GlobalSetup]
    public void Setup()
    {
        var config = Case.Config;
        if (config.IsInstanceNorm)
        {
            config = config with { TrackRunningStats = false, Momentum = null };
        }

        var (node, shape) = OnnxNormalization.For(config, ModuleState.Defaults(config), training: !IsBatchNorm, Case.Shape);
        _session = OnnxRuntimePeer.CreateSession(node.Serialize(config.DType, shape), Threads);
        long[] dims = Array.ConvertAll(shape, d => (long)d);
        if (Case.DType == ElementType.Float32)
        {
            float[] input = BenchData.Input<float>(Case.Shape, Seed);
            _input = OrtValue.CreateTensorValueFromMemory(input, dims);
            _output = OrtValue.CreateTensorValueFromMemory(new float[input.Length], dims);
        }
        else
        {
            double[] input = BenchData.Input<double>(Case.Shape, Seed);
            _input = OrtValue.CreateTensorValueFromMemory(input, dims);
            _output = OrtValue.CreateTensorValueFromMemory(new double[input.Length], dims);
        }

        _runOptions = new RunOptions();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _input?.Dispose();
        _output?.Dispose();
        _runOptions?.Dispose();
        _session?.Dispose();
        _input = _output = null;
        _runOptions = null;
        _session = null;
    }

    /// <summary>BenchmarkDotNet calls <see cref="Cleanup"/>; this is for anything else that creates the class.</summary>
    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    /// <summary>BatchNorm eval (running statistics), as <see cref="BatchNormBenchmarks.Eval_CSharp"/>; for the other
    /// layers the same call as <see cref="TrainFwd_OnnxRuntime"/>.</summary>
    [Benchmark(Description = "ONNX Runtime")]
    [BenchmarkCategory(BatchNormBenchmarks.EvalForward)]
    public void Eval_OnnxRuntime() => Run();

    /// <summary>The forward of GroupNorm, InstanceNorm, LayerNorm and RMSNorm; for BatchNorm the eval call (ORT's
    /// training mode is not a forward row).</summary>
    [Benchmark(Description = "ONNX Runtime")]
    [BenchmarkCategory(BatchNormBenchmarks.TrainForward)]
    public void TrainFwd_OnnxRuntime() => Run();

    private void Run() => _session!.Run(_runOptions!, ["X"], [_input!], ["Y"], [_output!]);
}
