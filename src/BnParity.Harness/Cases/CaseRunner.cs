using BnParity.Harness.Implementations;

namespace BnParity.Harness.Cases;

/// <summary>Everything one implementation did on one case: an outcome per step, and the state before each step.</summary>
public sealed record CaseTrace(string Implementation, IReadOnlyList<StepOutcome> Steps, IReadOnlyList<ModuleState> StateBefore);

/// <summary>Runs a <see cref="BatchNormCase"/> on an implementation, step by step, recording outcomes and errors.</summary>
public static class CaseRunner
{
    public static CaseTrace Run(IBatchNormUnderTest implementation, BatchNormCase batchNormCase) =>
        Run(implementation, batchNormCase, keepModule: false);

    internal static CaseTrace Run(IBatchNormUnderTest implementation, BatchNormCase batchNormCase, bool keepModule)
    {
        var outcomes = new List<StepOutcome>();
        var before = new List<ModuleState>();
        var module = implementation.Create(batchNormCase.Config, batchNormCase.InitialState);
        try
        {
            RunSteps(module, batchNormCase, outcomes, before);
        }
        finally
        {
            if (!keepModule)
            {
                module.Dispose();
            }
        }

        return new CaseTrace(implementation.Name, outcomes, before);
    }

    private static void RunSteps(IBatchNormModule module, BatchNormCase batchNormCase, List<StepOutcome> outcomes, List<ModuleState> before)
    {
        foreach (var step in batchNormCase.Steps)
        {
            var stateBefore = module.ReadState();
            before.Add(stateBefore);
            CaseTensor output;
            try
            {
                output = module.Forward(step.Training, step.Input, step.Layout);
            }
            catch (Exception error) // any exception is the step's error outcome; the comparer judges it
            {
                var stateAfterError = module.ReadState();
                outcomes.Add(new StepOutcome
                {
                    Error = error.Message,
                    RunningMean = stateAfterError.RunningMean,
                    RunningVar = stateAfterError.RunningVar,
                    NumBatchesTracked = stateAfterError.NumBatchesTracked,
                });
                break; // an error step is always the last step of a case
            }

            var state = module.ReadState();
            var outcome = new StepOutcome
            {
                Output = output,
                RunningMean = state.RunningMean,
                RunningVar = state.RunningVar,
                NumBatchesTracked = state.NumBatchesTracked,
            };
            if (step.GradOutput is not null)
            {
                try
                {
                    var (gradInput, gradWeight, gradBias) = module.Backward(step.GradOutput, step.Layout);
                    outcome = outcome with { GradInput = gradInput, GradWeight = gradWeight, GradBias = gradBias };
                }
                catch (Exception error)
                {
                    outcome = outcome with { Error = "backward: " + error.Message };
                    outcomes.Add(outcome);
                    break;
                }
            }

            outcomes.Add(outcome);
        }
    }
}
