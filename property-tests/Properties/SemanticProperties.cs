using BnParity.Testing;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>Metamorphic and semantic properties of the implementation under test; no oracle needed.</summary>
public sealed class SemanticProperties
{
    private static readonly CaseOptions Any = new() { AllowEmptyBatch = true };

    [BnProperty]
    public Property Cumulative_average_of_k_steps_is_the_mean_of_the_k_batch_statistics() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { Track = true, Training = true, FixMomentum = true, Momentum = null }), spec =>
        {
            // Defaults (count 0) and no empty batches: then step j blends with 1/j exactly.
            spec = spec with { StateSeed = null, Steps = spec.Steps.Select(s => s.Batch == 0 ? s with { Batch = 2 } : s).ToArray() };
            var batchNormCase = spec.ToCase("cumulative average");
            var actual = CaseRunner.Run(Runs.UnderTestFor(spec), batchNormCase);
            var expected = new List<StepOutcome>();
            var means = new List<double[]>();
            var variances = new List<double[]>();
            foreach (var step in batchNormCase.Steps)
            {
                var (mean, biased) = ReferenceBatchNorm.BatchStatistics(step.Input);
                long n = step.Input.Shape[0] * (long)step.Input.SpatialSize;
                means.Add(mean);
                variances.Add(biased.Select(v => v * n / (n - 1)).ToArray());
                expected.Add(new StepOutcome
                {
                    RunningMean = Average(means),
                    RunningVar = Average(variances),
                    NumBatchesTracked = means.Count,
                });
            }

            Runs.AssertClean(TraceComparer.Compare(batchNormCase, expected, "mean of the batch statistics", actual), "cumulative average");
        });

    private static double[] Average(List<double[]> values) =>
        Enumerable.Range(0, values[0].Length).Select(c => values.Sum(v => v[c]) / values.Count).ToArray();

    [BnProperty]
    public Property Eval_is_idempotent_and_changes_no_state() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { MaxSteps = 4 }), spec =>
        {
            var last = spec.Steps[^1];
            var eval = last with { Training = false, Data = last.Data with { Seed = last.Data.Seed + 1 } };
            var batchNormCase = (spec with { Steps = spec.Steps.Append(eval).Append(eval).ToArray() }).ToCase("eval idempotent");
            var trace = CaseRunner.Run(Runs.UnderTestFor(spec), batchNormCase);
            int first = batchNormCase.Steps.Count - 2;
            Assert.True(trace.Steps.Count == batchNormCase.Steps.Count && trace.Steps.All(s => s.Error is null), $"[eval idempotent] a step raised\ncase {batchNormCase}");
            var (a, b) = (trace.Steps[first], trace.Steps[first + 1]);
            string context = $"\ncase {batchNormCase}";
            Assert.True(a.Output!.Data.AsSpan().SequenceEqual(b.Output!.Data), "[eval idempotent] two evals of the same input gave different outputs" + context);
            AssertSameState(trace.StateBefore[first], trace.StateBefore[first + 1], "first eval" + context);
            AssertSameState(trace.StateBefore[first], new ModuleState(null, null, b.RunningMean, b.RunningVar, b.NumBatchesTracked), "second eval" + context);
        });

    internal static void AssertSameState(ModuleState before, ModuleState after, string what)
    {
        bool Same(double[]? x, double[]? y) => x is null ? y is null : y is not null && x.AsSpan().SequenceEqual(y);
        Assert.True(Same(before.RunningMean, after.RunningMean), $"[state unchanged] running_mean changed by {what}");
        Assert.True(Same(before.RunningVar, after.RunningVar), $"[state unchanged] running_var changed by {what}");
        Assert.True(before.NumBatchesTracked == after.NumBatchesTracked, $"[state unchanged] num_batches_tracked {before.NumBatchesTracked} -> {after.NumBatchesTracked} by {what}");
    }

    [BnProperty]
    public Property Without_tracking_eval_output_equals_train_output() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { Track = false }), spec =>
        {
            var train = (spec with { Steps = spec.Steps.Select(s => s with { Training = true }).ToArray() }).ToCase("track=false train");
            var eval = (spec with { Steps = spec.Steps.Select(s => s with { Training = false }).ToArray() }).ToCase("track=false eval");
            var report = TraceComparer.Compare(eval, CaseRunner.Run(Runs.UnderTestFor(spec), train), CaseRunner.Run(Runs.UnderTestFor(spec), eval));
            Runs.AssertClean(report, "track=false: eval == train");
        });

    [BnProperty]
    public Property Affine_false_equals_weight_one_bias_zero() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { Affine = false, Gradients = true, MaxElements = 8_000 }), spec =>
        {
            var plain = spec.ToCase("affine=false");
            var affine = plain with
            {
                Config = plain.Config with { Affine = true },
                InitialState = plain.InitialState with
                {
                    Weight = Enumerable.Repeat(1.0, spec.Channels).ToArray(),
                    Bias = new double[spec.Channels],
                },
            };
            var report = TraceComparer.Compare(plain, CaseRunner.Run(Runs.UnderTestFor(spec), plain), CaseRunner.Run(Runs.UnderTestFor(spec), affine));
            Runs.AssertClean(report, "affine=false == affine(1, 0)");
        });

    [BnProperty]
    public Property Train_output_per_channel_has_mean_zero_and_variance_var_over_var_plus_eps() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { Affine = false, Training = true }), spec =>
        {
            var batchNormCase = spec.ToCase("normalised moments");
            var trace = CaseRunner.Run(Runs.UnderTestFor(spec), batchNormCase);
            var (truth, normalizations) = ReferenceBatchNorm.RunWithNormalizations(batchNormCase);
            var budgets = ToleranceBudgets.For(batchNormCase, truth, normalizations);
            for (int i = 0; i < batchNormCase.Steps.Count; i++)
            {
                var x = batchNormCase.Steps[i].Input;
                var y = trace.Steps[i].Output!;
                var ideal = truth.Steps[i].Output!;
                int channels = spec.Channels, spatial = x.SpatialSize;
                long n = (long)x.Shape[0] * spatial;
                if (n == 0)
                {
                    continue;
                }

                var (_, variance) = ReferenceBatchNorm.BatchStatistics(x);
                for (int c = 0; c < channels; c++)
                {
                    double sum = 0, sumBudget = 0, sumIdealBudget = 0, sumBudgetSquared = 0, maxAbs = 0;
                    var values = new List<double>();
                    for (int j = 0; j < y.Data.Length; j++)
                    {
                        if (j / spatial % channels != c)
                        {
                            continue;
                        }

                        values.Add(y.Data[j]);
                        sum += y.Data[j];
                        sumBudget += budgets[i].Output![j];
                        sumIdealBudget += Math.Abs(ideal.Data[j]) * budgets[i].Output![j];
                        sumBudgetSquared += budgets[i].Output![j] * budgets[i].Output![j];
                        maxAbs = Math.Max(maxAbs, Math.Abs(y.Data[j]));
                    }

                    // y = ŷ + e with |e_j| ≤ b_j: |mean(y)| ≤ Σb/n; |var(y) − var(ŷ)| ≤ 2Σ|ŷ|b/n + Σb²/n;
                    // plus the float64 rounding of these sums (≤ n·2⁻⁵³·max|y|, counted generously).
                    double roundoff = 4 * n * Tolerance.Float64UnitRoundoff * (maxAbs + 1) * (maxAbs + 1);
                    double mean = sum / n;
                    double meanAllowed = sumBudget / n + roundoff;
                    double biasedVar = values.Sum(v => (v - mean) * (v - mean)) / n;
                    double expectedVar = variance[c] / (variance[c] + spec.Eps);
                    double varAllowed = 2 * sumIdealBudget / n + sumBudgetSquared / n + meanAllowed * meanAllowed + roundoff;
                    string context = FormattableString.Invariant($"step {i + 1} channel {c}: mean {mean:R} (allowed {meanAllowed:G3}), biased variance {biasedVar:R} vs var/(var+eps) {expectedVar:R} (allowed {varAllowed:G3})\ncase {batchNormCase}");
                    Assert.True(Math.Abs(mean) <= meanAllowed, "[normalised mean] " + context);
                    Assert.True(Math.Abs(biasedVar - expectedVar) <= varAllowed, "[normalised variance] " + context);
                }
            }
        });

    [BnProperty]
    public Property Statistics_are_invariant_to_permuting_the_batch() =>
        Prop.ForAll(CaseGenerators.Cases(Any), spec =>
        {
            var original = spec.ToCase("batch order");
            var permutations = original.Steps.Select((s, i) => Permutation(s.Input.Shape[0], spec.Steps[i].Data.Seed)).ToList();
            var permuted = original with
            {
                Name = "batch permuted",
                Steps = original.Steps.Select((s, i) => s with { Input = Permute(s.Input, permutations[i]) }).ToList(),
            };
            var originalTrace = CaseRunner.Run(Runs.UnderTestFor(spec), original);
            var expected = originalTrace.Steps.Select((o, i) => o.Output is null ? o : o with { Output = Permute(o.Output, permutations[i]) }).ToList();
            var report = TraceComparer.Compare(permuted, expected, "original batch order (permuted)", CaseRunner.Run(Runs.UnderTestFor(spec), permuted));
            Runs.AssertClean(report, "batch permutation");
        });

    private static int[] Permutation(int length, int seed)
    {
        var order = Enumerable.Range(0, length).ToArray();
        new Random(seed + 17).Shuffle(order);
        return order;
    }

    /// <summary>Row n of the result is row order[n] of <paramref name="tensor"/>.</summary>
    private static CaseTensor Permute(CaseTensor tensor, int[] order)
    {
        int row = tensor.Shape[0] == 0 ? 0 : tensor.Data.Length / tensor.Shape[0];
        var data = new double[tensor.Data.Length];
        for (int n = 0; n < order.Length; n++)
        {
            Array.Copy(tensor.Data, order[n] * row, data, n * row, row);
        }

        return tensor with { Data = data };
    }
}
