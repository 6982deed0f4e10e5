using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.OnnxRuntime;

namespace BnParity.ParityTests.OnnxRuntime;

/// <summary>
/// ONNX Runtime as a peer on the recorded PyTorch cases, wherever ONNX's semantics are PyTorch's
/// (<see cref="OnnxRuntimeReplay"/>): each step's output within the derived tolerance of PyTorch's, one test per
/// (case, step). The steps ORT gets wrong are listed with the ledger row (docs/divergence-ledger.md, ONNX Runtime) and
/// pinned: they must still fail, so an upgrade that fixes one turns a test red and the row goes.
/// </summary>
public sealed class OnnxRuntimeRecordedCaseTests
{
    /// <summary>Steps ONNX Runtime 1.32 does not reproduce, each with its ledger row's test.</summary>
    public static readonly IReadOnlyDictionary<string, string> LedgerSteps = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["cl-f64-bn2d step 3"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
        ["f64-bn1d step 3"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
        ["f64-bn2d-momentum-none step 3"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
        ["f64-bn3d step 2"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
        ["f64-ill-conditioned step 2"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
        ["gn-channels-last-f64 step 1"] = nameof(OnnxRuntimeLedgerTests.GroupNormalization_computes_float64_in_float),
        ["gn-f64 step 1"] = nameof(OnnxRuntimeLedgerTests.GroupNormalization_computes_float64_in_float),
        ["gn-f64 step 2"] = nameof(OnnxRuntimeLedgerTests.GroupNormalization_computes_float64_in_float),
        ["gn-f64-channels-last-one-group step 1"] = nameof(OnnxRuntimeLedgerTests.GroupNormalization_computes_float64_in_float),
        ["gn-f64-one-group step 1"] = nameof(OnnxRuntimeLedgerTests.GroupNormalization_computes_float64_in_float),
        ["gn-ill-conditioned step 1"] = nameof(OnnxRuntimeLedgerTests.GroupNormalization_gives_NaN_where_its_one_pass_variance_goes_negative),
        ["grad-f64-bn2d step 2"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
        ["in2d-channels-last-f64 step 1"] = nameof(OnnxRuntimeLedgerTests.InstanceNormalization_has_no_float64_kernel_on_the_CPU_provider),
        ["in3d-f64-not-affine step 1"] = nameof(OnnxRuntimeLedgerTests.InstanceNormalization_has_no_float64_kernel_on_the_CPU_provider),
        ["ln-f64 step 1"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
        ["ln-f64 step 2"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
        ["ln-f64-two-dims-no-bias step 1"] = nameof(OnnxRuntimeLedgerTests.Float64_models_use_eps_rounded_to_float),
    };

    private static string Key(string name, int step) => $"{name} step {step + 1}";

    public static TheoryData<string, int> Steps() => StepData(ledger: false);

    public static TheoryData<string, int> LedgerStepData() => StepData(ledger: true);

    /// <summary>The replayable steps in or out of <see cref="LedgerSteps"/>.</summary>
    private static TheoryData<string, int> StepData(bool ledger)
    {
        var data = new TheoryData<string, int>();
        foreach (var (name, step) in OnnxRuntimeReplay.Steps().Where(s => LedgerSteps.ContainsKey(Key(s.Name, s.Step)) == ledger))
        {
            data.Add(name, step);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Steps))]
    public void ONNX_Runtime_reproduces_the_recorded_PyTorch_step(string name, int step)
    {
        var oneStep = OnnxRuntimeReplay.OneStep(name, step);
        var report = TraceComparer.CompareWithRecorded(oneStep, CaseRunner.Run(new OnnxRuntimeImplementation(threads: 1), oneStep));
        Assert.True(report.Passed, $"ONNX Runtime {OnnxRuntimePeer.Version} (1 intra-op thread), {oneStep.Config.Module}:\n{report.Format()}");
    }

    /// <summary>The ledger steps still fail on ORT: when an upgrade fixes one, this goes red and the row goes.</summary>
    [Theory]
    [MemberData(nameof(LedgerStepData))]
    public void ONNX_Runtime_still_diverges_on_the_ledger_steps(string name, int step)
    {
        var oneStep = OnnxRuntimeReplay.OneStep(name, step);
        var report = TraceComparer.CompareWithRecorded(oneStep, CaseRunner.Run(new OnnxRuntimeImplementation(threads: 1), oneStep));
        Assert.False(report.Passed, $"{Key(name, step)} now passes on ONNX Runtime {OnnxRuntimePeer.Version}: the ledger row {LedgerSteps[Key(name, step)]} is fixed; update docs/divergence-ledger.md");
    }

    [Fact]
    public void Every_ledger_step_is_a_replayable_step()
    {
        var steps = OnnxRuntimeReplay.Steps().Select(s => Key(s.Name, s.Step)).ToHashSet(StringComparer.Ordinal);
        Assert.All(LedgerSteps.Keys, key => Assert.Contains(key, steps));
    }

    [Fact]
    public void Every_family_has_replayable_steps()
    {
        var modules = OnnxRuntimeReplay.Steps().Select(s => Harness.Cases.RecordedCases.FamilyOf(Harness.Cases.RecordedCases.Load(s.Name).Config.Module)).ToHashSet();
        Assert.Equal(Enum.GetValues<ModuleFamily>().Length, modules.Count);
    }
}
