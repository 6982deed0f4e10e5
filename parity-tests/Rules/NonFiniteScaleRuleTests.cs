using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Rules;

/// <summary>
/// When α = invstd·weight is not finite (running_var + eps = 0 after momentum outside [0, 1], or an
/// infinite weight), whether NaN or ±∞ comes out depends on the evaluation order. PyTorch's CPU
/// kernel evaluates x·α + (b − μ·α); the library does the same for such channels, on both kernel
/// paths (per-channel runs for spatial ≥ 16, column blocks below) and both dtypes.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class NonFiniteScaleRuleTests
{
    public static TheoryData<ElementType, int> Shapes() => new()
    {
        { ElementType.Float32, 1 }, { ElementType.Float32, 16 }, { ElementType.Float32, 37 },
        { ElementType.Float64, 1 }, { ElementType.Float64, 16 }, { ElementType.Float64, 37 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Infinite_invstd_in_eval_gives_PyTorchs_non_finite_values(ElementType dtype, int length)
    {
        // momentum 1.5 over a constant channel: running_var = −0.5·1 + 1.5·0 = −0.5, and eps = 0.5.
        var config = new ModuleConfig(ModuleKind.BatchNorm1d, 2, Eps: 0.5, Momentum: 1.5, DType: dtype);
        var constant = new CaseTensor([2, 2, length], Enumerable.Repeat(0.75, 4 * length).ToArray());
        var mixed = new CaseTensor([2, 2, length], Enumerable.Range(0, 4 * length).Select(i => (i % 7) - 3.0).ToArray());
        var batchNormCase = new BatchNormCase("infinite invstd", config, ModuleState.Defaults(config),
            [new CaseStep(true, constant), new CaseStep(false, mixed)]);

        var torch = CaseRunner.Run(new TorchSharpImplementation(), batchNormCase);
        var library = CaseRunner.Run(new LibraryImplementation(), batchNormCase);

        Assert.Contains(torch.Steps[1].Output!.Data, double.IsNaN);
        var report = TraceComparer.Compare(batchNormCase, torch, library);
        Assert.True(report.Passed, report.Format());
    }
}
