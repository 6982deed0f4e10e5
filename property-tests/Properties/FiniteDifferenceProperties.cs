using BnParity.Testing;
using BnParity.Harness.Comparison;
using BnParity.Harness.Cases;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>
/// Float64 gradients against central finite differences of L = Σ g·y (no TorchSharp): dx at sampled
/// elements, dW and dB for every channel, on the last step of a generated case.
/// </summary>
public sealed class FiniteDifferenceProperties
{
    [BnProperty]
    public Property Float64_gradients_match_central_finite_differences() =>
        Prop.ForAll(CaseGenerators.Cases(new CaseOptions { AllowEmptyBatch = true, DTypes = new[] { ElementType.Float64 }, Gradients = true, MaxSteps = 2, MaxElements = 400 }), AssertGradientsMatchFiniteDifferences);

    /// <summary>The finite-difference check of one case (also run by the shrunk counterexamples in Regressions).</summary>
    public static void AssertGradientsMatchFiniteDifferences(CaseSpec spec)
    {
        var batchNormCase = spec.ToCase("finite differences");
        var trace = CaseRunner.Run(Runs.UnderTestFor(spec), batchNormCase);
        int last = batchNormCase.Steps.Count - 1;
        var step = batchNormCase.Steps[last];
        var outcome = trace.Steps[last];
        var before = trace.StateBefore[last];
        string context = $"\ncase {batchNormCase}";
        Assert.True(outcome.Error is null && outcome.HasGradients, $"[finite differences] step raised: {outcome.Error}{context}");
        var x = step.Input;
        var g = step.GradOutput!.Data;
        int channels = spec.Channels, spatial = x.SpatialSize;
        long n = (long)x.Shape[0] * spatial;
        if (n == 0)
        {
            return;
        }

        bool batchStatistics = step.Training || !spec.Track;
        var (_, variance) = Harness.Implementations.ReferenceBatchNorm.BatchStatistics(x);
        double Sigma(int c) => Math.Sqrt((batchStatistics ? variance[c] : before.RunningVar![c]) + spec.Eps);
        double Weight(int c) => before.Weight?[c] ?? 1;
        var sumAbsGrad = new double[channels];
        var maxAbsOut = new double[channels];
        var maxAbsIn = new double[channels];
        for (int i = 0; i < g.Length; i++)
        {
            int c = i / spatial % channels;
            sumAbsGrad[c] += Math.Abs(g[i]);
            maxAbsOut[c] = Math.Max(maxAbsOut[c], Math.Abs(outcome.Output!.Data[i]));
            maxAbsIn[c] = Math.Max(maxAbsIn[c], Math.Abs(x.Data[i]));
        }

        // Rounding of L = Σ g·y over one channel: ≤ ~n·u·Σ|g|·(|y| + |w|·|x|/σ + 1). Each y is within a few u of
        // itself, plus the rounding of x − μ, u·|x|, times |w|/σ: that term dominates when |x| ≫ σ (shrunk case: two
        // values per channel at 4130 ± 2e-5, eps 1e-10, where it is ~1e8 times |y|).
        double LossRounding(int c) => 8 * Math.Max(n, 1) * Tolerance.Float64UnitRoundoff * sumAbsGrad[c]
            * (maxAbsOut[c] + (Math.Abs(Weight(c)) * maxAbsIn[c] / Sigma(c)) + 1);

        // L restricted to one channel (channels are independent; another channel may be NaN when
        // momentum outside [0, 1] drove its running_var negative).
        double Loss(ModuleState state, CaseTensor input, int channel)
        {
            using var module = Runs.UnderTestFor(spec).Create(batchNormCase.Config, state);
            var y = module.Forward(step.Training, input);
            double loss = 0;
            for (int i = 0; i < g.Length; i++)
            {
                if (i / spatial % channels == channel)
                {
                    loss += g[i] * y.Data[i];
                }
            }

            return loss;
        }

        // Truncation ~h²·|L'''| ≲ h²·|w|·Σ|g|/σ³ and rounding ~u·|L|/h: with h = 1e-3·σ both are far below
        // 1e-5·|w|·Σ|g|/σ (plus the loss's own rounding), the allowance used below.
        var random = new Random(spec.Steps[last].Data.Seed);
        var indices = Enumerable.Range(0, x.Data.Length).OrderBy(_ => random.Next()).Take(12);
        foreach (int i in indices)
        {
            int c = i / spatial % channels;
            if (!double.IsFinite(Sigma(c)))
            {
                continue; // running_var + eps < 0 (momentum outside [0, 1]): NaN, nothing to differentiate
            }

            double h = 1e-3 * Sigma(c);
            var plus = x with { Data = (double[])x.Data.Clone() };
            var minus = x with { Data = (double[])x.Data.Clone() };
            plus.Data[i] += h;
            minus.Data[i] -= h;
            double numeric = (Loss(before, plus, c) - Loss(before, minus, c)) / (plus.Data[i] - minus.Data[i]);
            // Plus the rounding of L itself over the step 2h: it dominates when |x| ≫ σ (y ~ x/σ is large).
            double allowed = 1e-5 * (Math.Abs(Weight(c)) * sumAbsGrad[c] / Sigma(c)) + 1e-9 * Math.Abs(numeric) + LossRounding(c) / h + 1e-300;
            var (bn, bc, bs) = x.Locate(i);
            Assert.True(Math.Abs(numeric - outcome.GradInput!.Data[i]) <= allowed,
                FormattableString.Invariant($"[finite differences] dx[n={bn}, c={bc}, s={bs}]: analytic {outcome.GradInput.Data[i]:R}, numeric {numeric:R}, allowed {allowed:G3}{context}"));
        }

        if (!spec.Affine)
        {
            return;
        }

        for (int c = 0; c < channels; c++)
        {
            if (!double.IsFinite(Sigma(c)))
            {
                continue;
            }

            double hw = 1e-3 * Math.Max(1, Math.Abs(Weight(c)));
            double numericWeight = (Loss(Perturb(before, c, hw, 0), x, c) - Loss(Perturb(before, c, -hw, 0), x, c)) / (2 * hw);
            double numericBias = (Loss(Perturb(before, c, 0, 1e-3), x, c) - Loss(Perturb(before, c, 0, -1e-3), x, c)) / 2e-3;
            // L is linear in w and b: only rounding of L over the step remains.
            double lossRounding = LossRounding(c);
            double allowedWeight = 1e-9 * Math.Abs(numericWeight) + lossRounding / hw + 1e-300;
            double allowedBias = 1e-9 * Math.Abs(numericBias) + lossRounding / 1e-3 + 1e-300;
            Assert.True(Math.Abs(numericWeight - outcome.GradWeight![c]) <= allowedWeight,
                FormattableString.Invariant($"[finite differences] dW[c={c}]: analytic {outcome.GradWeight[c]:R}, numeric {numericWeight:R}, allowed {allowedWeight:G3}{context}"));
            Assert.True(Math.Abs(numericBias - outcome.GradBias![c]) <= allowedBias,
                FormattableString.Invariant($"[finite differences] dB[c={c}]: analytic {outcome.GradBias[c]:R}, numeric {numericBias:R}, allowed {allowedBias:G3}{context}"));
        }
    }

    private static ModuleState Perturb(ModuleState state, int channel, double weightDelta, double biasDelta)
    {
        var weight = (double[])state.Weight!.Clone();
        var bias = (double[])state.Bias!.Clone();
        weight[channel] += weightDelta;
        bias[channel] += biasDelta;
        return state with { Weight = weight, Bias = bias };
    }
}
