using BnParity.Harness.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace BnParity.ParityTests.Ledger;

/// <summary>
/// The divergence ledger's GroupNorm and InstanceNorm rows (docs/divergence-ledger.md): TorchSharp 0.107's
/// CURRENT behaviour asserted next to the library's PyTorch behaviour (recorded from PyTorch 1.13 in
/// fixtures/pytorch). When a TorchSharp upgrade fixes one, its test goes red: update the ledger and
/// <see cref="RecordedCases.RecordedPyTorchCaseTests.TorchSharpLedgerCases"/>.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class TorchSharpGroupAndInstanceNormLedgerTests
{
    public TorchSharpGroupAndInstanceNormLedgerTests()
    {
        TorchSharpOracle.Start(seed: 7);
    }

    private static float[] Floats(Tensor t) => t.data<float>().ToArray();

    /// <summary>PyTorch: GroupNorm's weight and bias are ones and zeros (reset_parameters). TorchSharp 0.107 creates
    /// them with torch.empty and never initialises them: the class has no reset_parameters at all.</summary>
    [Fact]
    public void GroupNorm_has_no_reset_parameters_in_TorchSharp_so_weight_and_bias_are_uninitialised()
    {
        Assert.Null(typeof(TorchSharp.Modules.GroupNorm).GetMethod("reset_parameters"));
        Assert.NotNull(typeof(TorchSharp.Modules.NormBase).GetMethod("reset_parameters"));

        var library = new GroupNorm<float>(2, 4);
        Assert.All(library.Weight!, w => Assert.Equal(1f, w));
        Assert.All(library.Bias!, b => Assert.Equal(0f, b));
    }

    /// <summary>PyTorch accepts (N, C) GroupNorm input (recorded: gn-2d-input, gn-2d-one-value-per-group).
    /// TorchSharp 0.107 throws "Invalid number of dimensions for GroupNorm argument: 2".</summary>
    [Fact]
    public void GroupNorm_rejects_N_C_input_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.GroupNorm(2, 4);
        var error = Assert.Throws<ArgumentException>(() => module.forward(randn(3, 4)));
        Assert.Contains("Invalid number of dimensions for GroupNorm argument: 2", error.Message, StringComparison.Ordinal);

        var library = new GroupNorm<float>(2, 4);
        var y = new float[12];
        library.Forward(new float[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13 }, [3, 4], y);
        Assert.Equal(-1f, y[0], 1e-3f);
    }

    /// <summary>PyTorch raises "num_channels must be divisible by num_groups" when the module is built. TorchSharp
    /// 0.107 builds it; libtorch fails only at the first forward.</summary>
    [Fact]
    public void GroupNorm_with_indivisible_channels_constructs_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.GroupNorm(4, 6);
        Assert.ThrowsAny<Exception>(() => module.forward(randn(2, 6, 3)));

        var error = Assert.Throws<ArgumentException>(() => new GroupNorm<float>(4, 6));
        Assert.StartsWith("num_channels must be divisible by num_groups", error.Message, StringComparison.Ordinal);
    }

    /// <summary>PyTorch raises "Expected more than 1 value per channel when training" when N·(C/G)·spatial = 1
    /// (recorded: gn-error-one-value, gn-error-one-value-eval). TorchSharp 0.107 calls libtorch directly: no error,
    /// every output is the bias.</summary>
    [Fact]
    public void GroupNorm_on_one_value_per_group_does_not_raise_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.GroupNorm(4, 4);
        using (no_grad())
        {
            module.weight.fill_(1);
            module.bias!.fill_(0.5);
        }

        var output = module.forward(tensor(new float[] { 1, 2, 3, 4 }, new long[] { 1, 4, 1, 1 }));
        // libtorch's float kernel gives the bias only to ~3e-5 here (x − mean is one rounding off 0).
        Assert.All(Floats(output), v => Assert.Equal(0.5f, v, 1e-4f));

        var error = Assert.Throws<ArgumentException>(() => new GroupNorm<float>(4, 4).Forward(new float[] { 1, 2, 3, 4 }, [1, 4, 1, 1], new float[4]));
        Assert.StartsWith("Expected more than 1 value per channel when training", error.Message, StringComparison.Ordinal);
    }

    /// <summary>PyTorch 2.x passes momentum None to instance_norm as 0.0: the running statistics never move
    /// (recorded with 0.0 from 1.13, which rejects None: in1d-momentum-none-track). TorchSharp 0.107 uses 0.1.</summary>
    [Fact]
    public void InstanceNorm_momentum_null_is_0_1_in_TorchSharp_and_0_in_the_library()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.InstanceNorm1d(2, track_running_stats: true);
        module.momentum = null;
        module.train();
        float[] x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        module.forward(tensor(x, new long[] { 2, 2, 3 }));
        // The instance means are 2, 5 (n = 0) and 8, 11 (n = 1): 0.1 of their mean over the batch, 5 and 8.
        float[] moved = Floats(module.running_mean!);
        Assert.Equal(0.5f, moved[0], 1e-5f);
        Assert.Equal(0.8f, moved[1], 1e-5f);

        var library = new InstanceNorm1d<float>(2, momentum: null, trackRunningStats: true);
        library.Forward(x, [2, 2, 3], new float[12]);
        Assert.Equal(new[] { 0f, 0f }, library.RunningMean);
        Assert.Equal(new[] { 1f, 1f }, library.RunningVar);
    }

    /// <summary>PyTorch 1.13 runs an InstanceNorm without weights or buffers on any channel count (2.1+ warns;
    /// recorded: in2d-other-channels-runs). TorchSharp 0.107 always throws.</summary>
    [Fact]
    public void InstanceNorm_on_another_channel_count_always_throws_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.InstanceNorm2d(3);
        var error = Assert.Throws<ArgumentException>(() => module.forward(randn(2, 4, 3, 3)));
        Assert.Contains("to match num_features (3), but got: 4", error.Message, StringComparison.Ordinal);

        var library = new InstanceNorm2d<float>(3);
        library.Forward(new float[72], [2, 4, 3, 3], new float[72]);
    }

    /// <summary>PyTorch raises "Expected more than 1 spatial element when training" whenever instance statistics are
    /// used (recorded: in1d-error-one-spatial-train, in1d-error-one-spatial-eval). TorchSharp 0.107 does not.</summary>
    [Fact]
    public void InstanceNorm_on_one_spatial_element_does_not_raise_in_TorchSharp()
    {
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.InstanceNorm1d(3);
        module.train();
        var output = module.forward(tensor(new float[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3, 1 }));
        Assert.All(Floats(output), v => Assert.Equal(0f, v, 1e-4f));

        var error = Assert.Throws<ArgumentException>(() => new InstanceNorm1d<float>(3).Forward(new float[6], [2, 3, 1], new float[6]));
        Assert.StartsWith("Expected more than 1 spatial element when training", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// libtorch (PyTorch 1.13 and 2.10 alike) differentiates InstanceNorm2d wrongly for a channels-last input with a
    /// spatial dimension of 1, e.g. (1, 2, 1, 2): the memory format is ambiguous there and its backward reads the
    /// channels-last upstream gradient in the wrong order (PyTorch 1.13 on this data: dweight (−1.49, 2.24) where its
    /// own channels-first run and the float64 truth give (0.314, 0.435)). The library gives the truth in both layouts.
    /// </summary>
    [Fact]
    public void InstanceNorm_channels_last_gradients_with_a_unit_spatial_dimension_are_wrong_in_libtorch()
    {
        // The logical (1, 2, 1, 2) x = [[0.3, -1.2], [2.0, 0.7]] and dy = [[0.5, -0.25], [1.5, 0.125]], stored
        // channels-last as (1, 1, 2, 2).
        float[] xLast = [0.3f, 2.0f, -1.2f, 0.7f];
        float[] dyLast = [0.5f, 1.5f, -0.25f, 0.125f];

        // The truth: each plane is two values, x̂ = ±1, dweight_c = Σ dy·x̂.
        double[] truth = [(0.5 - -0.25) * (0.3 > -1.2 ? 1 : -1), (1.5 - 0.125) * (2.0 > 0.7 ? 1 : -1)];

        using var scope = TorchSharpOracle.Scope();
        using var module = nn.InstanceNorm2d(2, affine: true);
        var stored = tensor(xLast, new long[] { 1, 1, 2, 2 }).requires_grad_(false);
        var input = stored.permute(0, 3, 1, 2).detach().requires_grad_(true);
        var output = module.forward(input);
        output.backward(new[] { tensor(dyLast, new long[] { 1, 1, 2, 2 }).permute(0, 3, 1, 2) });
        float[] torchGradWeight = Floats(module.weight.grad!);
        Assert.True(Math.Abs(torchGradWeight[0] - truth[0]) > 0.1 || Math.Abs(torchGradWeight[1] - truth[1]) > 0.1,
            $"libtorch's channels-last dweight ({torchGradWeight[0]}, {torchGradWeight[1]}) is now the truth ({truth[0]}, {truth[1]}): the ledger row is fixed");

        var library = new InstanceNorm2d<float>(2, affine: true);
        float[] gw = new float[2], gb = new float[2];
        library.Forward(xLast, [1, 2, 1, 2], new float[4], MemoryLayout.ChannelsLast);
        library.Backward(dyLast, [1, 2, 1, 2], new float[4], gw, gb, MemoryLayout.ChannelsLast);
        Assert.Equal(truth[0], gw[0], 1e-4);
        Assert.Equal(truth[1], gw[1], 1e-4);
    }

    /// <summary>The same libtorch fault at N = 1 (libtorch 2.10; PyTorch 1.13 gets this one right): InstanceNorm3d on a
    /// channels-last (1, 2, 2, 2, 2) input with dy = x, whose input gradient is 0 up to rounding (dy lies in the span of
    /// the mean and variance directions), comes back of order 1 from TorchSharp.</summary>
    [Fact]
    public void InstanceNorm_channels_last_gradients_of_a_single_instance_are_wrong_in_libtorch_2_10()
    {
        int[] shape = [1, 2, 2, 2, 2];
        float[] logical = [0.3f, -1.2f, 2.0f, 0.7f, -0.4f, 1.1f, 0.9f, -2.3f, 1.4f, 0.2f, -0.6f, 0.8f, -1.7f, 0.05f, 1.9f, -0.35f];
        float[] stored = Harness.Cases.MemoryOrder.ToMemory(logical, shape, MemoryLayout.ChannelsLast);

        using var scope = TorchSharpOracle.Scope();
        using var module = nn.InstanceNorm3d(2, affine: true);
        var input = tensor(stored, new long[] { 1, 2, 2, 2, 2 }).permute(0, 4, 1, 2, 3).detach().requires_grad_(true);
        var output = module.forward(input);
        output.backward(new[] { tensor(stored, new long[] { 1, 2, 2, 2, 2 }).permute(0, 4, 1, 2, 3) });
        double torchLargest = Floats(input.grad!.contiguous()).Max(v => Math.Abs((double)v));
        Assert.True(torchLargest > 0.01, $"libtorch's largest |dx| is {torchLargest}, now ~0 as it should be: the ledger row is fixed");

        var library = new InstanceNorm3d<float>(2, affine: true);
        var dx = new float[16];
        library.Forward(stored, shape, new float[16], MemoryLayout.ChannelsLast);
        library.Backward(stored, shape, dx, new float[2], new float[2], MemoryLayout.ChannelsLast);
        Assert.All(dx, v => Assert.True(Math.Abs(v) < 1e-4, $"library dx {v}"));
    }

    /// <summary>
    /// libtorch's channels-last GroupNorm computes the variance in one pass, E[x²] − E[x]², in float: on data offset far
    /// from zero it cancels (PyTorch 1.13, (4, 8, 6, 6) at mean 5000, std 1: outputs off by up to 963; its
    /// channels-first kernel by 3.6e-4). The library sums about the mean and stays within a few ulp of the float64 truth.
    /// </summary>
    [Fact]
    public void GroupNorm_channels_last_variance_cancels_on_offset_data_in_libtorch()
    {
        int[] shape = [4, 8, 6, 6];
        var random = new Random(5);
        float[] logical = Enumerable.Range(0, 4 * 8 * 36).Select(_ => (float)(5000 + Harness.Cases.SeededNormal.Next(random))).ToArray();
        var truthCase = new Harness.Cases.CaseTensor(shape, Array.ConvertAll(logical, v => (double)v));
        var geometry = Harness.Cases.ReductionGeometry.Of(Harness.Cases.ModuleConfig.GroupNorm(2, 8), shape);
        var (mean, variance, _) = Harness.Implementations.ReferenceBatchNorm.SetStatistics(truthCase, geometry);
        double[] truth = logical.Select((v, i) => (v - mean[geometry.SetOf(i)]) / Math.Sqrt(variance[geometry.SetOf(i)] + 1e-5)).ToArray();
        float[] stored = Harness.Cases.MemoryOrder.ToMemory(logical, shape, MemoryLayout.ChannelsLast);

        using var scope = TorchSharpOracle.Scope();
        using var module = nn.GroupNorm(2, 8);
        using (no_grad())
        {
            module.weight.fill_(1);
            module.bias!.fill_(0);
        }

        var output = module.forward(tensor(stored, new long[] { 4, 6, 6, 8 }).permute(0, 3, 1, 2));
        float[] torchLogical = Floats(output.contiguous());
        double torchError = torchLogical.Select((v, i) => Math.Abs(v - truth[i])).Max();
        Assert.True(torchError > 1, $"libtorch's channels-last GroupNorm error is {torchError}: no longer cancels, the ledger row is fixed");

        var library = new GroupNorm<float>(2, 8);
        var y = new float[stored.Length];
        library.Forward(stored, shape, y, MemoryLayout.ChannelsLast);
        float[] libraryLogical = Harness.Cases.MemoryOrder.ToLogical(y, shape, MemoryLayout.ChannelsLast);
        double libraryError = libraryLogical.Select((v, i) => Math.Abs(v - truth[i])).Max();
        Assert.True(libraryError < 1e-5, $"library error {libraryError}");
    }
}
