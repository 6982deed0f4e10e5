using System.Globalization;
using System.Text;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Comparison;

/// <summary>
/// The tolerance policy, pinned: the derived budgets of every committed PyTorch case (per step and tensor: how many
/// numbers, how many finite, infinite and ill-posed, and the sum, smallest and largest finite budget) must equal the
/// committed table <c>Comparison/Pinned/tolerance-budgets.txt</c>. A budget that silently grows lets a regression pass
/// every parity test, and one that shrinks makes them flaky, so a change to the policy changes this table in a commit
/// that says why (<c>BNPARITY_BUDGETS_UPDATE=&lt;folder&gt;</c> writes the new table there). The budgets come from the
/// float64 reference's scalar arithmetic, so the table is the same at every vector width; numbers are compared to a
/// relative 1e-12, far below any change of the policy.
/// </summary>
public sealed class ToleranceBudgetPinTests
{
    private const string UpdateVariable = "BNPARITY_BUDGETS_UPDATE";
    private const string TableName = "tolerance-budgets.txt";

    [Fact]
    public void The_derived_budgets_of_every_committed_case_equal_the_pinned_table()
    {
        var actual = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string file in Directory.GetFiles(CaseJson.CommittedCasesDirectory, "*.json").Order(StringComparer.Ordinal))
        {
            var batchNormCase = CaseJson.ReadFile(file);
            var (truth, normalizations) = ReferenceBatchNorm.RunWithNormalizations(batchNormCase);
            var budgets = ToleranceBudgets.For(batchNormCase, truth, normalizations);
            Assert.Equal(batchNormCase.Steps.Count, budgets.Count);
            for (int i = 0; i < budgets.Count; i++)
            {
                string key = $"{batchNormCase.Name} step {i + 1}";
                Add(actual, key, "output", budgets[i].Output);
                Add(actual, key, "running_mean", budgets[i].RunningMean);
                Add(actual, key, "running_var", budgets[i].RunningVar);
                Add(actual, key, "grad_input", budgets[i].GradInput);
                Add(actual, key, "grad_weight", budgets[i].GradWeight);
                Add(actual, key, "grad_bias", budgets[i].GradBias);
            }
        }

        if (Environment.GetEnvironmentVariable(UpdateVariable) is { Length: > 0 } folder)
        {
            Directory.CreateDirectory(folder);
            var text = new StringBuilder("# case step tensor\tcount finite infinite ill-posed\tsum min max (finite budgets)\n");
            foreach (var (key, value) in actual)
            {
                text.Append(key).Append('\t').Append(value).Append('\n');
            }

            string target = Path.Combine(folder, TableName);
            File.WriteAllText(target + ".tmp", text.ToString());
            File.Move(target + ".tmp", target, overwrite: true);
            return;
        }

        string path = Path.Combine(AppContext.BaseDirectory, "Pinned", TableName);
        Assert.True(File.Exists(path), $"no pinned budget table at {path}; write it with {UpdateVariable}=<folder>");
        var pinned = File.ReadLines(path).Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l.Split('\t', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        var failures = new List<string>();
        foreach (var (key, value) in actual)
        {
            if (!pinned.TryGetValue(key, out string? want))
            {
                failures.Add($"{key}: not in the pinned table (now {value})");
            }
            else if (!SameSummary(want, value))
            {
                failures.Add($"{key}: pinned {want}, now {value}");
            }
        }

        failures.AddRange(pinned.Keys.Where(key => !actual.ContainsKey(key)).Select(key => $"{key}: pinned but no longer produced"));
        Assert.True(failures.Count == 0,
            $"{failures.Count} budget(s) of the tolerance policy changed (float64 reference, every committed case); if the policy change is intended, regenerate with {UpdateVariable}=<folder> and say why in the commit:\n"
            + string.Join('\n', failures.Take(30)));
    }

    /// <summary>"count finite infinite illposed\tsum min max" of one budget vector, or "absent".</summary>
    private static void Add(SortedDictionary<string, string> table, string key, string tensor, double[]? budget)
    {
        if (budget is null)
        {
            table[$"{key} {tensor}"] = "absent";
            return;
        }

        var finite = budget.Where(double.IsFinite).ToArray();
        int infinite = budget.Count(double.IsInfinity);
        int illPosed = budget.Count(double.IsNaN);
        table[$"{key} {tensor}"] = string.Create(CultureInfo.InvariantCulture,
            $"{budget.Length} {finite.Length} {infinite} {illPosed}\t{Sum(finite):R} {(finite.Length > 0 ? finite.Min() : 0):R} {(finite.Length > 0 ? finite.Max() : 0):R}");
    }

    /// <summary>A left fold, so the sum does not depend on how a library method might vectorise.</summary>
    private static double Sum(double[] values)
    {
        double total = 0;
        foreach (double v in values)
        {
            total += v;
        }

        return total;
    }

    private static bool SameSummary(string pinned, string actual)
    {
        string[] a = pinned.Split(['\t', ' ']), b = actual.Split(['\t', ' ']);
        if (a.Length != b.Length)
        {
            return false;
        }

        for (int i = 0; i < a.Length; i++)
        {
            if (i < 4 || a[i] == "absent")
            {
                if (a[i] != b[i])
                {
                    return false;
                }

                continue;
            }

            double x = double.Parse(a[i], CultureInfo.InvariantCulture), y = double.Parse(b[i], CultureInfo.InvariantCulture);
            if (Math.Abs(x - y) > 1e-12 * Math.Max(Math.Abs(x), Math.Abs(y)))
            {
                return false;
            }
        }

        return true;
    }
}
