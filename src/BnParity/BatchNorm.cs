using System.Numerics;

namespace BnParity;

/// <summary>
/// Batch normalisation with the exact semantics of PyTorch's <c>torch.nn.BatchNorm1d/2d/3d</c> modules,
/// for <see cref="float"/> and <see cref="double"/>.
/// </summary>
/// <remarks>
/// <para><b>Training</b> (or whenever <see cref="NormBase{T}.TrackRunningStats"/> is false): per channel c, over the batch and
/// all spatial positions (n = N·spatial values), mean and BIASED variance; invstd = 1/sqrt(var + eps);
/// y = (x − mean)·invstd·weight + bias (weight 1, bias 0 when not <see cref="NormBase{T}.Affine"/>). When tracking,
/// <see cref="NormBase{T}.NumBatchesTracked"/> is incremented FIRST, then with f = momentum ?? 1/num_batches_tracked:
/// running_mean = f·mean + (1 − f)·running_mean and running_var = f·var·n/(n − 1) + (1 − f)·running_var
/// (unbiased), blended in double and rounded once to T.</para>
/// <para><b>Eval</b> with tracking: normalises with the running statistics and changes nothing.</para>
/// <para><b>Accuracy</b>: statistics never use E[x²] − E[x]², and outputs are computed about the mean, so
/// ill-conditioned data (|mean| ≫ std) keeps full accuracy: float32 outputs and running statistics are within a few
/// units in the last place of the float64 truth, never less accurate than libtorch's (the test suite asserts both).</para>
/// <para><b>Parameters are not range-checked</b>: <see cref="NormBase{T}.Eps"/> and <see cref="NormBase{T}.Momentum"/> accept any value
/// (PyTorch's own samples use momentum −1.2), and NaN/Infinity in inputs, weights or buffers propagate
/// through the arithmetic like in PyTorch.</para>
/// <para><b>Failures are atomic</b>: every argument is validated before anything is mutated, so a call that throws
/// leaves weights, buffers, the batch counter and the saved backward context exactly as they were. (PyTorch
/// bumps <c>num_batches_tracked</c> before raising "Expected more than 1 value per channel"; this class does not.)</para>
/// <para>Backward, threads and determinism: see <see cref="NormBase{T}"/>.</para>
/// </remarks>
/// <typeparam name="T">float or double.</typeparam>
public abstract class BatchNorm<T> : NormBase<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the module with PyTorch's defaults: weight 1, bias 0, running_mean 0, running_var 1, count 0.</summary>
    /// <param name="numFeatures">C, the number of channels (dimension 1 of the input); at least 1.</param>
    /// <param name="eps">Added to the variance for stability. Not range-checked.</param>
    /// <param name="momentum">Running-statistics factor, or null for a cumulative moving average
    /// (f = 1/num_batches_tracked). Not range-checked.</param>
    /// <param name="affine">Whether to learn weight and bias.</param>
    /// <param name="trackRunningStats">Whether to keep running statistics; when false batch statistics are used in
    /// both modes and no buffers exist.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="numFeatures"/> is less than 1.</exception>
    /// <exception cref="NotSupportedException">T is neither float nor double.</exception>
    protected BatchNorm(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    /// <summary>Sets <see cref="NormBase{T}.Training"/> and returns this module.</summary>
    public new BatchNorm<T> Train(bool mode = true)
    {
        base.Train(mode);
        return this;
    }

    /// <summary>Sets <see cref="NormBase{T}.Training"/> to false and returns this module.</summary>
    public new BatchNorm<T> Eval() => Train(false);

    /// <summary>A channel is one set: channels-first (N, C, spatial) as it is; channels-last the (N·spatial, C)
    /// matrix it is in memory, N·spatial runs of one element per channel (validation has checked that N·spatial
    /// fits an int, as the element count does).</summary>
    private protected override ReductionView ViewOf(InputDims dims, MemoryLayout layout) =>
        layout == MemoryLayout.ChannelsLast
            ? new ReductionView(1, dims.N * dims.Spatial, dims.C, 1)
            : new ReductionView(1, dims.N, dims.C, dims.Spatial);

    /// <summary>PyTorch: "Expected more than 1 value per channel when training" when N·spatial = 1.</summary>
    private protected override void ValidateSetSize(ReadOnlySpan<int> shape, InputDims dims)
    {
        if ((long)dims.N * dims.Spatial == 1)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.MoreThanOneValuePerChannel(shape), "input");
        }
    }

    /// <summary>The channel count is numFeatures.</summary>
    private protected override void ValidateChannels(ReadOnlySpan<int> shape, InputDims dims)
    {
        if (dims.C != NumFeatures)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.WrongChannels(NumFeatures, dims.C), "input");
        }
    }

    /// <summary>Every training step counts (also an empty batch).</summary>
    private protected override bool CountsBatches => true;

    /// <summary>momentum, or 1/num_batches_tracked (a cumulative moving average) when null.</summary>
    private protected override double RunningFactor(double? momentum, long numBatchesTracked) => momentum ?? 1.0 / numBatchesTracked;
}
