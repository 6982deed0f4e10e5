using BnParity.Harness.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace BnParity.ParityTests.Foundation;

[Collection(TorchSharpCollection.Name)]
public sealed class TorchSharpLoadsTests
{
    [Fact]
    public void Native_library_has_no_unsatisfied_symbol_version_after_the_build()
    {
        Assert.Null(TorchSharpOracle.DiagnoseNativeLibrary());
    }

    [Fact]
    public void Oracle_starts_with_the_requested_thread_count()
    {
        TorchSharpOracle.Start(threads: 1);
        Assert.Equal(1, torch.get_num_threads());
        TorchSharpOracle.Start(threads: 2);
        Assert.Equal(2, torch.get_num_threads());
    }

    /// <summary>
    /// The worked example users know: BatchNorm2d(3), momentum 0.1, x1 ~ N(0,1) then x2 ~ N(1,4),
    /// each 1×3×255×255. Exactly: running_mean = 0.9·0.1·m1 + 0.1·m2, running_var =
    /// 0.81 + 0.09·v1 + 0.1·v2 with the unbiased sample variances. With n = 65025 values per
    /// channel, m1, m2 have standard errors 1/√n and 2/√n, v1, v2 have 2/√n·σ², so the final
    /// running_mean has σ ≈ √(0.09² + 0.2²)/255 ≈ 8.6e-4 and running_var σ ≈ √(0.09²·2 + 0.1²·32)/255 ≈ 2.3e-3.
    /// A 6σ bound: |running_mean − 0.1| ≤ 5.2e-3, |running_var − 1.3| ≤ 1.4e-2.
    /// </summary>
    [Fact]
    public void Worked_example_two_steps_give_running_mean_0_1_and_running_var_1_3()
    {
        TorchSharpOracle.Start(seed: 20260101);
        using var scope = TorchSharpOracle.Scope();
        using var module = nn.BatchNorm2d(3, momentum: 0.1);
        module.train();

        module.forward(randn(1, 3, 255, 255));
        module.forward(randn(1, 3, 255, 255) * 2 + 1);

        float[] runningMean = module.running_mean!.data<float>().ToArray();
        float[] runningVar = module.running_var!.data<float>().ToArray();
        Assert.Equal(2L, module.num_batches_tracked!.item<long>());
        for (int c = 0; c < 3; c++)
        {
            Assert.InRange(runningMean[c], 0.1f - 5.2e-3f, 0.1f + 5.2e-3f);
            Assert.InRange(runningVar[c], 1.3f - 1.4e-2f, 1.3f + 1.4e-2f);
        }
    }

    /// <summary>
    /// TorchSharp 0.107 has no memory-format argument; the oracle builds channels-last input as PyTorch stores it, an
    /// (N, H, W, C) tensor permuted to (N, C, H, W). libtorch must then take its channels-last kernel, which returns
    /// the output and the input gradient in channels-last strides (the contiguous kernel returns contiguous ones):
    /// otherwise the channels-last suites would test the NCHW kernel twice.
    /// </summary>
    [Theory]
    [InlineData(new[] { 4, 3, 5, 6 })]
    [InlineData(new[] { 2, 3, 2, 3, 4 })]
    public void Permuted_NHWC_view_takes_libtorchs_channels_last_kernel_forward_and_backward(int[] shape)
    {
        TorchSharpOracle.Start(seed: 7);
        using var scope = TorchSharpOracle.Scope();
        var logical = new Harness.Cases.CaseTensor(shape, Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(i => Math.Sin(i)).ToArray());
        var x = Harness.Implementations.TorchSharpImplementation.ToTensor(logical, Harness.Cases.ElementType.Float32, MemoryLayout.ChannelsLast)
            .detach().requires_grad_(true);
        Assert.True(Harness.Implementations.TorchSharpImplementation.IsChannelsLast(x), $"input strides [{string.Join(", ", x.stride())}]");
        Assert.False(x.is_contiguous());
        using var module = shape.Length == 4 ? (TorchSharp.Modules.BatchNorm)nn.BatchNorm2d(3) : nn.BatchNorm3d(3);
        module.train();
        var y = module.forward(x);
        Assert.True(Harness.Implementations.TorchSharpImplementation.IsChannelsLast(y), $"output strides [{string.Join(", ", y.stride())}]");
        Assert.False(y.is_contiguous());
        y.backward(new[] { Harness.Implementations.TorchSharpImplementation.ToTensor(logical, Harness.Cases.ElementType.Float32, MemoryLayout.ChannelsLast) });
        Assert.True(Harness.Implementations.TorchSharpImplementation.IsChannelsLast(x.grad!), $"grad_input strides [{string.Join(", ", x.grad!.stride())}]");

        // The same logical values through the contiguous kernel: the results agree (they are the same function) but the
        // contiguous kernel's output is contiguous, so the strides above really tell the kernels apart.
        var contiguousY = module.forward(Harness.Implementations.TorchSharpImplementation.ToTensor(logical, Harness.Cases.ElementType.Float32));
        Assert.True(contiguousY.is_contiguous());
    }
}
