using BnParity.Harness.Implementations;
using BnParity.Harness.Oracle;
using BnParity.ParityTests.Library;
using static TorchSharp.torch;

namespace BnParity.ParityTests.Ledger;

/// <summary>
/// Ledger row "float partial sums for [N, C] input" (docs/divergence-ledger.md, where BnParity differs from PyTorch
/// itself). For input with one value per (n, c) — BatchNorm1d on [N, C] — libtorch (PyTorch 1.13 and libtorch 2.10
/// alike) sums each thread's chunk of rows into a float buffer. Data whose sum is finite can overflow in one chunk:
/// the answer then depends on libtorch's thread count (0 at 1 thread, NaN at 2). BnParity sums in double and gives
/// the 1-thread answer on every path and thread count. The test pins both libtorch answers: when libtorch stops
/// overflowing, the 2-thread assertion goes red and the row can go.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class FloatAccumulatorOverflowTests
{
    /// <summary>Sequential float sums stay finite (−3e38, −1e38, 1e38, 3e38); the second half of the rows sums to 4e38.</summary>
    private static readonly float[] Values = [-3e38f, 2e38f, 2e38f, 2e38f];

    [Fact]
    public void LibTorch_overflows_its_per_thread_float_sum_at_2_threads_but_not_at_1()
    {
        try
        {
            var (output1, mean1) = TorchSharpTrainingForward(threads: 1);
            Assert.All(output1, v => Assert.Equal(0f, v));
            Assert.Equal(7.5e36f, mean1, 1e30f);

            var (output2, mean2) = TorchSharpTrainingForward(threads: 2);
            Assert.All(output2, v => Assert.True(float.IsNaN(v), $"libtorch at 2 threads: output {v} (expected NaN from its overflowing float partial sum)"));
            Assert.True(float.IsPositiveInfinity(mean2), $"libtorch at 2 threads: running_mean {mean2}");
        }
        finally
        {
            TorchSharpOracle.Start();
        }
    }

    [Theory]
    [MemberData(nameof(LibraryRunMatrix.PathsAndThreads), MemberType = typeof(LibraryRunMatrix))]
    public void Library_gives_libtorchs_1_thread_answer_on_every_path(LibraryPath path, int threads)
    {
        var execution = new LibraryExecution(path, threads);
        var module = new BatchNorm1d<float>(1);
        execution.ApplyTo(module);
        var output = module.Forward(new DenseTensor<float>((float[])Values.Clone(), Values.Length, 1));
        Assert.All(output.Data, v => Assert.True(v == 0f, $"{execution}: output {v}, expected 0 (Σ(x − μ)² is ∞ in float, invstd 0)"));
        Assert.True(Math.Abs(module.RunningMean![0] - 7.5e36f) <= 1e30f, $"{execution}: running_mean {module.RunningMean[0]:R}, expected 0.1·7.5e37");
        Assert.True(float.IsPositiveInfinity(module.RunningVar![0]), $"{execution}: running_var {module.RunningVar[0]:R}, expected ∞ (held in float, as libtorch)");
    }

    private static (float[] Output, float RunningMean) TorchSharpTrainingForward(int threads)
    {
        TorchSharpOracle.Start(threads);
        using var scope = TorchSharpOracle.Scope();
        using var module = TorchSharp.torch.nn.BatchNorm1d(1);
        module.train();
        var output = module.forward(tensor((float[])Values.Clone(), new long[] { Values.Length, 1 }));
        return (output.data<float>().ToArray(), module.running_mean!.item<float>());
    }
}
