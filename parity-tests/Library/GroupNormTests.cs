using System.Numerics;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// GroupNorm (TorchSharp-free), held to three oracles on every forced path and thread count:
/// <list type="bullet">
/// <item>InstanceNorm, proven against BatchNorm: groups of one channel are InstanceNorm's planes, so GroupNorm(C, C)
/// must be an affine InstanceNorm bit for bit, forward and backward; and without weights a group of C/G channels is one
/// plane of the (N, G, C/G·spatial) view, so GroupNorm(G, C)'s output must be InstanceNorm's on that view, bit for
/// bit (the set statistics and the output formula are shared);</item>
/// <item>the float64 definition per (n, group): output, input gradient (the weights inside the set's mean and
/// variance terms), per-channel weight and bias gradients, in both layouts, with a zero weight among them;</item>
/// <item>itself: every path at 2 and 3 threads gives the bits of that path at 1 thread.</item>
/// </list>
/// Plus PyTorch's rules: divisibility at construction, (N, C) input, the one-value error only when N·(C/G)·spatial = 1
/// (in eval too), a one-value group normalised to its bias, libtorch's channel texts.
/// </summary>
public abstract class GroupNormTests<T> where T : unmanaged, IFloatingPointIeee754<T>
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

    /// <summary>(groups, shape): long and short sets, each rank, (N, C) input, one group and a group per channel.</summary>
    private static readonly (int Groups, int[] Shape)[] Shapes =
    [
        (2, [3, 4, 20]), (3, [2, 6, 5]), (2, [3, 4, 5, 6]), (1, [2, 3, 2, 3]), (2, [2, 4, 3, 2, 4]), (4, [5, 8]), (3, [4, 3, 7]),
    ];

    [Theory]
    [MemberData(nameof(Runs))]
    public void Groups_of_one_channel_are_an_affine_InstanceNorm_bit_for_bit(LibraryPath path, int threads)
    {
        var run = new LibraryExecution(path, threads);
        foreach (var (_, shape) in Shapes.Where(s => s.Shape.Length >= 3))
        {
            int c = shape[1];
            foreach (var layout in shape.Length >= 4 ? new[] { MemoryLayout.ChannelsFirst, MemoryLayout.ChannelsLast } : [MemoryLayout.ChannelsFirst])
            {
                string where = $"GroupNorm<{typeof(T).Name}>({c}, {c}) {DenseTensor<T>.FormatShape(shape)} {layout}, {run}";
                var groupNorm = new GroupNorm<T>(c, c);
                NormBase<T> instanceNorm = shape.Length switch
                {
                    3 => new InstanceNorm1d<T>(c, affine: true),
                    4 => new InstanceNorm2d<T>(c, affine: true),
                    _ => new InstanceNorm3d<T>(c, affine: true),
                };
                RandomAffine(groupNorm, 3);
                groupNorm.Weight!.CopyTo(instanceNorm.Weight!, 0);
                groupNorm.Bias!.CopyTo(instanceNorm.Bias!, 0);
                run.ApplyTo(groupNorm);
                run.ApplyTo(instanceNorm);
                var (y, dx, gw, gb) = Step(groupNorm, shape, layout, 13);
                var (yi, dxi, gwi, gbi) = Step(instanceNorm, shape, layout, 13);
                BitEqual(yi, y, where + ": output");
                BitEqual(dxi, dx, where + ": grad_input");
                BitEqual(gwi, gw, where + ": grad_weight");
                BitEqual(gbi, gb, where + ": grad_bias");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Runs))]
    public void Without_weights_a_group_is_an_InstanceNorm_plane_of_the_grouped_view_bit_for_bit(LibraryPath path, int threads)
    {
        var run = new LibraryExecution(path, threads);
        foreach (var (groups, shape) in Shapes.Where(s => s.Shape.Length >= 3 || s.Groups > 1))
        {
            int n = shape[0], c = shape[1], spatial = shape.Skip(2).Aggregate(1, (a, b) => a * b);
            int[] grouped = [n, groups, c / groups * spatial];
            string where = $"GroupNorm<{typeof(T).Name}>({groups}, {c}, affine: false) {DenseTensor<T>.FormatShape(shape)}, {run}";
            var groupNorm = new GroupNorm<T>(groups, c, affine: false);
            var instanceNorm = new InstanceNorm1d<T>(groups);
            run.ApplyTo(groupNorm);
            run.ApplyTo(instanceNorm);
            var x = RandomTensor<T>(17, shape, mean: -7, std: 2);
            T[] y = new T[x.Length], yi = new T[x.Length];
            groupNorm.Forward(x.Data, shape, y);
            instanceNorm.Forward(x.Data, grouped, yi);
            BitEqual(yi, y, where + ": output");
        }
    }

    [Theory]
    [MemberData(nameof(Runs))]
    public void Every_path_gives_its_one_thread_bits_at_every_thread_count(LibraryPath path, int threads)
    {
        var run = new LibraryExecution(path, threads);
        var single = new LibraryExecution(path, 1);
        foreach (var (groups, shape) in Shapes)
        {
            foreach (var layout in new[] { MemoryLayout.ChannelsFirst, MemoryLayout.ChannelsLast })
            {
                // Channels-last runs one sample per instance: at some thread counts each worker takes whole instances,
                // at others the instances run in turn on every worker; both must give the one-thread bits.
                string arrangement = layout == MemoryLayout.ChannelsLast && shape.Length >= 3
                    ? ", " + run.SampleArrangement(shape[0], shape.Skip(1).Aggregate(1L, (a, b) => a * b))
                    : "";
                string where = $"GroupNorm<{typeof(T).Name}>({groups}, {shape[1]}) {DenseTensor<T>.FormatShape(shape)} {layout}, {run}{arrangement} against 1 thread";
                var module = new GroupNorm<T>(groups, shape[1]);
                var reference = new GroupNorm<T>(groups, shape[1]);
                RandomAffine(module, 4);
                RandomAffine(reference, 4);
                run.ApplyTo(module);
                single.ApplyTo(reference);
                var (y, dx, gw, gb) = Step(module, shape, layout, 19);
                var (y1, dx1, gw1, gb1) = Step(reference, shape, layout, 19);
                BitEqual(y1, y, where + ": output");
                BitEqual(dx1, dx, where + ": grad_input");
                BitEqual(gw1, gw, where + ": grad_weight");
                BitEqual(gb1, gb, where + ": grad_bias");
            }
        }
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(1, true)]
    [InlineData(4, false)]
    public void Forward_and_backward_match_the_float64_definition(int groups, bool channelsLast)
    {
        int[] shape = [3, 8, 5, 7];
        int n = shape[0], c = shape[1], s = 35, k = c / groups;
        var layout = channelsLast ? MemoryLayout.ChannelsLast : MemoryLayout.ChannelsFirst;
        string where = $"GroupNorm<{typeof(T).Name}>({groups}, {c}) {layout}, default path and threads";
        var module = new GroupNorm<T>(groups, c);
        RandomAffine(module, 5);
        module.Weight![1] = T.Zero; // a zero weight: its channel's dy still enters the set's terms through no one
        var (yMem, dxMem, gw, gb) = Step(module, shape, layout, 23, mean: 50, std: 3);
        T[] y = MemoryOrder.ToLogical(yMem, shape, layout), dx = MemoryOrder.ToLogical(dxMem, shape, layout);
        double[] x = ToDouble(RandomTensor<T>(23, shape, mean: 50, std: 3).Data);
        double[] dy = ToDouble(RandomTensor<T>(24, shape).Data);
        double[] w = ToDouble(module.Weight!), b = ToDouble(module.Bias!);
        double[] gwTruth = new double[c], gbTruth = new double[c];
        // Data 50σ off zero: a plain double definition carries ~17 u_double of its own, the budget of a double result.
        double condition = typeof(T) == typeof(double) ? 1 + (50.0 / 3) : 1;
        for (int i = 0; i < n; i++)
        {
            for (int g = 0; g < groups; g++)
            {
                int o = ((i * c) + (g * k)) * s, m = k * s;
                double mean = 0, sq = 0, wDy = 0, wDot = 0;
                for (int e = 0; e < m; e++)
                {
                    mean += x[o + e];
                }

                mean /= m;
                for (int e = 0; e < m; e++)
                {
                    int ch = (g * k) + (e / s);
                    sq += (x[o + e] - mean) * (x[o + e] - mean);
                    wDy += w[ch] * dy[o + e];
                    wDot += w[ch] * (x[o + e] - mean) * dy[o + e];
                }

                double r = 1 / Math.Sqrt((sq / m) + module.Eps);
                for (int e = 0; e < m; e++)
                {
                    int ch = (g * k) + (e / s);
                    double xhat = (x[o + e] - mean) * r;
                    double yTruth = (xhat * w[ch]) + b[ch];
                    double dxTruth = r * ((w[ch] * dy[o + e]) - (wDy / m) - (xhat * r * wDot / m));
                    Close<T>(yTruth, D(y[o + e]), 4 * condition, $"{where}: output[{o + e}]");
                    Close<T>(dxTruth, D(dx[o + e]), 4 * Math.Sqrt(m) * condition, $"{where}: grad_input[{o + e}]");
                    gwTruth[ch] += xhat * dy[o + e];
                    gbTruth[ch] += dy[o + e];
                }
            }
        }

        for (int ch = 0; ch < c; ch++)
        {
            Close<T>(gwTruth[ch], D(gw[ch]), n * s * condition, $"{where}: grad_weight[{ch}]", Tolerance.ReductionFactor(n * s));
            Close<T>(gbTruth[ch], D(gb[ch]), n * s, $"{where}: grad_bias[{ch}]", Tolerance.ReductionFactor(n * s));
        }
    }

    private static (T[] Y, T[] Dx, T[] GradWeight, T[] GradBias) Step(NormBase<T> module, int[] shape, MemoryLayout layout, int seed, double mean = 4, double std = 3)
    {
        T[] x = MemoryOrder.ToMemory(RandomTensor<T>(seed, shape, mean, std).Data, shape, layout);
        T[] dy = MemoryOrder.ToMemory(RandomTensor<T>(seed + 1, shape).Data, shape, layout);
        T[] y = new T[x.Length], dx = new T[x.Length];
        int c = module.Affine ? module.NumFeatures : 0;
        T[] gw = new T[c], gb = new T[c];
        module.Forward(x, shape, y, layout);
        module.Backward(dy, shape, dx, gw, gb, layout);
        return (y, dx, gw, gb);
    }

    [Fact]
    public void Construction_checks_PyTorchs_divisibility_rule()
    {
        var e = Assert.Throws<ArgumentException>(() => new GroupNorm<T>(4, 6));
        Assert.StartsWith("num_channels must be divisible by num_groups", e.Message, StringComparison.Ordinal);
        Assert.Equal("numChannels", e.ParamName);
        Assert.Equal("numGroups", Assert.Throws<ArgumentOutOfRangeException>(() => new GroupNorm<T>(0, 6)).ParamName);
        var module = new GroupNorm<T>(3, 6);
        Assert.Equal((3, 6, 1e-5, true, false), (module.NumGroups, module.NumChannels, module.Eps, module.Affine, module.TrackRunningStats));
        Assert.Equal(["weight", "bias"], module.StateDict().Keys);
        Assert.Empty(new GroupNorm<T>(3, 6, affine: false).StateDict());
        Assert.Null(module.RunningMean);
        Assert.Null(module.NumBatchesTracked);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void One_value_per_group_is_an_error_only_when_N_times_C_over_G_times_spatial_is_one(bool training)
    {
        var module = new GroupNorm<T>(4, 4);
        module.Training = training;
        RandomAffine(module, 6);
        string before = Snapshot(module);
        var e = Assert.Throws<ArgumentException>(() => module.Forward(Of<T>(1, 2, 3, 4), [1, 4, 1, 1], new T[4]));
        Assert.StartsWith("Expected more than 1 value per channel when training, got input size [1, 4, 1, 1]", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));

        // (2, 4) with 4 groups: one value per group, normalised to the bias (PyTorch, in both modes).
        var y = new T[8];
        module.Forward(Of<T>(1, 2, 3, 4, 5, 6, 7, 8), [2, 4], y);
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(module.Bias![i % 4], y[i]);
        }
    }

    [Fact]
    public void Ranks_and_channel_counts_follow_libtorch()
    {
        var module = new GroupNorm<T>(2, 4);
        var e = Assert.Throws<ArgumentException>(() => module.Forward(new T[4], [4], new T[4]));
        Assert.StartsWith("Expected at least 2 dimensions for input tensor but received 1", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => module.Forward(new T[18], [1, 6, 3], new T[18]));
        Assert.StartsWith("Expected weight to be a vector of size equal to the number of channels in input, but got weight of shape [4] and input of shape [1, 6, 3]", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => new GroupNorm<T>(2, 4, affine: false).Forward(new T[15], [1, 5, 3], new T[15]));
        Assert.StartsWith("Expected number of channels in input to be divisible by num_groups, but got input of shape [1, 5, 3] and num_groups=2", e.Message, StringComparison.Ordinal);

        // Without weights any channel count divisible by the groups runs, as in PyTorch.
        var x = RandomTensor<T>(7, [2, 6, 3]);
        T[] y = new T[x.Length], expected = new T[x.Length];
        new GroupNorm<T>(2, 4, affine: false).Forward(x.Data, [2, 6, 3], y);
        new GroupNorm<T>(2, 6, affine: false).Forward(x.Data, [2, 6, 3], expected);
        BitEqual(expected, y, "GroupNorm(2, 4, affine: false) on 6 channels");
    }
}

public sealed class FloatGroupNormTests : GroupNormTests<float>;

public sealed class DoubleGroupNormTests : GroupNormTests<double>;
