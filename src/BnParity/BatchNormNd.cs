using System.Numerics;

namespace BnParity;

/// <summary>BatchNorm over (N, C) or (N, C, L) input, like <c>torch.nn.BatchNorm1d</c>.</summary>
/// <typeparam name="T">float or double.</typeparam>
public sealed class BatchNorm1d<T> : BatchNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc cref="BatchNorm{T}(int, double, double?, bool, bool)"/>
    public BatchNorm1d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    /// <inheritdoc/>
    protected override void ValidateRank(int rank)
    {
        if (rank != 2 && rank != 3)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.WrongRank("2D or 3D", rank), "input");
        }
    }
}

/// <summary>BatchNorm over (N, C, H, W) input, like <c>torch.nn.BatchNorm2d</c>.</summary>
/// <typeparam name="T">float or double.</typeparam>
public sealed class BatchNorm2d<T> : BatchNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc cref="BatchNorm{T}(int, double, double?, bool, bool)"/>
    public BatchNorm2d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    /// <inheritdoc/>
    private protected override bool SupportsChannelsLast => true;

    /// <inheritdoc/>
    protected override void ValidateRank(int rank)
    {
        if (rank != 4)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.WrongRank("4D", rank), "input");
        }
    }
}

/// <summary>BatchNorm over (N, C, D, H, W) input, like <c>torch.nn.BatchNorm3d</c>.</summary>
/// <typeparam name="T">float or double.</typeparam>
public sealed class BatchNorm3d<T> : BatchNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc cref="BatchNorm{T}(int, double, double?, bool, bool)"/>
    public BatchNorm3d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    /// <inheritdoc/>
    private protected override bool SupportsChannelsLast => true;

    /// <inheritdoc/>
    protected override void ValidateRank(int rank)
    {
        if (rank != 5)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.WrongRank("5D", rank), "input");
        }
    }
}
