using System.Numerics;

namespace BnParity;

/// <summary>
/// Instance normalisation with the semantics of PyTorch's <c>torch.nn.InstanceNorm1d/2d/3d</c> modules, for
/// <see cref="float"/> and <see cref="double"/>: every (n, c) plane of the input is normalised with its own mean and
/// biased variance over the spatial positions; invstd = 1/sqrt(var + eps); y = (x − mean)·invstd·weight[c] + bias[c]
/// (weight 1, bias 0 when not <see cref="NormBase{T}.Affine"/>, the default).
/// </summary>
/// <remarks>
/// <para><b>Running statistics</b> (<see cref="NormBase{T}.TrackRunningStats"/>, off by default): a training step
/// blends each instance's statistics into the running buffers as PyTorch does it — its batch_norm over the
/// (1, N·C, …) view with the buffers repeated N times, then the mean over the batch:
/// running_mean = mean_n(f·mean_nc + (1 − f)·running_mean) and running_var likewise with each instance's
/// <b>unbiased</b> variance. f = <see cref="NormBase{T}.Momentum"/>, and a null momentum means 0: the running
/// statistics stay where they are (PyTorch 2.x; PyTorch 1.13 rejects None). <c>num_batches_tracked</c> exists
/// when tracking but is never incremented. Eval uses the running statistics only when tracking; otherwise it
/// normalises with the instance statistics, like training.</para>
/// <para><b>Input</b>: batched (N, C, …) or unbatched (C, …) (run as a batch of one). Training, and eval without
/// running statistics, need more than one spatial element (PyTorch's "Expected more than 1 spatial element when
/// training", raised in eval too). A channel count other than numFeatures is an error only when the weight or the
/// running buffers need it (affine or tracking), with libtorch's text; otherwise it runs with the input's channels,
/// as PyTorch 1.13 does (PyTorch 2.1+ also warns).</para>
/// <para><b>Layout</b>: InstanceNorm2d/3d take <see cref="MemoryLayout.ChannelsLast"/> input and return the output
/// (and the input gradient) in the same layout. PyTorch 1.13 returns a channels-first output for a channels-last
/// input (its input gradient stays channels-last); the values are the same.</para>
/// <para>Accuracy, atomic failures, backward, threads and determinism: as <see cref="BatchNorm{T}"/> and
/// <see cref="NormBase{T}"/>; the one engine runs both.</para>
/// </remarks>
/// <typeparam name="T">float or double.</typeparam>
public abstract class InstanceNorm<T> : NormBase<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the module with PyTorch's defaults (no weight or buffers unless asked for; weight 1, bias 0,
    /// running_mean 0, running_var 1, count 0 when they exist).</summary>
    /// <param name="numFeatures">C, the number of channels; at least 1.</param>
    /// <param name="eps">Added to the variance for stability. Not range-checked.</param>
    /// <param name="momentum">Running-statistics factor; null means 0 (the running statistics never move). Not
    /// range-checked.</param>
    /// <param name="affine">Whether to learn a per-channel weight and bias (default false, as PyTorch).</param>
    /// <param name="trackRunningStats">Whether to keep running statistics (default false, as PyTorch).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="numFeatures"/> is less than 1.</exception>
    /// <exception cref="NotSupportedException">T is neither float nor double.</exception>
    private protected InstanceNorm(int numFeatures, double eps, double? momentum, bool affine, bool trackRunningStats)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    /// <summary>Sets <see cref="NormBase{T}.Training"/> and returns this module.</summary>
    public new InstanceNorm<T> Train(bool mode = true)
    {
        base.Train(mode);
        return this;
    }

    /// <summary>Sets <see cref="NormBase{T}.Training"/> to false and returns this module.</summary>
    public new InstanceNorm<T> Eval() => Train(false);

    /// <summary>The rank of an unbatched input (the batched rank minus one).</summary>
    private protected abstract int UnbatchedRank { get; }

    /// <summary>The accepted ranks, e.g. "3D or 4D".</summary>
    private protected string RankText => $"{UnbatchedRank}D or {UnbatchedRank + 1}D";

    /// <inheritdoc/>
    protected override void ValidateRank(int rank)
    {
        if (rank != UnbatchedRank && rank != UnbatchedRank + 1)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.WrongRank(RankText, rank), "input");
        }
    }

    private protected override InputDims DimsOf(ReadOnlySpan<int> shape) =>
        shape.Length == UnbatchedRank ? InputDims.Unbatched(shape) : InputDims.Batched(shape);

    /// <summary>Every (n, c) plane is a set. Channels-first: the planes are the N·C contiguous runs of the
    /// (1, N·C, spatial) view. Channels-last: each instance is a (spatial, C) matrix, run as a sample of its own.</summary>
    private protected override ReductionView ViewOf(InputDims dims, MemoryLayout layout) =>
        layout == MemoryLayout.ChannelsLast
            ? new ReductionView(dims.N, dims.Spatial, dims.C, 1)
            : new ReductionView(1, 1, checked(dims.N * dims.C), dims.Spatial);

    /// <summary>PyTorch: "Expected more than 1 spatial element when training" when spatial = 1 (whatever N).</summary>
    private protected override void ValidateSetSize(ReadOnlySpan<int> shape, InputDims dims)
    {
        if (dims.Spatial == 1)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.MoreThanOneSpatialElement(BatchedShape(shape)), "input");
        }
    }

    /// <summary>
    /// A channel count other than numFeatures fails only where libtorch's batch_norm over the (1, N·C, …) view
    /// compares the repeated buffers and parameters with its N·C channels: running_mean first, then weight. PyTorch
    /// checks the spatial size before (in Python), so that error wins when both apply.
    /// </summary>
    private protected override void ValidateChannels(ReadOnlySpan<int> shape, InputDims dims)
    {
        if (dims.N == 0 && Affine)
        {
            // PyTorch 1.13: repeating the weight for an empty batch fails inside libtorch, in both modes.
            throw BatchNormErrors.Argument("select(): index 0 out of range for tensor of size [0] at dimension 0", "input");
        }

        if (dims.C == NumFeatures || (!TrackRunningStats && !Affine))
        {
            return;
        }

        if (UsesBatchStats)
        {
            ValidateSetSize(shape, dims);
        }

        string buffer = TrackRunningStats ? "running_mean" : "weight";
        throw BatchNormErrors.Argument(
            BatchNormErrors.WrongElementCount(buffer, (long)dims.N * dims.C, (long)dims.N * NumFeatures), "input");
    }

    /// <summary>Training steps, and an empty batch in eval too: PyTorch's instance_norm writes the mean over the batch
    /// of the (repeated) buffers back in both modes, which for N = 0 is NaN. (For N &gt; 0 in eval it writes the mean of N
    /// copies of the buffer, which PyTorch may round by an ulp; this class leaves the buffer as it is.)</summary>
    private protected override bool UpdatesRunningStatistics(bool training, InputDims dims) => training || dims.N == 0;

    /// <summary>InstanceNorm never increments num_batches_tracked.</summary>
    private protected override bool CountsBatches => false;

    /// <summary>momentum, or 0 when null (PyTorch 2.x passes 0.0: the running statistics stay).</summary>
    private protected override double RunningFactor(double? momentum, long numBatchesTracked) => momentum ?? 0.0;

    /// <summary>The shape PyTorch's size check sees: an unbatched input gains its batch dimension of one.</summary>
    private int[] BatchedShape(ReadOnlySpan<int> shape) =>
        shape.Length == UnbatchedRank ? [1, .. shape] : shape.ToArray();
}

