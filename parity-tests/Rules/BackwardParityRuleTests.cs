using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Rules;

/// <summary>Gradients equal TorchSharp autograd's (dx, dW, dB) within the harness budgets, on a few shapes and modes.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class BackwardParityRuleTests
{
    private static CaseTensor Random(int seed, int[] shape, double mean = 0, double std = 1, ElementType type = ElementType.Float32)
    {
        int length = shape.Aggregate(1, (a, b) => a * b);
        double[] data = type == ElementType.Float32
            ? RuleAssert.Normal<float>(seed, length, mean, std)
            : RuleAssert.Normal<double>(seed, length, mean, std);
        return new CaseTensor(shape, data);
    }

    /// <summary>Every case channels-first, and the BatchNorm2d/3d ones channels-last as well.</summary>
    public static TheoryData<string, MemoryLayout> Cases()
    {
        var data = new TheoryData<string, MemoryLayout>();
        foreach (var batchNormCase in CaseList())
        {
            data.Add(batchNormCase.Name, MemoryLayout.ChannelsFirst);
            if (batchNormCase.Config.Module != ModuleKind.BatchNorm1d)
            {
                data.Add(batchNormCase.Name, MemoryLayout.ChannelsLast);
            }
        }

        return data;
    }

    private static IEnumerable<BatchNormCase> CaseList()
    {
        var f32_1d = new ModuleConfig(ModuleKind.BatchNorm1d, 3);
        yield return new BatchNormCase("1d float train then eval", f32_1d,
            ModuleState.Defaults(f32_1d) with { Weight = [0.5, -1.5, 2], Bias = [0.1, 0, -0.3] },
            [
                new CaseStep(true, Random(1, [8, 3], mean: 1, std: 2), Random(2, [8, 3])),
                new CaseStep(false, Random(3, [8, 3], mean: 1, std: 2), Random(4, [8, 3])),
            ]);

        var f64_2d = new ModuleConfig(ModuleKind.BatchNorm2d, 3, DType: ElementType.Float64);
        yield return new BatchNormCase("2d double eval with loaded stats", f64_2d,
            new ModuleState([1.2, 0.8, -0.5], [0.0, 0.3, 1], [0.5, -1, 2], [2, 0.5, 1.5], 7),
            [
                new CaseStep(false, Random(5, [2, 3, 5, 4], mean: 0.5, std: 1.5, type: ElementType.Float64), Random(6, [2, 3, 5, 4], type: ElementType.Float64)),
                new CaseStep(true, Random(7, [2, 3, 5, 4], mean: 0.5, std: 1.5, type: ElementType.Float64), Random(8, [2, 3, 5, 4], type: ElementType.Float64)),
            ]);

        var f32_3d = new ModuleConfig(ModuleKind.BatchNorm3d, 2, Affine: false);
        yield return new BatchNormCase("3d float not affine train", f32_3d, ModuleState.Defaults(f32_3d),
            [new CaseStep(true, Random(9, [2, 2, 3, 2, 2], mean: -2, std: 0.5), Random(10, [2, 2, 3, 2, 2]))]);

        var f32_untracked = new ModuleConfig(ModuleKind.BatchNorm2d, 3, TrackRunningStats: false);
        yield return new BatchNormCase("2d float not tracking eval", f32_untracked, ModuleState.Defaults(f32_untracked),
            [new CaseStep(false, Random(11, [4, 3, 3, 3], mean: 3, std: 2), Random(12, [4, 3, 3, 3]))]);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gradients_match_TorchSharp_autograd_in_layout(string name, MemoryLayout layout)
    {
        var recipe = CaseList().Single(c => c.Name == name);
        var batchNormCase = recipe with { Steps = recipe.Steps.Select(step => step with { Layout = layout }).ToList() };
        var torch = CaseRunner.Run(new TorchSharpImplementation(), batchNormCase);
        var library = CaseRunner.Run(new LibraryImplementation(), batchNormCase);
        Assert.All(torch.Steps, s => Assert.True(s.HasGradients, "TorchSharp produced no gradients"));
        var report = TraceComparer.Compare(batchNormCase, torch, library);
        Assert.True(report.Passed, report.Format());
    }
}
