using BnParity.Testing;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>
/// LayerNorm and RMSNorm across their configuration space — normalized_shape of 1–3 dimensions with widths from 1 to
/// 8192, 0–2 leading dimensions after N (and empty batches), eps (RMSNorm's None included), elementwise affine,
/// LayerNorm's bias, loaded weights, offset data up to 1e4 with scales down to 1e-3 (offsets up to 1e7·σ), constant sets,
/// ties, both dtypes, every library path setting and thread count (1, 2, 3, 5) — against TorchSharp (its LayerNorm, and
/// PyTorch's RMSNorm composite from TorchSharp ops) and against the float64 truth, outputs and gradients, with the
/// tolerance derived per set of D elements. Every failure names the layer, the library's path and thread count, the
/// step, tensor and [set, element], and FsCheck's replay seed.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class LayerNormAndRMSNormProperties
{
    private static readonly CaseOptions Both = new() { Modules = [ModuleKind.LayerNorm, ModuleKind.RMSNorm] };

    [BnProperty]
    public Property LayerNorm_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(ParityOptions.LayerNorm with { Gradients = true }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "LayerNorm parity"), "LayerNorm parity"));

    [BnProperty]
    public Property RMSNorm_matches_the_TorchSharp_composite_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(ParityOptions.RMSNorm with { Gradients = true }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "RMSNorm parity"), "RMSNorm parity"));

    /// <summary>The float64 truth as the expected trace within the derived budgets, float32 and float64, outputs and
    /// gradients.</summary>
    [BnProperty]
    public Property LayerNorm_and_RMSNorm_match_the_float64_truth() =>
        Prop.ForAll(CaseGenerators.Cases(Both with { Gradients = true }), spec =>
        {
            var normCase = spec.ToCase("float64 truth");
            var truth = CaseRunner.Run(new ReferenceBatchNorm(), normCase);
            var actual = CaseRunner.Run(Runs.UnderTestFor(spec), normCase);
            Runs.AssertClean(TraceComparer.Compare(normCase, truth, actual), "float64 truth");
        });

    /// <summary>The library's own float32 accuracy claim on these layers: every output within
    /// <see cref="Tolerance.LibraryAccuracyRoundings"/>·u of |y| + |b| + |w| of the float64 truth, whatever the set's
    /// condition |μ|/σ (libtorch's float statistics lose up to u·|μ|/σ there).</summary>
    [BnProperty]
    public Property Float32_outputs_are_within_a_few_ulps_of_the_float64_truth() =>
        Prop.ForAll(CaseGenerators.Cases(Both with { DTypes = [ElementType.Float32] }), AccuracyProperties.AssertWithinLibraryAccuracy);
}
