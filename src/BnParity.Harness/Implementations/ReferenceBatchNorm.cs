using BnParity.Harness.Cases;

namespace BnParity.Harness.Implementations;

/// <summary>
/// The float64 "truth": PyTorch's BatchNorm, InstanceNorm, GroupNorm, LayerNorm and RMSNorm semantics written plainly (the sets per
/// <see cref="ReductionGeometry"/>), one scalar loop per
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

    /// <summary>
    /// Mean and biased variance of every set of <paramref name="geometry"/>, summed as <see cref="BatchStatistics"/>
    /// does (for BatchNorm the two are the same numbers); for an uncentred set (RMSNorm) mean 0 and the mean square.
    /// A set's elements are taken in memory order.
    /// </summary>
    public static (double[] Mean, double[] BiasedVar, double[] MeanAbs) SetStatistics(CaseTensor input, ReductionGeometry geometry)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(geometry);
        int sets = geometry.SetCount;
        double count = geometry.ValuesPerSet;
        var mean = new double[sets];
        var variance = new double[sets];
        var magnitude = new double[sets];
        for (int j = 0; j < sets; j++)
        {
            var sum = new CompensatedSum();
            double absolute = 0;
            foreach (int i in Elements(geometry, j))
            {
                sum.Add(input.Data[i]);
                absolute += Math.Abs(input.Data[i]);
            }

            // Uncentred sets (RMSNorm) are normalised about 0: their "variance" is the mean square.
            mean[j] = geometry.Centered ? sum.Value / count : 0;
            magnitude[j] = count == 0 ? 0 : absolute / count;
            var squares = new CompensatedSum();
            foreach (int i in Elements(geometry, j))
            {
                double d = input.Data[i] - mean[j];
                squares.Add(d * d);
            }

            variance[j] = squares.Value / count;
        }

        return (mean, variance, magnitude);
    }

    /// <summary>The flat logical indices of set <paramref name="set"/>: a BatchNorm channel's N runs, or an instance
    /// set's K·spatial contiguous elements.</summary>
    public static IEnumerable<int> Elements(ReductionGeometry geometry, int set)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        int spatial = geometry.Spatial;
        if (geometry.PerInstance)
        {
            int length = geometry.ChannelsPerSet * spatial;
            for (int e = 0; e < length; e++)
            {
                yield return (set * length) + e;
            }

            yield break;
        }

        for (int n = 0; n < geometry.Batch; n++)
        {
            for (int s = 0; s < spatial; s++)
            {
                yield return ((n * geometry.Channels) + set) * spatial + s;
            }
        }
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
    /// What a step did, in exact arithmetic: per set (<see cref="Geometry"/>), the mean and 1/sqrt(var + eps) it
    /// normalised with, the batch variance when batch statistics were used, and the mean magnitude Σ|x|/n that bounds
    /// the rounding error of the mean; per channel, the parameters; and the running-stat factor f applied (0 when the
    /// buffers did not move). The tolerance policy derives its per-element scales from these.
    /// </summary>
    public sealed record Normalization(
        double[] Mean, double[] InvStd, double[] Weight, double[] Bias, bool UsesBatchStatistics,
        double[]? BatchVariance, long ValuesPerSet, double RunningFactor, double[] MeanMagnitude, ReductionGeometry Geometry);

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

    /// <summary>LayerNorm's and RMSNorm's invstd: <see cref="BatchInvStd"/> without its zero rule — PyTorch's layer_norm
    /// (and the RMSNorm composite's rsqrt) give +∞ for a variance (held in the dtype) of 0 at eps = 0, so that set's
    /// outputs and gradients are NaN.</summary>
    public static double ElementInvStd(double variance, double eps, ElementType dtype)
    {
        double held = dtype == ElementType.Float32 ? (float)variance : variance;
        return held == 0 && eps == 0 ? double.PositiveInfinity : BatchInvStd(variance, eps, dtype);
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
            ValidateRankAndChannels(input, training);
            var geometry = ReductionGeometry.Of(_config, input.Shape);
            int channels = geometry.Channels;
            bool useBatchStatistics = training || !_config.TrackRunningStats;
            long n = geometry.ValuesPerSet;
            double factor = 0;
            ValidateSetSize(input, geometry, useBatchStatistics);

            double[] weight = _weight ?? Enumerable.Repeat(1.0, channels).ToArray();
            double[] bias = _bias ?? new double[channels];
            double[] mean, invStd, meanMagnitude;
            double[]? batchVariance = null;
            int sets = geometry.SetCount;
            if (useBatchStatistics)
            {
                var (batchMean, biasedVar, magnitude) = n == 0
                    ? (new double[sets], new double[sets], new double[sets])
                    : SetStatistics(input, geometry);
                mean = batchMean;
                // The condition of a mean is set by the magnitudes summed, not by the mean itself (Σx may cancel). An
                // uncentred set has no mean to round: nothing of it reaches the output.
                meanMagnitude = geometry.Centered ? magnitude : new double[sets];
                if (_config.DType == ElementType.Float32)
                {
                    // PyTorch holds Σ(x − μ)² in float: beyond float's range it is ∞, below it 0.
                    biasedVar = biasedVar.Select(v => (float)(v * n) is var held && float.IsPositiveInfinity(held) ? double.PositiveInfinity : held == 0 ? 0 : v).ToArray();
                }

                batchVariance = biasedVar;
                invStd = biasedVar.Select(v => _config.IsElementNorm ? ElementInvStd(v, _config.Eps, _config.DType) : BatchInvStd(v, _config.Eps, _config.DType)).ToArray();
                if (training && _config.TrackRunningStats)
                {
                    if (!geometry.PerInstance)
                    {
                        _count += 1; // InstanceNorm never counts
                    }

                    if (n > 0)
                    {
                        factor = _config.Momentum ?? (geometry.PerInstance ? 0.0 : 1.0 / _count!.Value);
                        UpdateRunning(geometry, batchMean, biasedVar, n, factor);
                    }
                }
            }
            else
            {
                if (geometry.PerInstance && geometry.Batch == 0)
                {
                    // instance_norm writes back the mean over the batch of the repeated buffers in eval too: NaN for N = 0.
                    Array.Fill(_runningMean!, double.NaN);
                    Array.Fill(_runningVar!, double.NaN);
                }

                mean = new double[sets];
                invStd = new double[sets];
                for (int j = 0; j < sets; j++)
                {
                    int c = geometry.ChannelOfSet(j);
                    mean[j] = _runningMean![c];
                    invStd[j] = 1.0 / Math.Sqrt(_runningVar![c] + _config.Eps);
                }

                meanMagnitude = mean.Select(Math.Abs).ToArray();
            }

            _lastInput = input;
            _lastNormalization = new Normalization(mean, invStd, weight, bias, useBatchStatistics, batchVariance, n, factor, meanMagnitude, geometry);
            var output = new double[input.Data.Length];
            for (int i = 0; i < output.Length; i++)
            {
                int j = geometry.SetOf(i), c = geometry.ChannelOf(i);
                double alpha = invStd[j] * weight[c];
                // A non-finite α (var + eps = 0, or a non-finite weight): whether NaN or ±∞ comes out
                // depends on the evaluation order; PyTorch's CPU kernel evaluates x·α + (b − μ·α).
                output[i] = double.IsFinite(alpha)
                    ? (input.Data[i] - mean[j]) * alpha + bias[c]
                    : input.Data[i] * alpha + (bias[c] - mean[j] * alpha);
            }

            return new CaseTensor((int[])input.Shape.Clone(), output);
        }

        /// <summary>
        /// running = f·stat + (1 − f)·running with the unbiased variance. BatchNorm: per channel, its one set.
        /// InstanceNorm: PyTorch's batch_norm over the (1, N·C, …) view blends every instance's statistics into the
        /// repeated buffers, then averages them over the batch.
        /// </summary>
        private void UpdateRunning(ReductionGeometry geometry, double[] batchMean, double[] biasedVar, long n, double factor)
        {
            int channels = geometry.Channels;
            var meanSum = new double[channels];
            var varSum = new double[channels];
            var instances = new int[channels];
            for (int j = 0; j < geometry.SetCount; j++)
            {
                int c = geometry.ChannelOfSet(j);
                double unbiased = biasedVar[j] * n / (n - 1);
                meanSum[c] += (1 - factor) * _runningMean![c] + factor * batchMean[j];
                varSum[c] += (1 - factor) * _runningVar![c] + factor * unbiased;
                instances[c]++;
            }

            for (int c = 0; c < channels; c++)
            {
                _runningMean![c] = meanSum[c] / instances[c];
                _runningVar![c] = varSum[c] / instances[c];
            }
        }

        /// <summary>PyTorch's rank and channel rules (the texts the library and PyTorch give).</summary>
        private void ValidateRankAndChannels(CaseTensor input, bool training)
        {
            if (_config.IsElementNorm)
            {
                int[] normalized = _config.NormalizedShape!;
                if (input.Rank < normalized.Length || !input.Shape.AsSpan(input.Rank - normalized.Length).SequenceEqual(normalized))
                {
                    string text = string.Join(", ", normalized);
                    throw new ArgumentException(
                        $"Given normalized_shape=[{text}], expected input with shape [*, {text}], but got input of size[{string.Join(", ", input.Shape)}]", nameof(input));
                }

                return;
            }

            int batched = ReductionGeometry.BatchedRank(_config.Module);
            bool rankOk = _config.Module switch
            {
                ModuleKind.GroupNorm => input.Rank >= 2,
                ModuleKind.BatchNorm1d => input.Rank is 2 or 3,
                _ when _config.IsInstanceNorm => input.Rank == batched || input.Rank == batched - 1,
                _ => input.Rank == batched,
            };
            if (!rankOk)
            {
                throw new ArgumentException(_config.Module switch
                {
                    ModuleKind.GroupNorm => $"Expected at least 2 dimensions for input tensor but received {input.Rank}",
                    ModuleKind.BatchNorm1d => $"expected 2D or 3D input (got {input.Rank}D input)",
                    _ when _config.IsInstanceNorm => $"expected {batched - 1}D or {batched}D input (got {input.Rank}D input)",
                    _ => $"expected {batched}D input (got {input.Rank}D input)",
                }, nameof(input));
            }

            var geometry = ReductionGeometry.Of(_config, input.Shape);
            int channels = geometry.Channels, features = _config.NumFeatures;
            if (_config.IsInstanceNorm && _config.Affine && geometry.Batch == 0)
            {
                // PyTorch 1.13: repeating the weight for an empty batch fails in libtorch (an IndexError).
                throw new ArgumentException("select(): index 0 out of range for tensor of size [0] at dimension 0", nameof(input));
            }

            if (channels == features)
            {
                return;
            }

            // InstanceNorm and GroupNorm: PyTorch checks the set size first (in Python), then libtorch the parameters.
            if (geometry.PerInstance)
            {
                ValidateSetSize(input, geometry, training || !_config.TrackRunningStats);
            }
            if (_config.Module == ModuleKind.GroupNorm)
            {
                if (channels % _config.NumGroups != 0)
                {
                    throw new ArgumentException($"Expected number of channels in input to be divisible by num_groups, but got input of shape [{string.Join(", ", input.Shape)}] and num_groups={_config.NumGroups}", nameof(input));
                }

                if (_config.Affine)
                {
                    throw new ArgumentException($"Expected weight to be a vector of size equal to the number of channels in input, but got weight of shape [{features}] and input of shape [{string.Join(", ", input.Shape)}]", nameof(input));
                }
            }
            else if (_config.IsInstanceNorm)
            {
                if (_config.TrackRunningStats || _config.Affine)
                {
                    throw new ArgumentException($"{(_config.TrackRunningStats ? "running_mean" : "weight")} should contain {(long)geometry.Batch * channels} elements not {(long)geometry.Batch * features}", nameof(input));
                }
            }
            else
            {
                throw new ArgumentException($"expected input with {features} channels (dimension 1), got {channels}", nameof(input));
            }
        }

        /// <summary>PyTorch's "more than 1 value" rules: BatchNorm N·spatial, InstanceNorm spatial, GroupNorm
        /// N·(C/G)·spatial (in eval too).</summary>
        private void ValidateSetSize(CaseTensor input, ReductionGeometry geometry, bool useBatchStatistics)
        {
            if (!useBatchStatistics || _config.IsElementNorm) // LayerNorm/RMSNorm normalise a set of one value too
            {
                return;
            }

            int[] shape = geometry.Batch == 1 && input.Rank == ReductionGeometry.BatchedRank(_config.Module) - 1 && _config.IsInstanceNorm
                ? [1, .. input.Shape]
                : input.Shape;
            if (_config.Module == ModuleKind.GroupNorm)
            {
                shape = [geometry.Batch * geometry.Channels / _config.NumGroups, _config.NumGroups, .. input.Shape.Skip(2)];
            }

            if (_config.IsInstanceNorm ? geometry.Spatial == 1
                : _config.Module == ModuleKind.GroupNorm ? (long)geometry.Batch * (geometry.Channels / _config.NumGroups) * geometry.Spatial == 1
                : (long)geometry.Batch * geometry.Spatial == 1)
            {
                throw new ArgumentException(
                    $"Expected more than 1 {(_config.IsInstanceNorm ? "spatial element" : "value per channel")} when training, got input size [{string.Join(", ", shape)}]", nameof(input));
            }
        }

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput)
        {
            var input = _lastInput ?? throw new InvalidOperationException("Backward needs a preceding Forward.");
            var norm = _lastNormalization!;
            var geometry = norm.Geometry;
            int channels = geometry.Channels;
            double count = norm.ValuesPerSet;
            var gradInput = new double[input.Data.Length];
            var gradWeight = new double[channels];
            var gradBias = new double[channels];
            var weightSums = new CompensatedSum[channels];
            var biasSums = new CompensatedSum[channels];
            for (int j = 0; j < geometry.SetCount; j++)
            {
                // Per set: Σa·g and Σa·(x − μ)·g with a the channel's weight when several channels with their own
                // weights share the set (GroupNorm), else 1 (the weight is then in the set's scale).
                var gradSum = new CompensatedSum();
                var centredGradSum = new CompensatedSum();
                foreach (int i in Elements(geometry, j))
                {
                    int c = geometry.ChannelOf(i);
                    double a = geometry.WeightsInsideSets ? norm.Weight[c] : 1;
                    double centred = input.Data[i] - norm.Mean[j];
                    gradSum.Add(a * gradOutput.Data[i]);
                    centredGradSum.Add(a * centred * gradOutput.Data[i]);
                    biasSums[c].Add(gradOutput.Data[i]);
                    weightSums[c].Add(centred * gradOutput.Data[i] * norm.InvStd[j]);
                }

                double sumGrad = gradSum.Value, sumGradCentered = centredGradSum.Value;
                foreach (int i in Elements(geometry, j))
                {
                    int c = geometry.ChannelOf(i);
                    double a = geometry.WeightsInsideSets ? norm.Weight[c] : 1;
                    double scale = geometry.WeightsInsideSets ? norm.InvStd[j] : norm.InvStd[j] * norm.Weight[c];
                    // An uncentred set (RMSNorm) has no mean, so no Σa·g/n term.
                    double meanTerm = geometry.Centered ? sumGrad / count : 0;
                    gradInput[i] = norm.UsesBatchStatistics
                        ? (a * gradOutput.Data[i] - meanTerm
                           - (input.Data[i] - norm.Mean[j]) * sumGradCentered * norm.InvStd[j] * norm.InvStd[j] / count)
                          * scale
                        : gradOutput.Data[i] * norm.InvStd[j] * norm.Weight[c];
                }
            }

            for (int c = 0; c < channels; c++)
            {
                gradBias[c] = biasSums[c].Value;
                gradWeight[c] = weightSums[c].Value;
            }

            if (!geometry.PerInstance)
            {
                // BatchNorm: a channel is one set; its parameter gradients are the set's compensated sums.
                for (int c = 0; c < channels; c++)
                {
                    var gradSum = new CompensatedSum();
                    var centredGradSum = new CompensatedSum();
                    foreach (int i in Elements(geometry, c))
                    {
                        gradSum.Add(gradOutput.Data[i]);
                        centredGradSum.Add((input.Data[i] - norm.Mean[c]) * gradOutput.Data[i]);
                    }

                    gradBias[c] = gradSum.Value;
                    gradWeight[c] = centredGradSum.Value * norm.InvStd[c];
                }
            }

            return (new CaseTensor((int[])input.Shape.Clone(), gradInput),
                _config.Affine ? gradWeight : null,
                _config.HasBias ? gradBias : null);
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
