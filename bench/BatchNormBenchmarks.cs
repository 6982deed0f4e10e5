using BenchmarkDotNet.Attributes;
using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;
using BnParity.Harness.Oracle;
using TorchSharp;
using static TorchSharp.torch;
using TorchLayer = TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>;

namespace BnParity.Benchmarks;

/// <summary>
/// BatchNorm, GroupNorm and InstanceNorm, C# (BnParity) against TorchSharp (libtorch) in one run. Categories are the
/// operations; every (category, Case, Threads) group has TorchSharp as its baseline, so
/// Ratio = C# time / TorchSharp time. The Copy rows copy the input into the output buffer
/// (one "copy-equivalent", CE): C# Mean / Copy Mean reads the kernel in passes over memory.
/// </summary>
/// <remarks>
/// Each benchmark case gets its own instance and only the global setup its method needs
/// (BenchmarkDotNet's Target filter), so a 51 MB case does not keep the other side's buffers alive.
/// Both sides use the same thread count: the C# module's MaxDegreeOfParallelism and libtorch's
/// intra-op threads (torch.set_num_threads via <see cref="TorchSharpOracle.Start"/>).
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkDotNet.Configs.BenchmarkLogicalGroupRule.ByCategory)]
public class BatchNormBenchmarks
{
    public const string TrainForward = "TrainFwd";
    public const string EvalForward = "Eval";
    public const string ForwardBackward = "FwdBwd";
    private const int Seed = 20261128;

    private TorchLayer? _torchModule;
    private Tensor? _torchInput;
    private Tensor? _torchGradOutput;
    private CSharpSide? _cs;
    private CopySide? _copy;

    /// <summary>The input shapes (float32, plus 8×256×14×14 in float64): BatchNorm2d on 4-D shapes, BatchNorm1d on
    /// 256×256 (the row path), 8×2×256×256 the few-channel large shape (the split path); the last two channels-last
    /// (NHWC on both sides: TorchSharp gets an (N, H, W, C) tensor permuted to (N, C, H, W), as the oracle builds it,
    /// and takes libtorch's channels-last kernel).</summary>
    public static IEnumerable<BenchCase> Cases() =>
    [
        new(0, [2, 4, 3, 3], ElementType.Float32),
        new(1, [16, 16, 8, 8], ElementType.Float32),
        new(2, [1, 3, 255, 255], ElementType.Float32),
        new(3, [8, 256, 14, 14], ElementType.Float32),
        new(4, [8, 256, 14, 14], ElementType.Float64),
        new(5, [32, 64, 56, 56], ElementType.Float32),
        new(6, [64, 64, 56, 56], ElementType.Float32),
        new(7, [8, 2, 256, 256], ElementType.Float32),
        new(8, [256, 256], ElementType.Float32),
        new(9, [32, 64, 56, 56], ElementType.Float32, MemoryLayout.ChannelsLast),
        new(10, [8, 256, 14, 14], ElementType.Float32, MemoryLayout.ChannelsLast),

        // GroupNorm with 32 groups (a diffusion U-Net block, a detection head) and InstanceNorm (style transfer, GAN
        // generators: one image of 256×256, a batch of 64×64), both layouts.
        new(11, [8, 320, 64, 64], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.GroupNorm, 32),
        new(12, [8, 320, 64, 64], ElementType.Float32, MemoryLayout.ChannelsLast, ModuleKind.GroupNorm, 32),
        new(13, [32, 64, 56, 56], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.GroupNorm, 32),
        new(14, [32, 64, 56, 56], ElementType.Float32, MemoryLayout.ChannelsLast, ModuleKind.GroupNorm, 32),
        new(15, [1, 64, 256, 256], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.InstanceNorm2d),
        new(16, [1, 64, 256, 256], ElementType.Float32, MemoryLayout.ChannelsLast, ModuleKind.InstanceNorm2d),
        new(17, [16, 64, 64, 64], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.InstanceNorm2d),
        new(18, [16, 64, 64, 64], ElementType.Float32, MemoryLayout.ChannelsLast, ModuleKind.InstanceNorm2d),

        // LayerNorm and RMSNorm over the last dimension on transformer shapes: BERT-base (8 sequences of 512 tokens,
        // width 768), ViT-B/16 (64 images of 197 tokens, 768), a 7B-class model's width (2048 tokens of 4096).
        // TorchSharp's side is nn.LayerNorm, and for RMSNorm PyTorch's composite from TorchSharp ops (it has no RMSNorm).
        // The Eval category is the same call as TrainFwd for these layers: run them with --anyCategories TrainFwd FwdBwd.
        new(19, [8, 512, 768], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.LayerNorm),
        new(20, [64, 197, 768], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.LayerNorm),
        new(21, [2048, 4096], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.LayerNorm),
        new(22, [8, 512, 768], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.RMSNorm),
        new(23, [64, 197, 768], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.RMSNorm),
        new(24, [2048, 4096], ElementType.Float32, MemoryLayout.ChannelsFirst, ModuleKind.RMSNorm),
    ];

