using System.Globalization;
using System.Numerics;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// InstanceNorm1d/2d/3d (TorchSharp-free), held to two oracles:
/// <list type="bullet">
/// <item>BatchNorm, already proven on every path and thread count: an instance's (n, c) planes are the channels of a
/// batch of one, so InstanceNorm's output and input gradient must be a track-less BatchNorm's on each instance, bit
/// for bit, on every forced path and thread count, in both layouts (which also makes them independent of the thread
/// count);</item>
/// <item>the float64 definition, written out below per plane: statistics, output, gradients, and the running
/// statistics rule (per-instance blend with the unbiased variance, then the mean over the batch; momentum null is 0;
/// num_batches_tracked never moves).</item>
/// </list>
/// Plus PyTorch's input rules (ranks, unbatched input, the spatial-size error also in eval, the channel rule) with
/// nothing changed on error.
/// </summary>
public abstract class InstanceNormTests<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public static TheoryData<LibraryPath, int> Runs()
    {
        var data = new TheoryData<LibraryPath, int> { { LibraryPath.Default, 0 } };
        foreach (var run in LibraryExecution.AllForced(1, 2, 3))
        {
            data.Add(run.Path, run.Threads);
        }

        return data;
    }

    /// <summary>(N, C, spatial…) shapes: long planes (channel and split paths), short planes (row path), each rank.</summary>
    private static readonly int[][] Shapes = [[3, 4, 20], [2, 3, 5], [3, 4, 5, 6], [2, 3, 2, 3], [2, 2, 3, 2, 4]];

    private static NormBase<T> InstanceNormOf(int rank, int c, bool affine, bool track = false, double? momentum = 0.1) => rank switch
    {
        3 => new InstanceNorm1d<T>(c, momentum: momentum, affine: affine, trackRunningStats: track),
        4 => new InstanceNorm2d<T>(c, momentum: momentum, affine: affine, trackRunningStats: track),
        _ => new InstanceNorm3d<T>(c, momentum: momentum, affine: affine, trackRunningStats: track),
    };

    private static BatchNorm<T> BatchNormOf(int rank, int c, bool affine) => rank switch
    {
        3 => new BatchNorm1d<T>(c, affine: affine, trackRunningStats: false),
        4 => new BatchNorm2d<T>(c, affine: affine, trackRunningStats: false),
        _ => new BatchNorm3d<T>(c, affine: affine, trackRunningStats: false),
    };

    [Theory]
    [MemberData(nameof(Runs))]
    public void Channels_first_is_a_track_less_BatchNorm_on_each_instance_bit_for_bit(LibraryPath path, int threads)
    {
        foreach (int[] shape in Shapes)
        {
            foreach (bool affine in new[] { false, true })
            {
                AssertIsBatchNormPerInstance(shape, affine, MemoryLayout.ChannelsFirst, new LibraryExecution(path, threads));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Runs))]
    public void Channels_last_is_a_channels_last_BatchNorm_on_each_instance_bit_for_bit(LibraryPath path, int threads)
    {
        foreach (int[] shape in Shapes.Where(s => s.Length >= 4))
        {
            foreach (bool affine in new[] { false, true })
            {
                AssertIsBatchNormPerInstance(shape, affine, MemoryLayout.ChannelsLast, new LibraryExecution(path, threads));
            }
        }
    }

    private static void AssertIsBatchNormPerInstance(int[] shape, bool affine, MemoryLayout layout, LibraryExecution run)
    {
        int n = shape[0], c = shape[1];
        int instance = shape.Skip(1).Aggregate(1, (a, b) => a * b);
        int[] one = [1, .. shape[1..]];
        string where = $"InstanceNorm{shape.Length - 2}d<{typeof(T).Name}> {DenseTensor<T>.FormatShape(shape)} {layout} affine={affine}, {run}";
        NormBase<T> module = InstanceNormOf(shape.Length, c, affine);
        BatchNorm<T> perInstance = BatchNormOf(shape.Length, c, affine);
        if (affine)
        {
            RandomAffine(module, 7);
            module.Weight!.CopyTo(perInstance.Weight!, 0);
            module.Bias!.CopyTo(perInstance.Bias!, 0);
        }

        run.ApplyTo(module);
        run.ApplyTo(perInstance);
        T[] x = MemoryOrder.ToMemory(RandomTensor<T>(11, shape, mean: 4, std: 3).Data, shape, layout);
        T[] dy = MemoryOrder.ToMemory(RandomTensor<T>(12, shape).Data, shape, layout);
        var y = new T[x.Length];
        var dx = new T[x.Length];
        T[] gw = new T[c], gb = new T[c];
        module.Forward(x, shape, y, layout);
        module.Backward(dy, shape, dx, affine ? gw : [], affine ? gb : [], layout);

        var yExpected = new T[x.Length];
        var dxExpected = new T[x.Length];
        double[] gwSum = new double[c], gbSum = new double[c];
        for (int i = 0; i < n; i++)
        {
            var range = new Range(i * instance, (i + 1) * instance);
            T[] gwi = new T[c], gbi = new T[c];
            perInstance.Forward(x.AsSpan(range), one, yExpected.AsSpan(range), layout);
            perInstance.Backward(dy.AsSpan(range), one, dxExpected.AsSpan(range), affine ? gwi : [], affine ? gbi : [], layout);
            for (int ch = 0; ch < c; ch++)
            {
                gwSum[ch] += D(gwi[ch]);
                gbSum[ch] += D(gbi[ch]);
            }
        }

        BitEqual(yExpected, y, where + ": output");
        BitEqual(dxExpected, dx, where + ": grad_input");
        if (affine)
        {
            for (int ch = 0; ch < c; ch++)
            {
                // InstanceNorm sums the instances' double gradients before rounding once; BatchNorm rounded each.
                Close<T>(gwSum[ch], D(gw[ch]), n * (Math.Abs(gwSum[ch]) + 1), $"{where}: grad_weight[{ch}]");
                Close<T>(gbSum[ch], D(gb[ch]), n * (Math.Abs(gbSum[ch]) + 1), $"{where}: grad_bias[{ch}]");
            }
        }
    }

    /// <summary>The float64 definition of one training step on every (n, c) plane.</summary>
    private sealed record Truth(double[] Y, double[] Dx, double[] GradWeight, double[] GradBias, double[] Mean, double[] UnbiasedVar);

    private static Truth Define(double[] x, double[] dy, int n, int c, int s, double[] w, double[] b, double eps)
    {
        var y = new double[x.Length];
        var dx = new double[x.Length];
        double[] gw = new double[c], gb = new double[c], means = new double[n * c], unbiased = new double[n * c];
        for (int plane = 0; plane < n * c; plane++)
        {
            int ch = plane % c, o = plane * s;
            double mean = 0, sq = 0, sumDy = 0, dot = 0;
            for (int k = 0; k < s; k++)
            {
                mean += x[o + k];
            }

            mean /= s;
            for (int k = 0; k < s; k++)
            {
                sq += (x[o + k] - mean) * (x[o + k] - mean);
                sumDy += dy[o + k];
                dot += (x[o + k] - mean) * dy[o + k];
            }

            double invstd = 1 / Math.Sqrt((sq / s) + eps);
            means[plane] = mean;
            unbiased[plane] = sq / (s - 1);
            for (int k = 0; k < s; k++)
            {
                double xhat = (x[o + k] - mean) * invstd;
                y[o + k] = (xhat * w[ch]) + b[ch];
                dx[o + k] = w[ch] * invstd * (dy[o + k] - (sumDy / s) - (xhat * dot * invstd / s));
            }

            gw[ch] += dot * invstd;
            gb[ch] += sumDy;
        }

        return new Truth(y, dx, gw, gb, means, unbiased);
    }

    [Theory]
    [InlineData(3, false)]
    [InlineData(4, true)]
    [InlineData(5, true)]
    public void A_training_step_matches_the_float64_definition(int rank, bool channelsLast)
    {
        int[] shape = rank switch { 3 => [4, 3, 33], 4 => [3, 5, 6, 7], _ => [2, 3, 3, 4, 5] };
        int n = shape[0], c = shape[1], s = shape.Skip(2).Aggregate(1, (a, b) => a * b);
        var layout = channelsLast ? MemoryLayout.ChannelsLast : MemoryLayout.ChannelsFirst;
        string where = $"InstanceNorm{rank - 2}d<{typeof(T).Name}> {layout}, default path and threads";
        NormBase<T> module = InstanceNormOf(rank, c, affine: true, track: true, momentum: 0.3);
        RandomAffine(module, 3);
        for (int ch = 0; ch < c; ch++)
        {
            module.RunningMean![ch] = T.CreateChecked(0.25 * ch);
            module.RunningVar![ch] = T.CreateChecked(1 + (0.5 * ch));
        }

        T[] rm0 = (T[])module.RunningMean!.Clone(), rv0 = (T[])module.RunningVar!.Clone();
        var x = RandomTensor<T>(21, shape, mean: 100, std: 2);
        var dy = RandomTensor<T>(22, shape);
        var y = new T[x.Length];
        var dx = new T[x.Length];
        T[] gw = new T[c], gb = new T[c];
        module.Forward(MemoryOrder.ToMemory(x.Data, shape, layout), shape, y, layout);
        module.Backward(MemoryOrder.ToMemory(dy.Data, shape, layout), shape, dx, gw, gb, layout);
        y = MemoryOrder.ToLogical(y, shape, layout);
        dx = MemoryOrder.ToLogical(dx, shape, layout);

        var truth = Define(ToDouble(x.Data), ToDouble(dy.Data), n, c, s, ToDouble(module.Weight!), ToDouble(module.Bias!), module.Eps);

        // The data sit 50σ off zero. A plain double definition then carries ~50 u_double of its own in x − mean, which is
        // nothing against float's u but is the whole budget for double: scale double's by that condition number.
        double condition = typeof(T) == typeof(double) ? 1 + (100.0 / 2) : 1;
        for (int i = 0; i < x.Length; i++)
        {
            Close<T>(truth.Y[i], D(y[i]), 4 * condition, $"{where}: output[{i}]");
            Close<T>(truth.Dx[i], D(dx[i]), 4 * s * condition, $"{where}: grad_input[{i}]");
        }

        for (int ch = 0; ch < c; ch++)
        {
            Close<T>(truth.GradWeight[ch], D(gw[ch]), n * s, $"{where}: grad_weight[{ch}]", Tolerance.ReductionFactor(n * s));
            Close<T>(truth.GradBias[ch], D(gb[ch]), n * s, $"{where}: grad_bias[{ch}]", Tolerance.ReductionFactor(n * s));
            double rm = 0, rv = 0;
            for (int i = 0; i < n; i++)
            {
                rm += (0.3 * truth.Mean[(i * c) + ch]) + (0.7 * D(rm0[ch]));
                rv += (0.3 * truth.UnbiasedVar[(i * c) + ch]) + (0.7 * D(rv0[ch]));
            }

            Close<T>(rm / n, D(module.RunningMean![ch]), 100, $"{where}: running_mean[{ch}] (mean over the batch of each instance's blend)");
            Close<T>(rv / n, D(module.RunningVar![ch]), 4, $"{where}: running_var[{ch}] (each instance's unbiased variance)");
        }

        Assert.Equal(0, module.NumBatchesTracked);
    }

    [Fact]
    public void Momentum_null_leaves_the_running_statistics_where_they_are_and_eval_uses_them()
    {
        int[] shape = [2, 3, 4, 5];
        var module = new InstanceNorm2d<T>(3, momentum: null, affine: true, trackRunningStats: true);
        RandomAffine(module, 4);
        module.RunningMean![1] = T.CreateChecked(2.5);
        module.RunningVar![2] = T.CreateChecked(4);
        string before = Snapshot(module);
        var x = RandomTensor<T>(31, shape, mean: 1, std: 2);
        var y = new T[x.Length];
        module.Forward(x.Data, shape, y);
        Assert.Equal(before, Snapshot(module));
        Assert.Equal(0, module.NumBatchesTracked);

        module.Eval();
        module.Forward(x.Data, shape, y);
        for (int i = 0; i < x.Length; i++)
        {
            int ch = Channel(x, i);
            double expected = ((D(x.Data[i]) - D(module.RunningMean[ch])) / Math.Sqrt(D(module.RunningVar[ch]) + module.Eps) * D(module.Weight![ch])) + D(module.Bias![ch]);
            Close<T>(expected, D(y[i]), Math.Abs(expected) + 1, $"InstanceNorm2d<{typeof(T).Name}> eval with running statistics: output[{i}]");
        }
    }

    [Fact]
    public void Eval_without_running_statistics_normalises_each_instance_like_training()
    {
        int[] shape = [3, 2, 17];
        var train = new InstanceNorm1d<T>(2, affine: true);
        var eval = new InstanceNorm1d<T>(2, affine: true);
        RandomAffine(train, 5);
        RandomAffine(eval, 5);
        eval.Eval();
        var x = RandomTensor<T>(41, shape, mean: -3, std: 0.5);
        T[] y1 = new T[x.Length], y2 = new T[x.Length];
        train.Forward(x.Data, shape, y1);
        eval.Forward(x.Data, shape, y2);
        BitEqual(y1, y2, "InstanceNorm1d eval without tracking against training");
    }

    [Fact]
    public void An_unbatched_input_is_a_batch_of_one()
    {
        foreach (int rank in new[] { 3, 4, 5 })
        {
            int[] shape = rank switch { 3 => [1, 3, 9], 4 => [1, 3, 4, 5], _ => [1, 3, 2, 3, 4] };
            NormBase<T> batched = InstanceNormOf(rank, 3, affine: true, track: true);
            NormBase<T> unbatched = InstanceNormOf(rank, 3, affine: true, track: true);
            RandomAffine(batched, 6);
            RandomAffine(unbatched, 6);
            var x = RandomTensor<T>(51, shape, mean: 2, std: 3);
            var dy = RandomTensor<T>(52, shape);
            T[] y1 = new T[x.Length], y2 = new T[x.Length], dx1 = new T[x.Length], dx2 = new T[x.Length];
            T[] gw1 = new T[3], gb1 = new T[3], gw2 = new T[3], gb2 = new T[3];
            batched.Forward(x.Data, shape, y1);
            unbatched.Forward(x.Data, shape.AsSpan(1), y2);
            batched.Backward(dy.Data, shape, dx1, gw1, gb1);
            unbatched.Backward(dy.Data, shape.AsSpan(1), dx2, gw2, gb2);
            string where = $"InstanceNorm{rank - 2}d<{typeof(T).Name}> unbatched {DenseTensor<T>.FormatShape(shape.AsSpan(1))}";
            BitEqual(y1, y2, where + ": output");
            BitEqual(dx1, dx2, where + ": grad_input");
            BitEqual(gw1, gw2, where + ": grad_weight");
            BitEqual(batched.RunningVar, unbatched.RunningVar, where + ": running_var");
        }
    }

    [Fact]
    public void Wrong_ranks_are_PyTorchs_errors()
    {
        var e = Assert.Throws<ArgumentException>(() => new InstanceNorm1d<T>(3).Forward(new T[24], [2, 3, 2, 2], new T[24]));
        Assert.StartsWith("expected 2D or 3D input (got 4D input)", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => new InstanceNorm2d<T>(3).Forward(new T[6], [2, 3], new T[6]));
        Assert.StartsWith("expected 3D or 4D input (got 2D input)", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => new InstanceNorm3d<T>(3).Forward(new T[12], [3, 2, 2], new T[12]));
        Assert.StartsWith("expected 4D or 5D input (got 3D input)", e.Message, StringComparison.Ordinal);
        Assert.Equal("input", e.ParamName);
    }

    [Theory]
    [InlineData(true, false, true)]
    [InlineData(false, false, true)]
    [InlineData(false, true, false)]
    public void One_spatial_element_is_an_error_whenever_instance_statistics_are_used(bool training, bool track, bool throws)
    {
        var module = new InstanceNorm1d<T>(3, affine: true, trackRunningStats: track);
        RandomAffine(module, 8);
        module.Training = training;
        string before = Snapshot(module);
        var y = new T[6];
        void Run() => module.Forward(Of<T>(1, 2, 3, 4, 5, 6), [2, 3, 1], y);
        if (!throws)
        {
            Run();
            return;
        }

        var e = Assert.Throws<ArgumentException>(Run);
        Assert.StartsWith("Expected more than 1 spatial element when training, got input size [2, 3, 1]", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));
        Assert.All(y, v => Assert.Equal(T.Zero, v));

        // Unbatched: PyTorch's check sees the batch dimension of one.
        e = Assert.Throws<ArgumentException>(() => module.Forward(Of<T>(1, 2, 3), [3, 1], new T[3]));
        Assert.StartsWith("Expected more than 1 spatial element when training, got input size [1, 3, 1]", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, false, "weight should contain 8 elements not 6")]
    [InlineData(false, true, "running_mean should contain 8 elements not 6")]
    [InlineData(true, true, "running_mean should contain 8 elements not 6")]
    [InlineData(false, false, null)]
    public void Another_channel_count_fails_only_where_weights_or_buffers_need_it(bool affine, bool track, string? error)
    {
        var module = new InstanceNorm1d<T>(3, affine: affine, trackRunningStats: track);
        string before = Snapshot(module);
        var x = RandomTensor<T>(61, [2, 4, 5]);
        var y = new T[x.Length];
        if (error is null)
        {
            // PyTorch 1.13 runs it with the input's channels (2.1+ warns).
            module.Forward(x.Data, [2, 4, 5], y);
            var reference = new InstanceNorm1d<T>(4);
            var expected = new T[x.Length];
            reference.Forward(x.Data, [2, 4, 5], expected);
            BitEqual(expected, y, "InstanceNorm1d(3) on 4 channels without weights or buffers");
            return;
        }

        var e = Assert.Throws<ArgumentException>(() => module.Forward(x.Data, [2, 4, 5], y));
        Assert.StartsWith(error, e.Message, StringComparison.Ordinal);
        Assert.Equal("input", e.ParamName);
        Assert.Equal(before, Snapshot(module));
    }

    [Fact]
    public void The_state_dict_has_PyTorchs_keys_and_defaults()
    {
        var module = new InstanceNorm2d<T>(4, affine: true, trackRunningStats: true);
        Assert.Equal(["weight", "bias", "running_mean", "running_var", "num_batches_tracked"], module.StateDict().Keys);
        Assert.Empty(new InstanceNorm2d<T>(4).StateDict());
        Assert.Equal(["running_mean", "running_var", "num_batches_tracked"], new InstanceNorm3d<T>(4, trackRunningStats: true).StateDict().Keys);
        var defaults = new InstanceNorm1d<T>(2);
        Assert.Equal((1e-5, 0.1, false, false), (defaults.Eps, defaults.Momentum, defaults.Affine, defaults.TrackRunningStats));
        Assert.All(module.Weight!, v => Assert.Equal(T.One, v));
        Assert.All(module.RunningVar!, v => Assert.Equal(T.One, v));
        Assert.Equal(string.Create(CultureInfo.InvariantCulture, $"{0}"), module.NumBatchesTracked!.Value.ToString(CultureInfo.InvariantCulture));
    }
}

public sealed class FloatInstanceNormTests : InstanceNormTests<float>;

public sealed class DoubleInstanceNormTests : InstanceNormTests<double>;
