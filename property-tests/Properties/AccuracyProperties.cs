using BnParity.Testing;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>
/// Float64 truth: per element, the implementation's error against <see cref="ReferenceBatchNorm"/>
/// may be at most <see cref="Tolerance.TruthErrorRatio"/> × TorchSharp's error plus a floor of
/// <see cref="Tolerance.TruthErrorFloorFraction"/> × the element's budget. The library may not be less
/// accurate than libtorch. Float32 cases only: for float64 data the double-precision reference is no
/// more precise than the implementations (on a constant float64 channel its rounded mean is off by
/// ~1e-11 in the output while the library is exact), so float64 accuracy is covered by float64 parity.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class AccuracyProperties
{
    [BnProperty]
    public Property Not_less_accurate_than_TorchSharp_against_float64_truth() =>
        Prop.ForAll(CaseGenerators.Cases(new CaseOptions { DTypes = new[] { ElementType.Float32 } }), AssertNotLessAccurateThanTorchSharp);

    /// <summary>The float64-truth check of one case (also run by the shrunk counterexamples in Regressions).</summary>
    public static void AssertNotLessAccurateThanTorchSharp(CaseSpec spec)
    {
        var batchNormCase = spec.ToCase("float64 truth");
        var (truth, normalizations) = ReferenceBatchNorm.RunWithNormalizations(batchNormCase);
        var budgets = ToleranceBudgets.For(batchNormCase, truth, normalizations);
        var torch = CaseRunner.Run(Runs.Torch, batchNormCase);
        var actual = CaseRunner.Run(Runs.UnderTestFor(spec), batchNormCase);
        var failures = new List<string>();
        for (int i = 0; i < truth.Steps.Count && i < torch.Steps.Count && i < actual.Steps.Count; i++)
        {
            var (t, o, a) = (truth.Steps[i], torch.Steps[i], actual.Steps[i]);
            if (t.Error is not null || o.Error is not null || a.Error is not null)
            {
                break;
            }

            Compare(failures, i + 1, "output", t.Output?.Data, o.Output?.Data, a.Output?.Data, budgets[i].Output, t.Output);
            Compare(failures, i + 1, "running_mean", t.RunningMean, o.RunningMean, a.RunningMean, budgets[i].RunningMean, null);
            Compare(failures, i + 1, "running_var", t.RunningVar, o.RunningVar, a.RunningVar, budgets[i].RunningVar, null);
        }

        Assert.True(failures.Count == 0,
            $"[float64 truth] {failures.Count} element(s) where {actual.Implementation} is less accurate than {torch.Implementation} (ratio {Tolerance.TruthErrorRatio}, floor {Tolerance.TruthErrorFloorFraction}×budget); first 5:\n  "
            + string.Join("\n  ", failures.Take(5)) + $"\ncase {batchNormCase}\n{Harness.Comparison.ComparisonReport.EnvironmentLine}");
    }

    /// <summary>
    /// The library's accuracy claim, asserted (not only parity): float32 outputs and running statistics within
    /// <see cref="Tolerance.LibraryAccuracyRoundings"/>·u of the float64 truth (scales in <see cref="Tolerance"/>), on
    /// every path and thread count. Checked where the truth and the implementation normalise with the same numbers:
    /// batch-statistics steps, eval steps before any training step, and running statistics of the first training step.
    /// </summary>
    [BnProperty]
    public Property Float32_results_are_within_a_few_ulps_of_the_float64_truth_on_every_path() =>
        Prop.ForAll(CaseGenerators.Cases(new CaseOptions { DTypes = new[] { ElementType.Float32 } }), AssertWithinLibraryAccuracy);

    /// <summary>The library's float32 accuracy claim (<see cref="Tolerance.LibraryAccuracyRoundings"/>) on one case:
    /// outputs, and running statistics where the buffers have not diverged. Parameters are found through the step's
    /// reduction geometry (a channel, or LayerNorm's element).</summary>
    public static void AssertWithinLibraryAccuracy(CaseSpec spec)
    {
        {
            var batchNormCase = spec.ToCase("tight accuracy");
            var (truth, normalizations) = ReferenceBatchNorm.RunWithNormalizations(batchNormCase);
            var actual = CaseRunner.Run(Runs.UnderTestFor(spec), batchNormCase);
            double k = Tolerance.LibraryAccuracyRoundings * Tolerance.Float32UnitRoundoff;
            var failures = new List<string>();
            for (int i = 0; i < truth.Steps.Count && i < actual.Steps.Count; i++)
            {
                var (t, a, norm) = (truth.Steps[i], actual.Steps[i], normalizations[i]);
                if (t.Error is not null || a.Error is not null || norm is null || t.Output is null || a.Output is null)
                {
                    break;
                }

                bool buffersDiverged = spec.Track && Enumerable.Range(0, i).Any(spec.UsesBatchStatistics);
                if (!norm.UsesBatchStatistics && buffersDiverged)
                {
                    continue; // eval with running statistics that already carry each side's own rounding
                }

                for (int j = 0; j < t.Output.Data.Length; j++)
                {
                    var (n, _, s) = t.Output.Locate(j);
                    int c = norm.Geometry.ChannelOf(j), set = norm.Geometry.SetOf(j);
                    double y = t.Output.Data[j];
                    double budget = k * Tolerance.OutputAccuracyScale(y, norm.Bias[c], norm.Weight[c]);
                    if (double.IsFinite(y) && !(Math.Abs(a.Output.Data[j] - y) <= budget))
                    {
                        failures.Add(FormattableString.Invariant(
                            $"step {i + 1} output[{(spec.IsElementNorm ? $"set={set}, e={c}" : $"n={n}, c={c}, s={s}")}]: truth {y:R}, actual {a.Output.Data[j]:R}, error {Math.Abs(a.Output.Data[j] - y):G3} > {budget:G3}; set condition |μ|/σ = {Condition(norm, set):G3}"));
                    }
                }

                if (buffersDiverged || !norm.UsesBatchStatistics || t.RunningMean is null || norm.RunningFactor == 0 || norm.BatchVariance is null)
                {
                    continue;
                }

                var old = truth.StateBefore[i];
                long count = norm.ValuesPerSet;
                for (int c = 0; c < spec.Channels; c++)
                {
                    double f = norm.RunningFactor;
                    double sigma = Math.Sqrt(norm.BatchVariance[c]);
                    double unbiased = norm.BatchVariance[c] * count / Math.Max(count - 1, 1);
                    Check("running_mean", c, t.RunningMean[c], a.RunningMean![c], k * Tolerance.RunningMeanAccuracyScale(f, norm.Mean[c], old.RunningMean![c], sigma), norm, i, failures);
                    Check("running_var", c, t.RunningVar![c], a.RunningVar![c], k * Tolerance.RunningVarAccuracyScale(f, unbiased, old.RunningVar![c]), norm, i, failures);
                }
            }

            Assert.True(failures.Count == 0,
                $"[tight accuracy] {failures.Count} value(s) of {actual.Implementation} outside {Tolerance.LibraryAccuracyRoundings}·u of the float64 truth; first 5:\n  "
                + string.Join("\n  ", failures.Take(5)) + $"\ncase {batchNormCase}\n{Harness.Comparison.ComparisonReport.EnvironmentLine}");
        }
    }

    private static double Condition(ReferenceBatchNorm.Normalization norm, int c) =>
        Math.Abs(norm.Mean[c]) * norm.InvStd[c];

    private static void Check(string tensor, int c, double truth, double actual, double budget, ReferenceBatchNorm.Normalization norm, int step, List<string> failures)
    {
        if (double.IsFinite(truth) && !(Math.Abs(actual - truth) <= budget))
        {
            failures.Add(FormattableString.Invariant(
                $"step {step + 1} {tensor}[c={c}]: truth {truth:R}, actual {actual:R}, error {Math.Abs(actual - truth):G3} > {budget:G3}; channel condition |μ|/σ = {Condition(norm, c):G3}"));
        }
    }

    private static void Compare(List<string> failures, int step, string name, double[]? truth, double[]? torch, double[]? actual, double[]? budget, CaseTensor? shape)
    {
        if (truth is null || torch is null || actual is null || budget is null)
        {
            return;
        }

        for (int j = 0; j < truth.Length; j++)
        {
            if (!double.IsFinite(truth[j]) || !double.IsFinite(actual[j]) || !double.IsFinite(torch[j]) || double.IsNaN(budget[j]))
            {
                continue; // non-finite values and ill-posed elements (Tolerance.IllPosed) are parity's business
            }

            double ours = Math.Abs(actual[j] - truth[j]);
            double theirs = Math.Abs(torch[j] - truth[j]);
            double allowed = Tolerance.TruthErrorRatio * theirs + Tolerance.TruthErrorFloorFraction * budget[j];
            if (ours > allowed)
            {
                string where = shape is null ? $"[c={j}]" : $"[n={shape.Locate(j).N}, c={shape.Locate(j).C}, s={shape.Locate(j).Spatial}]";
                failures.Add(FormattableString.Invariant($"step {step} {name}{where}: truth {truth[j]:R}, TorchSharp {torch[j]:R} (err {theirs:G3}), actual {actual[j]:R} (err {ours:G3}, allowed {allowed:G3})"));
            }
        }
    }
}
