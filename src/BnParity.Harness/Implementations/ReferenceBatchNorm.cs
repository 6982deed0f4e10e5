using BnParity.Harness.Cases;

namespace BnParity.Harness.Implementations;

/// <summary>
/// The float64 "truth": PyTorch's BatchNorm semantics written plainly, one scalar loop per
/// formula, in double whatever the case's dtype, with no rounding to float anywhere. It is kept
/// for clarity, not speed, and shares no code with the library. Tests hold both the library and
/// TorchSharp against it.
/// </summary>
public sealed class ReferenceBatchNorm : IBatchNormUnderTest
{
    public string Name => "float64 reference";

    public IBatchNormModule Create(ModuleConfig config, ModuleState state) => new Module(config, state);

    /// <summary>
    /// Mean and biased variance of every channel of an (N, C, ...) input: two passes, each summed
    /// with Neumaier's compensated summation, so the result is accurate to a few ulps of double even
    /// for float64 data (a plain double loop would carry (n − 1)·u of error on a constant channel and
    /// be no truth for float64 implementations).
    /// </summary>
    public static (double[] Mean, double[] BiasedVar) BatchStatistics(CaseTensor input)
    {
        int batch = input.Shape[0], channels = input.Shape[1], spatial = input.SpatialSize;
        double count = (double)batch * spatial;
        var mean = new double[channels];
        var variance = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            var sum = new CompensatedSum();
            for (int n = 0; n < batch; n++)
            {
                for (int s = 0; s < spatial; s++)
                {
                    sum.Add(input.Data[(n * channels + c) * spatial + s]);
                }
            }

            mean[c] = sum.Value / count;
            var squares = new CompensatedSum();
            for (int n = 0; n < batch; n++)
            {
                for (int s = 0; s < spatial; s++)
                {
                    double d = input.Data[(n * channels + c) * spatial + s] - mean[c];
                    squares.Add(d * d);
                }
            }

            variance[c] = squares.Value / count;
        }

