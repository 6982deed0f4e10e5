using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.RecordedCases;

/// <summary>Every committed PyTorch case is its own test case, named by its file.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class RecordedPyTorchCaseTests
{
    private static IEnumerable<string> Names() =>
        Directory.GetFiles(CaseJson.CommittedCasesDirectory, "*.json").OrderBy(f => f, StringComparer.Ordinal).Select(Path.GetFileNameWithoutExtension)!;

    public static TheoryData<string> CaseNames() => new(Names());

    private static BatchNormCase Load(string name) => CaseJson.ReadFile(Path.Combine(CaseJson.CommittedCasesDirectory, name + ".json"));

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Implementation_under_test_reproduces_recorded_PyTorch(string name)
    {
        var batchNormCase = Load(name);
        var report = TraceComparer.CompareWithRecorded(batchNormCase, CaseRunner.Run(ImplementationLoader.UnderTest(), batchNormCase));
        Assert.True(report.Passed, report.Format());
    }

    /// <summary>Every recorded case × every forced library path at 1 and 3 threads (the default run is the test above):
    /// the recorded channels-last cases then reach the row path, the split path and the streaming stores as well.</summary>
    public static TheoryData<string, LibraryPath, int> CaseNamesOnEveryPath()
    {
        var data = new TheoryData<string, LibraryPath, int>();
        foreach (string name in Names())
        {
            foreach (var execution in LibraryExecution.AllForced(1, 3))
            {
                data.Add(name, execution.Path, execution.Threads);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CaseNamesOnEveryPath))]
    public void Library_reproduces_recorded_PyTorch_on_path_at_threads(string name, LibraryPath path, int threads)
    {
        var batchNormCase = Load(name);
        var library = new LibraryImplementation(new LibraryExecution(path, threads));
        var report = TraceComparer.CompareWithRecorded(batchNormCase, CaseRunner.Run(library, batchNormCase));
        Assert.True(report.Passed, $"library path={path} threads={threads}\n{report.Format()}");
    }

    /// <summary>The live oracle against PyTorch itself, on every recorded case without an expected error (TorchSharp
    /// does not raise on one value per channel: a ledger row, pinned in Ledger/). This is where a TorchSharp-vs-PyTorch difference in a
    /// layout would show first.</summary>
    public static TheoryData<string> CaseNamesWithoutErrorSteps() => new TheoryData<string>(Names().Where(name => Load(name).Steps.All(step => step.Expected?.Error is null)));

    [Theory]
    [MemberData(nameof(CaseNamesWithoutErrorSteps))]
    public void TorchSharp_reproduces_recorded_PyTorch(string name)
    {
        var batchNormCase = Load(name);
        var report = TraceComparer.CompareWithRecorded(batchNormCase, CaseRunner.Run(new TorchSharpImplementation(), batchNormCase));
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
