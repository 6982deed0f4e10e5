using BnParity.Testing;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>State dict round trip: C# state → TorchSharp's module buffers → C#, exact; then more steps on both still agree.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class StateDictProperties
{
    [BnProperty]
    public Property State_dict_round_trip_through_TorchSharp_then_more_steps_agree() =>
        Prop.ForAll(CaseGenerators.Cases(new CaseOptions { Track = true, MaxSteps = 3, MaxElements = 8_000 }), spec =>
        {
            var first = spec.ToCase("state dict: before");
            ModuleState ours;
            using (var module = Runs.UnderTestFor(spec).Create(first.Config, first.InitialState))
            {
                foreach (var step in first.Steps)
                {
                    module.Forward(step.Training, step.Input);
                }

                ours = module.ReadState();
            }

            ModuleState viaTorch;
            using (var torchModule = Runs.Torch.Create(first.Config, ours))
            {
                viaTorch = torchModule.ReadState();
            }

            ModuleState back;
            using (var module = Runs.UnderTestFor(spec).Create(first.Config, viaTorch))
            {
                back = module.ReadState();
            }

            string context = $"\ncase {first}";
            AssertExact(ours, viaTorch, "C# -> TorchSharp" + context);
            AssertExact(ours, back, "C# -> TorchSharp -> C#" + context);

            var more = spec.Steps.Select(s => s with { Training = true, Batch = s.ValuesPerChannel == 1 ? 2 : s.Batch, Data = s.Data with { Seed = s.Data.Seed + 101 } }).ToArray();
            var second = (spec with { Steps = more }).ToCase("state dict: after round trip") with { InitialState = back };
            Runs.AssertClean(TraceComparer.Compare(second, CaseRunner.Run(Runs.Torch, second), CaseRunner.Run(Runs.UnderTestFor(spec), second)), "steps after the round trip");
        });

    private static void AssertExact(ModuleState expected, ModuleState actual, string what)
    {
        void Same(string name, double[]? x, double[]? y) =>
            Assert.True(x is null ? y is null : y is not null && x.AsSpan().SequenceEqual(y), $"[state dict] {name} not bit-identical after {what}");
        Same("weight", expected.Weight, actual.Weight);
        Same("bias", expected.Bias, actual.Bias);
        Same("running_mean", expected.RunningMean, actual.RunningMean);
        Same("running_var", expected.RunningVar, actual.RunningVar);
        Assert.True(expected.NumBatchesTracked == actual.NumBatchesTracked, $"[state dict] num_batches_tracked {expected.NumBatchesTracked} -> {actual.NumBatchesTracked} after {what}");
    }
}
