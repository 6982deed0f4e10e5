using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// The concurrency contract: eval-mode forwards that save nothing may overlap on one module (each runs on its own
/// execution state); every call that writes the module is exclusive and an overlap throws
/// <see cref="InvalidOperationException"/> naming the module — never memory corruption, a hang or a wrong result.
/// </summary>
public sealed class ConcurrencyTests
{
    [Theory]
    [MemberData(nameof(LibraryRunMatrix.PathsAndThreads), MemberType = typeof(LibraryRunMatrix))]
    public void Eval_forwards_without_saving_run_concurrently_on_one_module_with_single_threaded_results(LibraryPath path, int threads)
    {
        var execution = new LibraryExecution(path, threads);
        var module = new BatchNorm2d<float>(3);
        RandomAffine(module, 3);
        var random = new Random(9);
        for (int c = 0; c < 3; c++)
        {
            module.RunningMean![c] = (float)random.NextDouble();
            module.RunningVar![c] = 0.5f + (float)random.NextDouble();
        }

        module.Eval();
        module.SaveForBackward = false;
        execution.ApplyTo(module);
        var inputs = Enumerable.Range(0, 6).Select(i => RandomTensor<float>(100 + i, [3, 3, 17 + i, 29], mean: i, std: 1 + i)).ToArray();
        var expected = inputs.Select(x => module.Forward(x).Data).ToArray();

        const int callers = 6;
        const int calls = 40;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var start = new Barrier(callers);
        var workers = Enumerable.Range(0, callers).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int k = 0; k < calls; k++)
            {
                int i = (t + k) % inputs.Length;
                try
                {
                    var y = module.Forward(inputs[i]);
                    for (int j = 0; j < y.Length; j++)
                    {
                        if (BitConverter.SingleToUInt32Bits(y.Data[j]) != BitConverter.SingleToUInt32Bits(expected[i][j]))
                        {
                            errors.Enqueue($"caller {t} call {k} input {i} output{LibraryScenarios.Index(y.Shape, j)}: {y.Data[j]:R} vs single-threaded {expected[i][j]:R}");
                            break;
                        }
                    }
                }
                catch (Exception e)
                {
                    errors.Enqueue($"caller {t} call {k}: {e.GetType().Name}: {e.Message}");
                }
            }
        })
        { IsBackground = true }).ToList();
        workers.ForEach(w => w.Start());
        foreach (var w in workers)
        {
            Assert.True(w.Join(TimeSpan.FromMinutes(2)), $"{execution}: a caller hung");
        }

        Assert.True(errors.IsEmpty, $"{execution}, {callers} callers x {calls} eval forwards: {errors.Count} failures:\n{string.Join('\n', errors.Take(10))}");
    }

    [Theory]
    [MemberData(nameof(LibraryRunMatrix.PathsAndThreads), MemberType = typeof(LibraryRunMatrix))]
    public void Calls_that_write_the_module_throw_while_another_thread_is_inside_a_training_forward(LibraryPath path, int threads)
    {
        var execution = new LibraryExecution(path, threads);
        var module = new BatchNorm1d<double>(4, momentum: null);
        execution.ApplyTo(module);
        var x = RandomTensor<double>(1, [64, 4, 3]);
        var expected = new BatchNorm1d<double>(4, momentum: null);
        execution.ApplyTo(expected);
        var expectedY = expected.Forward(x);

        DenseTensor<double>? y = null;
        using var trainer = BlockedCall.Start(module, () => y = module.Forward(x), $"{execution}: the training forward");

        string owner = "BatchNorm1d<Double>(4)";
        AssertOverlap(() => module.Forward(x), owner, "training Forward");
        AssertOverlap(() => module.Backward(x), owner, "Backward");
        AssertOverlap(() => module.Training = false, owner, "Training setter");
        AssertOverlap(() => module.Eps = 1e-3, owner, "Eps setter");
        AssertOverlap(() => module.ResetRunningStats(), owner, "ResetRunningStats");
        AssertOverlap(() => module.StateDict(), owner, "StateDict (reads buffers being written)");
        AssertOverlap(() => module.LoadStateDict(expected.StateDict()), owner, "LoadStateDict");

        trainer.Finish();
        BitEqual(expectedY.Data, y!.Data, $"{execution}: output of the training forward that others overlapped");
        Assert.Equal(Snapshot(expected), Snapshot(module));
        Assert.Equal(1, module.NumBatchesTracked);

        static void AssertOverlap(Action call, string owner, string what)
        {
            var e = Assert.Throws<InvalidOperationException>(call);
            Assert.Contains(owner, e.Message, StringComparison.Ordinal);
            Assert.Contains("another thread", e.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>A training forward that saves nothing still writes the running statistics and the counter: it must be
    /// exclusive like every writer (classifying it with the shared eval-without-saving calls would let two of them
    /// blend into the same buffers).</summary>
    [Theory]
    [MemberData(nameof(LibraryRunMatrix.PathsAndThreads), MemberType = typeof(LibraryRunMatrix))]
    public void A_training_forward_that_does_not_save_is_exclusive(LibraryPath path, int threads)
    {
        var execution = new LibraryExecution(path, threads);
        string where = $"BatchNorm2d<float>(3) training forward with SaveForBackward = false, {execution}";
        var module = new BatchNorm2d<float>(3) { SaveForBackward = false };
        execution.ApplyTo(module);
        var x = RandomTensor<float>(5, [4, 3, 6, 7], mean: 1, std: 2);
        var expected = new BatchNorm2d<float>(3) { SaveForBackward = false };
        execution.ApplyTo(expected);
        var expectedY = expected.Forward(x);

        DenseTensor<float>? y = null;
        using var trainer = BlockedCall.Start(module, () => y = module.Forward(x), where);

        var second = Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        Assert.Contains("another thread", second.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => module.StateDict());
        trainer.Finish();
        BitEqual(expectedY.Data, y!.Data, $"{where}: output");
        Assert.True(Snapshot(expected) == Snapshot(module), $"{where}: running statistics after one step overlapped by a refused second one");
        Assert.Equal(1, module.NumBatchesTracked);
    }

    [Fact]
    public void A_training_forward_throws_while_an_eval_forward_is_running_and_other_eval_forwards_still_run()
    {
        var module = new BatchNorm2d<float>(2);
        module.Eval();
        module.SaveForBackward = false;
        var x = RandomTensor<float>(4, [2, 2, 5, 5]);
        var reference = new BatchNorm2d<float>(2).Eval().Forward(x);
        module.MaxDegreeOfParallelism = 1; // the blocked eval forward's work items run on its own thread
        DenseTensor<float>? y = null;
        using var evalCall = BlockedCall.Start(module, () => y = module.Forward(x), "an eval forward (path=Default threads=1)", onlyItsOwnThread: true);

        BitEqual(reference.Data, module.Forward(x).Data, "an overlapping eval forward (path=Default threads=1)");
        Assert.Equal(5, module.StateDict().Count);
        Assert.Throws<InvalidOperationException>(() => module.Training = true);
        Assert.Throws<InvalidOperationException>(() => module.SaveForBackward = true);

        evalCall.Finish();
        BitEqual(reference.Data, y!.Data, "the blocked eval forward (path=Default threads=1)");
        module.Training = true;
        module.Forward(x);
        Assert.Equal(1, module.NumBatchesTracked);
    }

    [Fact]
    public void An_eval_forward_throws_while_another_thread_is_inside_Backward()
    {
        var module = new BatchNorm1d<float>(3);
        var x = RandomTensor<float>(1, [16, 3, 40]);
        module.Forward(x);
        module.Eval();
        module.SaveForBackward = false; // the saved context of the training forward stays; eval forwards now share
        using var backward = BlockedCall.Start(module, () => module.Backward(x), "Backward (path=Default threads=default)");
        var e = Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        Assert.Contains("BatchNorm1d<Single>(3)", e.Message, StringComparison.Ordinal);
        Assert.Contains("Only eval-mode Forward calls with SaveForBackward = false may run concurrently", e.Message, StringComparison.Ordinal);
        Assert.Contains("Use one module per thread", e.Message, StringComparison.Ordinal);
        backward.Finish();
    }

    [Fact]
    public void An_eval_forward_that_saves_for_backward_is_exclusive()
    {
        var module = new BatchNorm1d<float>(3);
        module.Eval(); // SaveForBackward stays true: this forward writes the saved context
        var x = RandomTensor<float>(2, [16, 3, 40]);
        using var saving = BlockedCall.Start(module, () => module.Forward(x), "the saving eval forward (path=Default threads=default)");
        Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        saving.Finish();
        module.Backward(x); // its context was saved
    }

    [Fact]
    public void An_eval_forward_throws_while_another_thread_is_inside_the_span_Backward()
    {
        var module = new BatchNorm1d<float>(3);
        var x = RandomTensor<float>(3, [16, 3, 40]);
        module.Forward(x);
        module.Eval();
        module.SaveForBackward = false;
        var dx = new float[x.Length];
        using var backward = BlockedCall.Start(module, () => module.Backward(x.Data, x.Shape, dx, new float[3], new float[3]), "the span Backward (path=Default threads=default)");
        Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        backward.Finish();
    }

    /// <summary>
    /// A call held inside the module while the test overlaps it: it runs on a background thread, and its first work
    /// item (or, with <c>onlyItsOwnThread</c>, the first one on that thread) waits until <see cref="Finish"/> or
    /// <see cref="Dispose"/>. Disposing releases it, so an assertion that fails halfway never leaves a thread blocked in
    /// the module (such a thread kept the test host alive for a minute, and mutation runs counted the failure as a
    /// timeout); an exception the call throws is reported by <see cref="Finish"/> with <c>where</c>.
    /// </summary>
    private sealed class BlockedCall : IDisposable
    {
        /// <summary>How long a step may take before the test fails: work items start within milliseconds, so only a
        /// broken module (a call that never reaches its work, or never returns) waits this long.</summary>
        private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

        private readonly ManualResetEventSlim _entered = new();
        private readonly ManualResetEventSlim _release = new();
        private readonly string _where;
        private Thread? _thread;
        private Exception? _error;

        private BlockedCall(string where) => _where = where;

        public static BlockedCall Start<T>(BatchNorm<T> module, Action call, string where, bool onlyItsOwnThread = false)
            where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
        {
            var blocked = new BlockedCall(where);
            int taken = 0;
            module.ExecutionOptions = module.ExecutionOptions with
            {
                WorkItemHook = () =>
                {
                    if ((!onlyItsOwnThread || Thread.CurrentThread == blocked._thread) && Interlocked.Exchange(ref taken, 1) == 0)
                    {
                        blocked._entered.Set();
                        blocked._release.Wait(Patience);
                    }
                },
            };
            blocked._thread = new Thread(() =>
            {
                try
                {
                    call();
                }
                catch (Exception e)
                {
                    blocked._error = e;
                }
            })
            { IsBackground = true };
            blocked._thread.Start();
            if (!blocked._entered.Wait(Patience))
            {
                blocked.Dispose();
                Assert.Fail($"{where}: never started its work{(blocked._error is { } e ? $" ({e.GetType().Name}: {e.Message})" : "")}");
            }

            return blocked;
        }

        /// <summary>Lets the call finish and asserts that it returned without an exception.</summary>
        public void Finish()
        {
            _release.Set();
            Assert.True(_thread!.Join(Patience), $"{_where}: hung after the overlap");
            Assert.True(_error is null, $"{_where}: threw {_error?.GetType().Name}: {_error?.Message}");
        }

        public void Dispose()
        {
            _release.Set();
            if (_thread!.Join(Patience))
            {
                _entered.Dispose();
                _release.Dispose();
            }
        }
    }
}
