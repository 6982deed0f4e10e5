using System.Numerics;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Rules;

/// <summary>Backward rules of issue 6 that need no TorchSharp: errors, per-call gradients, the two formulas, tails, finite differences.</summary>
public sealed class BackwardRuleTests
{
    /// <summary>
    /// Central differences with step h = 1e-5 on a float64 loss of magnitude ~10 have truncation error ~h²·|L'''| ≈ 1e-9
    /// and cancellation error ~u·|L|/h ≈ 1e-10; 1e-6 (relative to max(1, |gradient|)) is far above both and far below
    /// any formula error (a wrong term changes a gradient by O(1)).
    /// </summary>
    private const double FiniteDifferenceStep = 1e-5;
    private const double FiniteDifferenceTolerance = 1e-6;

    /// <summary>
    /// The gradients by the issue's formulas, in double, and each element's rounding scale (already multiplied by its
    /// roundings count: k for element-wise operations, r for reductions); pass to <see cref="RuleAssert.Close"/> with roundings 1.
    /// </summary>
    private static (double[] Dx, double[] DxScale, double[] Dw, double[] DwScale, double[] Db, double[] DbScale) Expected<T>(
        DenseTensor<T> x, DenseTensor<T> dy, double[] mean, double[] invstd, double[] weight, bool batchFormula, double[] meanAbs)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int channels = x.ShapeSpan[1];
        long n = x.Shape[0] * (x.Length / Math.Max(1, x.Shape[0] * channels));
        double k = Tolerance.ElementwiseRoundings;
        double r = typeof(T) == typeof(float) ? k : Tolerance.ReductionFactor(n);
        var sumDy = new double[channels];
        var sumAbsDy = new double[channels];
        var dot = new double[channels];
        var dotAbs = new double[channels];
        for (int i = 0; i < x.Length; i++)
        {
            int c = Channel(x, i);
            double g = D(dy.Data[i]), centred = D(x.Data[i]) - mean[c];
            sumDy[c] += g;
            sumAbsDy[c] += Math.Abs(g);
            dot[c] += centred * g;
            dotAbs[c] += Math.Abs(centred * g);
        }

