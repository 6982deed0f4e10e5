using System.Diagnostics;
using System.Globalization;
using System.Numerics;

namespace BnParity;

/// <summary>
/// Group normalisation with the semantics of PyTorch's <c>torch.nn.GroupNorm</c>, for <see cref="float"/> and
/// <see cref="double"/>: the C channels of every sample are split into <see cref="NumGroups"/> groups of C/G
/// consecutive channels; each (n, group) block is normalised with its own mean and biased variance over its
/// C/G·spatial elements, invstd = 1/sqrt(var + eps), and y = (x − mean)·invstd·weight[c] + bias[c] with a
/// per-<i>channel</i> weight and bias (ones and zeros; absent when not <see cref="NormBase{T}.Affine"/>).
/// </summary>
/// <remarks>
/// <para>GroupNorm has no running statistics and no mode: train and eval compute the same thing, so
/// <see cref="NormBase{T}.TrackRunningStats"/> is false, <see cref="NormBase{T}.Momentum"/>,
/// <see cref="NormBase{T}.RunningMean"/>, <see cref="NormBase{T}.RunningVar"/> and
/// <see cref="NormBase{T}.NumBatchesTracked"/> are null, and <see cref="NormBase{T}.Training"/> changes nothing.</para>
/// <para><b>Input</b>: (N, C) or (N, C, …), channels-first or channels-last (the output and the input gradient come
/// back in the input's layout, as PyTorch's CPU kernel keeps the memory format). PyTorch raises "Expected more than 1
/// value per channel when training" only when N·(C/G)·spatial = 1 — in eval too; a (2, 4) input with 4 groups has one
/// value per group and normalises it to the bias. With <see cref="NormBase{T}.Affine"/> the input must have
/// numChannels channels; without, any channel count divisible by the groups runs, as in PyTorch (libtorch's texts).</para>
/// <para>Accuracy, atomic failures, backward, threads and determinism: as <see cref="NormBase{T}"/>; the one engine
/// runs it, with a group as a set of C/G channels.</para>
/// </remarks>
/// <typeparam name="T">float or double.</typeparam>
public sealed class GroupNorm<T> : NormBase<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the module with PyTorch's defaults: weight 1, bias 0.</summary>
    /// <param name="numGroups">G, the number of groups; at least 1, and it must divide <paramref name="numChannels"/>.</param>
    /// <param name="numChannels">C, the number of channels (dimension 1 of the input); at least 1.</param>
    /// <param name="eps">Added to the variance for stability. Not range-checked.</param>
    /// <param name="affine">Whether to learn a per-channel weight and bias (default true, as PyTorch).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="numGroups"/> or <paramref name="numChannels"/>
    /// is less than 1.</exception>
    /// <exception cref="ArgumentException"><paramref name="numChannels"/> is not divisible by
    /// <paramref name="numGroups"/> (PyTorch's "num_channels must be divisible by num_groups").</exception>
    /// <exception cref="NotSupportedException">T is neither float nor double.</exception>
    public GroupNorm(int numGroups, int numChannels, double eps = 1e-5, bool affine = true)
        : base(CheckedChannels(numGroups, numChannels), eps, momentum: null, affine, trackRunningStats: false)
    {
        NumGroups = numGroups;
    }

    /// <summary>G, the number of groups.</summary>
    public int NumGroups { get; }

    /// <summary>C, the number of channels (the same as <see cref="NormBase{T}.NumFeatures"/>).</summary>
    public int NumChannels => NumFeatures;

    /// <summary>Sets <see cref="NormBase{T}.Training"/> (which changes nothing for GroupNorm) and returns this module.</summary>
    public new GroupNorm<T> Train(bool mode = true)
    {
        base.Train(mode);
        return this;
    }

    /// <summary>Sets <see cref="NormBase{T}.Training"/> to false and returns this module.</summary>
    public new GroupNorm<T> Eval() => Train(false);

    private static int CheckedChannels(int numGroups, int numChannels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numGroups, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(numChannels, 1);
        if (numChannels % numGroups != 0)
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"num_channels must be divisible by num_groups (numChannels {numChannels}, numGroups {numGroups})."),
                nameof(numChannels));
        }

        return numChannels;
    }

    /// <summary>Any rank from 2 (PyTorch 2.x's text).</summary>
    protected override void ValidateRank(int rank)
    {
        if (rank < 2)
        {
            throw BatchNormErrors.Argument($"Expected at least 2 dimensions for input tensor but received {rank}", "input");
        }
    }

    private protected override bool SupportsChannelsLast => true;

    /// <summary>A group is a set of C/G consecutive channels: of the (1, N·C, spatial) view channels-first (one
    /// contiguous block), of each instance's (spatial, C) matrix channels-last (C/G adjacent columns).</summary>
    private protected override ReductionView ViewOf(InputDims dims, MemoryLayout layout) =>
        layout == MemoryLayout.ChannelsLast
            ? new ReductionView(dims.N, dims.Spatial, dims.C, 1, dims.C / NumGroups)
            : new ReductionView(1, 1, checked(dims.N * dims.C), dims.Spatial, dims.C / NumGroups);

    /// <summary>PyTorch's <c>_verify_batch_size</c> on [N·C/G, G, spatial…]: an error only when N·(C/G)·spatial = 1,
    /// printing that list.</summary>
    private protected override void ValidateSetSize(ReadOnlySpan<int> shape, InputDims dims)
    {
        if ((long)dims.N * (dims.C / NumGroups) * dims.Spatial == 1)
        {
            int[] size = [dims.N * dims.C / NumGroups, NumGroups, .. shape[2..]];
            throw BatchNormErrors.Argument(BatchNormErrors.MoreThanOneValuePerChannel(size), "input");
        }
    }

    /// <summary>libtorch's rules, after PyTorch's size check: the channels must divide into the groups, and, with
    /// weights, be numChannels.</summary>
    private protected override void ValidateChannels(ReadOnlySpan<int> shape, InputDims dims)
    {
        if (dims.C == NumFeatures)
        {
            return;
        }

        ValidateSetSize(shape, dims);
        if (dims.C % NumGroups != 0)
        {
            throw BatchNormErrors.Argument(
                $"Expected number of channels in input to be divisible by num_groups, but got input of shape {DenseTensor<T>.FormatShape(shape)} and num_groups={NumGroups}", "input");
        }

        if (Affine)
        {
            throw BatchNormErrors.Argument(
                $"Expected weight to be a vector of size equal to the number of channels in input, but got weight of shape [{NumFeatures}] and input of shape {DenseTensor<T>.FormatShape(shape)}", "input");
        }
    }

    private protected override bool CountsBatches => throw new UnreachableException("GroupNorm keeps no running statistics.");

    private protected override double RunningFactor(double? momentum, long numBatchesTracked) =>
        throw new UnreachableException("GroupNorm keeps no running statistics.");
}
