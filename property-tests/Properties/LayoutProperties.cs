using BnParity.Testing;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>
/// Channels-last input (BatchNorm2d/3d). The parity properties already draw the layout per step; these hold the
/// layout itself to account: the same data gives the same results in either layout, within the one tolerance policy
/// (the summation order differs, nothing else may), on the case's path and thread count.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class LayoutProperties
{
    private static readonly CaseOptions ChannelsLastOnly = new()
    {
        Modules = [ModuleKind.BatchNorm2d, ModuleKind.BatchNorm3d],
        Layout = MemoryLayout.ChannelsLast,
    };

    [BnProperty]
    public Property Channels_last_results_equal_channels_first_results_within_the_budget() =>
        Prop.ForAll(CaseGenerators.Cases(ChannelsLastOnly), spec =>
            Runs.AssertClean(SameDataBothLayouts(spec, "channels-last vs channels-first"), "channels-last vs channels-first"));

    [BnProperty]
    public Property Channels_last_gradients_equal_channels_first_gradients_within_the_budget() =>
        Prop.ForAll(CaseGenerators.Cases(ChannelsLastOnly with { Gradients = true, MaxSteps = 3 }), spec =>
            Runs.AssertClean(SameDataBothLayouts(spec, "channels-last vs channels-first gradients"), "channels-last vs channels-first gradients"));

    [BnProperty]
    public Property Channels_last_matches_TorchSharp_channels_last_after_every_step() =>
        Prop.ForAll(CaseGenerators.Cases(ChannelsLastOnly with { Gradients = true, MaxSteps = 3 }), spec =>
            Runs.AssertClean(Runs.AgainstTorchSharp(spec, "channels-last parity"), "channels-last parity"));

    /// <summary>The implementation under test on the spec's path, once with every step channels-first (expected) and
    /// once as drawn (channels-last), compared as two implementations are.</summary>
    private static ComparisonReport SameDataBothLayouts(CaseSpec spec, string name)
    {
        var channelsLast = spec.ToCase(name);
        var channelsFirst = channelsLast with { Steps = channelsLast.Steps.Select(s => s with { Layout = MemoryLayout.ChannelsFirst }).ToList() };
        var underTest = Runs.UnderTestFor(spec);
        var expected = CaseRunner.Run(underTest, channelsFirst);
        var actual = CaseRunner.Run(underTest, channelsLast);
        return TraceComparer.Compare(channelsLast, expected with { Implementation = expected.Implementation + " channels-first" }, actual);
    }
}
