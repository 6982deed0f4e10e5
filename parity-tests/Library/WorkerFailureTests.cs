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
}
