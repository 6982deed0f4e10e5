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
    public static TheoryData<string> CaseNamesWithoutErrorSteps() => new TheoryData<string>(
        Names().Where(name => Load(name).Steps.All(step => step.Expected?.Error is null) && !TorchSharpLedgerCases.ContainsKey(name)));

    /// <summary>Recorded cases TorchSharp 0.107 cannot reproduce, each because of a ledger row whose test pins it.</summary>
    public static readonly IReadOnlyDictionary<string, string> TorchSharpLedgerCases = new Dictionary<string, string>
    {
        ["gn-2d-input"] = nameof(Ledger.TorchSharpGroupAndInstanceNormLedgerTests.GroupNorm_rejects_N_C_input_in_TorchSharp),
        ["gn-2d-one-value-per-group"] = nameof(Ledger.TorchSharpGroupAndInstanceNormLedgerTests.GroupNorm_rejects_N_C_input_in_TorchSharp),
        ["in1d-momentum-none-track"] = nameof(Ledger.TorchSharpGroupAndInstanceNormLedgerTests.InstanceNorm_momentum_null_is_0_1_in_TorchSharp_and_0_in_the_library),
        ["in2d-other-channels-runs"] = nameof(Ledger.TorchSharpGroupAndInstanceNormLedgerTests.InstanceNorm_on_another_channel_count_always_throws_in_TorchSharp),
    };

    [Theory]
    [MemberData(nameof(CaseNamesWithoutErrorSteps))]
    public void TorchSharp_reproduces_recorded_PyTorch(string name)
    {
        var batchNormCase = Load(name);
        var report = TraceComparer.CompareWithRecorded(batchNormCase, CaseRunner.Run(new TorchSharpImplementation(), batchNormCase));
        Assert.True(report.Passed, report.Format());
    }

    public static TheoryData<string> TorchSharpLedgerCaseNames() => new(TorchSharpLedgerCases.Keys.Order(StringComparer.Ordinal));

    /// <summary>The ledger cases still fail on TorchSharp: when an upgrade fixes one, this goes red and the row goes.</summary>
    [Theory]
    [MemberData(nameof(TorchSharpLedgerCaseNames))]
    public void TorchSharp_still_diverges_on_the_ledger_cases(string name)
    {
        var batchNormCase = Load(name);
        var report = TraceComparer.CompareWithRecorded(batchNormCase, CaseRunner.Run(new TorchSharpImplementation(), batchNormCase));
        Assert.False(report.Passed, $"{name} now passes on TorchSharp: the ledger row {TorchSharpLedgerCases[name]} is fixed; update docs/divergence-ledger.md");
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