/// <summary>InstanceNorm over (N, C, L) or unbatched (C, L) input, like <c>torch.nn.InstanceNorm1d</c>.</summary>
/// <typeparam name="T">float or double.</typeparam>
public sealed class InstanceNorm1d<T> : InstanceNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc cref="InstanceNorm{T}(int, double, double?, bool, bool)"/>
    public InstanceNorm1d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = false, bool trackRunningStats = false)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    private protected override int UnbatchedRank => 2;
}

/// <summary>InstanceNorm over (N, C, H, W) or unbatched (C, H, W) input, like <c>torch.nn.InstanceNorm2d</c>;
/// channels-first or channels-last.</summary>
/// <typeparam name="T">float or double.</typeparam>
public sealed class InstanceNorm2d<T> : InstanceNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc cref="InstanceNorm{T}(int, double, double?, bool, bool)"/>
    public InstanceNorm2d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = false, bool trackRunningStats = false)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    private protected override int UnbatchedRank => 3;

    private protected override bool SupportsChannelsLast => true;
}

/// <summary>InstanceNorm over (N, C, D, H, W) or unbatched (C, D, H, W) input, like <c>torch.nn.InstanceNorm3d</c>;
/// channels-first or channels-last.</summary>
/// <typeparam name="T">float or double.</typeparam>
public sealed class InstanceNorm3d<T> : InstanceNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc cref="InstanceNorm{T}(int, double, double?, bool, bool)"/>
    public InstanceNorm3d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = false, bool trackRunningStats = false)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    private protected override int UnbatchedRank => 4;

    private protected override bool SupportsChannelsLast => true;
}
