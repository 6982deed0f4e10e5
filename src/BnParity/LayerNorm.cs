using System.Diagnostics;
using System.Globalization;
using System.Numerics;

namespace BnParity;

/// <summary>
/// The layers whose sets are the trailing <see cref="NormalizedShape"/> elements of one leading index (LayerNorm,
/// RMSNorm): M = (elements before them) sets of D = prod(normalized_shape) contiguous elements, and affine parameters of
/// shape normalized_shape that index per <i>element</i> of a set. No running statistics, no mode, no channels-last
/// layout. The one engine runs them (its element parameters, see <c>NormalizationEngine.ElementAffine</c>).
/// </summary>
/// <typeparam name="T">float or double.</typeparam>
public abstract class ElementNorm<T> : NormBase<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int[] _normalizedShape;

    private protected ElementNorm(int[] normalizedShape, double eps, bool elementwiseAffine, bool hasBias)
        : base(CheckedLength(normalizedShape), eps, momentum: null, elementwiseAffine, trackRunningStats: false, hasBias)
    {
        _normalizedShape = (int[])normalizedShape.Clone();
    }

    /// <summary>The trailing dimensions every set spans (a copy).</summary>
    public int[] NormalizedShape => (int[])_normalizedShape.Clone();

    private protected override int[] ParameterShape => (int[])_normalizedShape.Clone();

    private protected override bool ElementParameters => true;

    /// <summary>No rank rule of its own: an input with fewer dimensions than normalized_shape breaks PyTorch's shape rule
    /// ("Given normalized_shape=…, but got input of size[…]", checked in <see cref="ValidateChannels"/>).</summary>
    private protected override int MinimumRank => 0;

    private static int CheckedLength(int[] normalizedShape)
    {
        ArgumentNullException.ThrowIfNull(normalizedShape);
        if (normalizedShape.Length == 0)
        {
            throw new ArgumentException(
                "Expected normalized_shape to be at least 1-dimensional, i.e., containing at least one element, but got normalized_shape = []",
                nameof(normalizedShape));
        }

        long length = 1;
        foreach (int d in normalizedShape)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(d, 1, nameof(normalizedShape));
            length *= d;
            ArgumentOutOfRangeException.ThrowIfGreaterThan(length, MaxNumFeatures, nameof(normalizedShape));
        }

        return (int)length;
    }

    /// <summary>No rule of its own: too few dimensions break PyTorch's one shape rule, which
    /// <see cref="ValidateChannels"/> checks with the input's size in its text.</summary>
    protected override void ValidateRank(int rank)
    {
    }

    /// <summary>(1, M, D): M sets (the product of the leading dimensions) of D elements.</summary>
    private protected override InputDims DimsOf(ReadOnlySpan<int> shape)
    {
        long sets = 1;
        foreach (int d in shape[..Math.Max(shape.Length - _normalizedShape.Length, 0)])
        {
            sets = Math.Min(sets * d, int.MaxValue);
        }

        return new InputDims(1, (int)sets, NumFeatures);
    }

    private protected override ReductionView ViewOf(InputDims dims, MemoryLayout layout) => new(1, 1, dims.C, dims.Spatial);

    private protected override void ValidateSetSize(ReadOnlySpan<int> shape, InputDims dims)
    {
    }

    private protected override void ValidateChannels(ReadOnlySpan<int> shape, InputDims dims)
    {
        if (shape.Length < _normalizedShape.Length || !shape[^_normalizedShape.Length..].SequenceEqual(_normalizedShape))
        {
            throw ShapeError(shape.ToArray());
        }
    }

    /// <summary>PyTorch's text: "Given normalized_shape=[…], expected input with shape [*, …], but got input of size[…]".</summary>
    private ArgumentException ShapeError(int[] shape)
    {
        string normalized = string.Join(", ", _normalizedShape);
        string size = DenseTensor<T>.FormatShape(shape);
        return BatchNormErrors.Argument(
            $"Given normalized_shape=[{normalized}], expected input with shape [*, {normalized}], but got input of size{size}", "input");
    }

    private protected override bool CountsBatches => throw new UnreachableException("LayerNorm and RMSNorm keep no running statistics.");

    private protected override double RunningFactor(double? momentum, long numBatchesTracked) =>
        throw new UnreachableException("LayerNorm and RMSNorm keep no running statistics.");
}

