using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;
using BnParity.ParityTests.Comparison;
using BnParity.Testing;
using Xunit.Sdk;

namespace BnParity.ParityTests.RecordedCases;

/// <summary>The test kit (BnParity.Testing) as a user's project uses it: its recorded-case suite inherited for the
/// library, the embedded cases equal to the committed files, and a faulty implementation failing with the report.</summary>
public sealed class LibraryThroughTheTestKit : RecordedPyTorchCasesSuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

/// <summary>The kit's InstanceNorm suite on the library.</summary>
public sealed class LibraryInstanceNormThroughTheTestKit : RecordedInstanceNormCasesSuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

/// <summary>The kit's GroupNorm suite on the library.</summary>
public sealed class LibraryGroupNormThroughTheTestKit : RecordedGroupNormCasesSuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

/// <summary>The kit's LayerNorm suite on the library.</summary>
public sealed class LibraryLayerNormThroughTheTestKit : RecordedLayerNormCasesSuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

/// <summary>The kit's RMSNorm suite on the library.</summary>
public sealed class LibraryRMSNormThroughTheTestKit : RecordedRMSNormCasesSuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

/// <summary>The kit's InstanceNorm TorchSharp parity suite on the library.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class LibraryInstanceNormParityThroughTheTestKit : TorchSharpInstanceNormParitySuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

/// <summary>The kit's LayerNorm TorchSharp parity suite on the library.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class LibraryLayerNormParityThroughTheTestKit : TorchSharpLayerNormParitySuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

/// <summary>The kit's RMSNorm TorchSharp parity suite on the library.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class LibraryRMSNormParityThroughTheTestKit : TorchSharpRMSNormParitySuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

/// <summary>The kit's GroupNorm TorchSharp parity suite on the library.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class LibraryGroupNormParityThroughTheTestKit : TorchSharpGroupNormParitySuite
{
    protected override IBatchNormUnderTest Implementation => new LibraryImplementation();
}

public sealed class TestKitTests
{
    [Fact]
    public void The_embedded_cases_are_exactly_the_committed_files()
    {
        var files = Directory.GetFiles(CaseJson.CommittedCasesDirectory, "*.json").Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal);
        Assert.Equal(files, Harness.Cases.RecordedCases.Names);
        foreach (string name in Harness.Cases.RecordedCases.Names)
        {
            Assert.Equal(CaseJson.ReadFile(Path.Combine(CaseJson.CommittedCasesDirectory, name + ".json")).ToString(), Harness.Cases.RecordedCases.Load(name).ToString());
        }

        // The family suites split the cases without loss: at least 25 recorded cases per new family.
        var families = Enum.GetValues<ModuleFamily>().Select(Harness.Cases.RecordedCases.NamesOf).ToArray();
        Assert.Equal(Harness.Cases.RecordedCases.Names.Count, families.Sum(f => f.Count));
        Assert.All(families, f => Assert.True(f.Count >= 25, $"{f.Count} cases in a family"));
    }

    [Fact]
    public void A_faulty_implementation_fails_the_kits_suite_with_the_report()
    {
        var suite = new FaultySuite();
        var error = Assert.Throws<TrueException>(() => suite.Reproduces_the_recorded_PyTorch_case("bn2d-default"));
        Assert.Contains("running_var", error.Message, StringComparison.Ordinal);
        Assert.Contains("step 1", error.Message, StringComparison.Ordinal);
    }

    private sealed class FaultySuite : RecordedPyTorchCasesSuite
    {
        protected override IBatchNormUnderTest Implementation => new BiasedRunningVarBatchNorm();
    }
}
