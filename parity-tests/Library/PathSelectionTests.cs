namespace BnParity.ParityTests.Library;

/// <summary>
/// The automatic path choice, pinned (it decides speed, and between the row path and the others also the summation
/// order users get). <see cref="PathSelection.Choose"/> is a pure function of the shape, so shapes no test could
/// allocate are checked too.
/// </summary>
public sealed class PathSelectionTests
{
    private static readonly ExecutionOptions Defaults = ExecutionOptions.Default;

    [Theory]
    // BatchNorm1d (256, 256): S = 1, C·S = 256 → row path on every thread.
    [InlineData(256L * 256, 256, 1L, 2, "Row", 2)]
    // Below the parallel threshold everything runs on one thread.
    [InlineData(32L * 1024 - 1, 64, 64L, 2, "Channel", 1)]
    [InlineData(32L * 1024, 64, 64L, 2, "Channel", 2)]
    // S = 15 is still short; S = 16 is not.
    [InlineData(1_000_000L, 4, 15L, 2, "Row", 2)]
    [InlineData(1_000_000L, 4, 16L, 2, "Channel", 2)]
    // Short runs take the row path at any width (in tiles of at most 2^14 columns, SummationPlan.RowTileChannels): past
    // 2^14 columns the channel path read a channels-last input one element per cache line, 4–14× slower.
    [InlineData(16384L * 100, 16384, 1L, 2, "Row", 2)]
    [InlineData(16385L * 100, 16385, 1L, 2, "Row", 2)]
    [InlineData(5462L * 3 * 100, 5462, 3L, 2, "Row", 2)]
    [InlineData((1L << 24) * 64, 1 << 24, 1L, 2, "Row", 2)]
    [InlineData((1L << 24) * 15 * 2, 1 << 24, 15L, 2, "Row", 2)]
    // Few channels for the threads: split from 512 Ki elements on, one thread below.
    [InlineData(3L * 512 * 1024, 3, 65536L, 2, "Split", 2)]
    [InlineData((512L * 1024) - 1, 3, 65535L, 2, "Channel", 1)]
    [InlineData(512L * 1024, 3, 174763L, 2, "Split", 2)]
    [InlineData(8L * 2 * 256 * 256, 2, 65536L, 3, "Split", 3)]
    // Channels divisible by the threads, or at least four per thread: channel path.
    [InlineData(8L * 2 * 256 * 256, 2, 65536L, 2, "Channel", 2)]
    [InlineData(8L * 7 * 4096, 7, 4096L, 2, "Channel", 1)]
    [InlineData(32L * 7 * 4096, 7, 4096L, 2, "Split", 2)]
    [InlineData(8L * 8 * 4096, 8, 4096L, 2, "Channel", 2)]
    [InlineData(8L * 9 * 4096, 9, 4096L, 2, "Channel", 2)]
    [InlineData(16L * 11 * 4096, 11, 4096L, 3, "Split", 3)]
    [InlineData(8L * 12 * 4096, 12, 4096L, 3, "Channel", 3)]
    [InlineData(8L * 13 * 4096, 13, 4096L, 3, "Channel", 3)]
    // A degree beyond any machine (the module clamps it to the processors before planning) does not overflow 4·threads:
    // 1024 channels are few for 2^31 − 1 threads (split), 7 channels of 224 Ki elements stay below the split threshold.
    [InlineData(8L * 7 * 4096, 7, 4096L, int.MaxValue, "Channel", 1)]
    [InlineData(8L * 1024 * 4096, 1024, 4096L, int.MaxValue, "Split", int.MaxValue)]
    // One thread never splits.
    [InlineData(3L * 512 * 1024, 3, 65536L, 1, "Channel", 1)]
    // Beyond int: 2^33 elements of one channel, and N = 2^31 rows of BatchNorm1d.
    [InlineData(1L << 33, 1, 1L << 33, 2, "Split", 2)]
    [InlineData((1L << 31) * 3, 3, 1L, 2, "Row", 2)]
    public void The_default_choice_is_pinned(long length, int channels, long spatial, int maxThreads, string path, int threads)
    {
        var (actualPath, actualThreads) = PathSelection.Choose(length, channels, spatial, maxThreads, Defaults);
        Assert.True(
            actualPath.ToString() == path && actualThreads == threads,
            $"length {length}, C {channels}, S {spatial}, {maxThreads} threads: got {actualPath} on {actualThreads}, pinned {path} on {threads}");
    }

    [Theory]
    [InlineData("Channel")]
    [InlineData("Split")]
    [InlineData("Row")]
    public void A_forced_path_is_taken_with_the_thread_budget_of_the_threshold(string path)
    {
        var forced = Enum.Parse<ExecutionPath>(path);
        var options = new ExecutionOptions { Path = forced, ParallelThreshold = 100 };
        Assert.Equal((forced, 1), PathSelection.Choose(99, 3, 33, 5, options));
        Assert.Equal((forced, 5), PathSelection.Choose(100, 3, 33, 5, options));
    }

    [Fact]
    public void Thresholds_at_zero_let_tiny_inputs_take_the_parallel_and_split_paths()
    {
        var small = new ExecutionOptions { ParallelThreshold = 0, SplitMinElements = 0 };
        Assert.Equal((ExecutionPath.Split, 2), PathSelection.Choose(3 * 40, 3, 40, 2, small));
        Assert.Equal((ExecutionPath.Channel, 2), PathSelection.Choose(4 * 40, 4, 40, 2, small));
        Assert.Equal((ExecutionPath.Row, 3), PathSelection.Choose(3 * 4, 3, 4, 3, small));
    }

    [Theory]
    [InlineData(4, 2, 2)] // a multiple of the workers
    [InlineData(3, 3, 3)]
    [InlineData(3, 2, 1)] // uneven and few: in turn, each on both workers
    [InlineData(5, 3, 1)]
    [InlineData(13, 3, 3)] // at least four per worker
    [InlineData(8, 3, 1)]
    [InlineData(9, 2, 2)]
    [InlineData(1, 2, 1)] // one sample
    [InlineData(6, 1, 1)] // one thread
    public void Samples_go_whole_to_workers_only_when_they_share_out_evenly(int samples, int threads, int workers)
    {
        var options = new ExecutionOptions { ParallelThreshold = 0 };
        Assert.Equal(workers, PathSelection.SampleWorkers(samples, 10, threads, options));
    }

    [Fact]
    public void Samples_below_the_parallel_threshold_run_on_one_thread()
    {
        var options = new ExecutionOptions { ParallelThreshold = 100 };
        Assert.Equal(1, PathSelection.SampleWorkers(4, 24, 2, options));
        Assert.Equal(2, PathSelection.SampleWorkers(4, 25, 2, options));
    }
}