        return (mean, variance);
    }

    /// <summary>Neumaier's variant of Kahan summation: error ≈ 2u·|Σ| + O(n·u²)·Σ|x|, independent of n to first order.</summary>
    private struct CompensatedSum
    {
        private double _sum;
        private double _compensation;

        public void Add(double value)
        {
            double t = _sum + value;
            _compensation += Math.Abs(_sum) >= Math.Abs(value) ? (_sum - t) + value : (value - t) + _sum;
            _sum = t;
        }

        public readonly double Value => _sum + _compensation;
    }

    /// <summary>Per channel, the mean of |x| (0 for an empty batch).</summary>
    public static double[] MeanAbsolute(CaseTensor input)
    {
        int channels = input.Shape[1], spatial = input.SpatialSize;
        var result = new double[channels];
        for (int i = 0; i < input.Data.Length; i++)
        {
            result[i / spatial % channels] += Math.Abs(input.Data[i]);
        }

        double count = (double)input.Shape[0] * spatial;
        return count == 0 ? result : result.Select(v => v / count).ToArray();
    }

    /// <summary>
    /// What a step did, per channel, in exact arithmetic: the mean and 1/sqrt(var + eps) it
    /// normalised with, the parameters, the batch variance when batch statistics were used, and
    /// the running-stat factor f applied (0 when the buffers did not move), and the mean
    /// magnitude Σ|x|/n that bounds the rounding error of the mean. The tolerance policy
    /// derives its per-element scales from these.
    /// </summary>
    public sealed record Normalization(
        double[] Mean, double[] InvStd, double[] Weight, double[] Bias, bool UsesBatchStatistics,
        double[]? BatchVariance, long ValuesPerChannel, double RunningFactor, double[] MeanMagnitude);

    /// <summary>
    /// PyTorch's invstd of batch statistics (PyTorch 1.13 and libtorch 2.10 agree): the biased variance is held in the
    /// input's dtype — a float32 variance beyond float's range becomes +∞ (invstd 0) and one below it becomes 0 — and
    /// <c>InvStd</c> returns 0 for var = 0 with eps = 0. Eval with running statistics has no such rule.
    /// </summary>
    public static double BatchInvStd(double variance, double eps, ElementType dtype)
    {
        if (dtype == ElementType.Float32)
        {
            float held = (float)variance;
            variance = held == 0 ? 0 : float.IsPositiveInfinity(held) ? double.PositiveInfinity : variance;
        }

        return variance == 0 && eps == 0 ? 0 : 1.0 / Math.Sqrt(variance + eps);
    }

    /// <summary>Runs a case on the reference and returns, with the trace, each step's <see cref="Normalization"/> (null for a step that raised).</summary>
    public static (CaseTrace Trace, IReadOnlyList<Normalization?> Normalizations) RunWithNormalizations(BatchNormCase batchNormCase)
    {
        var normalizations = new List<Normalization?>();
        var reference = new ReferenceBatchNorm();
        var outcomes = new List<StepOutcome>();
        var before = new List<ModuleState>();
        using var module = (Module)reference.Create(batchNormCase.Config, batchNormCase.InitialState);
        var single = new SingleModule(module);
        foreach (var step in batchNormCase.Steps)
        {
            var partial = CaseRunner.Run(single, batchNormCase with { Steps = new[] { step } }, keepModule: true);
            before.Add(partial.StateBefore[0]);
            outcomes.Add(partial.Steps[0]);
            normalizations.Add(partial.Steps[0].Error is null ? module.LastNormalization : null);
            if (partial.Steps[0].Error is not null)
            {
                break;
            }
        }

        return (new CaseTrace(reference.Name, outcomes, before), normalizations);
    }

    /// <summary>Lets <see cref="CaseRunner"/> drive one existing module step by step.</summary>
    private sealed class SingleModule(IBatchNormModule module) : IBatchNormUnderTest
    {
        public string Name => "float64 reference";

        public IBatchNormModule Create(ModuleConfig config, ModuleState state) => module;
    }

    private sealed class Module : IBatchNormModule
    {
        private readonly ModuleConfig _config;
        private double[]? _weight, _bias, _runningMean, _runningVar;
        private long? _count;
        private CaseTensor? _lastInput;
        private Normalization? _lastNormalization;

        public Module(ModuleConfig config, ModuleState state)
        {
            _config = config;
            _weight = (double[]?)state.Weight?.Clone();
            _bias = (double[]?)state.Bias?.Clone();
            _runningMean = (double[]?)state.RunningMean?.Clone();
            _runningVar = (double[]?)state.RunningVar?.Clone();
            _count = state.NumBatchesTracked;
        }

        public CaseTensor Forward(bool training, CaseTensor input)
        {
            int expectedRank = _config.Module switch { ModuleKind.BatchNorm2d => 4, ModuleKind.BatchNorm3d => 5, _ => -1 };
            bool rankOk = expectedRank < 0 ? input.Rank is 2 or 3 : input.Rank == expectedRank;
            if (!rankOk)
            {
                throw new ArgumentException($"expected {(expectedRank < 0 ? "2D or 3D" : expectedRank + "D")} input (got {input.Rank}D input)", nameof(input));
            }

            int channels = _config.NumFeatures;
            if (input.Shape[1] != channels)
            {
                throw new ArgumentException($"expected input with {channels} channels (dimension 1), got {input.Shape[1]}", nameof(input));
            }

            bool useBatchStatistics = training || !_config.TrackRunningStats;
            long n = (long)input.Shape[0] * input.SpatialSize;
            double factor = 0;
            if (useBatchStatistics && n == 1)
            {
                throw new ArgumentException($"Expected more than 1 value per channel when training, got input size [{string.Join(", ", input.Shape)}]", nameof(input));
            }

            double[] weight = _weight ?? Enumerable.Repeat(1.0, channels).ToArray();
            double[] bias = _bias ?? new double[channels];
            double[] mean, invStd;
            double[]? batchVariance = null;
            if (useBatchStatistics)
            {
                var (batchMean, biasedVar) = n == 0
                    ? (new double[channels], new double[channels])
                    : BatchStatistics(input);
                mean = batchMean;
                if (_config.DType == ElementType.Float32)
                {
                    // PyTorch holds Σ(x − μ)² in float: beyond float's range it is ∞, below it 0.
                    biasedVar = biasedVar.Select(v => (float)(v * n) is var held && float.IsPositiveInfinity(held) ? double.PositiveInfinity : held == 0 ? 0 : v).ToArray();
                }

                batchVariance = biasedVar;
                invStd = biasedVar.Select(v => BatchInvStd(v, _config.Eps, _config.DType)).ToArray();
                if (training && _config.TrackRunningStats)
                {
                    _count += 1;
                    if (n > 0)
                    {
                        factor = _config.Momentum ?? 1.0 / _count!.Value;
                        for (int c = 0; c < channels; c++)
                        {
                            double unbiased = biasedVar[c] * n / (n - 1);
                            _runningMean![c] = (1 - factor) * _runningMean[c] + factor * batchMean[c];
                            _runningVar![c] = (1 - factor) * _runningVar[c] + factor * unbiased;
                        }
                    }
                }
            }
            else
            {
                mean = (double[])_runningMean!.Clone();
                invStd = _runningVar!.Select(v => 1.0 / Math.Sqrt(v + _config.Eps)).ToArray();
            }

            _lastInput = input;
            // The condition of a mean is set by the magnitudes summed, not by the mean itself (Σx may cancel).
            double[] meanMagnitude = useBatchStatistics ? MeanAbsolute(input) : mean.Select(Math.Abs).ToArray();
            _lastNormalization = new Normalization(mean, invStd, weight, bias, useBatchStatistics, batchVariance, n, factor, meanMagnitude);
            var output = new double[input.Data.Length];
            int spatial = input.SpatialSize;
            for (int i = 0; i < output.Length; i++)
            {
                int c = i / spatial % channels;
                double alpha = invStd[c] * weight[c];
                // A non-finite α (var + eps = 0, or a non-finite weight): whether NaN or ±∞ comes out
                // depends on the evaluation order; PyTorch's CPU kernel evaluates x·α + (b − μ·α).
                output[i] = double.IsFinite(alpha)
                    ? (input.Data[i] - mean[c]) * alpha + bias[c]
                    : input.Data[i] * alpha + (bias[c] - mean[c] * alpha);
            }

            return new CaseTensor((int[])input.Shape.Clone(), output);
        }

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput)
        {
            var input = _lastInput ?? throw new InvalidOperationException("Backward needs a preceding Forward.");
            var norm = _lastNormalization!;
            int channels = _config.NumFeatures, spatial = input.SpatialSize, batch = input.Shape[0];
            double count = (double)batch * spatial;
            var gradInput = new double[input.Data.Length];
            var gradWeight = new double[channels];
            var gradBias = new double[channels];
            for (int c = 0; c < channels; c++)
            {
                var gradSum = new CompensatedSum();
                var centredGradSum = new CompensatedSum();
                for (int nIndex = 0; nIndex < batch; nIndex++)
                {
                    for (int s = 0; s < spatial; s++)
                    {
                        int i = (nIndex * channels + c) * spatial + s;
                        gradSum.Add(gradOutput.Data[i]);
                        centredGradSum.Add((input.Data[i] - norm.Mean[c]) * gradOutput.Data[i]);
                    }
                }

                double sumGrad = gradSum.Value, sumGradCentered = centredGradSum.Value;
                gradBias[c] = sumGrad;
                gradWeight[c] = sumGradCentered * norm.InvStd[c];
                for (int nIndex = 0; nIndex < batch; nIndex++)
                {
                    for (int s = 0; s < spatial; s++)
                    {
                        int i = (nIndex * channels + c) * spatial + s;
                        gradInput[i] = norm.UsesBatchStatistics
                            ? (gradOutput.Data[i] - sumGrad / count
                               - (input.Data[i] - norm.Mean[c]) * sumGradCentered * norm.InvStd[c] * norm.InvStd[c] / count)
                              * norm.InvStd[c] * norm.Weight[c]
                            : gradOutput.Data[i] * norm.InvStd[c] * norm.Weight[c];
                    }
                }
            }

            return (new CaseTensor((int[])input.Shape.Clone(), gradInput),
                _config.Affine ? gradWeight : null,
                _config.Affine ? gradBias : null);
        }

        /// <summary>The normalisation of the last forward (for tolerance scales).</summary>
        public Normalization? LastNormalization => _lastNormalization;

        public ModuleState ReadState() => new(
            (double[]?)_weight?.Clone(), (double[]?)_bias?.Clone(),
            (double[]?)_runningMean?.Clone(), (double[]?)_runningVar?.Clone(), _count);

        public void Dispose()
        {
        }
    }
}
