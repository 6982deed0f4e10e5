using System.Globalization;
using BnParity.Harness.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace BnParity.ParityTests.Rules;

/// <summary>
/// LayerNorm and RMSNorm against the live oracle (issue 23's first oracle test; the recorded PyTorch cases and the
/// test-kit suites come next): TorchSharp's <c>nn.LayerNorm</c> (libtorch 2.10's layer_norm), and for RMSNorm — which
/// TorchSharp 0.107 does not have — PyTorch's composite definition built from TorchSharp tensor ops,
/// x · rsqrt(mean(x²) + eps) · weight, with autograd for the gradients. Output, input gradient and per-element weight
/// and bias gradients agree within a budget of the float32 roundings of both sides (each is also held to the float64
/// definition in LayerNormTests); a wrong formula (a lost mean term, an unbiased variance, eps outside the sqrt) is off
/// by orders of magnitude more.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class LayerNormOracleTests
{
    public LayerNormOracleTests()
    {
        TorchSharpOracle.Start(seed: 11);
    }

    [Theory]
    [InlineData("LayerNorm", new[] { 4, 6, 24 }, new[] { 24 })]
    [InlineData("LayerNorm", new[] { 3, 5, 7 }, new[] { 5, 7 })]
    [InlineData("LayerNorm", new[] { 2, 1000 }, new[] { 1000 })]
    [InlineData("RMSNorm", new[] { 4, 6, 24 }, new[] { 24 })]
    [InlineData("RMSNorm", new[] { 3, 5, 7 }, new[] { 5, 7 })]
    [InlineData("RMSNorm", new[] { 2, 1000 }, new[] { 1000 })]
    public void Float32_forward_and_backward_agree_with_TorchSharp(string layer, int[] shape, int[] normalized)
    {
        using var scope = TorchSharpOracle.Scope();
        int d = normalized.Aggregate(1, (a, b) => a * b);
        float[] x = RuleAssert.RandomTensor<float>(61, shape, mean: layer == "LayerNorm" ? 3 : 0, std: 2).Data;
        float[] dy = RuleAssert.RandomTensor<float>(62, shape).Data;
        float[] w = RuleAssert.RandomTensor<float>(63, [d], mean: 1, std: 0.5).Data;
        float[] b = RuleAssert.RandomTensor<float>(64, [d], std: 0.5).Data;
        long[] shapeL = shape.Select(v => (long)v).ToArray();
        long[] normalizedL = normalized.Select(v => (long)v).ToArray();

        NormBase<float> module = layer == "LayerNorm" ? new LayerNorm<float>(normalized) : new RMSNorm<float>(normalized, eps: 1e-5);
        w.CopyTo(module.Weight!, 0);
        if (module.Bias is { } moduleBias)
        {
            b.CopyTo(moduleBias, 0);
        }
        float[] y = new float[x.Length], dx = new float[x.Length], gw = new float[d], gb = new float[module.Bias is null ? 0 : d];
        module.Forward(x, shape, y);
        module.Backward(dy, shape, dx, gw, gb);

        var input = tensor(x, shapeL).requires_grad_(true);
        var weight = tensor(w, normalizedL).requires_grad_(true);
        var bias = tensor(b, normalizedL).requires_grad_(true);
        Tensor output;
        if (layer == "LayerNorm")
        {
            output = nn.functional.layer_norm(input, normalizedL, weight, bias, 1e-5);
        }
        else
        {
            long[] dims = Enumerable.Range(shape.Length - normalized.Length, normalized.Length).Select(v => (long)v).ToArray();
            output = input * rsqrt(input.pow(2).mean(dims, keepdim: true) + 1e-5) * weight;
        }

        output.backward([tensor(dy, shapeL)]);
        float[] yT = output.data<float>().ToArray(), dxT = input.grad!.data<float>().ToArray();
        float[] gwT = weight.grad!.data<float>().ToArray();
        string where = string.Create(CultureInfo.InvariantCulture, $"{layer}<float>([{string.Join(", ", normalized)}]) on [{string.Join(", ", shape)}], default path and threads, against TorchSharp 0.107 (libtorch 2.10){(layer == "RMSNorm" ? " composite" : "")}");
        double u = Math.ScaleB(1.0, -24);
        Agree(yT, y, 64 * u * 4, where + ": output");
        Agree(dxT, dx, 64 * u * Math.Sqrt(d) * 8, where + ": grad_input");
        Agree(gwT, gw, 64 * u * Math.Sqrt(x.Length / d) * 8, where + ": grad_weight");
        if (layer == "LayerNorm")
        {
            Agree(bias.grad!.data<float>().ToArray(), gb, 64 * u * Math.Sqrt(x.Length / d) * 8, where + ": grad_bias");
        }
    }

    /// <summary>Ledger row: TorchSharp 0.107 has no RMSNorm (module or functional), so RMSNorm's live oracle is PyTorch's
    /// composite definition built from TorchSharp ops. When an upgrade adds one, this goes red: compare with it and
    /// update docs/divergence-ledger.md.</summary>
    [Fact]
    public void TorchSharp_has_no_RMSNorm_so_the_oracle_is_the_composite()
    {
        var assembly = typeof(TorchSharp.Modules.LayerNorm).Assembly;
        Assert.Null(assembly.GetType("TorchSharp.Modules.RMSNorm"));
        Assert.DoesNotContain(typeof(nn).GetMethods(), m => m.Name.Equals("RMSNorm", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(typeof(nn.functional).GetMethods(), m => m.Name.Equals("rms_norm", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Every value within <paramref name="budget"/>·(1 + |expected|) of TorchSharp's.</summary>
    private static void Agree(float[] expected, float[] actual, double budget, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs((double)actual[i] - expected[i]);
            Assert.True(
                error <= budget * (1 + Math.Abs(expected[i])),
                string.Create(CultureInfo.InvariantCulture, $"{what}[{i}]: TorchSharp {expected[i]:R}, library {actual[i]:R}, |error| {error:R} > {budget * (1 + Math.Abs(expected[i])):R}"));
        }
    }
}
