using System.Globalization;
using System.Runtime.Intrinsics;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// Statistics that are not finite, or that leave float's range, give the same kind of value (NaN, +∞, −∞) on the paths,
/// layouts and thread counts below, and the one libtorch gives (issue 20; <c>Rules/ExtremeValueRuleTests</c> checks the
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

    /// <summary>The runs of <see cref="A_dot_product_beyond_float_range_gives_libtorchs_NaN_gradients"/>: the default
    /// selection and the row path on H·W = 2·2 in both layouts, and with SIMD the channel and split paths on H·W = 4·4
    /// channels-first (the shortest runs the default selection gives them).</summary>
    public static TheoryData<LibraryPath, int, MemoryLayout, int, int> DotOverflowRuns()
    {
        var data = new TheoryData<LibraryPath, int, MemoryLayout, int, int>();
        foreach (int threads in new[] { 1, 3 })
        {
            // 2^14 channels was the widest channels-last input the default selection gave the row path; one more took
            // the channel path (channels-first with H·W = 4, both were past its 2^14 columns).
            foreach (int channels in new[] { 16384, 16385 })
            {
                foreach (var layout in new[] { MemoryLayout.ChannelsFirst, MemoryLayout.ChannelsLast })
                {
                    data.Add(LibraryPath.Default, threads, layout, channels, 2);
                    data.Add(LibraryPath.Row, threads, layout, channels, 2);
                }

                if (Vector256.IsHardwareAccelerated)
                {
                    // Without SIMD the channel path's float reductions are their scalar tail, in double, throughout: no
                    // overflow, and grad_weight 0 (the golden bits' scalar table pins that, with ExtremeMagnitudes).
                    data.Add(LibraryPath.Default, threads, MemoryLayout.ChannelsFirst, channels, 4);
                    data.Add(LibraryPath.Channel, threads, MemoryLayout.ChannelsFirst, channels, 4);
                    data.Add(LibraryPath.Split, threads, MemoryLayout.ChannelsFirst, channels, 4);
                }
            }
        }

        return data;
    }

    /// <summary>
    /// Channel 0 of ±3e38: Σ(x − μ)² is held as ∞ in float (invstd 0), and every (x − μ)·dy = 4.5e38 leaves float's
    /// range, so libtorch's float Σ(x − μ)·dy is ∞ and grad_weight = Σ(x − μ)·dy·invstd = ∞·0 is NaN, and so is dx (its
    /// k = Σ(x − μ)·dy·invstd²/n). The library's float partials (row path columns, channel path vectors) overflow the
    /// same way, but a run shorter than a vector is summed in double and does not: past 2^14 columns the default
    /// selection took the channel path, whose runs of one element (channels-last) or four (H·W = 4) gave grad_weight 0
    /// and dx 0. Short runs now take the row path at any width. (The channel and split paths, forced onto such short
    /// runs or run without SIMD, still sum in double and give 0: the golden bits' ExtremeMagnitudes scenario pins that.)
    /// </summary>
    [Theory]
    [MemberData(nameof(DotOverflowRuns))]
    public void A_dot_product_beyond_float_range_gives_libtorchs_NaN_gradients(LibraryPath path, int threads, MemoryLayout layout, int channels, int side)
    {
        var execution = new LibraryExecution(path, threads);
        string where = string.Create(CultureInfo.InvariantCulture, $"{execution} {layout} BatchNorm2d<float>({channels}) on [4, {channels}, {side}, {side}]");
        int[] shape = [4, channels, side, side];
        int spatial = side * side, perChannel = 4 * spatial;
        int length = 4 * channels * spatial;
        int ChannelOf(int i) => layout == MemoryLayout.ChannelsLast ? i % channels : i / spatial % channels;

        var x = Normal<float>(21, length);
        var dy = Normal<float>(22, length);
        int k = 0;
        for (int i = 0; i < length; i++)
        {
            if (ChannelOf(i) == 0)
            {
                // Alternating ±3e38 (μ = 0) with dy = 1.5·sign(x): every (x − μ)·dy is +4.5e38, Σdy is 0.
                double sign = k++ % 2 == 0 ? 1 : -1;
                x[i] = sign * 3e38;
                dy[i] = sign * 1.5;
            }
        }

        var module = new BatchNorm2d<float>(channels);
        execution.ApplyTo(module);
        var y = module.Forward(Tensor<float>(x, shape), layout);
        var gradients = module.Backward(Tensor<float>(dy, shape), layout);

        Assert.True(float.IsPositiveInfinity(module.RunningVar![0]), $"{where}: running_var[0] is {module.RunningVar[0]}, expected ∞ (held in float)");
        Assert.True(float.IsNaN(gradients.Weight![0]), $"{where}: grad_weight[0] is {gradients.Weight[0]}, expected NaN (libtorch's ∞·0)");
        Assert.True(gradients.Bias![0] == 0, $"{where}: grad_bias[0] is {gradients.Bias[0]}, expected 0 (Σdy)");
        int nan = 0;
        for (int i = 0; i < length; i++)
        {
            int ch = ChannelOf(i);
            if (ch == 0)
            {
                Assert.True(y.Data[i] == 0, $"{where}: output [c=0, memory index {i}] is {y.Data[i]}, expected the bias 0 (invstd 0)");
                Assert.True(float.IsNaN(gradients.Input.Data[i]), $"{where}: grad_input [c=0, memory index {i}] is {gradients.Input.Data[i]}, expected NaN");
                nan++;
            }
            else if (i % 997 == 0)
            {
                Assert.True(float.IsFinite(y.Data[i]) && float.IsFinite(gradients.Input.Data[i]), $"{where}: channel {ch} (finite data) at memory index {i}: y {y.Data[i]}, dx {gradients.Input.Data[i]}");
            }
        }

        Assert.Equal(perChannel, nan);
        Assert.True(float.IsFinite(gradients.Weight[1]) && float.IsFinite(gradients.Weight[channels - 1]), $"{where}: grad_weight of the finite channels: {gradients.Weight[1]}, {gradients.Weight[channels - 1]}");
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
