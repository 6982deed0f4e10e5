using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Comparison;

/// <summary>
/// The tolerance is tight enough to catch: each seeded fault, run against TorchSharp, makes
/// <see cref="TraceComparer"/> report FAIL and name the faulty tensor; the same implementation without
/// the fault passes, so the rejection is the fault's doing.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class ComparerRejectsFaultsTests
{
    private static readonly Lazy<TorchSharpImplementation> Torch = new(() => new TorchSharpImplementation());

    private static CaseTensor Normal(int seed, params int[] shape)
    {
        var random = new Random(seed);
        var data = new double[shape.Aggregate(1, (a, b) => a * b)];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)(0.5 + (2 * SeededNormal.Next(random)));
        }

        return new CaseTensor(shape, data);
    }

    private static BatchNormCase Case(string name, ModuleConfig config, params CaseStep[] steps) =>
        new(name, config, ModuleState.Defaults(config), steps);

    private static ComparisonReport Run(IBatchNormUnderTest implementation, BatchNormCase batchNormCase) =>
        TraceComparer.Compare(batchNormCase, CaseRunner.Run(Torch.Value, batchNormCase), CaseRunner.Run(implementation, batchNormCase));

    private static void AssertRejected(ComparisonReport report, string tensor)
    {
        Assert.False(report.Passed, "the comparer accepted a faulty implementation:\n" + report.Format());
        Assert.Contains(report.Mismatches, m => m.Tensor == tensor);
        Assert.Contains("FAIL", report.Format(), StringComparison.Ordinal);
    }

    private static void AssertAccepted(ComparisonReport report) => Assert.True(report.Passed, report.Format());

    // n = N·L = 8·16 = 128 ≥ 100: the biased variance is a relative change of 1/n.
    private static readonly BatchNormCase BiasedVarianceCase = Case("n = 128",
        new ModuleConfig(ModuleKind.BatchNorm1d, 3), new CaseStep(true, Normal(1, 8, 3, 16)), new CaseStep(true, Normal(2, 8, 3, 16)));

    private static readonly BatchNormCase EpsCase32 = Case("eps 1e-3, float32",
        new ModuleConfig(ModuleKind.BatchNorm2d, 2, Eps: 1e-3), new CaseStep(true, Normal(3, 4, 2, 5, 5)), new CaseStep(false, Normal(4, 4, 2, 5, 5)));

    private static readonly BatchNormCase EpsCase64 = Case("eps 1e-5, float64",
        new ModuleConfig(ModuleKind.BatchNorm2d, 2, DType: ElementType.Float64), new CaseStep(true, Normal(3, 4, 2, 5, 5)));

    private static readonly BatchNormCase CumulativeCase = Case("momentum None, 3 steps",
        new ModuleConfig(ModuleKind.BatchNorm1d, 4, Momentum: null),
        new CaseStep(true, Normal(5, 6, 4)), new CaseStep(true, Normal(6, 6, 4)), new CaseStep(true, Normal(7, 6, 4)));

    [Fact]
    public void Faultless_independent_BatchNorm_passes_every_fault_case()
    {
        foreach (var batchNormCase in new[] { BiasedVarianceCase, EpsCase32, EpsCase64, CumulativeCase })
        {
            AssertAccepted(Run(new FaultyBatchNorm(Fault.None), batchNormCase));
        }
    }

    [Fact]
    public void Rejects_running_var_from_the_biased_variance_at_n_128() =>
        AssertRejected(Run(new FaultyBatchNorm(Fault.BiasedRunningVar), BiasedVarianceCase), "running_var");

    [Fact]
    public void Rejects_eps_added_outside_the_sqrt_in_float32_and_float64()
    {
        AssertRejected(Run(new FaultyBatchNorm(Fault.EpsOutsideSqrt), EpsCase32), "output");
        AssertRejected(Run(new FaultyBatchNorm(Fault.EpsOutsideSqrt), EpsCase64), "output");
    }

    [Fact]
    public void Rejects_the_cumulative_average_factor_off_by_one() =>
        AssertRejected(Run(new FaultyBatchNorm(Fault.CumulativeFactorOffByOne), CumulativeCase), "running_mean");

    [Fact]
    public void Rejects_a_1e_4_relative_error_in_one_output_element()
    {
        var batchNormCase = Case("float32 BatchNorm2d", new ModuleConfig(ModuleKind.BatchNorm2d, 4), new CaseStep(true, Normal(8, 4, 4, 5, 5)));
        var report = Run(new PerturbedLibrary(Perturbation.OneOutputElement), batchNormCase);
        AssertRejected(report, "output");
        Assert.Equal(1, report.MismatchCount);
        AssertAccepted(Run(new LibraryImplementation(), batchNormCase));
    }

    [Fact]
    public void Rejects_a_0_1_percent_weight_gradient_error()
    {
        var x = Normal(9, 6, 3, 7);
        var batchNormCase = Case("float32 BatchNorm1d backward", new ModuleConfig(ModuleKind.BatchNorm1d, 3),
            new CaseStep(true, x, Normal(10, 6, 3, 7)));
        AssertRejected(Run(new PerturbedLibrary(Perturbation.WeightGradient), batchNormCase), "grad_weight");
        AssertAccepted(Run(new LibraryImplementation(), batchNormCase));
    }

    /// <summary>LayerNorm and RMSNorm on a transformer width (D = 768, whose float sums libtorch keeps in float, so the
    /// budgets take the worst-case (D − 1)·u bound): a 1e-4 relative error in one output element and a 0.1 % error in
    /// one weight-gradient element are still caught; the library itself passes.</summary>
    [Theory]
    [InlineData(ModuleKind.LayerNorm, Perturbation.OneOutputElement, "output")]
    [InlineData(ModuleKind.LayerNorm, Perturbation.WeightGradient, "grad_weight")]
    [InlineData(ModuleKind.RMSNorm, Perturbation.OneOutputElement, "output")]
    [InlineData(ModuleKind.RMSNorm, Perturbation.WeightGradient, "grad_weight")]
    public void Rejects_a_small_error_in_LayerNorm_and_RMSNorm_at_width_768(ModuleKind module, Perturbation perturbation, string tensor)
    {
        var config = module == ModuleKind.LayerNorm ? ModuleConfig.LayerNorm([768]) : ModuleConfig.RMSNorm([768], 1e-6);
        var batchNormCase = Case($"float32 {module} (4, 768) backward", config, new CaseStep(true, Normal(21, 4, 768), Normal(22, 4, 768)));
        AssertRejected(Run(new PerturbedLibrary(perturbation), batchNormCase), tensor);
        AssertAccepted(Run(new LibraryImplementation(), batchNormCase));
    }

    /// <summary>A recorded error step: the error text alone is not enough, the comparer must also see that the failed
    /// call left num_batches_tracked where it was.</summary>
    [Fact]
    public void Rejects_a_num_batches_tracked_bumped_before_the_error_of_a_recorded_error_step()
    {
        var recorded = Harness.Cases.RecordedCases.Load("bn2d-one-value-per-channel-error");
        Assert.NotNull(recorded.Steps[^1].Expected?.Error);
        AssertAccepted(TraceComparer.CompareWithRecorded(recorded, CaseRunner.Run(new FaultyBatchNorm(Fault.None), recorded)));

        var report = TraceComparer.CompareWithRecorded(recorded, CaseRunner.Run(new FaultyBatchNorm(Fault.CountBumpedBeforeError), recorded));
        Assert.False(report.Passed, "the comparer accepted a counter bumped by a failed call:\n" + report.Format());
        Assert.Contains("the failed call changed the buffers (num_batches_tracked", report.Format(), StringComparison.Ordinal);
    }
}
