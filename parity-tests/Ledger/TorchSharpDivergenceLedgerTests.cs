using System.Reflection;
using BnParity.Harness.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace BnParity.ParityTests.Ledger;

/// <summary>
/// The divergence ledger (docs/divergence-ledger.md): every known difference between TorchSharp
/// 0.107 and PyTorch, each test asserting TorchSharp's CURRENT behaviour next to the C# library's
/// PyTorch behaviour. When a TorchSharp upgrade fixes one, its test goes red: update the ledger
/// (and the harness's workaround, e.g. TorchSharpImplementation.ReadCount or the sweep's skip).
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class TorchSharpDivergenceLedgerTests
{
    public TorchSharpDivergenceLedgerTests()
    {
        TorchSharpOracle.Start(seed: 7);
    }

    private static float[] Floats(Tensor t) => t.data<float>().ToArray();

    /// <summary>PyTorch: num_batches_tracked is always torch.long. TorchSharp 0.107: it takes the module's dtype.</summary>
    [Fact]
    public void Num_batches_tracked_takes_the_module_dtype_in_TorchSharp_but_is_always_int64_in_the_library()
    {
        using var scope = TorchSharpOracle.Scope();
        using var f64 = nn.BatchNorm1d(3, dtype: ScalarType.Float64);
        using var f32 = nn.BatchNorm1d(3);
        Assert.Equal(ScalarType.Float64, f64.num_batches_tracked!.dtype);
        Assert.Equal(ScalarType.Int64, f32.num_batches_tracked!.dtype);
        f64.train();
        f64.forward(randn(4, 3, dtype: ScalarType.Float64));
        Assert.Equal(1.0, f64.num_batches_tracked!.item<double>());

        var library = new BatchNorm1d<double>(3);
        library.Forward(new DenseTensor<double>(new double[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, 4, 3));
        Assert.IsType<DenseTensor<long>>(library.StateDict()["num_batches_tracked"]);
        Assert.Equal(1L, library.NumBatchesTracked);
    }

    /// <summary>
    /// PyTorch raises "Expected more than 1 value per channel when training" (ValueError). TorchSharp
    /// 0.107 has no such check: it normalises to 0, running_var becomes NaN (unbiased variance of one
    /// value), running_mean moves and num_batches_tracked is bumped.
    /// </summary>
    [Fact]
    public void Training_on_one_value_per_channel_does_not_throw_in_TorchSharp_and_makes_running_var_NaN()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.BatchNorm2d(3);
        module.train();
        var output = module.forward(tensor(new float[] { 1, 2, 3 }, new long[] { 1, 3, 1, 1 }));
        Assert.All(Floats(output), v => Assert.True(Math.Abs(v) < 1e-3f));
        Assert.All(Floats(module.running_var!), v => Assert.True(float.IsNaN(v)));
        Assert.Equal(new[] { 0.1f, 0.2f, 0.3f }, Floats(module.running_mean!), new FloatTolerance(1e-6f));
        Assert.Equal(1L, module.num_batches_tracked!.item<long>());

        var library = new BatchNorm2d<float>(3);
        var error = Assert.Throws<ArgumentException>(() => library.Forward(new DenseTensor<float>(new float[] { 1, 2, 3 }, 1, 3, 1, 1)));
        Assert.StartsWith("Expected more than 1 value per channel when training", error.Message, StringComparison.Ordinal);
        Assert.Equal(new[] { 1f, 1f, 1f }, library.RunningVar);
        Assert.Equal(0L, library.NumBatchesTracked);
    }

    /// <summary>
    /// Without running stats, eval mode still normalises with batch statistics, so PyTorch raises the
    /// one-value error in eval too (committed case not-tracking-eval-single-value-error). TorchSharp does not.
    /// </summary>
    [Fact]
    public void Eval_without_running_stats_on_one_value_per_channel_does_not_throw_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.BatchNorm1d(3, track_running_stats: false);
        module.eval();
        var output = module.forward(tensor(new float[] { 1, 2, 3 }, new long[] { 1, 3 }));
        Assert.All(Floats(output), v => Assert.True(Math.Abs(v) < 1e-3f));

        var library = new BatchNorm1d<float>(3, trackRunningStats: false);
        library.Eval();
        var error = Assert.Throws<ArgumentException>(() => library.Forward(new DenseTensor<float>(new float[] { 1, 2, 3 }, 1, 3)));
        Assert.StartsWith("Expected more than 1 value per channel when training", error.Message, StringComparison.Ordinal);
    }

    /// <summary>PyTorch: momentum: Optional[float] = 0.1 in the constructor. TorchSharp 0.107: the factories take a plain double; null only through the property.</summary>
    [Fact]
    public void Factory_momentum_is_a_non_nullable_double_and_null_is_only_reachable_through_the_property()
    {
        foreach (string factory in new[] { "BatchNorm1d", "BatchNorm2d", "BatchNorm3d" })
        {
            var methods = typeof(nn).GetMethods(BindingFlags.Public | BindingFlags.Static).Where(m => m.Name == factory).ToList();
            Assert.NotEmpty(methods);
            Assert.All(methods, m => Assert.Equal(typeof(double), m.GetParameters().Single(p => p.Name == "momentum").ParameterType));
        }

        Assert.Equal(typeof(double?), typeof(TorchSharp.Modules.BatchNorm).GetProperty("momentum")!.PropertyType);
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.BatchNorm1d(2);
        module.momentum = null; // cumulative moving average, as PyTorch's momentum=None
        module.train();
        module.forward(tensor(new float[] { 0, 0, 2, 2 }, new long[] { 2, 2 }));
        module.forward(tensor(new float[] { 4, 4, 6, 6 }, new long[] { 2, 2 }));
        Assert.Equal(new[] { 3f, 3f }, Floats(module.running_mean!), new FloatTolerance(1e-6f)); // (1 + 5) / 2

        var ctor = typeof(BatchNorm1d<float>).GetConstructors().Single();
        Assert.Equal(typeof(double?), ctor.GetParameters().Single(p => p.Name == "momentum").ParameterType);
        Assert.Null(new BatchNorm1d<float>(2, momentum: null).Momentum);
    }

    /// <summary>PyTorch: type(m).__name__ is "BatchNorm2d" / "BatchNorm3d". TorchSharp 0.107: GetName() is "BatchNorm1d" for all three.</summary>
    [Fact]
    public void GetName_of_BatchNorm2d_and_BatchNorm3d_is_BatchNorm1d_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var bn1 = nn.BatchNorm1d(3);
        using var bn2 = nn.BatchNorm2d(3);
        using var bn3 = nn.BatchNorm3d(3);
        Assert.Equal("BatchNorm1d", bn1.GetName());
        Assert.Equal("BatchNorm1d", bn2.GetName());
        Assert.Equal("BatchNorm1d", bn3.GetName());

        Assert.Equal("BatchNorm2d", LibraryName(new BatchNorm2d<float>(3)));
        Assert.Equal("BatchNorm3d", LibraryName(new BatchNorm3d<float>(3)));
    }

    private static string LibraryName(object module) => module.GetType().Name.Split('`')[0];

    /// <summary>PyTorch BatchNorm3d on 4D input: "expected 5D input (got 4D input)". TorchSharp 0.107: "expected 4D input, but got 4D input."</summary>
    [Fact]
    public void BatchNorm3d_rank_error_says_expected_4D_input_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.BatchNorm3d(3);
        var error = Assert.Throws<ArgumentException>(() => module.forward(randn(2, 3, 4, 4)));
        Assert.Equal("expected 4D input, but got 4D input.", error.Message);

        var library = new BatchNorm3d<float>(3);
        var libraryError = Assert.Throws<ArgumentException>(() => library.Forward(new DenseTensor<float>(new float[96], 2, 3, 4, 4)));
        Assert.StartsWith("expected 5D input (got 4D input)", libraryError.Message, StringComparison.Ordinal);
    }

    /// <summary>PyTorch's rank errors read "expected 4D input (got 3D input)"; TorchSharp 0.107's read "expected 4D input, but got 3D input.".</summary>
    [Fact]
    public void Rank_error_wording_is_but_got_in_TorchSharp_and_PyTorchs_parenthesised_got_in_the_library()
    {
        using var scope = TorchSharpOracle.Scope();
        using var bn1 = nn.BatchNorm1d(3);
        using var bn2 = nn.BatchNorm2d(3);
        Assert.Equal("expected 2D or 3D input, but got 4D input.", Assert.Throws<ArgumentException>(() => bn1.forward(randn(2, 3, 4, 4))).Message);
        Assert.Equal("expected 4D input, but got 3D input.", Assert.Throws<ArgumentException>(() => bn2.forward(randn(2, 3, 4))).Message);

        var library1 = new BatchNorm1d<float>(3);
        var library2 = new BatchNorm2d<float>(3);
        Assert.StartsWith("expected 2D or 3D input (got 4D input)",
            Assert.Throws<ArgumentException>(() => library1.Forward(new DenseTensor<float>(new float[96], 2, 3, 4, 4))).Message, StringComparison.Ordinal);
        Assert.StartsWith("expected 4D input (got 3D input)",
            Assert.Throws<ArgumentException>(() => library2.Forward(new DenseTensor<float>(new float[24], 2, 3, 4))).Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// PyTorch's load_state_dict raises "size mismatch for running_mean: copying a param with shape
    /// torch.Size([1]) ..., the shape in current model is torch.Size([3])". TorchSharp 0.107 copies
    /// with broadcasting: a [1] running_mean fills all three channels. The library rejects it, changing nothing.
    /// </summary>
    [Fact]
    public void Load_state_dict_broadcasts_a_wrongly_shaped_buffer_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.BatchNorm1d(3);
        var state = new Dictionary<string, Tensor>
        {
            ["weight"] = ones(3), ["bias"] = zeros(3), ["running_mean"] = full(1, 5.0f), ["running_var"] = ones(3), ["num_batches_tracked"] = tensor(0L),
        };
        module.load_state_dict(state);
        Assert.Equal(new[] { 5f, 5f, 5f }, Floats(module.running_mean!));

        // A [5] running_mean cannot broadcast: libtorch's copy_ error, not PyTorch's "size mismatch for running_mean".
        state["running_mean"] = zeros(5);
        var copyError = Assert.ThrowsAny<Exception>(() => module.load_state_dict(state));
        Assert.StartsWith("The size of tensor a (3) must match the size of tensor b (5)", copyError.Message, StringComparison.Ordinal);

        var library = new BatchNorm1d<float>(3);
        var libraryState = new Dictionary<string, IStateTensor>
        {
            ["weight"] = new DenseTensor<float>(new float[] { 1, 1, 1 }, 3),
            ["bias"] = new DenseTensor<float>(new float[3], 3),
            ["running_mean"] = new DenseTensor<float>(new float[] { 5 }, 1),
            ["running_var"] = new DenseTensor<float>(new float[] { 1, 1, 1 }, 3),
            ["num_batches_tracked"] = new DenseTensor<long>(new long[] { 0 }),
        };
        Assert.Throws<ArgumentException>(() => library.LoadStateDict(libraryState));
        Assert.Equal(new[] { 0f, 0f, 0f }, library.RunningMean);
    }

    /// <summary>
    /// PyTorch's BatchNorm accepts a strict load without num_batches_tracked (old checkpoints:
    /// _NormBase._load_from_state_dict fills it in). TorchSharp 0.107 throws "The loaded state_dict is
    /// not identical to the target dictionary.". The library accepts it and keeps its count.
    /// </summary>
    [Fact]
    public void Strict_load_without_num_batches_tracked_throws_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.BatchNorm1d(3);
        var state = new Dictionary<string, Tensor>
        {
            ["weight"] = ones(3), ["bias"] = zeros(3), ["running_mean"] = full(3, 2.0f), ["running_var"] = ones(3),
        };
        var error = Assert.Throws<InvalidOperationException>(() => module.load_state_dict(state));
        Assert.Equal("The loaded state_dict is not identical to the target dictionary.", error.Message);

        var library = new BatchNorm1d<float>(3);
        library.LoadStateDict(new Dictionary<string, IStateTensor>
        {
            ["weight"] = new DenseTensor<float>(new float[] { 1, 1, 1 }, 3),
            ["bias"] = new DenseTensor<float>(new float[3], 3),
            ["running_mean"] = new DenseTensor<float>(new float[] { 2, 2, 2 }, 3),
            ["running_var"] = new DenseTensor<float>(new float[] { 1, 1, 1 }, 3),
        });
        Assert.Equal(new[] { 2f, 2f, 2f }, library.RunningMean);
        Assert.Equal(0L, library.NumBatchesTracked);
    }

    [Fact]
    public void Channels_last_has_no_memory_format_argument_in_TorchSharp_and_is_reached_through_a_permuted_view()
    {
        // PyTorch: x.contiguous(memory_format=torch.channels_last), x.is_contiguous(memory_format=...). TorchSharp 0.107
        // declares the memory_format enum, but no Tensor method takes one.
        Assert.Contains("channels_last", Enum.GetNames<memory_format>());
        var tensorMethods = typeof(Tensor).GetMethods(BindingFlags.Public | BindingFlags.Instance);
        Assert.All(tensorMethods.Where(m => m.Name is "contiguous" or "is_contiguous"), m => Assert.Empty(m.GetParameters()));
        Assert.DoesNotContain(typeof(torch).Assembly.GetTypes().SelectMany(t => t.GetMethods()),
            m => m.GetParameters().Any(p => p.ParameterType == typeof(memory_format)));

        // The harness's way in: an (N, H, W, C) tensor permuted to (N, C, H, W) has channels-last strides, and libtorch
        // then returns channels-last output (Foundation/TorchSharpLoadsTests checks the kernel forward and backward).
        using var scope = TorchSharpOracle.Scope();
        var view = randn(2, 4, 5, 3).permute(0, 3, 1, 2);
        Assert.Equal(new long[] { 60, 1, 15, 3 }, view.stride());
        Assert.False(view.is_contiguous());

        // The library takes the layout as an argument of Forward/Backward instead (MemoryLayout.ChannelsLast).
        var library = new BatchNorm2d<float>(3);
        var output = library.Forward(new DenseTensor<float>(new float[120], 2, 3, 4, 5), MemoryLayout.ChannelsLast);
        Assert.Equal(new[] { 2, 3, 4, 5 }, output.Shape);
    }

    private sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(float obj) => 0;
    }
}
