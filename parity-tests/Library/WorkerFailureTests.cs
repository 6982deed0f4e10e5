using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>A failure inside a worker (any path, any thread count) reaches the caller and leaves the module exactly
/// as before the call: parameters, buffers, the counter and the saved backward context.</summary>
public sealed class WorkerFailureTests
{
    public static TheoryData<LibraryPath, int, int> Cases()
    {
        var data = new TheoryData<LibraryPath, int, int>();
        foreach (var path in new[] { LibraryPath.Channel, LibraryPath.Split, LibraryPath.Row, LibraryPath.ChannelStreaming })
        {
            foreach (int threads in new[] { 1, 2, 3, 5 })
            {
                foreach (int failAt in new[] { 0, 2 })
                {
                    data.Add(path, threads, failAt);
                }
            }
        }

        return data;
    }

    private sealed class InjectedFault : Exception
    {
        public InjectedFault()
            : base("injected worker fault")
        {
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_worker_failure_leaves_the_module_and_its_saved_context_unchanged(LibraryPath path, int threads, int failAt)
    {
        var execution = new LibraryExecution(path, threads);
        string where = $"{execution}, fault at work item {failAt}";
        foreach (bool span in new[] { false, true })
        {
            var module = new BatchNorm1d<float>(3, momentum: null);
            execution.ApplyTo(module);
            RandomAffine(module, 2);
            int[] shape = [100, 3, 50];
            var x0 = RandomTensor<float>(1, shape, mean: 2);
            var x1 = RandomTensor<float>(2, shape, mean: -5, std: 3);
            var dy = RandomTensor<float>(3, shape);
            var y0 = new float[x0.Length];
            module.Forward(x0.Data, shape, y0);
            var expected = module.Backward(dy);
            string before = Snapshot(module);
            var options = module.ExecutionOptions;

            int items = 0;
            module.ExecutionOptions = options with
            {
                WorkItemHook = () =>
                {
                    if (Interlocked.Increment(ref items) - 1 == failAt)
                    {
                        throw new InjectedFault();
                    }
                },
            };
            foreach (bool training in new[] { true, false })
            {
                module.Training = training;
                Volatile.Write(ref items, 0);
                if (span)
                {
                    var y = new float[x1.Length];
                    Assert.Throws<InjectedFault>(() => module.Forward(x1.Data, shape, y));
                }
                else
                {
                    Assert.Throws<InjectedFault>(() => module.Forward(x1));
                }

                Assert.True(before == Snapshot(module), $"{where}, {(training ? "training" : "eval")} {(span ? "span" : "tensor")} forward: parameters or buffers changed");
                Volatile.Write(ref items, 0);
                Assert.Throws<InjectedFault>(() => module.Backward(dy));
                Assert.True(before == Snapshot(module), $"{where}: a failed backward changed the module");
            }

            module.ExecutionOptions = options;
            module.Training = true;
            var again = module.Backward(dy);
            BitEqual(expected.Input.Data, again.Input.Data, $"{where}: grad_input of the last successful forward after failed calls");
            BitEqual(expected.Weight, again.Weight, $"{where}: grad_weight after failed calls");
            BitEqual(expected.Bias, again.Bias, $"{where}: grad_bias after failed calls");
        }
    }

    public static TheoryData<LibraryPath, int, string> LaterForwards()
    {
        var data = new TheoryData<LibraryPath, int, string>();
        foreach (var path in new[] { LibraryPath.Channel, LibraryPath.Split, LibraryPath.Row, LibraryPath.ChannelStreaming })
        {
            foreach (int threads in new[] { 1, 3 })
            {
                foreach (string later in new[] { "another shape, saving", "same shape, not saving", "another shape, not saving" })
                {
                    data.Add(path, threads, later);
                }
            }
        }

        return data;
    }

    /// <summary>
    /// A forward that has passed validation and started its run with a new shape (or without saving) and then fails
    /// inside a worker must not have committed anything of its own saved context (shape, statistics, input): Backward
    /// still differentiates the last successful saving forward, bit for bit.
    /// </summary>
    [Theory]
    [MemberData(nameof(LaterForwards))]
    public void A_later_forward_that_fails_inside_a_worker_leaves_Backward_differentiating_the_last_saved_forward(LibraryPath path, int threads, string later)
    {
        var execution = new LibraryExecution(path, threads);
        string where = $"BatchNorm2d<float>(3), {execution}, later forward: {later}";
        foreach (bool span in new[] { false, true })
        {
            var module = new BatchNorm2d<float>(3);
            execution.ApplyTo(module);
            RandomAffine(module, 4);
            int[] shapeA = [6, 3, 9, 11];
            int[] shapeB = later.StartsWith("another", StringComparison.Ordinal) ? [4, 3, 13, 5] : shapeA;
            var xA = RandomTensor<float>(11, shapeA, mean: 1, std: 2);
            var xB = RandomTensor<float>(12, shapeB, mean: -3, std: 5);
            var dy = RandomTensor<float>(13, shapeA);
            if (span)
            {
                module.Forward(xA.Data, shapeA, new float[xA.Length]);
            }
            else
            {
                module.Forward(xA);
            }

            // The gradients of A, computed on a twin that never sees the failing call.
            var twin = new BatchNorm2d<float>(3);
            execution.ApplyTo(twin);
            RandomAffine(twin, 4);
            twin.Forward(xA);
            var expected = twin.Backward(dy);

            module.SaveForBackward = !later.EndsWith("not saving", StringComparison.Ordinal);
            var options = module.ExecutionOptions;
            int items = 0;
            module.ExecutionOptions = options with
            {
                WorkItemHook = () =>
                {
                    if (Interlocked.Increment(ref items) == 1)
                    {
                        throw new InjectedFault();
                    }
                },
            };
            foreach (bool training in new[] { true, false })
            {
                module.Training = training;
                Volatile.Write(ref items, 0);
                if (span)
                {
                    Assert.Throws<InjectedFault>(() => module.Forward(xB.Data, shapeB, new float[xB.Length]));
                }
                else
                {
                    Assert.Throws<InjectedFault>(() => module.Forward(xB));
                }
            }

            module.ExecutionOptions = options;
            module.Training = true;
            module.SaveForBackward = true;
            var again = module.Backward(dy);
            string call = $"{where}, {(span ? "span" : "tensor")} forwards";
            BitEqual(expected.Input.Data, again.Input.Data, $"{call}: grad_input after a failed later forward");
            BitEqual(expected.Weight, again.Weight, $"{call}: grad_weight after a failed later forward");
            BitEqual(expected.Bias, again.Bias, $"{call}: grad_bias after a failed later forward");
            Assert.True(twin.NumBatchesTracked == module.NumBatchesTracked, $"{call}: num_batches_tracked {module.NumBatchesTracked}, expected {twin.NumBatchesTracked}");
        }
    }
}
