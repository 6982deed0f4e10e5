namespace BnParity;

/// <summary>One phase of parallel work, cut into chunks by the operation itself (the scheduler only hands out chunk
/// indices).</summary>
internal interface IChunkOperation
{
    /// <summary>Runs chunk <paramref name="chunk"/> of <paramref name="chunks"/>. Called once per chunk per phase, from
    /// the caller of <see cref="ForkJoinScheduler.Run"/> or a thread-pool thread, concurrently for different chunks.</summary>
    void RunChunk(int chunk, int chunks);
}

/// <summary>
/// An allocation-free fork/join over the thread pool that knows nothing of what it runs. <see cref="Run"/> executes
/// every chunk of a phase exactly once and returns when all have finished; a chunk that throws does not stop the
/// others, and the (last) exception is rethrown on the caller with its original stack.
/// </summary>
/// <remarks>
/// The caller and (chunks − 1) queued thread-pool items (one cached work-item object) claim chunks by CAS on
/// <see cref="_claimState"/> = (generation &lt;&lt; 32) | next index. A new phase first locks the state (index =
/// int.MaxValue), then resets its counters and publishes (generation + 1, 0); a CAS from an older generation therefore
/// fails, so an item that starts late either helps the current phase legitimately or finds nothing and returns. The
/// caller never waits for an item that has not started: it claims any unclaimed chunk itself and waits only for
/// chunks in progress, so a starved thread pool costs parallelism, never progress. Not reentrant: one phase at a time
/// per scheduler (each per-call <c>NormalizationEngine</c> owns one).
/// </remarks>
internal sealed class ForkJoinScheduler
{
    private readonly IChunkOperation _operation;
    private readonly Worker _worker;
    private readonly object _gate = new();
    private long _claimState;
    private int _chunks;
    private int _completedChunks;
    private Exception? _error;

    public ForkJoinScheduler(IChunkOperation operation)
    {
        _operation = operation;
        _worker = new Worker(this);
    }

    /// <summary>Runs chunks 0 … <paramref name="chunks"/> − 1 of the operation on the caller and chunks − 1 queued
    /// thread-pool items. One chunk (or fewer) runs directly on the caller.</summary>
    public void Run(int chunks)
    {
        if (chunks <= 1)
        {
            _operation.RunChunk(0, 1);
            return;
        }

        long generation = (Volatile.Read(ref _claimState) >> 32) + 1;
        Interlocked.Exchange(ref _claimState, (generation << 32) | int.MaxValue);
        _chunks = chunks;
        _error = null;
        _completedChunks = 0;
        Interlocked.Exchange(ref _claimState, generation << 32);
        for (int i = 1; i < chunks; i++)
        {
            ThreadPool.UnsafeQueueUserWorkItem(_worker, preferLocal: false);
        }

        ClaimChunks();
        WaitForCompletion(chunks);
        if (_error is Exception error)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }

    /// <summary>Waits until every chunk has finished. The chunks still running were claimed after the caller's last
    /// claim, so they end within about one chunk's time: spin for up to <see cref="SpinMicroseconds"/> before blocking,
    /// because waking a blocked thread costs tens of microseconds, as much as a whole phase of a cache-resident
    /// input.</summary>
    private void WaitForCompletion(int chunks)
    {
        if (Volatile.Read(ref _completedChunks) >= chunks)
        {
            return;
        }

        long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + (System.Diagnostics.Stopwatch.Frequency * SpinMicroseconds / 1_000_000);
        while (Volatile.Read(ref _completedChunks) < chunks)
        {
            if (System.Diagnostics.Stopwatch.GetTimestamp() > deadline)
            {
                lock (_gate)
                {
                    while (Volatile.Read(ref _completedChunks) < chunks)
                    {
                        Monitor.Wait(_gate);
                    }
                }

                return;
            }

            Thread.SpinWait(16);
        }
    }

    /// <summary>How long the caller spins for the last chunks before it blocks.</summary>
    private const long SpinMicroseconds = 100;

    private void ClaimChunks()
    {
        while (true)
        {
            long state = Volatile.Read(ref _claimState);
            int chunk = (int)(state & int.MaxValue);
            int chunks = Volatile.Read(ref _chunks);
            if (chunk >= chunks)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _claimState, state + 1, state) != state)
            {
                continue;
            }

            try
            {
                _operation.RunChunk(chunk, chunks);
            }
            catch (Exception e)
            {
                _error = e;
            }

            if (Interlocked.Increment(ref _completedChunks) == chunks)
            {
                lock (_gate)
                {
                    Monitor.PulseAll(_gate);
                }
            }
        }
    }

    private sealed class Worker(ForkJoinScheduler owner) : IThreadPoolWorkItem
    {
        public void Execute() => owner.ClaimChunks();
    }
}
