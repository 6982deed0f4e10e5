using System.Numerics;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// LayerNorm and RMSNorm (TorchSharp-free) through the public surface: the float64 definition (output, input gradient,
/// per-element weight and bias gradients) for normalized shapes of one and two dimensions, 1-D input, bias off and no
/// affine; every thread count gives the one-thread bits; PyTorch's shape errors and state-dict names and shapes.
/// </summary>
public abstract class LayerNormTests<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public static TheoryData<string, int[], int[], bool, bool> Cases()
    {
        var data = new TheoryData<string, int[], int[], bool, bool>();
        foreach (string layer in new[] { "LayerNorm", "RMSNorm" })
        {
            data.Add(layer, [3, 5, 24], [24], true, true);
            data.Add(layer, [4, 3, 7], [3, 7], true, true);
            data.Add(layer, [40], [40], true, true);
            data.Add(layer, [70, 9], [9], false, true);
            data.Add(layer, [6, 33], [33], true, false);
            data.Add(layer, [2, 4100], [4100], true, true);
        }

        return data;
    }

    private static NormBase<T> Create(string layer, int[] normalized, bool affine, bool bias) => layer == "LayerNorm"
        ? new LayerNorm<T>(normalized, elementwiseAffine: affine, bias: bias)
        : new RMSNorm<T>(normalized, eps: 1e-5, elementwiseAffine: affine);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_and_backward_match_the_float64_definition_and_every_thread_count_gives_the_same_bits(string layer, int[] shape, int[] normalized, bool affine, bool bias)
    {
        bool centered = layer == "LayerNorm";
        int d = normalized.Aggregate(1, (a, b) => a * b), m = shape.Aggregate(1, (a, b) => a * b) / d;
        double offset = centered ? 30 : 0;
        T[] x = RandomTensor<T>(51, shape, mean: offset, std: 2).Data;
        T[] dy = RandomTensor<T>(52, shape).Data;
        (T[] Y, T[] Dx, T[] Gw, T[] Gb) Step(int threads)
        {
            var module = Create(layer, normalized, affine, bias);
            if (module.Weight is { } w)
            {
                RandomTensor<T>(53, [d], mean: 1, std: 0.5).Data.CopyTo(w, 0);
            }

            if (module.Bias is { } b)
            {
                RandomTensor<T>(54, [d], std: 0.5).Data.CopyTo(b, 0);
            }

            new LibraryExecution(LibraryPath.AutoSmallThresholds, threads).ApplyTo(module);
            T[] y = new T[x.Length], dx = new T[x.Length], gw = new T[affine ? d : 0], gb = new T[module.Bias is null ? 0 : d];
            module.Forward(x, shape, y);
            module.Backward(dy, shape, dx, gw, gb);
            return (y, dx, gw, gb);
        }

        var (y1, dx1, gw1, gb1) = Step(1);
        foreach (int threads in new[] { 2, 3 })
        {
            string where = $"{layer}<{typeof(T).Name}>({DenseTensor<T>.FormatShape(normalized)}) {DenseTensor<T>.FormatShape(shape)}, channel path (element parameters), {threads} threads against 1";
            var (y, dx, gw, gb) = Step(threads);
            BitEqual(y1, y, where + ": output");
            BitEqual(dx1, dx, where + ": grad_input");
            BitEqual(gw1, gw, where + ": grad_weight");
            BitEqual(gb1, gb, where + ": grad_bias");
        }

        string at = $"{layer}<{typeof(T).Name}>({DenseTensor<T>.FormatShape(normalized)}, affine {affine}, bias {bias}) {DenseTensor<T>.FormatShape(shape)}, 1 thread";
        double[] xd = ToDouble(x), dyd = ToDouble(dy);
        double[] wd = affine ? ToDouble(RandomTensor<T>(53, [d], mean: 1, std: 0.5).Data) : Enumerable.Repeat(1.0, d).ToArray();
        double[] bd = affine && bias && centered ? ToDouble(RandomTensor<T>(54, [d], std: 0.5).Data) : new double[d];
        var truth = ElementNormReference.Compute(xd, dyd, wd, bd, m, d, centered, 1e-5);
        double condition = centered && typeof(T) == typeof(double) ? 1 + (offset / 2) : 1;
        for (int i = 0; i < x.Length; i++)
        {
            int e = i % d;
            double r = truth.Invstd[i / d];
            Close<T>(truth.Y[i], D(y1[i]), 4 * condition * (1 + Math.Abs(wd[e]) + Math.Abs(bd[e])), $"{at}: output[{i / d}, {e}]");
            Close<T>(truth.Dx[i], D(dx1[i]), 4 * Math.Sqrt(d) * condition * (1 + Math.Abs(wd[e])) * (1 + r), $"{at}: grad_input[{i / d}, {e}]");
        }

        for (int e = 0; e < gw1.Length; e++)
        {
            Close<T>(truth.GradWeight[e], D(gw1[e]), m * condition, $"{at}: grad_weight[{e}]", Tolerance.ReductionFactor(m * d));
        }

        for (int e = 0; e < gb1.Length; e++)
        {
            Close<T>(truth.GradBias[e], D(gb1[e]), m, $"{at}: grad_bias[{e}]", Tolerance.ReductionFactor(m));
        }
    }

    [Fact]
    public void Shapes_follow_PyTorchs_rules_and_texts()
    {
        var module = new LayerNorm<T>([3, 4]);
        var ex = Assert.Throws<ArgumentException>(() => module.Forward(new T[24], [2, 4, 3], new T[24]));
        Assert.Contains("Given normalized_shape=[3, 4], expected input with shape [*, 3, 4], but got input of size[2, 4, 3]", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => module.Forward(new T[4], [4], new T[4]));
        var empty = Assert.Throws<ArgumentException>(() => new LayerNorm<T>(Array.Empty<int>()));
        Assert.Contains("Expected normalized_shape to be at least 1-dimensional", empty.Message, StringComparison.Ordinal);
        Assert.Equal("normalizedShape", empty.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RMSNorm<T>([4, 0]));
        Assert.Throws<ArgumentException>(() => module.Forward(new T[12], [3, 4], new T[12], MemoryLayout.ChannelsLast));

        // An empty batch of sets runs and gives empty results; its parameter gradients are zero.
        var none = new LayerNorm<T>(5);
        none.Forward(Array.Empty<T>(), [0, 5], Array.Empty<T>());
        T[] gw = [T.One, T.One, T.One, T.One, T.One], gb = (T[])gw.Clone();
        none.Backward(Array.Empty<T>(), [0, 5], Array.Empty<T>(), gw, gb);
        Assert.All(gw, v => Assert.Equal(T.Zero, v));
        Assert.All(gb, v => Assert.Equal(T.Zero, v));
    }

    [Fact]
    public void State_dicts_hold_PyTorchs_names_with_the_normalized_shape()
    {
        var layerNorm = new LayerNorm<T>([3, 4]);
        var state = layerNorm.StateDict();
        Assert.Equal(["weight", "bias"], state.Keys);
        Assert.Equal([3, 4], state["weight"].Shape);
        Assert.All(layerNorm.Weight!, v => Assert.Equal(T.One, v));
        Assert.All(layerNorm.Bias!, v => Assert.Equal(T.Zero, v));
        Assert.Equal(["weight"], new LayerNorm<T>(4, bias: false).StateDict().Keys);
        Assert.Null(new LayerNorm<T>(4, bias: false).Bias);
        Assert.Empty(new LayerNorm<T>(4, elementwiseAffine: false).StateDict());

        var rms = new RMSNorm<T>([2, 3]);
        Assert.Equal(["weight"], rms.StateDict().Keys);
        Assert.Equal([2, 3], rms.StateDict()["weight"].Shape);
        Assert.True(rms.EpsIsDefault);
        Assert.Equal(typeof(T) == typeof(float) ? 1.1920928955078125e-07 : 2.220446049250313e-16, rms.Eps);

        // A [12] weight is not a [3, 4] one; the module is unchanged by the failed load.
        var source = new LayerNorm<T>([3, 4]);
        source.Weight![5] = T.CreateChecked(2.5);
        layerNorm.LoadStateDict(source.StateDict());
        Assert.Equal(T.CreateChecked(2.5), layerNorm.Weight![5]);
        var flat = new OrderedDictionary<string, IStateTensor>
        {
            ["weight"] = new DenseTensor<T>(new T[12], 12),
            ["bias"] = new DenseTensor<T>(new T[12], 12),
        };
        Assert.Throws<ArgumentException>(() => layerNorm.LoadStateDict(flat));
        Assert.Equal(T.CreateChecked(2.5), layerNorm.Weight![5]);
    }

    [Fact]
    public void Safetensors_round_trip_with_the_normalized_shape()
    {
        string path = Path.Combine(Path.GetTempPath(), $"bnparity-layernorm-{Guid.NewGuid():N}.safetensors");
        try
        {
            var source = new LayerNorm<T>([3, 4]);
            source.Weight![7] = T.CreateChecked(-1.5);
            source.Bias![2] = T.CreateChecked(0.25);
            source.SaveSafetensors(path, prefix: "blocks.0.norm1.");
            var target = new LayerNorm<T>([3, 4]);
            target.LoadSafetensors(path, prefix: "blocks.0.norm1.");
            Assert.Equal(source.Weight, target.Weight);
            Assert.Equal(source.Bias, target.Bias);

            // The file holds PyTorch's names with the [3, 4] shape: a LayerNorm over [12] does not take it.
            string header = System.Text.Encoding.UTF8.GetString(File.ReadAllBytes(path), 8, 200);
            Assert.Contains("\"blocks.0.norm1.weight\"", header, StringComparison.Ordinal);
            Assert.Contains("[3,4]", header.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
            var other = new LayerNorm<T>(12);
            T[] before = (T[])other.Weight!.Clone();
            Assert.ThrowsAny<Exception>(() => other.LoadSafetensors(path, prefix: "blocks.0.norm1."));
            Assert.Equal(before, other.Weight);

            var rms = new RMSNorm<T>(12);
            rms.Weight![0] = T.CreateChecked(3);
            rms.SaveSafetensors(path);
            var rmsTarget = new RMSNorm<T>(12);
            rmsTarget.LoadSafetensors(path);
            Assert.Equal(rms.Weight, rmsTarget.Weight);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>PyTorch's layer_norm and RMSNorm composite have no zero rule (batch_norm's InvStd does): at eps = 0 a
    /// constant set (LayerNorm) or a zero set (RMSNorm) has rstd = +∞, so its outputs and its dx are NaN, and so is every
    /// element of dweight (each sums over all sets); the other sets are untouched (checked against PyTorch 1.13, whose
    /// recorded ln-eps-0-constant-set and rms-eps-0-zero-set hold the same NaNs), at 1 and 3 threads.</summary>
    [Theory]
    [InlineData("LayerNorm", 1)]
    [InlineData("LayerNorm", 3)]
    [InlineData("RMSNorm", 1)]
    [InlineData("RMSNorm", 3)]
    public void Eps_0_on_a_degenerate_set_gives_NaN_there_as_PyTorch(string layer, int threads)
    {
        int[] shape = [4, 16];
        T[] x = RandomTensor<T>(71, shape).Data;
        T constant = layer == "LayerNorm" ? T.CreateChecked(0.75) : T.Zero;
        for (int e = 0; e < 16; e++)
        {
            x[16 + e] = constant; // set 1
        }

        NormBase<T> module = layer == "LayerNorm" ? new LayerNorm<T>(16, eps: 0) : new RMSNorm<T>(16, eps: 0);
        module.MaxDegreeOfParallelism = threads;
        T[] y = new T[x.Length], dx = new T[x.Length], gw = new T[16], gb = new T[module.Bias is null ? 0 : 16];
        module.Forward(x, shape, y);
        module.Backward(RandomTensor<T>(72, shape).Data, shape, dx, gw, gb);
        string where = $"{layer}<{typeof(T).Name}>(16, eps 0) on [4, 16] with set 1 = {constant}, channel path, {threads} thread(s)";
        for (int i = 0; i < x.Length; i++)
        {
            bool degenerate = i / 16 == 1;
            Assert.True(T.IsNaN(y[i]) == degenerate, $"{where}: output [set={i / 16}, e={i % 16}] = {y[i]}");
            Assert.True(T.IsNaN(dx[i]) == degenerate, $"{where}: grad_input [set={i / 16}, e={i % 16}] = {dx[i]}");
        }

        Assert.All(gw, g => Assert.True(T.IsNaN(g), $"{where}: grad_weight {g}"));
        Assert.All(gb, g => Assert.False(T.IsNaN(g), $"{where}: grad_bias {g} (Σdy has no rstd)"));
    }
}

public sealed class FloatLayerNormTests : LayerNormTests<float>;

public sealed class DoubleLayerNormTests : LayerNormTests<double>;
