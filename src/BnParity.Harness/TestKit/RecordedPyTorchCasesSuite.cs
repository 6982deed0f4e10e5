using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using Xunit;

namespace BnParity.Testing;

/// <summary>
/// Every recorded PyTorch BatchNorm case (embedded in this package) as its own test, run on
/// <see cref="Implementation"/> and compared with PyTorch's recorded outputs, buffers, gradients and errors under the
/// harness's tolerance policy. Inherit it in an xunit test project and return your implementation:
/// <code>public sealed class MyRecordedCases : RecordedPyTorchCasesSuite
/// {
///     protected override IBatchNormUnderTest Implementation =&gt; new MyBatchNorm();
/// }</code>
/// <see cref="RecordedInstanceNormCasesSuite"/> and <see cref="RecordedGroupNormCasesSuite"/> do the same for the
/// other families (an implementation creates the module its <see cref="ModuleConfig"/> names). TorchSharp-free.
/// </summary>
public abstract class RecordedPyTorchCasesSuite
{
    /// <summary>The implementation every case runs on.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    /// <summary>The embedded BatchNorm case names.</summary>
    public static TheoryData<string> CaseNames() => new(RecordedCases.NamesOf(ModuleFamily.BatchNorm));

    [Theory]
    [MemberData(nameof(CaseNames), MemberType = typeof(RecordedPyTorchCasesSuite))]
    public void Reproduces_the_recorded_PyTorch_case(string name) => RecordedCaseCheck.Run(Implementation, name);
}

/// <summary>Every recorded PyTorch InstanceNorm1d/2d/3d case, as <see cref="RecordedPyTorchCasesSuite"/>.</summary>
public abstract class RecordedInstanceNormCasesSuite
{
    /// <summary>The implementation every case runs on.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    /// <summary>The embedded InstanceNorm case names.</summary>
    public static TheoryData<string> CaseNames() => new(RecordedCases.NamesOf(ModuleFamily.InstanceNorm));

    [Theory]
    [MemberData(nameof(CaseNames), MemberType = typeof(RecordedInstanceNormCasesSuite))]
    public void Reproduces_the_recorded_PyTorch_case(string name) => RecordedCaseCheck.Run(Implementation, name);
}

/// <summary>Every recorded PyTorch GroupNorm case, as <see cref="RecordedPyTorchCasesSuite"/>.</summary>
public abstract class RecordedGroupNormCasesSuite
{
    /// <summary>The implementation every case runs on.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    /// <summary>The embedded GroupNorm case names.</summary>
    public static TheoryData<string> CaseNames() => new(RecordedCases.NamesOf(ModuleFamily.GroupNorm));

    [Theory]
    [MemberData(nameof(CaseNames), MemberType = typeof(RecordedGroupNormCasesSuite))]
    public void Reproduces_the_recorded_PyTorch_case(string name) => RecordedCaseCheck.Run(Implementation, name);
}

/// <summary>The one check the recorded-case suites share.</summary>
internal static class RecordedCaseCheck
{
    public static void Run(IBatchNormUnderTest implementation, string name)
    {
        var recorded = RecordedCases.Load(name);
        var report = TraceComparer.CompareWithRecorded(recorded, CaseRunner.Run(implementation, recorded));
        Assert.True(report.Passed, report.Format());
    }
}
