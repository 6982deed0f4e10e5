namespace BnParity;

/// <summary>
/// Non-generic view of a tensor held in a state dictionary (see <see cref="NormBase{T}.StateDict"/>).
/// </summary>
public interface IStateTensor
{
    /// <summary>The dimensions (a copy; rank 0 is <c>[]</c>).</summary>
    int[] Shape { get; }

    /// <summary>The element type, e.g. <see cref="float"/>, <see cref="double"/> or <see cref="long"/>.</summary>
    Type ElementType { get; }

    /// <summary>The contiguous row-major buffer (a <c>T[]</c>).</summary>
    Array Data { get; }
}

/// <summary>
/// A small dense row-major tensor: a contiguous buffer plus a shape. A rank-0 tensor (shape <c>[]</c>)
/// holds exactly one element.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
public sealed class DenseTensor<T> : IStateTensor where T : unmanaged
{
    private readonly int[] _shape;

    /// <summary>Wraps <paramref name="data"/> (not copied) with the given shape.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="data"/> or <paramref name="shape"/> is null.</exception>
    /// <exception cref="ArgumentException">A dimension is negative, or the product of the dimensions differs from
    /// <c>data.Length</c>.</exception>
    public DenseTensor(T[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        long length = CheckedLength(shape, nameof(shape));
        if (length != data.Length)
        {
            throw new ArgumentException(
                $"data has {data.Length} elements but shape {FormatShape(shape)} needs {length}.", nameof(data));
        }

        _shape = (int[])shape.Clone();
        Data = data;
    }

    /// <summary>Creates a zero-filled tensor of the given shape.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="shape"/> is null.</exception>
    /// <exception cref="ArgumentException">A dimension is negative or the element count overflows.</exception>
    public DenseTensor(params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long length = CheckedLength(shape, nameof(shape));
        _shape = (int[])shape.Clone();
        Data = length == 0 ? [] : new T[length];
    }

    /// <summary>A rank-0 tensor (shape <c>[]</c>) holding <paramref name="value"/>. Prefer it to a collection
    /// expression: for <c>DenseTensor&lt;long&gt;</c> (or <c>int</c>) <c>new DenseTensor&lt;long&gt;([42])</c> binds to
    /// the shape constructor and builds a zero tensor of shape [42].</summary>
    public static DenseTensor<T> Scalar(T value) => new([value]);

    /// <summary>A copy of the dimensions; mutating it does not affect the tensor.</summary>
    public int[] Shape => (int[])_shape.Clone();

    /// <summary>The dimensions without copying.</summary>
    public ReadOnlySpan<int> ShapeSpan => _shape;

    /// <summary>The contiguous row-major buffer (shared, mutable).</summary>
    public T[] Data { get; }

    /// <summary>The number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>The number of elements (1 for rank 0).</summary>
    public int Length => Data.Length;

    /// <summary>The buffer as a span.</summary>
    public Span<T> AsSpan() => Data;

    /// <summary>A deep copy (buffer and shape).</summary>
    public DenseTensor<T> Clone() => new((T[])Data.Clone(), _shape);

    Type IStateTensor.ElementType => typeof(T);

    Array IStateTensor.Data => Data;

    /// <inheritdoc/>
    public override string ToString() => $"DenseTensor<{typeof(T).Name}>{FormatShape(_shape)}";

    /// <summary>Formats a shape like PyTorch's size lists: <c>[1, 3, 1, 1]</c>.</summary>
    public static string FormatShape(ReadOnlySpan<int> shape)
    {
        var sb = new System.Text.StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            sb.Append(shape[i]);
        }

        return sb.Append(']').ToString();
    }

    /// <summary>Validates a shape and returns its element count (throws when negative or above int.MaxValue). A
    /// shape with a zero dimension has no elements whatever its other dimensions, in any order (as in PyTorch); the
    /// running product is checked before it can overflow.</summary>
    internal static long CheckedLength(ReadOnlySpan<int> shape, string paramName)
    {
        bool empty = false;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0)
            {
                throw new ArgumentException(
                    $"Dimension {i} of shape {FormatShape(shape)} is negative.", paramName);
            }

            empty |= shape[i] == 0;
        }

        if (empty)
        {
            return 0;
        }

        long length = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            length *= shape[i]; // ≤ int.MaxValue · int.MaxValue: cannot overflow a long
            if (length > int.MaxValue)
            {
                throw new ArgumentException(
                    $"Shape {FormatShape(shape)} has more than {int.MaxValue} elements.", paramName);
            }
        }

        return length;
    }
}
