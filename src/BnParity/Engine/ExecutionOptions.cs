namespace BnParity;

/// <summary>The execution paths of the library. Channel and split produce bit-identical results (the split path folds
/// its partials in the channel path's order); the row path has its own fixed summation order.</summary>
internal enum ExecutionPath
{
    /// <summary>Chosen by <see cref="PathSelection.Choose"/> from the shape and the thread count.</summary>
    Auto,

    /// <summary>Threads take whole channels; each channel runs its statistics and output back to back.</summary>
    Channel,

    /// <summary>Few channels for the threads: (group, block) units, partials folded by the caller in channel order.</summary>
    Split,

    /// <summary>Short spatial runs: the input is an (N, C·S) matrix swept in blocks of rows.</summary>
    Row,
}

/// <summary>
/// Internal execution knobs (tests force every path and thread count with them; users never need them).
/// The defaults are the library's tuned thresholds. Results never depend on <see cref="ParallelThreshold"/>,
/// <see cref="SplitMinElements"/> or <see cref="StreamingMinBytes"/>; forcing the row path changes the summation order
/// (see <see cref="ExecutionPath"/>).
/// </summary>
internal sealed record ExecutionOptions
{
    /// <summary>The library's tuned defaults.</summary>
    public static readonly ExecutionOptions Default = new();

    /// <summary>Forced path, or <see cref="ExecutionPath.Auto"/>.</summary>
    public ExecutionPath Path { get; init; } = ExecutionPath.Auto;

    /// <summary>Inputs with fewer elements run on one thread.</summary>
    public long ParallelThreshold { get; init; } = 32 * 1024;

    /// <summary>Automatic selection takes the split path for few channels only from this many elements (its 2–3
    /// fork/joins per call cost more than the work below it).</summary>
    public long SplitMinElements { get; init; } = 16 * 32 * 1024;

    /// <summary>From this tensor size on (bytes) the float paths write their output (y in a forward, dx in a backward)
    /// with non-temporal stores. Such a tensor is far larger than the L2 a channel's passes reuse, so ordinary stores
    /// would cost an extra read of each output line (read-for-ownership) plus evictions of the x (and dy) the second
    /// pass over a channel reads; measured (1 thread, 32×64×56×56) the backward dropped from ~8 ms to ~5 ms and the
    /// forward's output pass from ~1.1 to ~0.8 copy-equivalents. Smaller tensors keep ordinary stores, whose output
    /// stays cached for the next consumer. Results are bit-identical either way.</summary>
    public long StreamingMinBytes { get; init; } = 8L << 20;

    /// <summary>At most this many workers per call, whatever MaxDegreeOfParallelism asks for (default: the processor
    /// count). More workers than processors add no parallelism, only queued thread-pool items and claims: every path cuts
    /// its units into one chunk per worker, so MaxDegreeOfParallelism = int.MaxValue queued one item per channel or per
    /// run of the eval sweep (33.5 MB of queue per call for 2^20 runs, and 3–11× the time). Results never depend on it
    /// (the summation order is a function of the shape); the tests lift it so that 3 and 5 workers cut the work on a
    /// 2-core machine too.</summary>
    public int MaxWorkers { get; init; } = Environment.ProcessorCount;

    /// <summary>Test hook: runs at the start of every work item (a channel, a split unit, a row block or a run of the eval sweep), on the
    /// thread that runs it. Used to prove that a failure inside a worker leaves the module unchanged.</summary>
    public Action? WorkItemHook { get; init; }
}
