using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Generators;
using BnParity.Harness.Implementations;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace BnParity.Testing;

/// <summary>
/// The FsCheck parity properties against the live oracle, TorchSharp's BatchNorm (libtorch), after every step:
/// generated module configurations, shapes, data (ill-conditioned, constant channels, ties), train/eval sequences,
/// loaded state, both layouts, float and double. A failure is shrunk and reported with the case, the step, the tensor
/// and the index, and FsCheck's seed (<c>BNPARITY_REPLAY="seed,gamma"</c> replays it; <c>BNPARITY_MAX_TEST</c> sets the
/// cases per property, default <see cref="BnPropertyAttribute.DefaultMaxTest"/>). Inherit it and return your
/// implementation, as for <see cref="RecordedPyTorchCasesSuite"/>. Needs TorchSharp to load: on Debian 12 / Ubuntu 22.04
/// the BnParity.TorchSharp.NativeFix package (a dependency of this one) patches it at build time.
/// </summary>
[Collection(CollectionName)]
public abstract class TorchSharpParitySuite
{
    /// <summary>The xunit collection the TorchSharp suites share: the oracle is process-wide, so they run one at a time.</summary>
    public const string CollectionName = "BnParity TorchSharp oracle";

    private static readonly Lazy<TorchSharpImplementation> s_torch = new(() => new TorchSharpImplementation());

    /// <summary>The implementation compared with TorchSharp.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    private static readonly CaseOptions Any = new();

    [BnProperty]
    public Property Outputs_and_running_statistics_match_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(Any), spec => ParityAssert.Clean(Compare(spec, "output and buffer parity"), "output and buffer parity"));

    [BnProperty]
    public Property Gradients_match_TorchSharp_autograd() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { Gradients = true, MaxSteps = 3 }), spec => ParityAssert.Clean(Compare(spec, "gradient parity"), "gradient parity"));

    [BnProperty]
    public Property Float64_matches_TorchSharp_at_float64_tolerance() =>
        Prop.ForAll(CaseGenerators.Cases(Any with { DTypes = [ElementType.Float64] }), spec => ParityAssert.Clean(Compare(spec, "float64 parity"), "float64 parity"));

    [BnProperty]
    public Property Channels_last_input_matches_TorchSharp_channels_last() =>
        Prop.ForAll(
            CaseGenerators.Cases(Any with { Modules = [ModuleKind.BatchNorm2d, ModuleKind.BatchNorm3d], Layout = MemoryLayout.ChannelsLast, Gradients = true, MaxSteps = 3 }),
            spec => ParityAssert.Clean(Compare(spec, "channels-last parity"), "channels-last parity"));

    /// <summary>Cases with one value per channel are left out: TorchSharp 0.107 writes NaN where PyTorch raises (the
    /// recorded cases hold PyTorch's error).</summary>
    private ComparisonReport Compare(CaseSpec spec, string name) => TorchSharpComparison.Run(s_torch.Value, Implementation, spec, name);
}

/// <summary>
/// The InstanceNorm1d/2d/3d parity properties against TorchSharp, as <see cref="TorchSharpParitySuite"/>: outputs,
/// running statistics and gradients after every step, across ranks, dtypes, layouts, affine, tracking, momentum (not
/// null), eps and loaded state (<see cref="ParityOptions.InstanceNorm"/> says which ledger rows it keeps off).
/// </summary>
[Collection(TorchSharpParitySuite.CollectionName)]
public abstract class TorchSharpInstanceNormParitySuite
{
    private static readonly Lazy<TorchSharpImplementation> s_torch = new(() => new TorchSharpImplementation());

    /// <summary>The implementation compared with TorchSharp.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    [BnProperty]
    public Property InstanceNorm_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(ParityOptions.InstanceNorm with { Gradients = true }), spec =>
            ParityAssert.Clean(TorchSharpComparison.Run(s_torch.Value, Implementation, spec, "InstanceNorm parity"), "InstanceNorm parity"));
}

/// <summary>
/// The GroupNorm parity properties against TorchSharp, as <see cref="TorchSharpParitySuite"/>: outputs and gradients
/// after every step, across groups (1 to C), ranks, dtypes, layouts, affine, eps and loaded weights
/// (<see cref="ParityOptions.GroupNorm"/> says which ledger rows it keeps off).
/// </summary>
[Collection(TorchSharpParitySuite.CollectionName)]
public abstract class TorchSharpGroupNormParitySuite
{
    private static readonly Lazy<TorchSharpImplementation> s_torch = new(() => new TorchSharpImplementation());

    /// <summary>The implementation compared with TorchSharp.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    [BnProperty]
    public Property GroupNorm_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(ParityOptions.GroupNorm with { Gradients = true }), spec =>
            ParityAssert.Clean(TorchSharpComparison.Run(s_torch.Value, Implementation, spec, "GroupNorm parity"), "GroupNorm parity"));
}

/// <summary>
/// The LayerNorm parity property against TorchSharp's <c>nn.LayerNorm</c> (libtorch 2.10's layer_norm), as
/// <see cref="TorchSharpParitySuite"/>: outputs and gradients after every step across normalized_shape (1–3 dimensions,
/// widths 1 to 8192), leading dimensions, dtypes, eps, elementwise affine, bias, loaded weights and offset data
/// (<see cref="ParityOptions.LayerNorm"/>).
/// </summary>
[Collection(TorchSharpParitySuite.CollectionName)]
public abstract class TorchSharpLayerNormParitySuite
{
    private static readonly Lazy<TorchSharpImplementation> s_torch = new(() => new TorchSharpImplementation());

    /// <summary>The implementation compared with TorchSharp.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    [BnProperty]
    public Property LayerNorm_matches_TorchSharp_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(ParityOptions.LayerNorm with { Gradients = true }), spec =>
            ParityAssert.Clean(TorchSharpComparison.Run(s_torch.Value, Implementation, spec, "LayerNorm parity"), "LayerNorm parity"));
}

/// <summary>
/// The RMSNorm parity property against PyTorch's RMSNorm composite built from TorchSharp ops
/// (<see cref="TorchSharpRmsNormComposite"/>: TorchSharp 0.107 has no RMSNorm), as <see cref="TorchSharpLayerNormParitySuite"/>,
/// eps None included (<see cref="ParityOptions.RMSNorm"/>).
/// </summary>
[Collection(TorchSharpParitySuite.CollectionName)]
public abstract class TorchSharpRMSNormParitySuite
{
    private static readonly Lazy<TorchSharpImplementation> s_torch = new(() => new TorchSharpImplementation());

    /// <summary>The implementation compared with TorchSharp.</summary>
    protected abstract IBatchNormUnderTest Implementation { get; }

    [BnProperty]
    public Property RMSNorm_matches_the_TorchSharp_composite_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(ParityOptions.RMSNorm with { Gradients = true }), spec =>
            ParityAssert.Clean(TorchSharpComparison.Run(s_torch.Value, Implementation, spec, "RMSNorm parity"), "RMSNorm parity"));
}

/// <summary>The one comparison the TorchSharp suites share.</summary>
internal static class TorchSharpComparison
{
    public static ComparisonReport Run(IBatchNormUnderTest torch, IBatchNormUnderTest implementation, CaseSpec spec, string name)
    {
        var normCase = spec.ToCase(name);
        return TraceComparer.Compare(normCase, CaseRunner.Run(torch, normCase), CaseRunner.Run(implementation, normCase));
    }
}
