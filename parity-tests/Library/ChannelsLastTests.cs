using System.Numerics;
using BnParity.Harness.Cases;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// The library's channels-last layout (TorchSharp-free): a channels-last (N, H, W, C) input is normalised as the
/// (N·H·W, C) matrix it is in memory, so its output, gradients and buffers are bit for bit those of a BatchNorm1d on
/// that matrix, at every thread count; and they equal the channels-first result of the same data within a few ulp.
/// Bad layouts are argument errors naming <c>layout</c> with nothing changed.
/// </summary>
public sealed class ChannelsLastTests
{
    public static TheoryData<int, bool, int> Cases() => new()
    {
        { 4, true, 1 }, { 4, true, 2 }, { 4, true, 3 }, { 4, false, 1 }, { 4, false, 2 },
        { 5, true, 1 }, { 5, true, 2 }, { 5, false, 3 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Float_channels_last_equals_BatchNorm1d_on_the_memory_matrix(int rank, bool training, int threads) =>
        AssertMatchesMatrixModule<float>(rank, training, threads, ulps: 64);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Double_channels_last_equals_BatchNorm1d_on_the_memory_matrix(int rank, bool training, int threads) =>
        AssertMatchesMatrixModule<double>(rank, training, threads, ulps: 64);

    private static void AssertMatchesMatrixModule<T>(int rank, bool training, int threads, int ulps)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int[] shape = rank == 4 ? [3, 5, 7, 6] : [2, 5, 3, 4, 5];
        int c = shape[1];
        int spatial = shape.Skip(2).Aggregate(1, (a, b) => a * b);
        int rows = shape[0] * spatial;
        string where = $"channels-last rank {rank}, {(training ? "training" : "eval")}, {threads} threads";
        BatchNorm<T> module = rank == 4 ? new BatchNorm2d<T>(c, momentum: 0.3) : new BatchNorm3d<T>(c, momentum: 0.3);
        var matrix = new BatchNorm1d<T>(c, momentum: 0.3);
        var channelsFirst = rank == 4 ? (BatchNorm<T>)new BatchNorm2d<T>(c, momentum: 0.3) : new BatchNorm3d<T>(c, momentum: 0.3);
        foreach (var m in new[] { module, matrix, channelsFirst })
        {
            RandomAffine(m, 5);
            m.MaxDegreeOfParallelism = threads;
            m.ExecutionOptions = m.ExecutionOptions with { ParallelThreshold = 0, MaxWorkers = int.MaxValue };
        }

        var nchw = RandomTensor<T>(1, shape, mean: 3, std: 2);
        var dyNchw = RandomTensor<T>(2, shape);
        T[] x = ToChannelsLast(nchw.Data, shape);
        T[] dy = ToChannelsLast(dyNchw.Data, shape);
        for (int step = 0; step < 2; step++)
        {
            // Step 0 trains (or evaluates fresh buffers), step 1 runs on the buffers step 0 wrote.
            foreach (var m in new[] { module, matrix, channelsFirst })
            {
                m.Training = training;
            }

            var y = new T[x.Length];
            var yMatrix = new T[x.Length];
            var yFirst = new T[x.Length];
            module.Forward(x, shape, y, MemoryLayout.ChannelsLast);
            matrix.Forward(x, [rows, c], yMatrix);
            channelsFirst.Forward(nchw.Data, shape, yFirst);
            BitEqual(yMatrix, y, $"{where}, step {step}: output");
            BitEqual(matrix.RunningMean, module.RunningMean, $"{where}, step {step}: running_mean");
            BitEqual(matrix.RunningVar, module.RunningVar, $"{where}, step {step}: running_var");
            Assert.Equal(matrix.NumBatchesTracked, module.NumBatchesTracked);
            AssertClose(ToChannelsLast(yFirst, shape), y, ulps, $"{where}, step {step}: output against channels-first");

            var dx = new T[x.Length];
            var dxMatrix = new T[x.Length];
            var dxFirst = new T[x.Length];
            T[] gw = new T[c], gb = new T[c], gwMatrix = new T[c], gbMatrix = new T[c], gwFirst = new T[c], gbFirst = new T[c];
            module.Backward(dy, shape, dx, gw, gb, MemoryLayout.ChannelsLast);
            matrix.Backward(dy, [rows, c], dxMatrix, gwMatrix, gbMatrix);
            channelsFirst.Backward(dyNchw.Data, shape, dxFirst, gwFirst, gbFirst);
            BitEqual(dxMatrix, dx, $"{where}, step {step}: grad_input");
            BitEqual(gwMatrix, gw, $"{where}, step {step}: grad_weight");
            BitEqual(gbMatrix, gb, $"{where}, step {step}: grad_bias");
            AssertClose(ToChannelsLast(dxFirst, shape), dx, ulps, $"{where}, step {step}: grad_input against channels-first");
            AssertClose(gwFirst, gw, ulps, $"{where}, step {step}: grad_weight against channels-first");
        }
    }

    [Fact]
    public void Channels_last_on_BatchNorm1d_or_an_undefined_layout_is_an_argument_error_that_changes_nothing()
    {
        var bn1 = new BatchNorm1d<float>(3);
        RandomAffine(bn1, 1);
        string before = Snapshot(bn1);
        var x = RandomTensor<float>(2, [4, 3, 5]);
        var y = new float[x.Length];
        var e = Assert.Throws<ArgumentException>(() => bn1.Forward(x.Data, [4, 3, 5], y, MemoryLayout.ChannelsLast));
        Assert.Equal("layout", e.ParamName);
        Assert.Contains("only the 2d and 3d layers", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(bn1));
        Assert.All(y, v => Assert.Equal(0f, v));

        var bn2 = new BatchNorm2d<float>(3);
        string before2 = Snapshot(bn2);
        var x2 = RandomTensor<float>(3, [2, 3, 2, 2]);
        e = Assert.Throws<ArgumentException>(() => bn2.Forward(x2.Data, [2, 3, 2, 2], new float[x2.Length], (MemoryLayout)7));
        Assert.Equal("layout", e.ParamName);
        Assert.Equal(before2, Snapshot(bn2));
    }

    [Fact]
    public void A_backward_in_another_layout_than_its_forward_is_an_argument_error_that_changes_nothing()
    {
        int[] shape = [2, 3, 2, 2];
        var module = new BatchNorm2d<float>(3);
        var x = RandomTensor<float>(4, shape);
        var dy = RandomTensor<float>(5, shape);
        module.Forward(x.Data, shape, new float[x.Length], MemoryLayout.ChannelsLast);
        string before = Snapshot(module);
        var dx = new float[x.Length];
        var e = Assert.Throws<ArgumentException>(() => module.Backward(dy.Data, shape, dx, new float[3], new float[3]));
        Assert.Equal("layout", e.ParamName);
        Assert.Contains("ChannelsLast", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => module.Backward(dy));
        Assert.Equal(before, Snapshot(module));
        Assert.All(dx, v => Assert.Equal(0f, v));

        module.Forward(x.Data, shape, new float[x.Length]);
        e = Assert.Throws<ArgumentException>(() => module.Backward(dy.Data, shape, dx, new float[3], new float[3], MemoryLayout.ChannelsLast));
        Assert.Equal("layout", e.ParamName);
    }

    /// <summary>(N, C, S…) row-major → (N, S…, C), through the harness's one mapping.</summary>
    private static T[] ToChannelsLast<T>(T[] nchw, int[] shape) => MemoryOrder.ToMemory(nchw, shape, MemoryLayout.ChannelsLast);

    private static void AssertClose<T>(T[] expected, T[] actual, int ulps, string what) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double u = typeof(T) == typeof(float) ? Math.ScaleB(1.0, -24) : Math.ScaleB(1.0, -53);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = double.CreateChecked(expected[i]);
            double a = double.CreateChecked(actual[i]);
            Assert.True(Math.Abs(e - a) <= ulps * u * (Math.Abs(e) + 1), $"{what} [{i}]: {a} vs {e}");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Tensor_overloads_in_channels_last_give_the_span_overloads_bits(bool training)
    {
        int[] shape = [3, 6, 4, 5];
        var spanModule = new BatchNorm2d<float>(6, momentum: 0.2);
        var tensorModule = new BatchNorm2d<float>(6, momentum: 0.2);
        var inPlaceModule = new BatchNorm2d<float>(6, momentum: 0.2);
        foreach (var m in new[] { spanModule, tensorModule, inPlaceModule })
        {
            RandomAffine(m, 8);
            m.Training = training;
        }

        var x = new DenseTensor<float>(ToChannelsLast(RandomTensor<float>(9, shape, mean: -2, std: 3).Data, shape), shape);
        var dy = new DenseTensor<float>(ToChannelsLast(RandomTensor<float>(10, shape).Data, shape), shape);
        var y = new float[x.Length];
        spanModule.Forward(x.Data, shape, y, MemoryLayout.ChannelsLast);
        var tensorY = tensorModule.Forward(x, MemoryLayout.ChannelsLast);
        var inPlace = x.Clone();
        inPlaceModule.Forward(inPlace, inPlace, MemoryLayout.ChannelsLast);
        string where = $"BatchNorm2d channels-last {(training ? "training" : "eval")}, default path and threads";
        BitEqual(y, tensorY.Data, where + ": Forward(tensor, layout) output");
        BitEqual(y, inPlace.Data, where + ": in-place Forward(tensor, tensor, layout) output");
        BitEqual(spanModule.RunningVar, tensorModule.RunningVar, where + ": running_var");

        var dx = new float[x.Length];
        float[] gw = new float[6], gb = new float[6];
        spanModule.Backward(dy.Data, shape, dx, gw, gb, MemoryLayout.ChannelsLast);
        var gradients = tensorModule.Backward(dy, MemoryLayout.ChannelsLast);
        var inPlaceGradients = inPlaceModule.Backward(dy, MemoryLayout.ChannelsLast);
        BitEqual(dx, gradients.Input.Data, where + ": Backward(tensor, layout) grad_input");
        BitEqual(gw, gradients.Weight, where + ": grad_weight");
        BitEqual(gb, gradients.Bias, where + ": grad_bias");
        BitEqual(dx, inPlaceGradients.Input.Data, where + ": grad_input after the in-place forward");
    }

    [Fact]
    public void Tensor_overloads_reject_a_wrong_layout_naming_layout_and_change_nothing()
    {
        var bn1 = new BatchNorm1d<float>(3);
        RandomAffine(bn1, 2);
        string before = Snapshot(bn1);
        var x = RandomTensor<float>(11, [4, 3, 5]);
        var e = Assert.Throws<ArgumentException>(() => bn1.Forward(x, MemoryLayout.ChannelsLast));
        Assert.Equal("layout", e.ParamName);
        var destination = new DenseTensor<float>(4, 3, 5);
        e = Assert.Throws<ArgumentException>(() => bn1.Forward(x, destination, MemoryLayout.ChannelsLast));
        Assert.Equal("layout", e.ParamName);
        Assert.All(destination.Data, v => Assert.Equal(0f, v));
        Assert.Equal(before, Snapshot(bn1));

        int[] shape = [2, 3, 2, 2];
        var bn2 = new BatchNorm2d<float>(3);
        var x2 = RandomTensor<float>(12, shape);
        bn2.Forward(x2, MemoryLayout.ChannelsLast);
        string afterForward = Snapshot(bn2);
        e = Assert.Throws<ArgumentException>(() => bn2.Backward(RandomTensor<float>(13, shape)));
        Assert.Equal("layout", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => bn2.Backward(RandomTensor<float>(13, shape), (MemoryLayout)(-1)));
        Assert.Equal("layout", e.ParamName);
        Assert.Equal(afterForward, Snapshot(bn2));
        Assert.NotNull(bn2.Backward(RandomTensor<float>(13, shape), MemoryLayout.ChannelsLast).Weight);
    }
}