    [ParamsSource(nameof(Cases))]
    public BenchCase Case { get; set; } = null!;

    /// <summary>Threads on both sides.</summary>
    [Params(2, 1)]
    public int Threads { get; set; }

    // ------------------------------------------------------------------ setups (one per method family)

    [GlobalSetup(Targets = [nameof(TrainFwd_TorchSharp), nameof(FwdBwd_TorchSharp)])]
    public void SetupTorchTraining() => SetupTorch(training: true);

    [GlobalSetup(Target = nameof(Eval_TorchSharp))]
    public void SetupTorchEval() => SetupTorch(training: false);

    // Forward-only benchmarks save nothing for backward on either side: TorchSharp runs them under
    // no_grad, and the C# module gets SaveForBackward = false (otherwise its span overload copies the input).
    [GlobalSetup(Target = nameof(TrainFwd_CSharp))]
    public void SetupCSharpTraining() => SetupCSharp(training: true, saveForBackward: false);

    [GlobalSetup(Target = nameof(FwdBwd_CSharp))]
    public void SetupCSharpForwardBackward() => SetupCSharp(training: true, saveForBackward: true);

    [GlobalSetup(Target = nameof(Eval_CSharp))]
    public void SetupCSharpEval() => SetupCSharp(training: false, saveForBackward: false);

    [GlobalSetup(Targets = [nameof(TrainFwd_Copy), nameof(Eval_Copy)])]
    public void SetupCopy() => _copy = Case.DType == ElementType.Float32
        ? new CopySide<float>(BenchData.Input<float>(Case.Shape, Seed))
        : new CopySide<double>(BenchData.Input<double>(Case.Shape, Seed));

    [GlobalCleanup]
    public void Cleanup()
    {
        _torchInput?.Dispose();
        _torchGradOutput?.Dispose();
        _torchModule?.Dispose();
        _torchInput = _torchGradOutput = null;
        _torchModule = null;
        _cs = null;
        _copy = null;
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>BatchNorm with PyTorch's defaults; GroupNorm affine; InstanceNorm affine with running statistics (its
    /// eval then normalises with them, like BatchNorm's).</summary>
    private ModuleConfig Config => Case.Config;

    private void SetupTorch(bool training)
    {
        TorchSharpOracle.Start(Threads, Seed);
        int actual = torch.get_num_threads();
        if (actual != Threads)
        {
            throw new InvalidOperationException($"libtorch runs {actual} intra-op threads; the benchmark asked for {Threads}.");
        }

        _torchModule = TorchSharpImplementation.CreateLayer(Config);
        if (Case.Module == ModuleKind.GroupNorm)
        {
            // TorchSharp's GroupNorm leaves weight and bias uninitialised (a ledger row): PyTorch's ones and zeros.
            using var noGrad = torch.no_grad();
            foreach (var (name, parameter) in _torchModule.named_parameters())
            {
                parameter.fill_(name == "weight" ? 1 : 0);
            }
        }

        _torchModule.train(training);
        if (Case.DType == ElementType.Float32)
        {
            _torchInput = TorchTensor(BenchData.Input<float>(Case.Shape, Seed, Case.Layout));
            _torchGradOutput = TorchTensor(BenchData.GradOutput<float>(Case.Shape, Seed + 1));
        }
        else
        {
            _torchInput = TorchTensor(BenchData.Input<double>(Case.Shape, Seed, Case.Layout));
            _torchGradOutput = TorchTensor(BenchData.GradOutput<double>(Case.Shape, Seed + 1));
        }
    }

    /// <summary>The data (already in the case's memory order) as a TorchSharp tensor of the logical shape with the
    /// layout's strides: channels-last is the (N, H, W, C) tensor permuted to (N, C, H, W).</summary>
    private Tensor TorchTensor<T>(T[] memory) where T : unmanaged
    {
        long[] memoryDims = MemoryOrder.MemoryShape(Case.Shape, Case.Layout);
        var stored = memory is float[] f ? torch.tensor(f, memoryDims) : torch.tensor((double[])(object)memory, memoryDims);
        if (Case.Layout == MemoryLayout.ChannelsFirst)
        {
            return stored;
        }

        using var owner = stored; // the view keeps the storage alive
        return TorchSharpImplementation.ChannelsLastView(stored);
    }

    private void SetupCSharp(bool training, bool saveForBackward)
    {
        _cs = Case.DType == ElementType.Float32
            ? new CSharpSide<float>(Config, Case.Shape, Case.Layout, Threads, training, saveForBackward, Seed)
            : new CSharpSide<double>(Config, Case.Shape, Case.Layout, Threads, training, saveForBackward, Seed);
    }

    // ------------------------------------------------------------------ training forward (running stats updated)

    [Benchmark(Baseline = true, Description = "TorchSharp")]
    [BenchmarkCategory(TrainForward)]
    public void TrainFwd_TorchSharp()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        _torchModule!.forward(_torchInput!);
    }

