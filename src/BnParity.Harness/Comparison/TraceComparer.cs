using System.Globalization;
using System.Text;
using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;

namespace BnParity.Harness.Comparison;

/// <summary>One number outside its budget.</summary>
public sealed record Mismatch(
    int Step,
    string Tensor,
    int Index,
    string Location,
    double Expected,
    double Actual,
    double Budget,
    ElementType DType)
{
    public double AbsoluteError => Math.Abs(Actual - Expected);

    public double RelativeError => Tolerance.RelativeError(Expected, Actual);

    public double UlpError => Tolerance.UlpError(Expected, Actual, DType);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"step {Step} {Tensor}{Location}: expected {Expected:R}, actual {Actual:R}, abs {AbsoluteError:G3}, rel {RelativeError:G3}, {UlpError:G3} ulp (budget {Budget:G3})");
}

/// <summary>The verdict of comparing an implementation's trace with expectations.</summary>
public sealed class ComparisonReport
{
    /// <summary>At most this many mismatches are kept (the count is exact).</summary>
    public const int MaxKeptMismatches = 64;

    public ComparisonReport(BatchNormCase batchNormCase, string expectedSource, string actualSource,
        IReadOnlyList<string> problems, IReadOnlyList<Mismatch> mismatches, int mismatchCount, double worstBudgetRatio,
        IReadOnlyDictionary<string, int> mismatchCountByTensor)
    {
        MismatchCountByTensor = mismatchCountByTensor;
        Case = batchNormCase;
        ExpectedSource = expectedSource;
        ActualSource = actualSource;
        Problems = problems;
        Mismatches = mismatches;
        MismatchCount = mismatchCount;
        WorstBudgetRatio = worstBudgetRatio;
    }

    public BatchNormCase Case { get; }
    public string ExpectedSource { get; }
    public string ActualSource { get; }

    /// <summary>Structural failures: a missing or unexpected error, a wrong count, a shape mismatch, a half-updated state.</summary>
    public IReadOnlyList<string> Problems { get; }

    public IReadOnlyList<Mismatch> Mismatches { get; }
    public int MismatchCount { get; }

    /// <summary>Exact mismatch counts per tensor name ("output", "running_var", ...), not limited by <see cref="MaxKeptMismatches"/>.</summary>
    public IReadOnlyDictionary<string, int> MismatchCountByTensor { get; }

    /// <summary>max |error| / budget over every compared number (≤ 1 passes): how close to the edge the case ran.</summary>
    public double WorstBudgetRatio { get; }

    public bool Passed => Problems.Count == 0 && MismatchCount == 0;

    /// <summary>The first problem or mismatch, one line (the CLI's FAIL line).</summary>
    public string FirstFailure => Problems.Count > 0 ? Problems[0] : Mismatches.Count > 0 ? Mismatches[0].ToString() : "";

    /// <summary>A failure report: the case, the first mismatches with (n, c, spatial) locations, and the environment.</summary>
    public string Format(int maxMismatches = 5)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{ActualSource} vs {ExpectedSource}: {(Passed ? "PASS" : "FAIL")}");
        text.AppendLine(CultureInfo.InvariantCulture, $"case {Case}");
        foreach (var problem in Problems)
        {
            text.AppendLine("  " + problem);
        }

        if (MismatchCount > 0)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {MismatchCount} number(s) outside budget; first {Math.Min(maxMismatches, Mismatches.Count)}:");
            foreach (var mismatch in Mismatches.Take(maxMismatches))
            {
                text.AppendLine("    " + mismatch);
            }
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"  worst |error|/budget = {WorstBudgetRatio:G3}; {EnvironmentLine}");
        return text.ToString();
    }

    public static string EnvironmentLine => string.Create(CultureInfo.InvariantCulture,
        $".NET {Environment.Version}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {Environment.ProcessorCount} cores{(OracleDescription is { } oracle ? ", " + oracle : "")}");

    /// <summary>What the live oracle is (e.g. "TorchSharp 0.107.0"), set by the oracle when it starts, so that the
    /// comparison layer does not depend on the oracle; null when no oracle ran in this process.</summary>
    public static string? OracleDescription { get; set; }
}

