using System.Collections.Concurrent;

namespace BnParity.ParityTests.Library;

/// <summary>
/// The fork/join scheduler on its own (it knows nothing of BatchNorm): every chunk of a phase runs exactly once, a
/// chunk's exception reaches the caller without stopping the other chunks and leaves the scheduler usable, more
/// chunks than work units is fine, and thread-pool items that start after their phase ended never run a chunk of a
/// later phase twice.
/// </summary>
public sealed class ForkJoinSchedulerTests
{
    /// <summary>Counts runs per (phase, chunk); optionally throws on one chunk.</summary>
    private sealed class RecordingOperation : IChunkOperation
    {
        public readonly ConcurrentDictionary<(int Phase, int Chunk), int> Runs = new();
        public readonly ConcurrentDictionary<int, int> Threads = new();
        public int Phase;
        public int ThrowOnChunk = -1;
        public int SpinIterations;

        public void RunChunk(int chunk, int chunks)
        {
            Runs.AddOrUpdate((Volatile.Read(ref Phase), chunk), 1, (_, n) => n + 1);
            Threads.TryAdd(Environment.CurrentManagedThreadId, 0);
            Thread.SpinWait(SpinIterations);
            if (chunk == ThrowOnChunk)
            {
                throw new InvalidOperationException($"chunk {chunk} of {chunks} failed");
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(17)]
    public void Every_chunk_runs_exactly_once(int chunks)
    {
        var operation = new RecordingOperation { SpinIterations = 2000 };
        new ForkJoinScheduler(operation).Run(chunks);
        int expected = Math.Max(chunks, 1);
        Assert.Equal(expected, operation.Runs.Count);
        for (int chunk = 0; chunk < expected; chunk++)
        {
            Assert.True(operation.Runs.TryGetValue((0, chunk), out int runs) && runs == 1, $"{chunks} chunks: chunk {chunk} ran {runs} times");
        }
    }

    [Theory]
    [InlineData(2, 0)]
    [InlineData(2, 1)]
    [InlineData(5, 3)]
    public void A_failing_chunk_reaches_the_caller_after_every_other_chunk_ran_and_the_scheduler_stays_usable(int chunks, int failing)
    {
        var operation = new RecordingOperation { ThrowOnChunk = failing, SpinIterations = 2000 };
        var scheduler = new ForkJoinScheduler(operation);
        var error = Assert.Throws<InvalidOperationException>(() => scheduler.Run(chunks));
        Assert.Contains($"chunk {failing} of {chunks} failed", error.Message);
        Assert.Equal(chunks, operation.Runs.Count);
        Assert.All(operation.Runs.Values, runs => Assert.Equal(1, runs));

        operation.ThrowOnChunk = -1;
        operation.Phase = 1;
        scheduler.Run(chunks);
        Assert.Equal(2 * chunks, operation.Runs.Count);
    }

    [Fact]
    public void More_chunks_than_units_leaves_the_extra_chunks_empty()
    {
        const int units = 2;
        var done = new int[units];
        var operation = new RangeOperation(units, done);
        new ForkJoinScheduler(operation).Run(5);
        Assert.Equal(new[] { 1, 1 }, done);
    }

    [Fact]
    public void Late_thread_pool_items_never_run_a_chunk_of_a_later_phase_twice()
    {
        // Thousands of short phases back to back: items queued for phase p often start during phase p + 1 or later.
        var operation = new RecordingOperation();
        var scheduler = new ForkJoinScheduler(operation);
        const int phases = 3000, chunks = 3;
        for (int phase = 0; phase < phases; phase++)
        {
            Volatile.Write(ref operation.Phase, phase);
            scheduler.Run(chunks);
        }

        Assert.Equal(phases * chunks, operation.Runs.Count);
        var repeated = operation.Runs.Where(kv => kv.Value != 1).Take(5).ToList();
        Assert.True(repeated.Count == 0, "chunks run more than once: " + string.Join(", ", repeated.Select(kv => $"phase {kv.Key.Phase} chunk {kv.Key.Chunk} ×{kv.Value}")));
    }

    [Fact]
    public async Task Caller_finishes_every_chunk_itself_when_the_thread_pool_is_starved()
    {
        // Occupy every thread-pool thread; the caller must not wait for items that cannot start. The gate is never
        // disposed: blockers that start after the test ended still wait on it (then pass straight through).
        ThreadPool.GetMinThreads(out int workers, out _);
        var release = new ManualResetEventSlim(false);
        int blockers = Math.Max(workers, Environment.ProcessorCount) * 2;
        for (int i = 0; i < blockers; i++)
        {
            ThreadPool.UnsafeQueueUserWorkItem(gate => gate.Wait(), release, preferLocal: false);
        }

        try
        {
            var operation = new RecordingOperation();
            var run = Task.Factory.StartNew(() => new ForkJoinScheduler(operation).Run(4), TaskCreationOptions.LongRunning);
            bool finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30))) == run;
            Assert.True(finished, "Run did not return while the thread pool was busy");
            Assert.Equal(4, operation.Runs.Count);
        }
        finally
        {
            release.Set();
        }
    }

    /// <summary>Chunk i of n takes units [units·i/n, units·(i + 1)/n), as the engine's phases do.</summary>
    private sealed class RangeOperation(int units, int[] done) : IChunkOperation
    {
        public void RunChunk(int chunk, int chunks)
        {
            for (long u = (long)units * chunk / chunks, end = (long)units * (chunk + 1) / chunks; u < end; u++)
            {
                Interlocked.Increment(ref done[u]);
            }
        }
    }
}
