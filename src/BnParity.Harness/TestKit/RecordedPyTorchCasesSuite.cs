using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using Xunit;

namespace BnParity.Testing;

/// <summary>
/// Every recorded PyTorch case (embedded in this package) as its own test, run on <see cref="Implementation"/> and
/// compared with PyTorch's recorded outputs, buffers, gradients and errors under the harness's tolerance policy.
/// Inherit it in an xunit test project and return your implementation:
/// <code>public sealed class MyRecordedCases : RecordedPyTorchCasesSuite
/// {
///     protected override IBatchNormUnderTest Implementation =&gt; new MyBatchNorm();
/// }</code>
/// TorchSharp-free.
/// </summary>
public abstract class RecordedPyTorchCasesSuite
{
    /// <summary>The implementation every case runs on.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    /// <summary>The embedded case names.</summary>
    public static TheoryData<string> CaseNames() => new(RecordedCases.Names);

    [Theory]
    [MemberData(nameof(CaseNames), MemberType = typeof(RecordedPyTorchCasesSuite))]
    public void Reproduces_the_recorded_PyTorch_case(string name)
    {
        var batchNormCase = RecordedCases.Load(name);
        var report = TraceComparer.CompareWithRecorded(batchNormCase, CaseRunner.Run(Implementation, batchNormCase));
        Assert.True(report.Passed, report.Format());
    }
}
