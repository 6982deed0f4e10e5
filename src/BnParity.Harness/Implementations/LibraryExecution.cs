using System.Globalization;

namespace BnParity.Harness.Implementations;

/// <summary>Which execution path of the library a run forces (see the library's path selection).</summary>
public enum LibraryPath
{
    /// <summary>The library's own choice, with its default thresholds: exactly what users run.</summary>
    Default,

    /// <summary>The library's own choice, with every threshold at 0 so that small inputs already take the parallel
    /// and split paths.</summary>
    AutoSmallThresholds,

    /// <summary>Threads take whole channels (an eval forward sweeps the input in memory order instead).</summary>
    Channel,

    /// <summary>Few channels: (group, block) units whose partials the caller folds in channel order.</summary>
    Split,

    /// <summary>The (N, C·S) row-block path.</summary>
    Row,

    /// <summary>The channel path with non-temporal (streaming) float outputs forced on: y in the forward (including the
    /// eval sweep), dx in the backward.</summary>
    ChannelStreaming,

    /// <summary>The split path with streaming float outputs forced on.</summary>
    SplitStreaming,

    /// <summary>The row path with streaming float outputs forced on (channels-last runs here).</summary>
    RowStreaming,
}

/// <summary>
/// How the library runs a case: a path and a thread count. Every suite can run on every path with it, and its
/// <see cref="ToString"/> is printed with every failure so the run can be repeated exactly.
/// </summary>
/// <param name="Path">The forced path.</param>
/// <param name="Threads">MaxDegreeOfParallelism; 0 = the oracle's default thread count.</param>
public sealed record LibraryExecution(LibraryPath Path = LibraryPath.Default, int Threads = 0)
{
    /// <summary>What users run: the library's choice, default thresholds, the default thread count.</summary>
    public static readonly LibraryExecution Default = new();

    /// <summary>Every path × the thread counts the suites use (1, 2, 3, 5).</summary>
    public static IEnumerable<LibraryExecution> AllForced(params int[] threads) =>
        from path in new[] { LibraryPath.AutoSmallThresholds, LibraryPath.Channel, LibraryPath.Split, LibraryPath.Row, LibraryPath.ChannelStreaming }
        from t in threads.Length == 0 ? [1, 2, 3, 5] : threads
        select new LibraryExecution(path, t);

    /// <summary>Whether the path produces the same bits as the channel path (everything but the row path does).</summary>
    public bool EquivalentToChannelPath => Path is LibraryPath.Channel or LibraryPath.Split or LibraryPath.ChannelStreaming or LibraryPath.SplitStreaming;

    /// <remarks>Every run but <see cref="LibraryPath.Default"/> lifts the library's clamp of the thread count to the
    /// processors, so that 3 and 5 threads cut the work into 3 and 5 chunks on any machine (the determinism the tests
    /// check across thread counts); the default run keeps it, as users do.</remarks>
    internal ExecutionOptions ToOptions() => Path switch
    {
        LibraryPath.Default => ExecutionOptions.Default,
        LibraryPath.AutoSmallThresholds => new ExecutionOptions { ParallelThreshold = 0, SplitMinElements = 0, MaxWorkers = int.MaxValue },
        LibraryPath.Channel => new ExecutionOptions { Path = ExecutionPath.Channel, ParallelThreshold = 0, MaxWorkers = int.MaxValue },
        LibraryPath.Split => new ExecutionOptions { Path = ExecutionPath.Split, ParallelThreshold = 0, MaxWorkers = int.MaxValue },
        LibraryPath.Row => new ExecutionOptions { Path = ExecutionPath.Row, ParallelThreshold = 0, MaxWorkers = int.MaxValue },
        LibraryPath.ChannelStreaming => new ExecutionOptions { Path = ExecutionPath.Channel, ParallelThreshold = 0, StreamingMinBytes = 0, MaxWorkers = int.MaxValue },
        LibraryPath.SplitStreaming => new ExecutionOptions { Path = ExecutionPath.Split, ParallelThreshold = 0, StreamingMinBytes = 0, MaxWorkers = int.MaxValue },
        LibraryPath.RowStreaming => new ExecutionOptions { Path = ExecutionPath.Row, ParallelThreshold = 0, StreamingMinBytes = 0, MaxWorkers = int.MaxValue },
        _ => throw new ArgumentOutOfRangeException(nameof(Path), Path, "unknown library path"),
    };

    /// <summary>Applies the path and thread count to a module.</summary>
    public void ApplyTo<T>(NormBase<T> module)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(module);
        module.MaxDegreeOfParallelism = Threads > 0 ? Threads : Oracle.TorchSharpOracle.DefaultThreadCount;
        module.ExecutionOptions = ToOptions();
    }

    /// <summary>How a view of <paramref name="samples"/> samples of <paramref name="sampleLength"/> elements (a
    /// channels-last InstanceNorm or GroupNorm, one sample per instance) is shared among the workers under this
    /// execution: "whole samples per worker (w)" or "samples in turn, each on every worker", for test messages.</summary>
    public string SampleArrangement(int samples, long sampleLength)
    {
        int workers = PathSelection.SampleWorkers(samples, sampleLength, Threads > 0 ? Threads : Oracle.TorchSharpOracle.DefaultThreadCount, ToOptions());
        return workers > 1
            ? string.Create(CultureInfo.InvariantCulture, $"whole samples per worker ({workers})")
            : "samples in turn, each on every worker";
    }

    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"path={Path} threads={(Threads > 0 ? Threads.ToString(CultureInfo.InvariantCulture) : "default(" + Oracle.TorchSharpOracle.DefaultThreadCount + ")")}");
}
