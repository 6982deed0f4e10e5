using BnParity.Harness.Cases;
using BnParity.Harness.Generators;
using BnParity.Harness.Implementations;

namespace BnParity.PropertyTests.Regressions;

/// <summary>
/// The InstanceNorm and GroupNorm properties' shrunk counterexamples: each exposed a gap in the tolerance derivation
/// or a library rule, is now covered (the term or rule named in its comment), and must keep passing against
/// TorchSharp. (The ones that exposed libtorch faults are ledger tests instead.)
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class GroupAndInstanceNormRegressions
{
    private static StepSpec Train(int batch, int[] spatial, DataRecipe data, DataRecipe? gradient = null, MemoryLayout layout = MemoryLayout.ChannelsFirst) =>
        new(true, batch, spatial, data, gradient, layout);

    public static TheoryData<string> Names() => new()
    {
        "float32 huge blends averaged over 261 instances", "float64 running_var averaged over 129 instances",
        "float64 grad_bias summed over 78 instances", "float32 GroupNorm channels-last grad_bias over 88 instances",
        "float32 eval re-averages the running_var",
    };

    private static CaseSpec Spec(string name) => name switch
    {
        // The per-instance blends (momentum −1.2, data ~1e18) are finite floats whose float sum overflows: libtorch's
        // running_var is −∞. The library now sums the rounded blends in T (NormBase.UpdateRunningStatistics).
        "float32 huge blends averaged over 261 instances" => new CaseSpec(ModuleKind.InstanceNorm1d, ElementType.Float32, 1, 1e-5, -1.2, true, true, null,
            [Train(261, [2], new DataRecipe(DataKind.Huge, 301, 0, 1e18))]),
        // libtorch averages N rounded blends with a sum in T: the (N − 1) + k roundings of ToleranceBudgets' averaging term.
        "float64 running_var averaged over 129 instances" => new CaseSpec(ModuleKind.InstanceNorm1d, ElementType.Float64, 14, 1e-5, 0, true, true, 1316,
            [Train(129, [2], new DataRecipe(DataKind.Normal, 0))]),
        // A channel's gradient is the sum over N instances of per-instance sums, added in T: the "across" term.
        "float64 grad_bias summed over 78 instances" => new CaseSpec(ModuleKind.InstanceNorm1d, ElementType.Float64, 1, 1e-5, 0.1, true, true, null,
            [Train(78, [2], new DataRecipe(DataKind.Normal, 0), new DataRecipe(DataKind.ConstantChannel, 0))]),
        "float32 GroupNorm channels-last grad_bias over 88 instances" => new CaseSpec(ModuleKind.GroupNorm, ElementType.Float32, 1, 1e-5, null, true, false, null,
            [Train(88, [1, 3], new DataRecipe(DataKind.Normal, 0), new DataRecipe(DataKind.ConstantChannel, 8854), MemoryLayout.ChannelsLast)], null, 1),
        // PyTorch writes the mean of N copies of the buffer back in eval (an ulp of drift): ToleranceBudgets' eval term.
        _ => new CaseSpec(ModuleKind.InstanceNorm2d, ElementType.Float32, 1, 1e-5, 0.1, true, true, 6560,
            [new StepSpec(false, 6, [1, 1], new DataRecipe(DataKind.Normal, 0))]),
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void Shrunk_counterexample_passes_against_TorchSharp(string name) =>
        Runs.AssertClean(Runs.AgainstTorchSharp(Spec(name), name), name);
}
