using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using BnParity.PropertyTests.Generators;
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
        Prop.ForAll(CaseGenerators.Cases(new CaseOptions { DTypes = new[] { ElementType.Float32 } }), spec =>
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
        });

    private static void Compare(List<string> failures, int step, string name, double[]? truth, double[]? torch, double[]? actual, double[]? budget, CaseTensor? shape)
    {
        if (truth is null || torch is null || actual is null || budget is null)
        {
            return;
        }

        for (int j = 0; j < truth.Length; j++)
        {
            if (!double.IsFinite(truth[j]) || !double.IsFinite(actual[j]) || !double.IsFinite(torch[j]))
            {
                continue; // non-finite values are parity's business
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
