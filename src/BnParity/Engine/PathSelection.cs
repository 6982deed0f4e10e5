namespace BnParity;

/// <summary>
/// Picks the execution path and the number of workers for one call: a pure function of the shape, the thread count
/// and the options, so it can be tested at sizes no test could allocate.
/// </summary>
internal static class PathSelection
{
    /// <summary>Short spatial runs (S below this) use the row path, at any width: a wide matrix runs in tiles of
    /// <see cref="SummationPlan.RowTileMaxColumns"/> columns, so its scratch does not grow with C. (Wider matrices used
    /// to take the channel path, which reads a channel of runs shorter than a cache line with a stride of C·S elements:
    /// a channels-last input of 2^14 + 1 channels ran 4–14× slower than one of 2^14.)</summary>
    internal const int RowModeMaxSpatial = 16;

    /// <param name="length">N·C·S, the element count.</param>
    /// <param name="channels">C.</param>
    /// <param name="spatial">S, the product of the dimensions after the channel dimension.</param>
    /// <param name="maxThreads">The module's MaxDegreeOfParallelism.</param>
    /// <param name="options">Thresholds and a possibly forced path.</param>
    /// <returns>The path, and the thread budget the path may use (1 below the parallel threshold).</returns>
    public static (ExecutionPath Path, int Threads) Choose(long length, int channels, long spatial, int maxThreads, ExecutionOptions options)
    {
        int threads = length < options.ParallelThreshold ? 1 : maxThreads;
        if (options.Path != ExecutionPath.Auto)
        {
            return (options.Path, threads);
        }

        if (spatial < RowModeMaxSpatial)
        {
            return (ExecutionPath.Row, threads);
        }

        if (threads > 1 && channels % threads != 0 && channels < 4L * threads)
        {
            // Few channels for the threads: split channels into fixed blocks so all threads get equal work, once the
            // input is large enough to pay for the split path's extra fork/joins. Same results either way.
            return length >= options.SplitMinElements ? (ExecutionPath.Split, threads) : (ExecutionPath.Channel, 1);
        }

        return (ExecutionPath.Channel, threads);
    }

    /// <summary>Workers of a view of several samples that take whole samples each: at least two workers, and samples
    /// that share out evenly among them (a multiple of the workers, or at least four per worker). Otherwise 1: the
    /// samples run one after the other, each with all the workers on its own path. Results are the same either way (a
    /// sample's bits do not depend on its thread count).</summary>
    /// <param name="samples">The view's samples.</param>
    /// <param name="sampleLength">Elements per sample.</param>
    /// <param name="maxThreads">The call's thread budget.</param>
    /// <param name="options">The parallel threshold.</param>
    public static int SampleWorkers(int samples, long sampleLength, int maxThreads, ExecutionOptions options)
    {
        int threads = samples * sampleLength < options.ParallelThreshold ? 1 : maxThreads;
        if (threads <= 1 || samples < 2)
        {
            return 1;
        }

        return samples % threads == 0 || samples >= 4 * threads ? Math.Min(threads, samples) : 1;
    }
}
