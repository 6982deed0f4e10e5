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
/// <see cref="RecordedInstanceNormCasesSuite"/>, <see cref="RecordedGroupNormCasesSuite"/>,
/// <see cref="RecordedLayerNormCasesSuite"/> and <see cref="RecordedRMSNormCasesSuite"/> do the same for the other families (an implementation creates the module its <see cref="ModuleConfig"/> names). TorchSharp-free.
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

/// <summary>Every recorded PyTorch LayerNorm case, as <see cref="RecordedPyTorchCasesSuite"/>.</summary>
public abstract class RecordedLayerNormCasesSuite
{
    /// <summary>The implementation every case runs on.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    /// <summary>The embedded LayerNorm case names.</summary>
    public static TheoryData<string> CaseNames() => new(RecordedCases.NamesOf(ModuleFamily.LayerNorm));

    [Theory]
    [MemberData(nameof(CaseNames), MemberType = typeof(RecordedLayerNormCasesSuite))]
    public void Reproduces_the_recorded_PyTorch_case(string name) => RecordedCaseCheck.Run(Implementation, name);
}

/// <summary>Every recorded RMSNorm case (PyTorch's composite definition recorded on PyTorch 1.13, see
/// tools/record_pytorch.py), as <see cref="RecordedPyTorchCasesSuite"/>.</summary>
public abstract class RecordedRMSNormCasesSuite
{
    /// <summary>The implementation every case runs on.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    /// <summary>The embedded RMSNorm case names.</summary>
    public static TheoryData<string> CaseNames() => new(RecordedCases.NamesOf(ModuleFamily.RMSNorm));

    [Theory]
    [MemberData(nameof(CaseNames), MemberType = typeof(RecordedRMSNormCasesSuite))]
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