        var dx = new double[x.Length];
        var dxScale = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int c = Channel(x, i);
            double g = D(dy.Data[i]), centred = D(x.Data[i]) - mean[c];
            double alpha = invstd[c] * weight[c];
            if (batchFormula)
            {
                double kc = dot[c] * invstd[c] * invstd[c] / n;
                double terms = Math.Abs(g) + Math.Abs(sumDy[c] / n) + Math.Abs(centred * kc);
                dx[i] = (g - (sumDy[c] / n) - (centred * kc)) * alpha;
                dxScale[i] = Math.Abs(alpha) * ((k * terms)
                    + (r * ((sumAbsDy[c] / n) + (Math.Abs(centred) * dotAbs[c] * invstd[c] * invstd[c] / n) + (meanAbs[c] * Math.Abs(kc)) + (3 * terms))));
            }
            else
            {
                dx[i] = g * alpha;
                dxScale[i] = k * Math.Abs(g * alpha);
            }
        }

        var dw = new double[channels];
        var dwScale = new double[channels];
        var dbScale = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            dw[c] = dot[c] * invstd[c];
            dwScale[c] = r * (dotAbs[c] + (meanAbs[c] * sumAbsDy[c]) + Math.Abs(dot[c])) * invstd[c];
            dbScale[c] = r * sumAbsDy[c];
        }

        return (dx, dxScale, dw, dwScale, sumDy, dbScale);
    }

    private static void AssertGradients<T>(BatchNormGradients<T> actual, (double[] Dx, double[] DxScale, double[] Dw, double[] DwScale, double[] Db, double[] DbScale) expected, string what)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < expected.Dx.Length; i++)
        {
            Close<T>(expected.Dx[i], D(actual.Input.Data[i]), expected.DxScale[i], $"{what} dx[{i}]", roundings: 1);
        }

        for (int c = 0; c < expected.Dw.Length; c++)
        {
            Close<T>(expected.Dw[c], D(actual.Weight![c]), expected.DwScale[c], $"{what} dW[{c}]", roundings: 1);
            Close<T>(expected.Db[c], D(actual.Bias![c]), expected.DbScale[c], $"{what} dB[{c}]", roundings: 1);
        }
    }

    [Fact]
    public void Backward_without_a_preceding_forward_throws_InvalidOperationException()
    {
        var m = new BatchNorm2d<float>(3);
        Assert.Throws<InvalidOperationException>(() => m.Backward(new DenseTensor<float>(2, 3, 2, 2)));
        Assert.Throws<InvalidOperationException>(() => m.Backward(new float[24], [2, 3, 2, 2], new float[24], new float[3], new float[3]));
        // A forward that failed is not a preceding forward either.
        Assert.Throws<ArgumentException>(() => m.Forward(new DenseTensor<float>(1, 3, 1, 1)));
        Assert.Throws<InvalidOperationException>(() => m.Backward(new DenseTensor<float>(1, 3, 1, 1)));
    }

    [Fact]
    public void Backward_with_a_mismatched_shape_throws_ArgumentException_naming_the_argument()
    {
        var m = new BatchNorm2d<double>(3);
        m.Forward(RandomTensor<double>(1, [2, 3, 2, 2]));
        string before = Snapshot(m);
        Assert.Equal("gradOutput", Assert.Throws<ArgumentException>(() => m.Backward(new DenseTensor<double>(2, 3, 4, 1))).ParamName);
        Assert.Equal("gradOutput", Assert.Throws<ArgumentException>(() => m.Backward(new DenseTensor<double>(2, 3, 2, 2, 1))).ParamName);
        Assert.Equal("gradInput", Assert.Throws<ArgumentException>(() => m.Backward(new double[24], [2, 3, 2, 2], new double[23], new double[3], new double[3])).ParamName);
        Assert.Equal("gradWeight", Assert.Throws<ArgumentException>(() => m.Backward(new double[24], [2, 3, 2, 2], new double[24], new double[2], new double[3])).ParamName);
        Assert.Equal("gradBias", Assert.Throws<ArgumentException>(() => m.Backward(new double[24], [2, 3, 2, 2], new double[24], new double[3], new double[4])).ParamName);
        Assert.Equal(before, Snapshot(m));
    }

    [Fact]
    public void Gradients_are_returned_per_call_not_accumulated_float() => Gradients_are_returned_per_call_not_accumulated<float>();

    [Fact]
    public void Gradients_are_returned_per_call_not_accumulated_double() => Gradients_are_returned_per_call_not_accumulated<double>();

    private static void Gradients_are_returned_per_call_not_accumulated<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3);
        RandomAffine(m, 1);
        m.Forward(RandomTensor<T>(2, [2, 3, 3, 3], mean: 1));
        var g = RandomTensor<T>(3, [2, 3, 3, 3]);
        var first = m.Backward(g);
        var second = m.Backward(g);
        BitEqual(first.Input.Data, second.Input.Data, "grad_input");
        BitEqual(first.Weight, second.Weight, "grad_weight");
        BitEqual(first.Bias, second.Bias, "grad_bias");

        // The span overload gives the same bits.
        T[] dx = new T[g.Length], dw = new T[3], db = new T[3];
        m.Backward(g.Data, g.ShapeSpan, dx, dw, db);
        BitEqual(first.Input.Data, dx, "span grad_input");
        BitEqual(first.Weight, dw, "span grad_weight");
        BitEqual(first.Bias, db, "span grad_bias");
    }

    [Fact]
    public void Not_affine_has_null_weight_and_bias_gradients()
    {
        var m = new BatchNorm1d<float>(3, affine: false);
        m.Forward(RandomTensor<float>(1, [4, 3]));
        var gradients = m.Backward(RandomTensor<float>(2, [4, 3]));
        Assert.Null(gradients.Weight);
        Assert.Null(gradients.Bias);
        Assert.Equal(new[] { 4, 3 }, gradients.Input.Shape);
        m.Backward(new float[12], [4, 3], new float[12], [], []); // the parameter spans are ignored
    }

    [Fact]
    public void Training_backward_follows_the_batch_formula_float() => Training_backward_follows_the_batch_formula<float>();

    [Fact]
    public void Training_backward_follows_the_batch_formula_double() => Training_backward_follows_the_batch_formula<double>();

    private static void Training_backward_follows_the_batch_formula<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3);
        RandomAffine(m, 1);
        var x = RandomTensor<T>(2, [3, 3, 2, 3], mean: 2, std: 3);
        var g = RandomTensor<T>(3, [3, 3, 2, 3]);
        m.Forward(x);
        var (mean, variance, meanAbs, _) = Stats(x);
        double[] invstd = variance.Select(v => 1 / Math.Sqrt(v + m.Eps)).ToArray();
        AssertGradients(m.Backward(g), Expected(x, g, mean, invstd, ToDouble(m.Weight!), batchFormula: true, meanAbs), "train");
    }

    [Fact]
    public void Eval_backward_uses_the_running_stats_dx_is_dy_times_invstd_running_times_w_float() => Eval_backward_uses_the_running_stats_dx_is_dy_times_invstd_running_times_w<float>();

    [Fact]
    public void Eval_backward_uses_the_running_stats_dx_is_dy_times_invstd_running_times_w_double() => Eval_backward_uses_the_running_stats_dx_is_dy_times_invstd_running_times_w<double>();

    private static void Eval_backward_uses_the_running_stats_dx_is_dy_times_invstd_running_times_w<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3);
        RandomAffine(m, 4);
        m.RunningMean![0] = T.CreateChecked(1.5);
        m.RunningMean[1] = T.CreateChecked(-2);
        m.RunningVar![1] = T.CreateChecked(4);
        m.RunningVar[2] = T.CreateChecked(0.25);
        m.Eval();
        var x = RandomTensor<T>(5, [3, 3, 2, 3], mean: 2, std: 3);
        var g = RandomTensor<T>(6, [3, 3, 2, 3]);
        m.Forward(x);
        double[] mean = ToDouble(m.RunningMean);
        double[] invstd = ToDouble(m.RunningVar).Select(v => 1 / Math.Sqrt(v + m.Eps)).ToArray();
        AssertGradients(m.Backward(g), Expected(x, g, mean, invstd, ToDouble(m.Weight!), batchFormula: false, mean.Select(Math.Abs).ToArray()), "eval");
    }

    [Fact]
    public void Not_tracking_in_eval_backpropagates_with_the_batch_formula()
    {
        var x = RandomTensor<double>(7, [4, 3, 5], mean: 1, std: 2);
        var g = RandomTensor<double>(8, [4, 3, 5]);
        var trained = new BatchNorm1d<double>(3, trackRunningStats: false);
        RandomAffine(trained, 9);
        var evaluated = new BatchNorm1d<double>(3, trackRunningStats: false);
        RandomAffine(evaluated, 9);
        evaluated.Eval();
        trained.Forward(x);
        evaluated.Forward(x);
        var a = trained.Backward(g);
        var b = evaluated.Backward(g);
        BitEqual(a.Input.Data, b.Input.Data, "grad_input");
        BitEqual(a.Weight, b.Weight, "grad_weight");
        BitEqual(a.Bias, b.Bias, "grad_bias");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Finite_differences_in_float64_agree_with_Backward(bool training)
    {
        int[] shape = [3, 2, 2, 2];
        double[] x = Normal<double>(11, 24, mean: 1, std: 2);
        double[] g = Normal<double>(12, 24);
        double[] w = [0.7, -1.3];
        double[] b = [0.2, -0.4];

        BatchNorm2d<double> Build(double[] weight, double[] bias)
        {
            var m = new BatchNorm2d<double>(2) { Training = training };
            weight.CopyTo(m.Weight!, 0);
            bias.CopyTo(m.Bias!, 0);
            m.RunningMean![0] = 0.5;
            m.RunningMean[1] = -1;
            m.RunningVar![0] = 3;
            m.RunningVar[1] = 0.5;
            return m;
        }

        double Loss(double[] input, double[] weight, double[] bias)
        {
            var y = Build(weight, bias).Forward(new DenseTensor<double>((double[])input.Clone(), shape));
            return y.Data.Select((v, i) => v * g[i]).Sum();
        }

        double Central(Func<double, double> loss) => (loss(FiniteDifferenceStep) - loss(-FiniteDifferenceStep)) / (2 * FiniteDifferenceStep);

        static double[] Bumped(double[] values, int index, double h)
        {
            var copy = (double[])values.Clone();
            copy[index] += h;
            return copy;
        }

        var module = Build(w, b);
        module.Forward(new DenseTensor<double>((double[])x.Clone(), shape));
        var analytic = module.Backward(new DenseTensor<double>(g, shape));

        void Agree(double numeric, double exact, string what) =>
            Assert.True(Math.Abs(numeric - exact) <= FiniteDifferenceTolerance * Math.Max(1, Math.Abs(exact)), $"{what}: finite difference {numeric:R}, Backward {exact:R}");

        for (int i = 0; i < x.Length; i++)
        {
            Agree(Central(h => Loss(Bumped(x, i, h), w, b)), analytic.Input.Data[i], $"dx[{i}]");
        }

        for (int c = 0; c < 2; c++)
        {
            Agree(Central(h => Loss(x, Bumped(w, c, h), b)), analytic.Weight![c], $"dW[{c}]");
            Agree(Central(h => Loss(x, w, Bumped(b, c, h))), analytic.Bias![c], $"dB[{c}]");
        }
    }

    [Fact]
    public void Backward_matches_the_float64_truth_across_vector_tail_lengths_float() => Backward_matches_the_float64_truth_across_vector_tail_lengths<float>();

    [Fact]
    public void Backward_matches_the_float64_truth_across_vector_tail_lengths_double() => Backward_matches_the_float64_truth_across_vector_tail_lengths<double>();

    private static void Backward_matches_the_float64_truth_across_vector_tail_lengths<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (int length in new[] { 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 255, 256 })
        {
            foreach (bool training in new[] { true, false })
            {
                var m = new BatchNorm1d<T>(3) { Training = training };
                RandomAffine(m, length);
                m.RunningMean![1] = T.CreateChecked(0.5);
                m.RunningVar![2] = T.CreateChecked(2);
                var x = RandomTensor<T>(2000 + length, [2, 3, length], mean: 1, std: 2);
                var g = RandomTensor<T>(3000 + length, [2, 3, length]);
                var config = new ModuleConfig(ModuleKind.BatchNorm1d, 3, DType: DType<T>());
                var state = new ModuleState(ToDouble(m.Weight!), ToDouble(m.Bias!), ToDouble(m.RunningMean), ToDouble(m.RunningVar), 0);
                var step = new CaseStep(training, new CaseTensor(x.Shape, ToDouble(x.Data)), new CaseTensor(g.Shape, ToDouble(g.Data)));
                var (truth, normalizations) = ReferenceBatchNorm.RunWithNormalizations(new BatchNormCase($"L={length}", config, state, [step]));
                var norm = normalizations[0]!;

                m.Forward(x);
                var actual = m.Backward(g);
                // Budgets from the formulas' own terms; values from the float64 reference.
                var budget = Expected(x, g, norm.Mean, norm.InvStd, norm.Weight, training, norm.MeanMagnitude);
                var expected = truth.Steps[0];
                AssertGradients(actual, (expected.GradInput!.Data, budget.DxScale, expected.GradWeight!, budget.DwScale, expected.GradBias!, budget.DbScale), $"L={length} {(training ? "train" : "eval")}");
            }
        }
    }
}