    [Benchmark(Description = "C#")]
    [BenchmarkCategory(TrainForward)]
    public void TrainFwd_CSharp() => _cs!.Forward();

    [Benchmark(Description = "Copy")]
    [BenchmarkCategory(TrainForward)]
    public void TrainFwd_Copy() => _copy!.Copy();

    // ------------------------------------------------------------------ eval forward (running stats)

    [Benchmark(Baseline = true, Description = "TorchSharp")]
    [BenchmarkCategory(EvalForward)]
    public void Eval_TorchSharp()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        _torchModule!.forward(_torchInput!);
    }

    [Benchmark(Description = "C#")]
    [BenchmarkCategory(EvalForward)]
    public void Eval_CSharp() => _cs!.Forward();

    [Benchmark(Description = "Copy")]
    [BenchmarkCategory(EvalForward)]
    public void Eval_Copy() => _copy!.Copy();

    // ------------------------------------------------------------------ training forward + backward

    [Benchmark(Baseline = true, Description = "TorchSharp")]
    [BenchmarkCategory(ForwardBackward)]
    public void FwdBwd_TorchSharp()
    {
        using var scope = torch.NewDisposeScope();

        // A fresh leaf view of the same storage (no copy) so input.grad is created, not accumulated;
        // weight/bias .grad accumulate in place (C-length adds, negligible).
        var input = _torchInput!.detach().requires_grad_(true);
        var output = _torchModule!.forward(input);
        output.backward([_torchGradOutput!]);
    }

    [Benchmark(Description = "C#")]
    [BenchmarkCategory(ForwardBackward)]
    public void FwdBwd_CSharp() => _cs!.ForwardBackward();
}

/// <summary>One benchmarked input: shape and element type; sorts in declaration order (IComparable is only
/// for BenchmarkDotNet's parameter ordering, hence no comparison operators).</summary>
#pragma warning disable CA1036
public sealed class BenchCase(int order, int[] shape, ElementType dtype, MemoryLayout layout = MemoryLayout.ChannelsFirst, ModuleKind? module = null, int groups = 0)
    : IComparable<BenchCase>, IComparable
{
    public int Order { get; } = order;

    /// <summary>GroupNorm, an InstanceNorm, LayerNorm or RMSNorm (over the last dimension); null = BatchNorm of the
    /// shape's rank.</summary>
    public ModuleKind? Module { get; } = module;

    /// <summary>GroupNorm's groups.</summary>
    public int Groups { get; } = groups;

    public MemoryLayout Layout { get; } = layout;

    public int[] Shape { get; } = shape;

    public ElementType DType { get; } = dtype;

    /// <summary>The module benchmarked: BatchNorm with PyTorch's defaults; GroupNorm affine; InstanceNorm affine with
    /// running statistics (its eval then normalises with them, like BatchNorm's).</summary>
    public ModuleConfig Config => Module switch
    {
        ModuleKind.GroupNorm => ModuleConfig.GroupNorm(Groups, Shape[1], dtype: DType),
        ModuleKind.LayerNorm => ModuleConfig.LayerNorm([Shape[^1]], dtype: DType),
        ModuleKind.RMSNorm => ModuleConfig.RMSNorm([Shape[^1]], dtype: DType),
        { } instanceNorm => new ModuleConfig(instanceNorm, Shape[1], Affine: true, TrackRunningStats: true, DType: DType),
        null => new(Shape.Length switch { 4 => ModuleKind.BatchNorm2d, 5 => ModuleKind.BatchNorm3d, _ => ModuleKind.BatchNorm1d }, Shape[1], DType: DType),
    };

    public int CompareTo(BenchCase? other) => other is null ? 1 : Order.CompareTo(other.Order);

    public int CompareTo(object? obj) => CompareTo(obj as BenchCase);

    public override string ToString() =>
        (Module switch { ModuleKind.GroupNorm => $"GN{Groups} ", ModuleKind.InstanceNorm2d => "IN ", ModuleKind.LayerNorm => "LN ", ModuleKind.RMSNorm => "RMS ", _ => "" })
        + string.Join("x", Shape) + (DType == ElementType.Float32 ? " f32" : " f64") + (Layout == MemoryLayout.ChannelsLast ? " NHWC" : "");
}
#pragma warning restore CA1036

