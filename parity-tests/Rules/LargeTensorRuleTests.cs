using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Rules;

/// <summary>
/// Tensors of 8 MiB and more take the library's streaming paths (non-temporal stores in the float
/// backward); the small shapes elsewhere never reach them. One case of 2.1 M floats, forward and
/// backward in training, checked against the float64 truth and for bit-identity across thread counts.
/// </summary>
public sealed class LargeTensorRuleTests
{
    private static readonly int[] Shape = [4, 3, 417, 421]; // 2.1 M floats = 8.4 MiB; odd sizes for alignment tails

    private static BatchNormCase Case()
    {
        var config = new ModuleConfig(ModuleKind.BatchNorm2d, 3);
        int length = Shape.Aggregate(1, (a, b) => a * b);
        var input = new CaseTensor(Shape, RuleAssert.Normal<float>(41, length, mean: 2, std: 3));
        var gradOutput = new CaseTensor(Shape, RuleAssert.Normal<float>(42, length));
        return new BatchNormCase("large training step", config,
            ModuleState.Defaults(config) with { Weight = [0.5, -1.25, 2], Bias = [0.1, 0, -0.3] },
            [new CaseStep(true, input, gradOutput)]);
    }

    [Fact]
    public void Large_forward_and_backward_match_the_float64_truth()
    {
        var batchNormCase = Case();
        var truth = CaseRunner.Run(new ReferenceBatchNorm(), batchNormCase);
        var library = CaseRunner.Run(new LibraryImplementation(), batchNormCase);
        var report = TraceComparer.Compare(batchNormCase, truth, library);
        Assert.True(report.Passed, report.Format());
    }

    [Fact]
    public void Large_forward_and_backward_are_bit_identical_for_one_and_two_threads()
    {
        var batchNormCase = Case();
        var one = CaseRunner.Run(new LibraryImplementation(threads: 1), batchNormCase).Steps[0];
        var two = CaseRunner.Run(new LibraryImplementation(threads: 2), batchNormCase).Steps[0];
        Assert.Equal(one.Output!.Data, two.Output!.Data);
        Assert.Equal(one.GradInput!.Data, two.GradInput!.Data);
        Assert.Equal(one.GradWeight, two.GradWeight);
        Assert.Equal(one.GradBias, two.GradBias);
        Assert.Equal(one.RunningMean, two.RunningMean);
        Assert.Equal(one.RunningVar, two.RunningVar);
    }
}
