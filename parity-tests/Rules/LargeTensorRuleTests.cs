using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Rules;

/// <summary>
/// Tensors of 8 MiB and more take the library's streaming paths (non-temporal stores in the float
/// backward); the small shapes elsewhere never reach them. One case of 2.1 M floats, forward and
/// backward in training, in both layouts, checked against the float64 truth and for bit-identity across thread counts.
/// </summary>
public sealed class LargeTensorRuleTests
{
    private static readonly int[] Shape = [4, 3, 417, 421]; // 2.1 M floats = 8.4 MiB; odd sizes for alignment tails

    private static BatchNormCase Case(MemoryLayout layout = MemoryLayout.ChannelsFirst)
    {
        var config = new ModuleConfig(ModuleKind.BatchNorm2d, 3);
        int length = Shape.Aggregate(1, (a, b) => a * b);
        var input = new CaseTensor(Shape, RuleAssert.Normal<float>(41, length, mean: 2, std: 3));
        var gradOutput = new CaseTensor(Shape, RuleAssert.Normal<float>(42, length));
        return new BatchNormCase("large training step", config,
            ModuleState.Defaults(config) with { Weight = [0.5, -1.25, 2], Bias = [0.1, 0, -0.3] },
            [new CaseStep(true, input, gradOutput, Layout: layout)]);
    }

    public static TheoryData<MemoryLayout> Layouts() => new() { MemoryLayout.ChannelsFirst, MemoryLayout.ChannelsLast };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Large_forward_and_backward_match_the_float64_truth_in_layout(MemoryLayout layout)
    {
        var batchNormCase = Case(layout);
        var truth = CaseRunner.Run(new ReferenceBatchNorm(), batchNormCase);
        var library = CaseRunner.Run(new LibraryImplementation(), batchNormCase);
        var report = TraceComparer.Compare(batchNormCase, truth, library);
        Assert.True(report.Passed, report.Format());
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Large_running_statistics_are_within_the_libraries_tight_accuracy_budget_in_layout(MemoryLayout layout)
    {
        // The float64-truth comparison above uses the parity budgets (tens of ulps for a 2.1 M-term reduction); the
        // library claims far better: a biased running_var (n instead of n − 1: 0.5 ppm here) must go red.
        var batchNormCase = Case(layout);
        var (truth, normalizations) = ReferenceBatchNorm.RunWithNormalizations(batchNormCase);
        var library = CaseRunner.Run(new LibraryImplementation(), batchNormCase).Steps[0];
        var norm = normalizations[0]!;
        double k = Tolerance.LibraryAccuracyRoundings * Tolerance.Float32UnitRoundoff;
        long n = norm.ValuesPerSet;
        for (int c = 0; c < 3; c++)
        {
            double f = norm.RunningFactor;
            double expectedMean = truth.Steps[0].RunningMean![c];
            double expectedVar = truth.Steps[0].RunningVar![c];
            double meanBudget = k * Tolerance.RunningMeanAccuracyScale(f, norm.Mean[c], 0, Math.Sqrt(norm.BatchVariance![c]));
            double varBudget = k * Tolerance.RunningVarAccuracyScale(f, norm.BatchVariance[c] * n / (n - 1), 1);
            Assert.True(Math.Abs(library.RunningMean![c] - expectedMean) <= meanBudget,
                $"default path, {layout} [4, 3, 417, 421]: running_mean[c={c}] {library.RunningMean[c]:R} vs truth {expectedMean:R} (budget {meanBudget:G3})");
            Assert.True(Math.Abs(library.RunningVar![c] - expectedVar) <= varBudget,
                $"default path, {layout} [4, 3, 417, 421]: running_var[c={c}] {library.RunningVar[c]:R} vs truth {expectedVar:R} (budget {varBudget:G3})");
        }
    }

    public static TheoryData<LibraryPath, MemoryLayout> Paths() => new()
    {
        { LibraryPath.Default, MemoryLayout.ChannelsFirst }, { LibraryPath.Channel, MemoryLayout.ChannelsFirst },
        { LibraryPath.Split, MemoryLayout.ChannelsFirst }, { LibraryPath.ChannelStreaming, MemoryLayout.ChannelsFirst },
        { LibraryPath.Default, MemoryLayout.ChannelsLast }, { LibraryPath.Row, MemoryLayout.ChannelsLast },
        { LibraryPath.Split, MemoryLayout.ChannelsLast }, { LibraryPath.ChannelStreaming, MemoryLayout.ChannelsLast },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public void Large_forward_and_backward_are_bit_identical_for_one_two_and_three_threads(LibraryPath path, MemoryLayout layout)
    {
        var batchNormCase = Case(layout);
        var one = CaseRunner.Run(new LibraryImplementation(new LibraryExecution(path, 1)), batchNormCase).Steps[0];
        foreach (int threads in new[] { 2, 3 })
        {
            var other = CaseRunner.Run(new LibraryImplementation(new LibraryExecution(path, threads)), batchNormCase).Steps[0];
            string where = $"path={path} {layout} [4, 3, 417, 421], threads={threads} vs threads=1";
            SameBits(one.Output!, other.Output!.Data, where, "output");
            SameBits(one.GradInput!, other.GradInput!.Data, where, "grad_input");
            SameBits(null, one.GradWeight!, other.GradWeight!, where, "grad_weight");
            SameBits(null, one.GradBias!, other.GradBias!, where, "grad_bias");
            SameBits(null, one.RunningMean!, other.RunningMean!, where, "running_mean");
            SameBits(null, one.RunningVar!, other.RunningVar!, where, "running_var");
        }
    }

    private static void SameBits(CaseTensor expected, double[] actual, string where, string tensor) =>
        SameBits(expected, expected.Data, actual, where, tensor);

    private static void SameBits(CaseTensor? shape, double[] expected, double[] actual, string where, string tensor)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.DoubleToInt64Bits(expected[i]) != BitConverter.DoubleToInt64Bits(actual[i]))
            {
                string index = shape is null ? $"[c={i}]" : $"[n={shape.Locate(i).N}, c={shape.Locate(i).C}, s={shape.Locate(i).Spatial}]";
                Assert.Fail($"{where}: {tensor}{index} {actual[i]:R} vs {expected[i]:R}");
            }
        }
    }
}
