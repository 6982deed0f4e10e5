using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// With several threads the parallel paths really run on several threads: the first work item waits until a second
/// thread has started one. (Results never depend on it — the golden bits prove that — so without this test a
/// scheduler that silently ran everything on the caller would pass every other test.)
/// </summary>
public sealed class WorkerParticipationTests
{
    [Theory]
    [InlineData(LibraryPath.Channel)]
    [InlineData(LibraryPath.Split)]
    [InlineData(LibraryPath.Row)]
    public void Two_threads_take_part_in_a_forward_and_a_backward(LibraryPath path)
    {
        var execution = new LibraryExecution(path, 2);
        var module = new BatchNorm1d<float>(4);
        execution.ApplyTo(module);
        var x = RandomTensor<float>(1, [64, 4, 40]);
        foreach (string call in new[] { "training forward", "backward" })
        {
            var threads = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
            using var second = new ManualResetEventSlim();
            int first = 0;
            bool waitedInVain = false;
            module.ExecutionOptions = module.ExecutionOptions with
            {
                WorkItemHook = () =>
                {
                    threads[Environment.CurrentManagedThreadId] = true;
                    if (threads.Count >= 2)
                    {
                        second.Set();
                    }

                    if (Interlocked.Exchange(ref first, 1) == 0 && !second.Wait(TimeSpan.FromSeconds(20)))
                    {
                        waitedInVain = true;
                    }
                },
            };
            if (call == "backward")
            {
                module.Backward(x);
            }
            else
            {
                module.Forward(x);
            }

            Assert.False(waitedInVain, $"{execution} {call}: no second thread ran a work item within 20 s");
            Assert.True(threads.Count >= 2, $"{execution} {call}: work items ran on {threads.Count} thread(s)");
        }
    }
}
