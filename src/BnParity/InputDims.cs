namespace BnParity;

/// <summary>The logical (N, C, spatial) of a validated input shape (spatial: the product of the dimensions after the
/// channel dimension, saturated at int.MaxValue; it only matters for non-empty inputs, where it cannot overflow).</summary>
internal readonly record struct InputDims(int N, int C, int Spatial)
{
    /// <summary>(shape[0], shape[1], shape[2]·…) of a batched (N, C, …) shape.</summary>
    public static InputDims Batched(ReadOnlySpan<int> shape) => new(shape[0], shape[1], Product(shape[2..]));

    /// <summary>(1, shape[0], shape[1]·…) of an unbatched (C, …) shape, which runs as a batch of one.</summary>
    public static InputDims Unbatched(ReadOnlySpan<int> shape) => new(1, shape[0], Product(shape[1..]));

    private static int Product(ReadOnlySpan<int> dims)
    {
        long s = 1;
        foreach (int d in dims)
        {
            s = Math.Min(s * d, int.MaxValue);
        }

        return (int)s;
    }
}
