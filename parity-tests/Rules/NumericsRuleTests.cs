using System.Numerics;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using BnParity.Harness.Oracle;
using Xunit.Abstractions;
using static BnParity.ParityTests.Rules.RuleAssert;
using static TorchSharp.torch;

namespace BnParity.ParityTests.Rules;

/// <summary>Accuracy rules that need TorchSharp as a yardstick: ill-conditioned data and the worked example.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class NumericsRuleTests(ITestOutputHelper output)
{
    private static CaseTensor Case(DenseTensor<float> x) => new(x.Shape, ToDouble(x.Data));

    [Fact]
    public void Ill_conditioned_float_data_gives_the_batch_variance_within_a_few_ulps_of_the_float64_truth()
    {
        // 1e4 + 0.01·N(0,1): |mean|/std = 1e6; E[x²] − E[x]² in float would lose every digit.
        var x = RandomTensor<float>(77, [4, 3, 16, 16], mean: 1e4, std: 0.01);
        var m = new BatchNorm2d<float>(3, momentum: 1.0); // running stats = the batch's own statistics
        m.Forward(x);
        var (mean, variance, _, n) = Stats(x);
        for (int c = 0; c < 3; c++)
        {
            double unbiased = variance[c] * n / (n - 1);
            double ulps = Tolerance.UlpError(unbiased, m.RunningVar![c], ElementType.Float32);
            Assert.True(ulps <= 2, $"running_var[{c}] = {m.RunningVar[c]:R}, truth {unbiased:R}: {ulps} ulps");
            Assert.True(Tolerance.UlpError(mean[c], m.RunningMean![c], ElementType.Float32) <= 1, $"running_mean[{c}]");
        }
    }

    [Theory]
    [InlineData(MemoryLayout.ChannelsFirst)]
    [InlineData(MemoryLayout.ChannelsLast)]
    public void Ill_conditioned_float_output_is_no_further_from_the_float64_truth_than_TorchSharp_in_layout(MemoryLayout layout)
    {
        var x = RandomTensor<float>(78, [4, 3, 16, 16], mean: 1e4, std: 0.01);
        var config = new ModuleConfig(ModuleKind.BatchNorm2d, 3, DType: ElementType.Float32);
        var batchNormCase = new BatchNormCase("ill-conditioned", config, ModuleState.Defaults(config), [new CaseStep(true, Case(x), Layout: layout)]);
        double[] truth = CaseRunner.Run(new ReferenceBatchNorm(), batchNormCase).Steps[0].Output!.Data;
        double[] torch = CaseRunner.Run(new TorchSharpImplementation(), batchNormCase).Steps[0].Output!.Data;
        double[] library = CaseRunner.Run(new LibraryImplementation(), batchNormCase).Steps[0].Output!.Data;
        double torchError = 0, libraryError = 0;
        for (int i = 0; i < truth.Length; i++)
        {
            torchError = Math.Max(torchError, Math.Abs(torch[i] - truth[i]));
            libraryError = Math.Max(libraryError, Math.Abs(library[i] - truth[i]));
        }

        output.WriteLine($"{layout}: max |y - truth|: library {libraryError:R}, TorchSharp {torchError:R}");
        Assert.True(libraryError <= torchError, $"{layout}, default path: max |y − truth|: library {libraryError:R} > TorchSharp {torchError:R}");
    }

    /// <summary>
    /// x1 ~ N(0,1), x2 ~ N(1,4), each 1×3×255×255 from libtorch's seeded generator, momentum 0.1:
    /// running_mean = 0.09·m1 + 0.1·m2 ≈ 0.1, running_var = 0.81 + 0.09·v1 + 0.1·v2 ≈ 1.3. With n = 65025,
    /// σ(running_mean) ≈ 8.6e-4 and σ(running_var) ≈ 2.3e-3; the bounds are 6σ.
    /// </summary>
    [Fact]
    public void Worked_example_through_BatchNorm2d_gives_running_mean_0_1_and_running_var_1_3_like_TorchSharp()
    {
        TorchSharpOracle.Start(seed: 20260101);
        CaseTensor x1, x2;
        using (TorchSharpOracle.Scope())
        {
            x1 = new CaseTensor([1, 3, 255, 255], TorchSharpImplementation.ToArray(randn(1, 3, 255, 255)));
            x2 = new CaseTensor([1, 3, 255, 255], TorchSharpImplementation.ToArray((randn(1, 3, 255, 255) * 2) + 1));
        }

        var config = new ModuleConfig(ModuleKind.BatchNorm2d, 3, Momentum: 0.1, DType: ElementType.Float32);
        var batchNormCase = new BatchNormCase("worked example", config, ModuleState.Defaults(config), [new CaseStep(true, x1), new CaseStep(true, x2)]);

        var module = new BatchNorm2d<float>(3, momentum: 0.1);
        var outcomes = new List<StepOutcome>();
        var before = new List<ModuleState>();
        foreach (var step in batchNormCase.Steps)
        {
            before.Add(new ModuleState(ToDouble(module.Weight!), ToDouble(module.Bias!), ToDouble(module.RunningMean!), ToDouble(module.RunningVar!), module.NumBatchesTracked));
            var y = module.Forward(Tensor<float>(step.Input.Data, step.Input.Shape));
            outcomes.Add(new StepOutcome
            {
                Output = new CaseTensor(y.Shape, ToDouble(y.Data)),
                RunningMean = ToDouble(module.RunningMean!),
                RunningVar = ToDouble(module.RunningVar!),
                NumBatchesTracked = module.NumBatchesTracked,
            });
        }

        Assert.Equal(2L, module.NumBatchesTracked);
        for (int c = 0; c < 3; c++)
        {
            Assert.InRange(module.RunningMean![c], 0.1f - 5.2e-3f, 0.1f + 5.2e-3f);
            Assert.InRange(module.RunningVar![c], 1.3f - 1.4e-2f, 1.3f + 1.4e-2f);
        }

        var torchTrace = CaseRunner.Run(new TorchSharpImplementation(), batchNormCase);
        var report = TraceComparer.Compare(batchNormCase, torchTrace, new CaseTrace("BnParity BatchNorm2d<float>", outcomes, before));
        Assert.True(report.Passed, report.Format());
    }

    [Theory]
    [InlineData(MemoryLayout.ChannelsFirst)]
    [InlineData(MemoryLayout.ChannelsLast)]
    public void NaN_and_Inf_inputs_propagate_like_TorchSharp_in_layout(MemoryLayout layout)
    {
        var config = new ModuleConfig(ModuleKind.BatchNorm2d, 4, DType: ElementType.Float32);
        double[] data = RuleAssert.Normal<float>(90, 2 * 4 * 3);
        data[1] = double.NaN;                 // n 0, c 0
        data[(1 * 12) + (2 * 3)] = double.PositiveInfinity; // n 1, c 2
        data[(0 * 12) + (3 * 3) + 2] = double.NegativeInfinity; // n 0, c 3
        var x = new CaseTensor([2, 4, 3, 1], data);
        var finite = new CaseTensor([2, 4, 3, 1], RuleAssert.Normal<float>(91, 24));
        // Step 2 (eval) normalises finite data with the NaN/Inf running stats the first step left behind.
        var batchNormCase = new BatchNormCase("non-finite", config, ModuleState.Defaults(config),
            [new CaseStep(true, x, Layout: layout), new CaseStep(false, finite, Layout: layout)]);
        var report = TraceComparer.Compare(batchNormCase, CaseRunner.Run(new TorchSharpImplementation(), batchNormCase), CaseRunner.Run(new LibraryImplementation(), batchNormCase));
        Assert.True(report.Passed, report.Format());
    }
}
