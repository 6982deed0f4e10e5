using BnParity.Testing;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>
/// InstanceNorm1d/2d/3d and GroupNorm across their configuration space — ranks (GroupNorm from (N, C) to 5-D), groups
/// (1, C and between), channel counts, momentum (not null for InstanceNorm: a ledger row), eps, affine, tracking,
/// loaded state, train/eval sequences, both dtypes, both layouts, every library path and thread count — against
/// TorchSharp and against the float64 truth, with the tolerance derived per set. Left to the recorded cases and the
/// ledger: single-value steps and empty batches (PyTorch's errors and NaN buffers, which TorchSharp does not match).
/// InstanceNorm meets TorchSharp on channels-last steps without a spatial dimension of 1 (libtorch's gradients are wrong
/// there, a ledger row). GroupNorm meets TorchSharp on centred data only: libtorch's GroupNorm computes the variance in one pass, which
/// cancels on offset data (a ledger row); there the float64 truth is the oracle, and InstanceNorm (libtorch's
/// batch_norm, two passes) meets TorchSharp on extreme data too.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class GroupAndInstanceNormProperties
{
    internal static readonly CaseOptions InstanceNorms = ParityOptions.InstanceNorm;

    internal static readonly CaseOptions GroupNorms = ParityOptions.GroupNorm;

    [BnProperty]
    public Property InstanceNorm_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(InstanceNorms with { Gradients = true }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "InstanceNorm parity"), "InstanceNorm parity"));

    [BnProperty]
    public Property GroupNorm_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(GroupNorms with { Gradients = true }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "GroupNorm parity"), "GroupNorm parity"));

    [BnProperty]
    public Property InstanceNorm_on_extreme_inputs_matches_TorchSharp() =>
        Prop.ForAll(CaseGenerators.Cases(InstanceNorms with { ExtremeData = true, MaxSteps = 3 }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "extreme inputs"), "extreme inputs", "output", "running_mean", "running_var"));

    /// <summary>The float64 truth as the expected trace, within the derived budgets: float32 cases (for float64 data
    /// the double-precision truth is no more precise than the implementations, see AccuracyProperties).</summary>
    [BnProperty]
    public Property InstanceNorm_and_GroupNorm_float32_match_the_float64_truth() =>
        Prop.ForAll(CaseGenerators.Cases(new CaseOptions { Modules = [ModuleKind.InstanceNorm1d, ModuleKind.InstanceNorm2d, ModuleKind.InstanceNorm3d, ModuleKind.GroupNorm], DTypes = [ElementType.Float32], Gradients = true, AllowEmptyBatch = false }), spec =>
        {
            var normCase = spec.ToCase("float64 truth");
            var truth = CaseRunner.Run(new ReferenceBatchNorm(), normCase);
            var actual = CaseRunner.Run(Runs.UnderTestFor(spec), normCase);
            Runs.AssertClean(TraceComparer.Compare(normCase, truth, actual), "float64 truth");
        });
}