/// <summary>
/// Compares what an implementation did (a <see cref="CaseTrace"/>) with what it should have done
/// (a recorded case's expectations, or another implementation's trace), number by number, with
/// the budgets of <see cref="ToleranceBudgets"/>.
/// </summary>
public static class TraceComparer
{
    /// <summary>Compares <paramref name="actual"/> with the expectations recorded in the case's steps.</summary>
    public static ComparisonReport CompareWithRecorded(BatchNormCase batchNormCase, CaseTrace actual)
    {
        var expected = batchNormCase.Steps.Select(s => s.Expected ?? new StepOutcome()).ToList();
        return Compare(batchNormCase, expected, "recorded PyTorch", actual);
    }

    /// <summary>Compares two traces of the same case, e.g. the library (<paramref name="actual"/>) against TorchSharp (<paramref name="expected"/>).</summary>
    public static ComparisonReport Compare(BatchNormCase batchNormCase, CaseTrace expected, CaseTrace actual) =>
        Compare(batchNormCase, expected.Steps, expected.Implementation, actual);

    public static ComparisonReport Compare(BatchNormCase batchNormCase, IReadOnlyList<StepOutcome> expected, string expectedSource, CaseTrace actual)
    {
        var (truth, normalizations) = ReferenceBatchNorm.RunWithNormalizations(batchNormCase);
        var budgets = ToleranceBudgets.For(batchNormCase, truth, normalizations);
        var builder = new Builder(batchNormCase);
        for (int i = 0; i < expected.Count; i++)
        {
            int step = i + 1;
            var want = expected[i];
            if (i >= actual.Steps.Count)
            {
                builder.Problem($"step {step}: {actual.Implementation} stopped before this step");
                break;
            }

            var got = actual.Steps[i];
            if (want.Error is not null)
            {
                CheckError(builder, step, want.Error, got, actual.StateBefore[i]);
                break;
            }

            if (got.Error is not null)
            {
                builder.Problem($"step {step}: {actual.Implementation} raised \"{got.Error}\" but an output was expected");
                break;
            }

            var budget = i < budgets.Count ? budgets[i] : null;
            builder.Tensor(step, "output", want.Output, got.Output, budget?.Output);
            builder.Vector(step, "running_mean", want.RunningMean, got.RunningMean, budget?.RunningMean);
            builder.Vector(step, "running_var", want.RunningVar, got.RunningVar, budget?.RunningVar);
            if (want.NumBatchesTracked != got.NumBatchesTracked && want.NumBatchesTracked is not null)
            {
                builder.Problem($"step {step} num_batches_tracked: expected {want.NumBatchesTracked}, actual {got.NumBatchesTracked?.ToString(CultureInfo.InvariantCulture) ?? "absent"}");
            }

            if (want.HasGradients)
            {
                if (!got.HasGradients)
                {
                    builder.Problem($"step {step}: gradients expected but {actual.Implementation} produced none");
                    continue;
                }

                builder.Tensor(step, "grad_input", want.GradInput, got.GradInput, budget?.GradInput);
                builder.Vector(step, "grad_weight", want.GradWeight, got.GradWeight, budget?.GradWeight);
                builder.Vector(step, "grad_bias", want.GradBias, got.GradBias, budget?.GradBias);
            }
        }

        if (expected.Count == 0)
        {
            builder.Problem("the case has no steps");
        }

        return builder.Build(expectedSource, actual.Implementation);
    }

