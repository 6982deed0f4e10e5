using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.RecordedCases;

/// <summary>Every committed PyTorch case is its own test case, named by its file.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class RecordedPyTorchCaseTests
{
    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(CaseJson.CommittedCasesDirectory, "*.json").OrderBy(f => f, StringComparer.Ordinal))
        {
            data.Add(Path.GetFileNameWithoutExtension(file));
        }

        return data;
    }

    private static BatchNormCase Load(string name) => CaseJson.ReadFile(Path.Combine(CaseJson.CommittedCasesDirectory, name + ".json"));

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Implementation_under_test_reproduces_recorded_PyTorch(string name)
    {
        var batchNormCase = Load(name);
        var report = TraceComparer.CompareWithRecorded(batchNormCase, CaseRunner.Run(ImplementationLoader.UnderTest(), batchNormCase));
        Assert.True(report.Passed, report.Format());
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Float64_reference_reproduces_recorded_PyTorch(string name)
    {
        var batchNormCase = Load(name);
        var report = TraceComparer.CompareWithRecorded(batchNormCase, CaseRunner.Run(new ReferenceBatchNorm(), batchNormCase));
        Assert.True(report.Passed, report.Format());
    }
}