/// <summary>Fixed-seed data shared by both sides.</summary>
internal static class BenchData
{
    /// <summary>Values around 0.5 with spread ~1, different per channel (a realistic activation).</summary>
    /// <summary>In <paramref name="layout"/>'s memory order: the same values per channel in either layout.</summary>
    public static T[] Input<T>(int[] shape, int seed, MemoryLayout layout) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        MemoryOrder.ToMemory(Input<T>(shape, seed), shape, layout);

    public static T[] Input<T>(int[] shape, int seed) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        int length = shape.Aggregate(1, (a, b) => a * b);
        int spatial = length / (shape[0] * shape[1]);
        var data = new T[length];
        for (int i = 0; i < length; i++)
        {
            int channel = i / spatial % shape[1];
            data[i] = T.CreateChecked(0.5 + (0.01 * channel) + ((random.NextDouble() - 0.5) * 3.0));
        }

        return data;
    }

    public static T[] GradOutput<T>(int[] shape, int seed) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        int length = shape.Aggregate(1, (a, b) => a * b);
        var data = new T[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = T.CreateChecked(random.NextDouble() - 0.5);
        }

        return data;
    }
}

/// <summary>The C# module and its preallocated buffers (the base type lets one benchmark class serve float and double).</summary>
internal abstract class CSharpSide
{
    public abstract void Forward();

    public abstract void ForwardBackward();
}

internal sealed class CSharpSide<T> : CSharpSide where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
{
    private readonly NormBase<T> _module;
    private readonly int[] _shape;
    private readonly MemoryLayout _layout;
    private readonly T[] _input;
    private readonly T[] _output;
    private readonly DenseTensor<T> _inputTensor;
    private readonly DenseTensor<T> _outputTensor;
    private readonly T[] _gradOutput;
    private readonly T[] _gradInput;
    private readonly T[] _gradWeight;
    private readonly T[] _gradBias;

    public CSharpSide(ModuleConfig config, int[] shape, MemoryLayout layout, int threads, bool training, bool saveForBackward, int seed)
    {
        _module = LibraryImplementation.CreateModule<T>(config);
        _module.MaxDegreeOfParallelism = threads;
        _module.Training = training;
        _module.SaveForBackward = saveForBackward;
        _shape = shape;
        _layout = layout;
        _input = BenchData.Input<T>(shape, seed, layout);
        _output = new T[_input.Length];
        _inputTensor = new DenseTensor<T>(_input, shape);
        _outputTensor = new DenseTensor<T>(_output, shape);
        _gradOutput = BenchData.GradOutput<T>(shape, seed + 1);
        _gradInput = new T[_input.Length];
        _gradWeight = new T[config.NumFeatures];
        _gradBias = new T[config.HasBias ? config.NumFeatures : 0];
    }

    public override void Forward() => _module.Forward(_input, _shape, _output, _layout);

    /// <summary>A training step as TorchSharp's autograd runs it: the forward keeps a reference to the input (the
    /// <see cref="DenseTensor{T}"/> overload; the span overload would copy it, since a span's memory may change before
    /// the backward), the backward writes into preallocated gradients. Neither side allocates per element.</summary>
    public override void ForwardBackward()
    {
        _module.Forward(_inputTensor, _outputTensor, _layout);
        _module.Backward(_gradOutput, _shape, _gradInput, _gradWeight, _gradBias, _layout);
    }
}

/// <summary>The memory-copy reference: the input copied into a preallocated output (one copy-equivalent).</summary>
internal abstract class CopySide
{
    public abstract void Copy();
}

internal sealed class CopySide<T>(T[] input) : CopySide where T : unmanaged
{
    private readonly T[] _output = new T[input.Length];

    public override void Copy() => input.AsSpan().CopyTo(_output);
}
