using System.Globalization;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// Statistics that are not finite, or that leave float's range, give the same kind of value (NaN, +∞, −∞) on every
/// path, layout and thread count, and the one libtorch gives (issue 20; <c>Rules/ExtremeValueRuleTests</c> checks the
/// same inputs against TorchSharp). A NaN where libtorch has ±∞, or a 0 where it has NaN, is a wrong answer even though
/// finite inputs never meet it.
/// </summary>
public sealed class ExtremeValueTests
{
    public static TheoryData<LibraryPath, int, MemoryLayout> PathsThreadsLayouts()
    {
        var data = new TheoryData<LibraryPath, int, MemoryLayout>();
        foreach (var path in new[] { LibraryPath.Default, LibraryPath.Channel, LibraryPath.Split, LibraryPath.Row, LibraryPath.ChannelStreaming })
        {
            foreach (int threads in new[] { 1, 3 })
            {
                foreach (var layout in new[] { MemoryLayout.ChannelsFirst, MemoryLayout.ChannelsLast })
                {
                    data.Add(path, threads, layout);
                }
            }
        }

        return data;
    }

    /// <summary>
    /// Eval with running_mean = ±∞: y = (x − μ)·α + b is ∓∞·sign(α) for finite x, as libtorch's x·α + (b − μ·α) and the
    /// double module give. The float output split μ into μ_hi + μ_lo with μ_lo = μ − μ_hi = ∞ − ∞ = NaN, so every
    /// output of the channel was NaN (and Σ(x − μ)·dy's μ_lo correction made grad_weight NaN too).
    /// </summary>
    [Theory]
    [MemberData(nameof(PathsThreadsLayouts))]
    public void An_infinite_running_mean_gives_the_infinities_of_the_double_module_on_every_path(LibraryPath path, int threads, MemoryLayout layout)
    {
        var execution = new LibraryExecution(path, threads);
        string where = $"{execution} {layout}";
        int[] shape = [4, 3, 5, 7];
        const int c = 3, spatial = 35;
        int length = 4 * c * spatial;
        int ChannelOf(int i) => layout == MemoryLayout.ChannelsLast ? i % c : i / spatial % c;

        double[] x = Normal<float>(11, length, mean: 1, std: 2);
        // dy > 0, so Σ(x − μ)·dy over a channel with μ = ±∞ is ∓∞ (mixed signs would make it ∞ − ∞ = NaN everywhere).
        double[] dy = Normal<float>(12, length).Select(v => Math.Abs(v) + 0.125).ToArray();
        // An infinite input in the channel with a finite mean: (∞ − μ)·α = −∞ for α < 0.
        x[Enumerable.Range(0, length).First(i => ChannelOf(i) == 2)] = double.PositiveInfinity;

        var single = Module<float>();
        var reference = Module<double>();
        execution.ApplyTo(single);
        var y = single.Forward(Tensor<float>(x, shape), layout);
        var expectedY = reference.Forward(Tensor<double>(x, shape), layout);
        var gradients = single.Backward(Tensor<float>(dy, shape), layout);
        var expected = reference.Backward(Tensor<double>(dy, shape), layout);

        for (int i = 0; i < length; i++)
        {
            int ch = ChannelOf(i);
            if (ch < 2 && double.IsFinite(x[i]))
            {
                // μ = +∞ with α > 0, μ = −∞ with α > 0: the two signs of infinity, spelled out.
                Assert.True(
                    (ch == 0 ? float.NegativeInfinity : float.PositiveInfinity).Equals(y.Data[i]),
                    $"{where}: output [c={ch}, memory index {i}] is {y.Data[i]} for running_mean {(ch == 0 ? "+∞" : "−∞")}, expected {(ch == 0 ? "−∞" : "+∞")}");
            }

            AssertSameKind(expectedY.Data[i], y.Data[i], $"{where}: output [c={ch}, memory index {i}]");
            AssertSameKind(expected.Input.Data[i], gradients.Input.Data[i], $"{where}: grad_input [c={ch}, memory index {i}]");
        }

        Assert.True(float.IsNegativeInfinity(gradients.Weight![0]), $"{where}: grad_weight[0] is {gradients.Weight[0]}, expected −∞ (Σ(x − ∞)·dy·invstd)");
        Assert.True(float.IsPositiveInfinity(gradients.Weight[1]), $"{where}: grad_weight[1] is {gradients.Weight[1]}, expected +∞ (Σ(x + ∞)·dy·invstd)");
        for (int ch = 0; ch < c; ch++)
        {
            AssertSameKind(expected.Weight![ch], gradients.Weight[ch], $"{where}: grad_weight[{ch}]");
            AssertSameKind(expected.Bias![ch], gradients.Bias![ch], $"{where}: grad_bias[{ch}]");
        }

        static BatchNorm2d<TValue> Module<TValue>()
            where TValue : unmanaged, System.Numerics.IFloatingPointIeee754<TValue>
        {
            var module = new BatchNorm2d<TValue>(3);
            double[] mean = [double.PositiveInfinity, double.NegativeInfinity, 0.5];
            double[] variance = [0.8, 1.7, 2.5];
            double[] weight = [1.5, 0.75, -1.25];
            double[] bias = [0.25, -0.5, 0.125];
            for (int ch = 0; ch < 3; ch++)
            {
                module.RunningMean![ch] = TValue.CreateChecked(mean[ch]);
                module.RunningVar![ch] = TValue.CreateChecked(variance[ch]);
                module.Weight![ch] = TValue.CreateChecked(weight[ch]);
                module.Bias![ch] = TValue.CreateChecked(bias[ch]);
            }

            module.Eval();
            return module;
        }
    }

    /// <summary>NaN for NaN, the same infinity for an infinity, and a finite value within float's precision for a
    /// finite one.</summary>
    private static void AssertSameKind(double expected, float actual, string what)
    {
        bool same = double.IsNaN(expected) ? float.IsNaN(actual)
            : double.IsInfinity(expected) ? expected == actual
            : float.IsFinite(actual) && Math.Abs(actual - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected));
        Assert.True(same, $"{what}: {actual} where the double module gives {expected}");
    }
}
