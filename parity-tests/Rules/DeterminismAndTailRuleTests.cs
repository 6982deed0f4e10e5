using System.Numerics;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Rules;

/// <summary>Results do not depend on the thread count, and every vector-tail length is exact to rounding.</summary>
public sealed class DeterminismAndTailRuleTests
{
    [Fact]
    public void Results_are_bit_identical_for_MaxDegreeOfParallelism_1_and_2_on_the_default_path_float()
    {
        Check<float>();
    }

    [Fact]
    public void Results_are_bit_identical_for_MaxDegreeOfParallelism_1_and_2_on_the_default_path_double()
    {
        Check<double>();
    }

    private static void Check<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        int[] shape = [8, 64, 20, 20]; // 204 800 elements: above the parallel threshold
        var x1 = RandomTensor<T>(1, shape, mean: 3, std: 2);
        var x2 = RandomTensor<T>(2, shape, mean: -1, std: 0.5);
        var g = RandomTensor<T>(3, shape);
        var results = new List<(string Snapshot, T[][] Arrays)>();
        foreach (int threads in new[] { 1, 2 })
        {
            var m = new BatchNorm2d<T>(64, momentum: null) { MaxDegreeOfParallelism = threads };
            RandomAffine(m, 4);
            var y1 = m.Forward(x1);
            var g1 = m.Backward(g);
            var y2 = m.Forward(x2);
            var y3 = m.Eval().Forward(x1);
            var g3 = m.Backward(g);
            results.Add((Snapshot(m), [y1.Data, g1.Input.Data, g1.Weight!, g1.Bias!, y2.Data, y3.Data, g3.Input.Data, g3.Weight!]));
        }

        string[] names = ["step 1 output", "step 1 grad_input", "step 1 grad_weight", "step 1 grad_bias", "step 2 output", "step 3 (eval) output", "step 3 grad_input", "step 3 grad_weight"];
        Assert.True(results[0].Snapshot == results[1].Snapshot,
            $"default path [8, 64, 20, 20] {typeof(T).Name}: parameters/buffers after 3 steps differ between threads=1 and threads=2:\n  1: {results[0].Snapshot}\n  2: {results[1].Snapshot}");
        for (int i = 0; i < results[0].Arrays.Length; i++)
        {
            BitEqual(results[0].Arrays[i], results[1].Arrays[i], $"default path [8, 64, 20, 20], threads=2 vs threads=1: {names[i]}");
        }
    }

    [Fact]
    public void Every_spatial_length_0_to_256_matches_the_float64_truth_forward_and_running_stats_float() => Every_spatial_length_0_to_256_matches_the_float64_truth_forward_and_running_stats<float>();

    [Fact]
    public void Every_spatial_length_0_to_256_matches_the_float64_truth_forward_and_running_stats_double() => Every_spatial_length_0_to_256_matches_the_float64_truth_forward_and_running_stats<double>();

    private static void Every_spatial_length_0_to_256_matches_the_float64_truth_forward_and_running_stats<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        double u = U<T>();
        double k = Tolerance.ElementwiseRoundings;
        for (int length = 0; length <= 256; length++)
        {
            var m = new BatchNorm1d<T>(3);
            RandomAffine(m, length);
            var x = RandomTensor<T>(1000 + length, [2, 3, length], mean: 2, std: 3);
            var config = new ModuleConfig(ModuleKind.BatchNorm1d, 3, DType: DType<T>());
            var state = ModuleState.Defaults(config) with { Weight = ToDouble(m.Weight!), Bias = ToDouble(m.Bias!) };
            var batchNormCase = new BatchNormCase($"L={length}", config, state, [new CaseStep(true, new CaseTensor(x.Shape, ToDouble(x.Data)))]);
            var (truth, normalizations) = ReferenceBatchNorm.RunWithNormalizations(batchNormCase);
            var norm = normalizations[0]!;
            var expected = truth.Steps[0];

            var y = m.Forward(x);
            Assert.Equal(x.Shape, y.Shape);
            long n = norm.ValuesPerSet;
            double r = typeof(T) == typeof(float) ? k : Tolerance.ReductionFactor(n);
            for (int i = 0; i < y.Length; i++)
            {
                int c = Channel(x, i);
                double alpha = Math.Abs(norm.InvStd[c] * norm.Weight[c]);
                double xi = D(x.Data[i]);
                double scale = (k * ((Math.Abs(xi) * alpha) + Math.Abs(norm.Bias[c])))
                    + (r * ((norm.MeanMagnitude[c] * alpha) + (Math.Abs(xi - norm.Mean[c]) * alpha / 2)));
                Close<T>(expected.Output!.Data[i], D(y.Data[i]), scale, $"L={length} y[{i}]", roundings: 1);
            }

            Assert.Equal(expected.NumBatchesTracked, m.NumBatchesTracked);
            for (int c = 0; c < 3; c++)
            {
                double f = norm.RunningFactor;
                double unbiased = n > 1 ? norm.BatchVariance![c] * n / (n - 1) : 0;
                double meanScale = Math.Abs((1 - f) * 0) + (Math.Abs(f) * norm.MeanMagnitude[c]);
                double varScale = Math.Abs(1 - f) + (Math.Abs(f) * (unbiased + (u * norm.MeanMagnitude[c] * norm.MeanMagnitude[c] * n / Math.Max(n - 1, 1))));
                Close<T>(expected.RunningMean![c], D(m.RunningMean![c]), meanScale, $"L={length} running_mean[{c}]", r);
                Close<T>(expected.RunningVar![c], D(m.RunningVar![c]), varScale, $"L={length} running_var[{c}]", r);
            }
        }
    }
}
