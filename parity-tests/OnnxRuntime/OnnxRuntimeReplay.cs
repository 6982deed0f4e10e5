using BnParity.Harness.Cases;

namespace BnParity.ParityTests.OnnxRuntime;

/// <summary>
/// The recorded PyTorch steps whose semantics ONNX shares, each as a one-step case with the state PyTorch had before
/// it: BatchNorm eval with running statistics, GroupNorm, LayerNorm, RMSNorm and InstanceNorm without running
/// statistics, forward only (gradients stripped: ONNX Runtime's inference build has none). Error steps and steps ONNX
/// has no form for are left out.
/// </summary>
internal static class OnnxRuntimeReplay
{
    /// <summary>(case name, step index) of every replayable step, in ordinal order.</summary>
    public static IEnumerable<(string Name, int Step)> Steps()
    {
        foreach (string name in Harness.Cases.RecordedCases.Names)
        {
            var recorded = Harness.Cases.RecordedCases.Load(name);
            for (int i = 0; i < recorded.Steps.Count; i++)
            {
                if (Replayable(recorded, i))
                {
                    yield return (name, i);
                }
            }
        }
    }

    private static bool Replayable(BatchNormCase recorded, int step)
    {
        var config = recorded.Config;
        var s = recorded.Steps[step];
        if (s.Expected is not { Error: null, Output: not null } || s.Input.Data.Length == 0)
        {
            return false;
        }

        return config.Module switch
        {
            ModuleKind.BatchNorm1d or ModuleKind.BatchNorm2d or ModuleKind.BatchNorm3d => config.TrackRunningStats && !s.Training,
            ModuleKind.InstanceNorm1d or ModuleKind.InstanceNorm2d or ModuleKind.InstanceNorm3d => !config.TrackRunningStats,
            _ => true,
        };
    }

    /// <summary>Step <paramref name="step"/> of a recorded case as a one-step case: the initial parameters, the running
    /// statistics the previous step left (the recorded ones), the input and the expected output; no gradient.</summary>
    public static BatchNormCase OneStep(string name, int step)
    {
        var recorded = Harness.Cases.RecordedCases.Load(name);
        var state = recorded.InitialState;
        if (step > 0 && recorded.Steps[step - 1].Expected is { } previous && recorded.Config.TrackRunningStats)
        {
            state = state with { RunningMean = previous.RunningMean, RunningVar = previous.RunningVar, NumBatchesTracked = previous.NumBatchesTracked };
        }

        var s = recorded.Steps[step];
        var expected = s.Expected! with { GradInput = null, GradWeight = null, GradBias = null };
        return new BatchNormCase($"{name} step {step + 1}", recorded.Config, state, [s with { GradOutput = null, Expected = expected, Layout = MemoryLayout.ChannelsFirst }]);
    }
}
