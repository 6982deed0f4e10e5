using BnParity.Testing;
using BnParity.Harness.Cases;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>
/// The implementation under test against TorchSharp, after every step, across the configuration
/// space (module kind, dtype, shapes, momentum incl. None and out-of-range, eps, affine, tracking,
/// loaded state, train/eval sequences, ill-conditioned data). Steps with one value per channel are
/// left to <see cref="LedgerProperties"/>: there TorchSharp writes NaN instead of raising.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class ParityProperties
{
    internal static readonly CaseOptions Any = new();

    [BnProperty]
    public Property Output_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(Any), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "output parity"), "output", "output"));

    [BnProperty]
    public Property Running_mean_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { Track = true }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "running_mean parity"), "running_mean", "running_mean"));

    [BnProperty]
    public Property Running_var_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { Track = true }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "running_var parity"), "running_var", "running_var"));

    [BnProperty]
    public Property Num_batches_tracked_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { Track = true, MaxElements = 2_000 }), spec =>
        {
            var batchNormCase = spec.ToCase("num_batches_tracked parity");
            var expected = CaseRunner.Run(Runs.Torch, batchNormCase);
            var actual = CaseRunner.Run(Runs.UnderTestFor(spec), batchNormCase);
            Assert.Equal(expected.Steps.Count, actual.Steps.Count);
            for (int i = 0; i < expected.Steps.Count; i++)
            {
                Assert.True(expected.Steps[i].NumBatchesTracked == actual.Steps[i].NumBatchesTracked,
                    $"[num_batches_tracked] step {i + 1}: TorchSharp {expected.Steps[i].NumBatchesTracked}, {actual.Implementation} {actual.Steps[i].NumBatchesTracked}\ncase {batchNormCase}");
            }
        });

    /// <summary>Extreme inputs — deviations whose squares overflow or underflow float, infinities, constant channels
    /// with eps = 0 — give PyTorch's outputs and buffers on every path and thread count (the library and TorchSharp
    /// agree with PyTorch 1.13 on the cases in the README).</summary>
    [BnProperty]
    public Property Extreme_inputs_match_TorchSharp_on_every_path() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { ExtremeData = true, MaxSteps = 3 }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "extreme inputs"), "extreme inputs", "output", "running_mean", "running_var"));

    [BnProperty]
    public Property Float64_matches_TorchSharp_at_float64_tolerance() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { DTypes = new[] { ElementType.Float64 } }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "float64 parity"), "float64 parity"));
}
