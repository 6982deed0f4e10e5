using BnParity.Testing;
using BnParity.Harness.Generators;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.PropertyTests.Properties;

/// <summary>Gradient parity with TorchSharp autograd: dx, dW, dB for train and eval, affine on/off, tracking on/off.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class GradientProperties
{
    private static readonly CaseOptions Base = new() { Gradients = true, MaxSteps = 3, MaxElements = 8_000 };

    private static void Check(CaseSpec spec, string name) =>
        Runs.AssertClean(Runs.AgainstTorchSharp(spec, name), name);

    [BnProperty]
    public Property Training_gradients_match_TorchSharp() =>
        Prop.ForAll(CaseGenerators.Cases(Base with { Training = true }), spec => Check(spec, "train gradients"));

    [BnProperty]
    public Property Eval_gradients_match_TorchSharp() =>
        Prop.ForAll(CaseGenerators.Cases(Base with { Training = false }), spec => Check(spec, "eval gradients"));

    [BnProperty]
    public Property Gradients_without_affine_match_TorchSharp_in_mixed_modes() =>
        Prop.ForAll(CaseGenerators.Cases(Base with { Affine = false }), spec => Check(spec, "non-affine gradients"));
}