/// <summary>
/// Layer normalisation with the semantics of PyTorch's <c>torch.nn.LayerNorm</c>, for <see cref="float"/> and
/// <see cref="double"/>: every set of the trailing <see cref="ElementNorm{T}.NormalizedShape"/> elements is normalised
/// with its own mean and biased variance, invstd = 1/sqrt(var + eps), and y = (x − mean)·invstd·weight[e] + bias[e] with
/// a weight and bias of shape normalized_shape (ones and zeros; <c>bias: false</c> leaves out the bias, as PyTorch
/// 2.1+; <c>elementwiseAffine: false</c> both). The same in train and eval.
/// </summary>
/// <remarks>Input of any rank ≥ normalized_shape's whose last dimensions are normalized_shape (PyTorch's "Given
/// normalized_shape=…" error otherwise); the output and the input gradient have the input's shape. The state dict holds
/// <c>weight</c> and <c>bias</c> of shape normalized_shape. Accuracy, atomic failures, threads and determinism: as
/// <see cref="NormBase{T}"/>.</remarks>
/// <typeparam name="T">float or double.</typeparam>
public sealed class LayerNorm<T> : ElementNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the module with PyTorch's defaults: weight 1, bias 0.</summary>
    /// <param name="normalizedShape">The trailing dimensions each set spans (at least one, each ≥ 1).</param>
    /// <param name="eps">Added to the variance for stability. Not range-checked.</param>
    /// <param name="elementwiseAffine">Whether to learn a per-element weight (and bias).</param>
    /// <param name="bias">Whether the affine module also learns a bias.</param>
    /// <exception cref="ArgumentException"><paramref name="normalizedShape"/> is empty (PyTorch's text).</exception>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is below 1, or the product exceeds 2^24.</exception>
    public LayerNorm(int[] normalizedShape, double eps = 1e-5, bool elementwiseAffine = true, bool bias = true)
        : base(normalizedShape, eps, elementwiseAffine, bias)
    {
    }

    /// <summary>LayerNorm over the last dimension of size <paramref name="normalizedShape"/>.</summary>
    public LayerNorm(int normalizedShape, double eps = 1e-5, bool elementwiseAffine = true, bool bias = true)
        : this([normalizedShape], eps, elementwiseAffine, bias)
    {
    }
}

/// <summary>
/// Root-mean-square normalisation with the semantics of PyTorch's <c>torch.nn.RMSNorm</c> (2.4+), for
/// <see cref="float"/> and <see cref="double"/>: y = x / sqrt(mean(x²) + eps) · weight[e] over each set of the trailing
/// <see cref="ElementNorm{T}.NormalizedShape"/> elements; no mean is subtracted and there is no bias. <c>eps: null</c>
/// (the default) is the machine epsilon of T, torch.finfo(dtype).eps: 1.1920929e-07 for float, 2.220446049250313e-16 for
/// double.
/// </summary>
/// <typeparam name="T">float or double.</typeparam>
public sealed class RMSNorm<T> : ElementNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the module with PyTorch's defaults: weight 1.</summary>
    /// <param name="normalizedShape">The trailing dimensions each set spans (at least one, each ≥ 1).</param>
    /// <param name="eps">Added to the mean square; null for the machine epsilon of T.</param>
    /// <param name="elementwiseAffine">Whether to learn a per-element weight.</param>
    /// <exception cref="ArgumentException"><paramref name="normalizedShape"/> is empty (PyTorch's text).</exception>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is below 1, or the product exceeds 2^24.</exception>
    public RMSNorm(int[] normalizedShape, double? eps = null, bool elementwiseAffine = true)
        : base(normalizedShape, eps ?? MachineEpsilon, elementwiseAffine, hasBias: false)
    {
        EpsIsDefault = eps is null;
    }

    /// <summary>RMSNorm over the last dimension of size <paramref name="normalizedShape"/>.</summary>
    public RMSNorm(int normalizedShape, double? eps = null, bool elementwiseAffine = true)
        : this([normalizedShape], eps, elementwiseAffine)
    {
    }

    /// <summary>Whether eps was null (PyTorch's default): the machine epsilon of T is used.</summary>
    public bool EpsIsDefault { get; }

    /// <summary>torch.finfo(T).eps: the distance from 1 to the next larger T.</summary>
    public static double MachineEpsilon => typeof(T) == typeof(float) ? Math.ScaleB(1.0, -23) : Math.ScaleB(1.0, -52);

    private protected override bool CenteredSets => false;
}
