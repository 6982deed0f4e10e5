using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;

namespace MyBatchNorm.Tests;

/// <summary>
/// A user's own BatchNorm, written plainly in double (rounded to float for float32 modules, as PyTorch's buffers
/// are), wrapped for the BnParity test kit. It is what the kit is for: an implementation that is not BnParity's.
/// </summary>
public sealed class NaiveBatchNorm : IBatchNormUnderTest
{
    public string Name => "NaiveBatchNorm (sample)";

    public IBatchNormModule Create(ModuleConfig config, ModuleState state) => new Module(config, state);

    private sealed class Module(ModuleConfig config, ModuleState state) : IBatchNormModule
    {
        private double[]? _weight = (double[]?)state.Weight?.Clone();
        private double[]? _bias = (double[]?)state.Bias?.Clone();
        private double[]? _runningMean = (double[]?)state.RunningMean?.Clone();
        private double[]? _runningVar = (double[]?)state.RunningVar?.Clone();
        private long? _count = state.NumBatchesTracked;
        private CaseTensor? _input;
        private double[] _mean = [], _invStd = [];
        private bool _batchStatistics;

        private double Round(double value) => config.DType == ElementType.Float32 ? (float)value : value;

        public CaseTensor Forward(bool training, CaseTensor input)
        {
            int c = config.NumFeatures;
            if (input.Rank < 2 || input.Shape[1] != c)
            {
                throw new ArgumentException($"expected input of shape (N, {c}, ...), got [{string.Join(", ", input.Shape)}]", nameof(input));
            }

            int n = input.Shape[0], spatial = input.SpatialSize;
            long count = (long)n * spatial;
            bool batch = training || !config.TrackRunningStats;
            if (batch && count == 1)
            {
                throw new ArgumentException($"Expected more than 1 value per channel when training, got input size [{string.Join(", ", input.Shape)}]", nameof(input));
            }

            var mean = new double[c];
            var invStd = new double[c];
            var variance = new double[c];
            for (int ch = 0; ch < c; ch++)
            {
                if (batch && count > 0)
                {
                    double sum = 0, squares = 0;
                    foreach (double x in Channel(input, ch))
                    {
                        sum += x;
                    }

                    mean[ch] = sum / count;
                    foreach (double x in Channel(input, ch))
                    {
                        squares += (x - mean[ch]) * (x - mean[ch]);
                    }

                    variance[ch] = squares / count;
                    invStd[ch] = variance[ch] == 0 && config.Eps == 0 ? 0 : 1 / Math.Sqrt(variance[ch] + config.Eps);
                }
                else if (!batch)
                {
                    mean[ch] = _runningMean![ch];
                    invStd[ch] = 1 / Math.Sqrt(_runningVar![ch] + config.Eps);
                }
            }

            var output = new double[input.Data.Length];
            for (int i = 0; i < output.Length; i++)
            {
                int ch = i / spatial % c;
                double w = _weight?[ch] ?? 1, b = _bias?[ch] ?? 0;
                output[i] = Round(((input.Data[i] - mean[ch]) * invStd[ch] * w) + b);
            }

            if (training && config.TrackRunningStats)
            {
                _count++;
                if (count > 0)
                {
                    double factor = config.Momentum ?? 1.0 / _count!.Value;
                    for (int ch = 0; ch < c; ch++)
                    {
                        _runningMean![ch] = Round(((1 - factor) * _runningMean[ch]) + (factor * mean[ch]));
                        _runningVar![ch] = Round(((1 - factor) * _runningVar[ch]) + (factor * variance[ch] * count / (count - 1)));
                    }
                }
            }

            (_input, _mean, _invStd, _batchStatistics) = (input, mean, invStd, batch);
            return new CaseTensor((int[])input.Shape.Clone(), output);
        }

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput)
        {
            var x = _input ?? throw new InvalidOperationException("Backward needs a preceding Forward.");
            int c = config.NumFeatures, spatial = x.SpatialSize;
            long count = (long)x.Shape[0] * spatial;
            var sumDy = new double[c];
            var dot = new double[c];
            for (int i = 0; i < x.Data.Length; i++)
            {
                int ch = i / spatial % c;
                sumDy[ch] += gradOutput.Data[i];
                dot[ch] += (x.Data[i] - _mean[ch]) * gradOutput.Data[i];
            }

            var dx = new double[x.Data.Length];
            for (int i = 0; i < dx.Length; i++)
            {
                int ch = i / spatial % c;
                double scale = _invStd[ch] * (_weight?[ch] ?? 1);
                double centred = x.Data[i] - _mean[ch];
                dx[i] = Round(_batchStatistics
                    ? (gradOutput.Data[i] - (sumDy[ch] / count) - (centred * dot[ch] * _invStd[ch] * _invStd[ch] / count)) * scale
                    : gradOutput.Data[i] * scale);
            }

            // Σ over an empty batch is 0 whatever invstd is (the kit's properties found NaN here: an eval backward of N = 0
            // after momentum 1.5 left running_var + eps < 0, and 0·NaN is NaN where PyTorch gives 0).
            double[]? dWeight = _weight is null ? null : Enumerable.Range(0, c).Select(ch => count == 0 ? 0 : Round(dot[ch] * _invStd[ch])).ToArray();
            double[]? dBias = _bias is null ? null : sumDy.Select(Round).ToArray();
            return (new CaseTensor((int[])x.Shape.Clone(), dx), dWeight, dBias);
        }

        public ModuleState ReadState() => new(
            (double[]?)_weight?.Clone(), (double[]?)_bias?.Clone(), (double[]?)_runningMean?.Clone(), (double[]?)_runningVar?.Clone(), _count);

        public void Dispose()
        {
        }

        private static IEnumerable<double> Channel(CaseTensor input, int ch)
        {
            int c = input.Shape[1], spatial = input.SpatialSize;
            for (int n = 0; n < input.Shape[0]; n++)
            {
                for (int s = 0; s < spatial; s++)
                {
                    yield return input.Data[((n * c) + ch) * spatial + s];
                }
            }
        }
    }
}
