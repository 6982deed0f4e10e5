namespace BnParity;

/// <summary>
/// The plan of one call over an (N, C, S) input: the execution path, the workers, and the fixed block geometry the
/// summation order is made of. Everything but <see cref="Path"/> and <see cref="Threads"/> depends on the shape only,
/// never on the thread count: that invariance is the determinism guarantee (results bit-identical for every
/// MaxDegreeOfParallelism). A pure function in 64-bit arithmetic, so shapes of 2^31 elements and more can be planned
/// and tested without allocating them.
/// </summary>
/// <remarks>
/// Channel and split paths: channel c is N runs of S contiguous elements. Runs shorter than <see cref="Block"/> are
/// taken in groups of <see cref="RunsPerGroup"/> = ⌊Block/S⌋ consecutive runs (1 when S ≥ Block); a channel's total is
/// the left fold, over the <see cref="Groups"/> in order and then over the <see cref="BlocksPerRun"/> blocks
/// [b, b + Block) of the group's runs, of each kernel sum. The split path makes each (group, channel, block) one of
/// <see cref="SplitUnits"/> units and folds their partials in that same order. Row path: the input is an (N, C·S)
/// matrix cut into <see cref="RowBlocks"/> blocks of <see cref="RowsPerBlock"/> rows, taken
/// <see cref="RowTileChannels"/> channels at a time.
/// </remarks>
internal readonly record struct SummationPlan
{
    /// <summary>Block length (elements) of the canonical per-channel summation order.</summary>
    public const int Block = 4096;

    /// <summary>Row blocks hold at least this many rows.</summary>
    public const int RowBlockMinRows = 32;

    /// <summary>At most this many row blocks (rows per block grow with N).</summary>
    public const int RowBlockMaxBlocks = 32;

    /// <summary>The row path takes at most this many columns at a time (<see cref="RowTileChannels"/>): its scratch is
    /// about (2·blocks + 9) doubles per column, 9 MB for a tile of 2^14 columns in 32 blocks.</summary>
    public const int RowTileMaxColumns = 1 << 14;

    public ExecutionPath Path { get; init; }

    /// <summary>The thread budget of the call (the path may use fewer workers).</summary>
    public int Threads { get; init; }

    public long Batch { get; init; }

    public int Channels { get; init; }

    public long Spatial { get; init; }

    /// <summary>⌈S / Block⌉.</summary>
    public long BlocksPerRun => CeilDiv(Spatial, Block);

    /// <summary>⌊Block / S⌋ consecutive runs per group when S &lt; Block, else 1.</summary>
    public long RunsPerGroup => Spatial >= Block ? 1 : Block / Spatial;

    /// <summary>⌈N / RunsPerGroup⌉.</summary>
    public long Groups => CeilDiv(Batch, RunsPerGroup);

    /// <summary>Units of the split path: Groups · C · BlocksPerRun.</summary>
    public long SplitUnits => Groups * Channels * BlocksPerRun;

    /// <summary>max(32, ⌈N / 32⌉): a function of N only.</summary>
    public long RowsPerBlock => Math.Max(RowBlockMinRows, CeilDiv(Batch, RowBlockMaxBlocks));

    /// <summary>⌈N / RowsPerBlock⌉ (at most 32).</summary>
    public long RowBlocks => CeilDiv(Batch, RowsPerBlock);

    /// <summary>Channels per row tile: as many whole channels as fit <see cref="RowTileMaxColumns"/> columns (one when a
    /// channel alone is wider), at most C. The row path runs a wider matrix tile by tile; a column's operations do not
    /// depend on its tile, so the tiles change the scratch and the work split, never a result bit. All of C·S ≤ 2^14
    /// is one tile.</summary>
    public long RowTileChannels => Math.Min(Channels, Math.Max(1, RowTileMaxColumns / Spatial));

    /// <summary>⌈C / RowTileChannels⌉.</summary>
    public long RowTiles => CeilDiv(Channels, RowTileChannels);

    /// <summary>Plans a non-empty (N, C, S) input (N, C, S ≥ 1).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is below 1.</exception>
    public static SummationPlan Create(long batch, int channels, long spatial, int maxThreads, ExecutionOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(spatial, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxThreads, 1);
        ArgumentNullException.ThrowIfNull(options);
        (ExecutionPath path, int threads) = PathSelection.Choose(batch * channels * spatial, channels, spatial, maxThreads, options);
        return new SummationPlan { Path = path, Threads = threads, Batch = batch, Channels = channels, Spatial = spatial };
    }

    private static long CeilDiv(long value, long divisor) => (value / divisor) + (value % divisor == 0 ? 0 : 1);
}
