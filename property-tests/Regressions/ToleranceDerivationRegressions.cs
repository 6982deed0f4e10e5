using BnParity.Harness.Cases;
using BnParity.PropertyTests.Generators;

namespace BnParity.PropertyTests.Regressions;

/// <summary>
/// Shrunk counterexamples that exposed gaps in the tolerance derivation (not library bugs); each
/// is now covered by a derived term in ToleranceBudgets and must keep passing against TorchSharp.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class ToleranceDerivationRegressions
{
    private static StepSpec Train(int batch, int[] spatial, DataRecipe data, DataRecipe? gradient = null) => new(true, batch, spatial, data, gradient);

    public static TheoryData<string> Names() => new() { "float64 constant channel output", "float64 constant channel running_var", "float32 momentum 0.999", "float64 offset gradients", "float64 constant channel grad_weight" };

    private static CaseSpec Spec(string name) => name switch
    {
        // The float64 batch mean is a sum in T (√n error); it reaches outputs through |α| even where x − μ = 0.
        "float64 constant channel output" => new CaseSpec(ModuleKind.BatchNorm3d, ElementType.Float64, 1, 1e-5, 0.1, true, true, null,
            new[] { Train(2, new[] { 2, 8, 6 }, new DataRecipe(DataKind.ConstantChannel, 0)) }),
        // libtorch's variance of a constant float64 channel is δ² (mean off by δ), not 0.
        "float64 constant channel running_var" => new CaseSpec(ModuleKind.BatchNorm2d, ElementType.Float64, 1, 1e-5, null, true, true, null,
            new[] { Train(5, new[] { 1, 15 }, new DataRecipe(DataKind.ConstantChannel, 0)) }),
        // libtorch blends with f rounded to float: r·(1 − 0.999f) is 1.3e-5 (relative) off r·(1 − 0.999).
        "float32 momentum 0.999" => new CaseSpec(ModuleKind.BatchNorm1d, ElementType.Float32, 3, 1e-5, 0.999, true, true, null,
            new[] { Train(2, Array.Empty<int>(), new DataRecipe(DataKind.ConstantChannel, 0)), Train(2, Array.Empty<int>(), new DataRecipe(DataKind.ConstantChannel, 101)) }),
        // The float64 mean shift (√n) enters Σ(x − μ)·g through Σg.
        "float64 offset gradients" => new CaseSpec(ModuleKind.BatchNorm3d, ElementType.Float64, 12, 1e-5, 0.1, false, true, null,
            new[] { Train(4, new[] { 14, 1, 11 }, new DataRecipe(DataKind.OffsetScale, 699, -173, 0.141), new DataRecipe(DataKind.OffsetScale, 0, -855, 1)) }),
        _ => new CaseSpec(ModuleKind.BatchNorm2d, ElementType.Float64, 1, 1e-5, 0.1, true, true, null,
            new[] { Train(2, new[] { 3, 13 }, new DataRecipe(DataKind.ConstantChannel, 0), new DataRecipe(DataKind.OffsetScale, 0, 1.68, 0.0135)) }),
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void Shrunk_counterexample_passes_against_TorchSharp(string name) =>
        Runs.AssertClean(Runs.AgainstTorchSharp(Spec(name).ToCase(name)), name);
}
