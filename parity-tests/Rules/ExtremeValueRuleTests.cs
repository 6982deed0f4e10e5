using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Rules;

/// <summary>
/// The extreme-value probes of issue 20 against TorchSharp (libtorch 2.10), in both layouts: every output and gradient
/// is the same kind of number as libtorch's (NaN for NaN, the same infinity, finite for finite) and within the tolerance
/// policy. The kind is asserted on its own because the policy calls a channel of ±3e38 ill-posed and accepts any value
/// there. <c>Library/ExtremeValueTests</c> runs the same inputs on every path and thread count.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class ExtremeValueRuleTests
{
    [Theory]
    [InlineData(MemoryLayout.ChannelsFirst)]
    [InlineData(MemoryLayout.ChannelsLast)]
    public void An_infinite_running_mean_gives_libtorchs_infinities_in_layout(MemoryLayout layout)
    {
        var config = new ModuleConfig(ModuleKind.BatchNorm2d, 3, DType: ElementType.Float32);
        var state = new ModuleState([1.5, 0.75, -1.25], [0.25, -0.5, 0.125], [double.PositiveInfinity, double.NegativeInfinity, 0.5], [0.8, 1.7, 2.5], 0);
        int[] shape = [4, 3, 5, 7];
        double[] x = Normal<float>(11, 420, mean: 1, std: 2);
        double[] dy = Normal<float>(12, 420).Select(v => Math.Abs(v) + 0.125).ToArray();
        var batchNormCase = new BatchNormCase("running_mean ±inf", config, state,
            [new CaseStep(false, new CaseTensor(shape, x), new CaseTensor(shape, dy), Layout: layout)]);
        AssertLikeLibTorch(batchNormCase);
    }

    [Theory]
    [InlineData(MemoryLayout.ChannelsFirst, 16384)]
    [InlineData(MemoryLayout.ChannelsFirst, 16385)]
    [InlineData(MemoryLayout.ChannelsLast, 16384)]
    [InlineData(MemoryLayout.ChannelsLast, 16385)]
    public void A_dot_product_beyond_float_range_gives_libtorchs_NaN_gradients_in_layout(MemoryLayout layout, int channels)
    {
        var config = new ModuleConfig(ModuleKind.BatchNorm2d, channels, DType: ElementType.Float32);
        int[] shape = [4, channels, 2, 2];
        int length = 16 * channels;
        double[] x = Normal<float>(21, length);
        double[] dy = Normal<float>(22, length);
        for (int n = 0, k = 0; n < 4; n++)
        {
            for (int s = 0; s < 4; s++, k++)
            {
                // Channel 0 alternates ±3e38 (μ = 0) with dy = 1.5·sign(x): Σ(x − μ)·dy = 16·4.5e38.
                double sign = k % 2 == 0 ? 1 : -1;
                x[(n * channels * 4) + s] = sign * 3e38;
                dy[(n * channels * 4) + s] = sign * 1.5;
            }
        }

        var batchNormCase = new BatchNormCase("channel 0 of ±3e38", config, ModuleState.Defaults(config),
            [new CaseStep(true, new CaseTensor(shape, x), new CaseTensor(shape, dy), Layout: layout)]);
        AssertLikeLibTorch(batchNormCase);
    }

    private static void AssertLikeLibTorch(BatchNormCase batchNormCase)
    {
        var torch = CaseRunner.Run(new TorchSharpImplementation(), batchNormCase);
        var library = CaseRunner.Run(new LibraryImplementation(), batchNormCase);
        for (int step = 0; step < torch.Steps.Count; step++)
        {
            StepOutcome expected = torch.Steps[step], actual = library.Steps[step];
            string where = $"{batchNormCase.Name}, step {step + 1} ({batchNormCase.Steps[step]})";
            SameKinds(expected.Output!.Data, actual.Output!.Data, where + " output");
            SameKinds(expected.GradInput!.Data, actual.GradInput!.Data, where + " grad_input");
            SameKinds(expected.GradWeight!, actual.GradWeight!, where + " grad_weight");
            SameKinds(expected.GradBias!, actual.GradBias!, where + " grad_bias");
            SameKinds(expected.RunningMean!, actual.RunningMean!, where + " running_mean");
            SameKinds(expected.RunningVar!, actual.RunningVar!, where + " running_var");
        }

        var report = TraceComparer.Compare(batchNormCase, torch, library);
        Assert.True(report.Passed, report.Format());
    }

    private static void SameKinds(double[] expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            bool same = double.IsNaN(e) ? double.IsNaN(a) : double.IsInfinity(e) ? e.Equals(a) : double.IsFinite(a);
            Assert.True(same, $"{what}[{i}] (logical order): libtorch {e}, BnParity {a}");
        }
    }
}
