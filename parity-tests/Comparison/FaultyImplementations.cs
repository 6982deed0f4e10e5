using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Comparison;

/// <summary>Seeded semantic faults of a small independent BatchNorm (no backward).</summary>
public enum Fault
{
    /// <summary>Correct: proves the rejections below are caused by the fault alone.</summary>
    None,

    /// <summary>running_var blends the biased variance (no n/(n − 1)).</summary>
    BiasedRunningVar,

    /// <summary>invstd = 1/(sqrt(var) + eps) instead of 1/sqrt(var + eps).</summary>
    EpsOutsideSqrt,

    /// <summary>Cumulative average (momentum None) with factor 1/(count + 1) instead of 1/count.</summary>
    CumulativeFactorOffByOne,

    /// <summary>Training on one value per channel bumps num_batches_tracked, then raises (PyTorch's own order; the
    /// harness requires a failed call to change nothing).</summary>
    CountBumpedBeforeError,
}

/// <summary>
/// A plain float64 BatchNorm that rounds its results to the case dtype, with one optional
/// <see cref="Fault"/>. It is independent of the library; its one shared piece is the reference's
/// exact statistics helper.
/// </summary>
public class FaultyBatchNorm(Fault fault) : IBatchNormUnderTest
{
    public string Name => $"faulty BatchNorm ({fault})";

    public IBatchNormModule Create(ModuleConfig config, ModuleState state) => new Module(config, state, fault);

    private sealed class Module(ModuleConfig config, ModuleState state, Fault fault) : IBatchNormModule
    {
        private readonly double[]? _runningMean = (double[]?)state.RunningMean?.Clone();
        private readonly double[]? _runningVar = (double[]?)state.RunningVar?.Clone();
        private long? _count = state.NumBatchesTracked;

        private double Round(double value) => config.DType == ElementType.Float32 ? (float)value : value;

        public CaseTensor Forward(bool training, CaseTensor input)
        {
            int channels = config.NumFeatures, spatial = input.SpatialSize;
            long n = (long)input.Shape[0] * spatial;
            bool batchStatistics = training || !config.TrackRunningStats;
            if (batchStatistics && n == 1)
            {
                if (fault == Fault.CountBumpedBeforeError && training && config.TrackRunningStats)
                {
                    _count += 1;
                }

                throw new ArgumentException($"Expected more than 1 value per channel when training, got input size [{string.Join(", ", input.Shape)}]");
            }

            double[] mean, variance;
            if (batchStatistics)
            {
                (mean, variance) = ReferenceBatchNorm.BatchStatistics(input);
                if (training && config.TrackRunningStats)
                {
                    _count += 1;
                    double f = config.Momentum ?? 1.0 / (fault == Fault.CumulativeFactorOffByOne ? _count!.Value + 1 : _count!.Value);
                    for (int c = 0; c < channels; c++)
                    {
                        double blended = fault == Fault.BiasedRunningVar ? variance[c] : variance[c] * n / (n - 1);
                        _runningMean![c] = Round((1 - f) * _runningMean[c] + f * mean[c]);
                        _runningVar![c] = Round((1 - f) * _runningVar[c] + f * blended);
                    }
                }
            }
            else
            {
                (mean, variance) = (_runningMean!, _runningVar!);
            }

            var output = new double[input.Data.Length];
            for (int i = 0; i < output.Length; i++)
            {
                int c = i / spatial % channels;
                double invStd = fault == Fault.EpsOutsideSqrt
                    ? 1 / (Math.Sqrt(variance[c]) + config.Eps)
                    : 1 / Math.Sqrt(variance[c] + config.Eps);
                output[i] = Round((input.Data[i] - mean[c]) * invStd * (state.Weight?[c] ?? 1) + (state.Bias?[c] ?? 0));
            }

            return new CaseTensor((int[])input.Shape.Clone(), output);
        }

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput) =>
            throw new NotSupportedException("The faulty BatchNorm has no backward.");

        public ModuleState ReadState() => new(state.Weight, state.Bias, (double[]?)_runningMean?.Clone(), (double[]?)_runningVar?.Clone(), _count);

        public void Dispose()
        {
        }
    }
}

/// <summary>For BNPARITY_IMPLEMENTATION=&lt;BnParity.ParityTests.dll&gt;:BnParity.ParityTests.Comparison.BiasedRunningVarBatchNorm.</summary>
public sealed class BiasedRunningVarBatchNorm() : FaultyBatchNorm(Fault.BiasedRunningVar);

/// <summary>For BNPARITY_IMPLEMENTATION (eps outside the sqrt).</summary>
public sealed class EpsOutsideSqrtBatchNorm() : FaultyBatchNorm(Fault.EpsOutsideSqrt);

/// <summary>For BNPARITY_IMPLEMENTATION (cumulative-average factor off by one).</summary>
public sealed class CumulativeOffByOneBatchNorm() : FaultyBatchNorm(Fault.CumulativeFactorOffByOne);

/// <summary>A numeric perturbation of the library's own results.</summary>
public enum Perturbation
{
    /// <summary>The output element of largest magnitude (first step) times 1 + 1e-4.</summary>
    OneOutputElement,

    /// <summary>grad_weight[0] times 1.001.</summary>
    WeightGradient,
}

/// <summary>The library with one number perturbed.</summary>
public sealed class PerturbedLibrary(Perturbation perturbation) : IBatchNormUnderTest
{
    private readonly LibraryImplementation _library = new();

    public string Name => $"BnParity perturbed ({perturbation})";

    public IBatchNormModule Create(ModuleConfig config, ModuleState state) => new Module(_library.Create(config, state), perturbation);

    private sealed class Module(IBatchNormModule inner, Perturbation perturbation) : IBatchNormModule
    {
        private bool _perturbed;

        public CaseTensor Forward(bool training, CaseTensor input)
        {
            var output = inner.Forward(training, input);
            if (perturbation != Perturbation.OneOutputElement || _perturbed)
            {
                return output;
            }

            _perturbed = true;
            var data = (double[])output.Data.Clone();
            int largest = Array.IndexOf(data, data.MaxBy(Math.Abs));
            data[largest] *= 1 + 1e-4;
            return output with { Data = data };
        }

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput)
        {
            var (input, weight, bias) = inner.Backward(gradOutput);
            if (perturbation == Perturbation.WeightGradient && weight is not null)
            {
                weight = (double[])weight.Clone();
                weight[0] *= 1.001;
            }

            return (input, weight, bias);
        }

        public ModuleState ReadState() => inner.ReadState();

        public void Dispose() => inner.Dispose();
    }
}