    private static void CheckError(Builder builder, int step, string expectedError, StepOutcome got, ModuleState before)
    {
        if (got.Error is null)
        {
            builder.Problem($"step {step}: expected the error \"{expectedError}\" but got an output");
            return;
        }

        if (!got.Error.StartsWith(expectedError, StringComparison.Ordinal))
        {
            builder.Problem($"step {step}: expected an error starting \"{expectedError}\", got \"{got.Error}\"");
        }

        // A failed call must leave every buffer exactly as it was.
        if (!SameValues(before.RunningMean, got.RunningMean) || !SameValues(before.RunningVar, got.RunningVar) || before.NumBatchesTracked != got.NumBatchesTracked)
        {
            builder.Problem($"step {step}: the failed call changed the buffers (num_batches_tracked {before.NumBatchesTracked} -> {got.NumBatchesTracked})");
        }
    }

    private static bool SameValues(double[]? a, double[]? b) =>
        a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);

    private sealed class Builder(BatchNormCase batchNormCase)
    {
        private readonly List<string> _problems = new();
        private readonly List<Mismatch> _mismatches = new();
        private readonly Dictionary<string, int> _countByTensor = new(StringComparer.Ordinal);
        private int _count;
        private double _worst;

        public void Problem(string text) => _problems.Add(text);

        public void Tensor(int step, string name, CaseTensor? expected, CaseTensor? actual, double[]? budget)
        {
            if (expected is null)
            {
                return;
            }

            if (actual is null || !expected.Shape.AsSpan().SequenceEqual(actual.Shape))
            {
                Problem($"step {step} {name}: expected shape {expected}, actual {(actual is null ? "absent" : actual.ToString())}");
                return;
            }

            if (batchNormCase.Config.IsElementNorm)
            {
                // LayerNorm/RMSNorm: the set (leading index) and the element within it (the parameters' index).
                int length = Math.Max(batchNormCase.Config.NumFeatures, 1);
                Values(step, name, expected.Data, actual.Data, budget, i => string.Create(CultureInfo.InvariantCulture, $"[set={i / length}, e={i % length}]"));
                return;
            }

            Values(step, name, expected.Data, actual.Data, budget, i =>
            {
                var (n, c, s) = expected.Locate(i);
                return string.Create(CultureInfo.InvariantCulture, $"[n={n}, c={c}, s={s}]");
            });
        }

        public void Vector(int step, string name, double[]? expected, double[]? actual, double[]? budget)
        {
            if (expected is null)
            {
                return;
            }

            if (actual is null || actual.Length != expected.Length)
            {
                Problem($"step {step} {name}: expected {expected.Length} values, actual {(actual is null ? "absent" : actual.Length.ToString(CultureInfo.InvariantCulture))}");
                return;
            }

            string index = batchNormCase.Config.IsElementNorm ? "e" : "c";
            Values(step, name, expected, actual, budget, i => string.Create(CultureInfo.InvariantCulture, $"[{index}={i}]"));
        }

        private void Values(int step, string name, double[] expected, double[] actual, double[]? budget, Func<int, string> locate)
        {
            for (int i = 0; i < expected.Length; i++)
            {
                double allowed = budget is not null && i < budget.Length ? budget[i] : 0;
                if (!Tolerance.Within(expected[i], actual[i], allowed))
                {
                    _count++;
                    _countByTensor[name] = _countByTensor.GetValueOrDefault(name) + 1;
                    if (_mismatches.Count < ComparisonReport.MaxKeptMismatches)
                    {
                        _mismatches.Add(new Mismatch(step, name, i, locate(i), expected[i], actual[i], allowed, batchNormCase.Config.DType));
                    }
                }

                double error = Math.Abs(actual[i] - expected[i]);
                if (double.IsFinite(error) && error > 0)
                {
                    _worst = Math.Max(_worst, allowed > 0 ? error / allowed : double.PositiveInfinity);
                }
            }
        }

        public ComparisonReport Build(string expectedSource, string actualSource) =>
            new(batchNormCase, expectedSource, actualSource, _problems, _mismatches, _count, _worst, _countByTensor);
    }
}
