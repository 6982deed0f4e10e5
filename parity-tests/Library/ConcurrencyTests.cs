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
        })).ToList();
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

        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        BlockFirstWorkItem(module, entered, release);
        DenseTensor<double>? y = null;
        var trainer = new Thread(() => y = module.Forward(x));
        trainer.Start();
        Assert.True(entered.Wait(TimeSpan.FromMinutes(1)), $"{execution}: the training forward never started its work");

        string owner = "BatchNorm1d<Double>(4)";
        AssertOverlap(() => module.Forward(x), owner, "training Forward");
        AssertOverlap(() => module.Backward(x), owner, "Backward");
        AssertOverlap(() => module.Training = false, owner, "Training setter");
        AssertOverlap(() => module.Eps = 1e-3, owner, "Eps setter");
        AssertOverlap(() => module.ResetRunningStats(), owner, "ResetRunningStats");
        AssertOverlap(() => module.StateDict(), owner, "StateDict (reads buffers being written)");
        AssertOverlap(() => module.LoadStateDict(expected.StateDict()), owner, "LoadStateDict");

        release.Set();
        Assert.True(trainer.Join(TimeSpan.FromMinutes(1)), $"{execution}: the training forward hung after the overlaps");
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

        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        BlockFirstWorkItem(module, entered, release);
        DenseTensor<float>? y = null;
        var trainer = new Thread(() => y = module.Forward(x));
        trainer.Start();
        Assert.True(entered.Wait(TimeSpan.FromMinutes(1)), $"{where}: never started its work");

        var second = Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        Assert.Contains("another thread", second.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => module.StateDict());
        release.Set();
        Assert.True(trainer.Join(TimeSpan.FromMinutes(1)), $"{where}: hung after the overlap");
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
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var blockedThread = new int[1];
        Thread? evalThread = null;
        module.ExecutionOptions = module.ExecutionOptions with
        {
            WorkItemHook = () =>
            {
                if (Thread.CurrentThread == evalThread && Interlocked.Exchange(ref blockedThread[0], 1) == 0)
                {
                    entered.Set();
                    release.Wait(TimeSpan.FromMinutes(1));
                }
            },
        };
        module.MaxDegreeOfParallelism = 1;
        DenseTensor<float>? y = null;
        evalThread = new Thread(() => y = module.Forward(x));
        evalThread.Start();
        Assert.True(entered.Wait(TimeSpan.FromMinutes(1)));

        BitEqual(reference.Data, module.Forward(x).Data, "an overlapping eval forward (path=Default threads=1)");
        Assert.Equal(5, module.StateDict().Count);
        Assert.Throws<InvalidOperationException>(() => module.Training = true);
        Assert.Throws<InvalidOperationException>(() => module.SaveForBackward = true);

        release.Set();
        Assert.True(evalThread.Join(TimeSpan.FromMinutes(1)));
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
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        BlockFirstWorkItem(module, entered, release);
        module.Eval();
        module.SaveForBackward = false; // the saved context of the training forward stays; eval forwards now share
        var backward = new Thread(() => module.Backward(x));
        backward.Start();
        Assert.True(entered.Wait(TimeSpan.FromMinutes(1)), "Backward never started its work (path=Default threads=default)");
        var e = Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        Assert.Contains("BatchNorm1d<Single>(3)", e.Message, StringComparison.Ordinal);
        Assert.Contains("Only eval-mode Forward calls with SaveForBackward = false may run concurrently", e.Message, StringComparison.Ordinal);
        Assert.Contains("Use one module per thread", e.Message, StringComparison.Ordinal);
        release.Set();
        Assert.True(backward.Join(TimeSpan.FromMinutes(1)));
    }

    [Fact]
    public void An_eval_forward_that_saves_for_backward_is_exclusive()
    {
        var module = new BatchNorm1d<float>(3);
        module.Eval(); // SaveForBackward stays true: this forward writes the saved context
        var x = RandomTensor<float>(2, [16, 3, 40]);
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        BlockFirstWorkItem(module, entered, release);
        var saving = new Thread(() => module.Forward(x));
        saving.Start();
        Assert.True(entered.Wait(TimeSpan.FromMinutes(1)), "the saving eval forward never started its work (path=Default threads=default)");
        Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        release.Set();
        Assert.True(saving.Join(TimeSpan.FromMinutes(1)));
        module.Backward(x); // its context was saved
    }

    [Fact]
    public void An_eval_forward_throws_while_another_thread_is_inside_the_span_Backward()
    {
        var module = new BatchNorm1d<float>(3);
        var x = RandomTensor<float>(3, [16, 3, 40]);
        module.Forward(x);
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        BlockFirstWorkItem(module, entered, release);
        module.Eval();
        module.SaveForBackward = false;
        var dx = new float[x.Length];
        var backward = new Thread(() => module.Backward(x.Data, x.Shape, dx, new float[3], new float[3]));
        backward.Start();
        Assert.True(entered.Wait(TimeSpan.FromMinutes(1)), "the span Backward never started its work (path=Default threads=default)");
        Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        release.Set();
        Assert.True(backward.Join(TimeSpan.FromMinutes(1)));
    }

    /// <summary>Makes the module's first work item signal <paramref name="entered"/> and wait for
    /// <paramref name="release"/>: the call that runs it stays inside the module while the test overlaps it.</summary>
    private static void BlockFirstWorkItem<T>(BatchNorm<T> module, ManualResetEventSlim entered, ManualResetEventSlim release)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        int blocked = 0;
        module.ExecutionOptions = module.ExecutionOptions with
        {
            WorkItemHook = () =>
            {
                if (Interlocked.Exchange(ref blocked, 1) == 0)
                {
                    entered.Set();
                    release.Wait(TimeSpan.FromMinutes(1));
                }
            },
        };
    }
}
