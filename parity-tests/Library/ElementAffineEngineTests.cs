using System.Numerics;
using BnParity.Harness.Comparison;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// The engine's sets with <b>element</b> parameters (LayerNorm's and RMSNorm's reduction: M sets of D contiguous
/// elements, weight[e] and bias[e] per element, centred or not), held to the float64 definition — output, input
/// gradient, per-element weight and bias gradients — and to itself: 2 and 3 threads give the one-thread bits (the
/// parameter gradients are summed in fixed blocks of sets). The layers that will stand on it (issue 23) are not
/// public yet; this is the engine's proof.
/// </summary>
public abstract unsafe class ElementAffineEngineTests<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>(sets, elements): one set, short and long sets (beyond one 4096-element block), more sets than the
    /// 32 gradient blocks, an element count that is no multiple of a vector.</summary>
    public static TheoryData<int, int, bool, bool> Shapes()
    {
        var data = new TheoryData<int, int, bool, bool>();
        foreach (var (m, d) in new[] { (1, 7), (5, 33), (70, 24), (3, 5000), (33, 1) })
        {
            foreach (bool centered in new[] { true, false })
            {
                foreach (bool affine in new[] { true, false })
                {
                    data.Add(m, d, centered, affine);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Forward_and_backward_match_the_float64_definition_at_every_thread_count(int sets, int length, bool centered, bool affine)
    {
        string layer = centered ? "LayerNorm" : "RMSNorm";
        double eps = 1e-5;
        double offset = centered ? 40 : 0; // LayerNorm sets far off zero; RMSNorm's data as it comes
        T[] x = RandomTensor<T>(31, [sets, length], mean: offset, std: 2).Data;
        T[] dy = RandomTensor<T>(32, [sets, length]).Data;
        T[]? weight = affine ? RandomTensor<T>(33, [length], mean: 1, std: 0.5).Data : null;
        T[]? bias = affine && centered ? RandomTensor<T>(34, [length], std: 0.5).Data : null;
        var (y1, dx1, gw1, gb1) = Run(x, dy, weight, bias, sets, length, centered, eps, 1);
        foreach (int threads in new[] { 2, 3 })
        {
            string where = $"engine, element parameters ({layer}, {typeof(T).Name}, {sets} sets of {length}, affine {affine}), channel path, {threads} threads against 1";
            var (y, dx, gw, gb) = Run(x, dy, weight, bias, sets, length, centered, eps, threads);
            BitEqual(y1, y, where + ": output");
            BitEqual(dx1, dx, where + ": grad_input");
            Assert.True(gw1.SequenceEqual(gw), where + ": grad_weight (double partials)");
            Assert.True(gb1.SequenceEqual(gb), where + ": grad_bias (double partials)");
        }

        string at = $"engine, element parameters ({layer}, {typeof(T).Name}, {sets} sets of {length}, affine {affine}), channel path, 1 thread";
        double[] xd = ToDouble(x), dyd = ToDouble(dy);
        double[] w = weight is null ? Enumerable.Repeat(1.0, length).ToArray() : ToDouble(weight);
        double[] b = bias is null ? new double[length] : ToDouble(bias);
        var truth = ElementNormReference.Compute(xd, dyd, w, b, sets, length, centered, eps);
        double condition = centered && typeof(T) == typeof(double) ? 1 + (offset / 2) : 1;
        for (int i = 0; i < x.Length; i++)
        {
            int e = i % length;
            double r = truth.Invstd[i / length];
            Close<T>(truth.Y[i], D(y1[i]), 4 * condition * (1 + Math.Abs(w[e]) + Math.Abs(b[e])), $"{at}: output[{i / length}, {e}]");
            Close<T>(truth.Dx[i], D(dx1[i]), 4 * Math.Sqrt(length) * condition * (1 + Math.Abs(w[e])) * (1 + r), $"{at}: grad_input[{i / length}, {e}]");
        }

        for (int e = 0; e < length; e++)
        {
            // x̂ carries the error of its set's statistics (a sum over the set's D elements) into every term.
            Close<T>(truth.GradWeight[e], gw1[e], sets * condition, $"{at}: grad_weight[{e}]", Tolerance.ReductionFactor(sets * length));
            Close<T>(truth.GradBias[e], gb1[e], sets, $"{at}: grad_bias[{e}]", Tolerance.ReductionFactor(sets));
        }
    }

    /// <summary>The per-element parameter gradients are exactly the sum the engine promises at any vector width:
    /// per block of ⌈M/32⌉ sets, from 0, each set's dy·((x − μ)·r) and dy in set order, in double; the blocks folded in
    /// block order (the first taken as it is).</summary>
    [Theory]
    [InlineData(70, 24, true)]
    [InlineData(5, 33, false)]
    [InlineData(3, 5000, true)]
    public void Parameter_gradients_are_the_fixed_block_sums_bit_for_bit(int sets, int length, bool centered)
    {
        T[] x = RandomTensor<T>(41, [sets, length], mean: 3, std: 2).Data;
        T[] dy = RandomTensor<T>(42, [sets, length]).Data;
        T[] weight = RandomTensor<T>(43, [length], mean: 1, std: 0.5).Data;
        var (_, _, gw, gb, mean, invstd) = RunWithStatistics(x, dy, weight, null, sets, length, centered, 1e-5, 2);
        int perBlock = (sets + NormalizationEngine<T>.ElementMaxBlocks - 1) / NormalizationEngine<T>.ElementMaxBlocks;
        double[] expectedWeight = new double[length], expectedBias = new double[length];
        for (int first = 0, block = 0; first < sets; first += perBlock, block++)
        {
            double[] pw = new double[length], pb = new double[length];
            for (int m = first; m < Math.Min(sets, first + perBlock); m++)
            {
                for (int e = 0; e < length; e++)
                {
                    double d = D(dy[(m * length) + e]);
                    pw[e] += d * ((D(x[(m * length) + e]) - mean[m]) * invstd[m]);
                    pb[e] += d;
                }
            }

            for (int e = 0; e < length; e++)
            {
                expectedWeight[e] = block == 0 ? pw[e] : expectedWeight[e] + pw[e];
                expectedBias[e] = block == 0 ? pb[e] : expectedBias[e] + pb[e];
            }
        }

        string where = $"engine, element parameters ({(centered ? "LayerNorm" : "RMSNorm")}, {typeof(T).Name}, {sets} sets of {length}), channel path, 2 threads";
        for (int e = 0; e < length; e++)
        {
            Assert.True(expectedWeight[e].Equals(gw[e]), $"{where}: grad_weight[{e}] {gw[e]:R}, the block sums give {expectedWeight[e]:R}");
            Assert.True(expectedBias[e].Equals(gb[e]), $"{where}: grad_bias[{e}] {gb[e]:R}, the block sums give {expectedBias[e]:R}");
        }
    }

    private static (T[] Y, T[] Dx, double[] GradWeight, double[] GradBias) Run(T[] x, T[] dy, T[]? weight, T[]? bias, int sets, int length, bool centered, double eps, int threads)
    {
        var (y, dx, gw, gb, _, _) = RunWithStatistics(x, dy, weight, bias, sets, length, centered, eps, threads);
        return (y, dx, gw, gb);
    }

    /// <summary>One forward (saving the input) and backward through a fresh engine.</summary>
    private static (T[] Y, T[] Dx, double[] GradWeight, double[] GradBias, double[] Mean, double[] Invstd) RunWithStatistics(T[] x, T[] dy, T[]? weight, T[]? bias, int sets, int length, bool centered, double eps, int threads)
    {
        var engine = new NormalizationEngine<T>(sets);
        var options = ExecutionOptions.Default with { ParallelThreshold = 0, MaxWorkers = int.MaxValue };
        T[] y = new T[x.Length], dx = new T[x.Length], save = new T[x.Length];
        double[] gw = new double[length], gb = new double[length];
        fixed (T* px = x, py = y, ps = save, pdy = dy, pdx = dx, pw = weight, pb = bias)
        {
            engine.Begin(eps, threads, options);
            engine.RunElementForward(px, py, ps, sets, length, pw, pb, centered);
            Assert.True(save.SequenceEqual(x), "the forward saves the input");
            engine.Begin(eps, threads, options);
            engine.RunElementBackward(ps, pdy, pdx, sets, length, pw, centered, gw, gb);
        }

        return (y, dx, gw, gb, engine.Mean[..sets], engine.Invstd[..sets]);
    }
}

public sealed class FloatElementAffineEngineTests : ElementAffineEngineTests<float>;

public sealed class DoubleElementAffineEngineTests : ElementAffineEngineTests<double>;
