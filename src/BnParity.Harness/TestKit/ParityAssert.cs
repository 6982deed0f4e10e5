using BnParity.Harness.Comparison;

namespace BnParity.Testing;

/// <summary>The one way the suites fail: with the comparison report (case, first mismatches with their step, tensor
/// and index, the environment).</summary>
public static class ParityAssert
{
    /// <summary>
    /// Fails unless the report has no structural problem and no mismatch in the named tensors (all tensors when none are
    /// named). The message starts with <paramref name="check"/>, then the report.
    /// </summary>
    public static void Clean(ComparisonReport report, string check, params string[] tensors)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(tensors);
        bool relevant = tensors.Length == 0
            ? report.MismatchCount > 0
            : tensors.Any(t => report.MismatchCountByTensor.GetValueOrDefault(t) > 0);
        if (report.Problems.Count > 0 || relevant)
        {
            Xunit.Assert.Fail($"[{check}] {report.Format()}");
        }
    }
}
