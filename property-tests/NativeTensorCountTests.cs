using BnParity.Harness.Cases;
using BnParity.PropertyTests.Generators;
using FsCheck.Fluent;
using TorchSharp;

namespace BnParity.PropertyTests;

/// <summary>Dispose scopes work: a long TorchSharp run leaves the live native tensor count where it started.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class NativeTensorCountTests
{
    [Fact]
    public void Live_native_tensor_count_is_flat_after_a_long_run()
    {
        var specs = Gen.Sample(CaseGenerators.Spec(new CaseOptions { Gradients = true, MaxElements = 4_000 }), 30, 120);
        CaseRunner.Run(PropertyTests.Runs.Torch, specs[0].ToCase("warm-up"));
        long before = torch.Tensor.TotalCount;
        foreach (var spec in specs)
        {
            CaseRunner.Run(PropertyTests.Runs.Torch, spec.ToCase("leak check"));
        }

        long after = torch.Tensor.TotalCount;
        Assert.True(after == before, $"live TorchSharp tensors: {before} before {specs.Length} cases, {after} after");
    }
}
