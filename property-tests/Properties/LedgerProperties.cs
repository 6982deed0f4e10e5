using BnParity.Testing;
using BnParity.Harness.Cases;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>
/// Ledger entry: one value per channel in a batch-statistics step. PyTorch's Python module raises
/// "Expected more than 1 value per channel when training"; the C# library raises the same and
/// changes nothing; TorchSharp 0.107 does not raise — it bumps num_batches_tracked and writes NaN
/// into running_var (unbiased variance 0·1/0). Both halves are asserted, so a change on either side shows.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class LedgerProperties
{
    public const string ExpectedError = "Expected more than 1 value per channel when training";

    [BnProperty]
    public Property One_value_per_channel_library_throws_and_changes_nothing_while_TorchSharp_writes_NaN() =>
        Prop.ForAll(CaseGenerators.Cases(new CaseOptions { MaxSteps = 3, MaxElements = 4_000 }), spec =>
        {
            var single = new StepSpec(true, 1, spec.Steps[0].Spatial.Select(_ => 1).ToArray(), spec.Steps[0].Data with { Seed = spec.Steps[0].Data.Seed + 3 });
            var batchNormCase = (spec with { Steps = spec.Steps.Append(single).ToArray() }).ToCase("one value per channel");
            int last = batchNormCase.Steps.Count - 1;
            string context = $"\ncase {batchNormCase}";

            var ours = CaseRunner.Run(Runs.UnderTestFor(spec), batchNormCase);
            Assert.True(ours.Steps.Count == last + 1, $"[ledger: library] an earlier step raised: {ours.Steps[^1].Error}{context}");
            var error = ours.Steps[last].Error;
            Assert.True(error is not null && error.StartsWith(ExpectedError, StringComparison.Ordinal),
                $"[ledger: library] expected the error \"{ExpectedError}...\", got {(error is null ? "an output" : "\"" + error + "\"")}{context}");
            var after = ours.Steps[last];
            SemanticProperties.AssertSameState(ours.StateBefore[last], new ModuleState(null, null, after.RunningMean, after.RunningVar, after.NumBatchesTracked), "the failed call" + context);

            var torch = CaseRunner.Run(Runs.Torch, batchNormCase);
            Assert.True(torch.Steps.Count == last + 1 && torch.Steps[last].Error is null,
                $"[ledger: TorchSharp] TorchSharp now raises on one value per channel (\"{torch.Steps[^1].Error}\"): update the ledger{context}");
            var torchAfter = torch.Steps[last];
            Assert.True(torchAfter.Output!.Data.All(double.IsFinite), "[ledger: TorchSharp] output not finite" + context);
            if (spec.Track)
            {
                Assert.True(torchAfter.RunningVar!.All(double.IsNaN), "[ledger: TorchSharp] running_var is not all NaN after a one-value training step" + context);
                Assert.True(torchAfter.NumBatchesTracked == torch.StateBefore[last].NumBatchesTracked + 1, "[ledger: TorchSharp] num_batches_tracked not incremented" + context);
            }
        });
}
