using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using BnParity.Harness.Generators;

namespace BnParity.PropertyTests;

/// <summary>The implementations the properties run, and the assertions they share.</summary>
internal static class Runs
{
    private static readonly Lazy<IBatchNormUnderTest> s_underTest = new(ImplementationLoader.UnderTest);
    private static readonly Lazy<TorchSharpImplementation> s_torch = new(() => new TorchSharpImplementation());

    /// <summary>The implementation under test (the library, or BNPARITY_IMPLEMENTATION).</summary>
    public static IBatchNormUnderTest UnderTest => s_underTest.Value;

    /// <summary>The implementation under test for a generated case: the library runs on the case's path and thread
    /// count (printed in the case, so a shrunk counterexample replays on the same path); another implementation
    /// loaded through BNPARITY_IMPLEMENTATION runs as it is.</summary>
    public static IBatchNormUnderTest UnderTestFor(CaseSpec spec) =>
        s_underTest.Value is LibraryImplementation ? new LibraryImplementation(spec.Run) : s_underTest.Value;

    /// <summary>Builds the case from <paramref name="spec"/>, runs it on TorchSharp and on the implementation under
    /// test (on the spec's path), and compares them.</summary>
    public static ComparisonReport AgainstTorchSharp(CaseSpec spec, string name)
    {
        var batchNormCase = spec.ToCase(name);
        var expected = CaseRunner.Run(Torch, batchNormCase);
        var actual = CaseRunner.Run(UnderTestFor(spec), batchNormCase);
        return TraceComparer.Compare(batchNormCase, expected, actual);
    }

    /// <summary>The live oracle (started once through TorchSharpOracle).</summary>
    public static TorchSharpImplementation Torch => s_torch.Value;

    /// <summary>Runs the case on TorchSharp and on the implementation under test and compares them.</summary>
    public static ComparisonReport AgainstTorchSharp(BatchNormCase batchNormCase)
    {
        var expected = CaseRunner.Run(Torch, batchNormCase);
        var actual = CaseRunner.Run(UnderTest, batchNormCase);
        return TraceComparer.Compare(batchNormCase, expected, actual);
    }

    /// <summary>The test kit's assertion (<see cref="Testing.ParityAssert.Clean"/>), under its old name.</summary>
    public static void AssertClean(ComparisonReport report, string check, params string[] tensors) =>
        Testing.ParityAssert.Clean(report, check, tensors);
}
