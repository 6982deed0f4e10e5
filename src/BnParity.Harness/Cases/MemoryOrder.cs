namespace BnParity.Harness.Cases;

/// <summary>
/// The one place that maps a case's logical tensors (row-major (N, C, …), as the case format and
/// <see cref="CaseTensor"/> hold them whatever the layout) to and from the order a layout puts them in
/// memory. Channels-last puts logical (n, c, s) at (n·S + s)·C + c, where S is the spatial size.
/// </summary>
public static class MemoryOrder
{
    /// <summary>The values of <paramref name="logical"/> in the order <paramref name="layout"/> stores them.</summary>
    public static double[] ToMemory(CaseTensor logical, MemoryLayout layout)
    {
        ArgumentNullException.ThrowIfNull(logical);
        return ToMemory(logical.Data, logical.Shape, layout);
    }

    /// <summary>The logical tensor of shape <paramref name="shape"/> whose values lie in <paramref name="memory"/> in
    /// <paramref name="layout"/>.</summary>
    public static CaseTensor FromMemory(int[] shape, double[] memory, MemoryLayout layout)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return new CaseTensor((int[])shape.Clone(), ToLogical(memory, shape, layout));
    }

    /// <summary>A copy of the logical row-major <paramref name="logical"/> (of <paramref name="shape"/>) in
    /// <paramref name="layout"/>'s memory order.</summary>
    public static T[] ToMemory<T>(T[] logical, int[] shape, MemoryLayout layout) => Permute(logical, shape, layout, toMemory: true);

    /// <summary>A copy of <paramref name="memory"/> (in <paramref name="layout"/>, of logical <paramref name="shape"/>) in
    /// logical row-major order.</summary>
    public static T[] ToLogical<T>(T[] memory, int[] shape, MemoryLayout layout) => Permute(memory, shape, layout, toMemory: false);

    /// <summary>The dimensions in the order <paramref name="layout"/> stores them: (N, C, …) or (N, …, C).</summary>
    public static long[] MemoryShape(int[] shape, MemoryLayout layout)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long[] dims = Array.ConvertAll(shape, d => (long)d);
        if (layout == MemoryLayout.ChannelsFirst || shape.Length < 3)
        {
            return dims;
        }

        return [dims[0], .. dims[2..], dims[1]];
    }

    private static T[] Permute<T>(T[] source, int[] shape, MemoryLayout layout, bool toMemory)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(shape);
        if (layout == MemoryLayout.ChannelsFirst || shape.Length < 3)
        {
            return (T[])source.Clone();
        }

        int batch = shape[0], channels = shape[1], spatial = shape.Skip(2).Aggregate(1, (a, b) => a * b);
        var result = new T[source.Length];
        for (int n = 0; n < batch; n++)
        {
            for (int c = 0; c < channels; c++)
            {
                for (int s = 0; s < spatial; s++)
                {
                    int logical = ((n * channels) + c) * spatial + s;
                    int memory = ((n * spatial) + s) * channels + c;
                    if (toMemory)
                    {
                        result[memory] = source[logical];
                    }
                    else
                    {
                        result[logical] = source[memory];
                    }
                }
            }
        }

        return result;
    }
}
