using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Comparison;

/// <summary>
/// The comparer on traces that are wrong in their structure rather than their numbers (an implementation that stops,
/// raises where PyTorch did not, returns where PyTorch raised, drops its gradients, returns a wrong shape or length),
/// and the report a failure prints: each must fail the case and say which step and what, because a comparer that
/// passes such a trace would let the regression through every parity suite. The traces are the float64 reference's
/// on recorded PyTorch cases (which pass), edited in one place.
/// </summary>
public sealed class ComparerStructureTests
{
    private const string Implementation = "edited reference";

    private static (BatchNormCase Case, CaseTrace Trace) ReferenceOn(string name)
    {
        var recorded = Harness.Cases.RecordedCases.Load(name);
        var trace = CaseRunner.Run(new ReferenceBatchNorm(), recorded) with { Implementation = Implementation };
        var report = TraceComparer.CompareWithRecorded(recorded, trace);
        Assert.True(report.Passed, "the unedited reference trace must pass:\n" + report.Format());
        return (recorded, trace);
    }

    private static CaseTrace Edit(CaseTrace trace, int stepIndex, Func<StepOutcome, StepOutcome> edit) =>
        trace with { Steps = trace.Steps.Select((s, i) => i == stepIndex ? edit(s) : s).ToList() };

    private static void AssertProblem(ComparisonReport report, string expectedProblem)
    {
        Assert.False(report.Passed, $"the comparer accepted a trace with the problem \"{expectedProblem}\":\n{report.Format()}");
        Assert.Contains(expectedProblem, report.Problems);
        Assert.Equal(report.Problems[0], report.FirstFailure);
        Assert.Contains("FAIL", report.Format(), StringComparison.Ordinal);
        Assert.Contains("  " + expectedProblem, report.Format(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_trace_that_stops_before_a_step_fails_naming_that_step()
    {
        var (recorded, trace) = ReferenceOn("cma-four-steps-varying-batch");
        var cut = trace with { Steps = trace.Steps.Take(2).ToList(), StateBefore = trace.StateBefore.Take(2).ToList() };
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, cut), $"step 3: {Implementation} stopped before this step");
    }

    [Fact]
    public void An_error_where_PyTorch_produced_an_output_fails_quoting_the_error()
    {
        var (recorded, trace) = ReferenceOn("cma-four-steps-varying-batch");
        var edited = Edit(trace, 1, _ => new StepOutcome { Error = "boom" });
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, edited), $"step 2: {Implementation} raised \"boom\" but an output was expected");
    }

    [Fact]
    public void An_output_where_PyTorch_raised_and_another_error_text_both_fail()
    {
        var (recorded, trace) = ReferenceOn("bn2d-one-value-per-channel-error");
        int last = recorded.Steps.Count - 1;
        string error = recorded.Steps[last].Expected!.Error!;
        var output = new StepOutcome { Output = recorded.Steps[last].Input, RunningMean = trace.StateBefore[last].RunningMean, RunningVar = trace.StateBefore[last].RunningVar, NumBatchesTracked = trace.StateBefore[last].NumBatchesTracked };
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, Edit(trace, last, _ => output)), $"step {last + 1}: expected the error \"{error}\" but got an output");

        var other = Edit(trace, last, s => s with { Error = "Expected something else" });
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, other), $"step {last + 1}: expected an error starting \"{error}\", got \"Expected something else\"");

        var longer = Edit(trace, last, s => s with { Error = error + " (and more detail)" });
        Assert.True(TraceComparer.CompareWithRecorded(recorded, longer).Passed, "an error that starts with PyTorch's text must pass");
    }

    [Fact]
    public void A_failed_call_that_changed_running_var_fails()
    {
        var (recorded, trace) = ReferenceOn("bn2d-one-value-per-channel-error");
        int last = recorded.Steps.Count - 1;
        var edited = Edit(trace, last, s => s with { RunningVar = s.RunningVar!.Select(v => v + 1).ToArray() });
        var before = trace.StateBefore[last].NumBatchesTracked;
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, edited), $"step {last + 1}: the failed call changed the buffers (num_batches_tracked {before} -> {before})");
    }

    [Fact]
    public void Missing_gradients_fail_and_the_next_step_is_still_compared()
    {
        var (recorded, trace) = ReferenceOn("grad-cma-two-steps");
        Assert.True(recorded.Steps[0].Expected!.HasGradients && !recorded.Steps[1].Expected!.HasGradients);
        var edited = Edit(trace, 0, s => s with { GradInput = null, GradWeight = null, GradBias = null });
        edited = Edit(edited, 1, s => s with { Output = s.Output! with { Data = s.Output.Data.Select(v => v + 1).ToArray() } });
        var report = TraceComparer.CompareWithRecorded(recorded, edited);
        AssertProblem(report, $"step 1: gradients expected but {Implementation} produced none");
        Assert.True(report.MismatchCountByTensor.GetValueOrDefault("output") > 0, "step 2 was not compared after step 1's missing gradients:\n" + report.Format());
    }

    [Fact]
    public void A_wrong_gradient_of_each_kind_is_a_mismatch_of_that_tensor()
    {
        var (recorded, trace) = ReferenceOn("grad-bn2d-train");
        foreach (string tensor in new[] { "grad_input", "grad_weight", "grad_bias" })
        {
            var edited = Edit(trace, 0, s => tensor switch
            {
                "grad_input" => s with { GradInput = s.GradInput! with { Data = Bumped(s.GradInput.Data, 3) } },
                "grad_weight" => s with { GradWeight = Bumped(s.GradWeight!, 1) },
                _ => s with { GradBias = Bumped(s.GradBias!, 1) },
            });
            var report = TraceComparer.CompareWithRecorded(recorded, edited);
            Assert.False(report.Passed, $"{tensor} off by 1 passed");
            Assert.Equal(1, report.MismatchCount);
            Assert.Equal(1, report.MismatchCountByTensor[tensor]);
            Assert.Equal(tensor, report.Mismatches[0].Tensor);
        }
    }

    [Fact]
    public void A_wrong_shape_or_length_fails_naming_the_tensor()
    {
        var (recorded, trace) = ReferenceOn("bn2d-default");
        var wrongShape = Edit(trace, 0, s => s with { Output = new CaseTensor([.. s.Output!.Shape.Reverse()], s.Output.Data) });
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, wrongShape),
            $"step 1 output: expected shape {recorded.Steps[0].Expected!.Output}, actual {new CaseTensor([.. trace.Steps[0].Output!.Shape.Reverse()], [])}");

        var absent = Edit(trace, 0, s => s with { Output = null });
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, absent), $"step 1 output: expected shape {recorded.Steps[0].Expected!.Output}, actual absent");

        int c = recorded.Config.NumFeatures;
        var longer = Edit(trace, 0, s => s with { RunningMean = [.. s.RunningMean!, 0] });
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, longer), $"step 1 running_mean: expected {c} values, actual {c + 1}");

        var noVar = Edit(trace, 0, s => s with { RunningVar = null });
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, noVar), $"step 1 running_var: expected {c} values, actual absent");

        var count = Edit(trace, 0, s => s with { NumBatchesTracked = s.NumBatchesTracked + 1 });
        AssertProblem(TraceComparer.CompareWithRecorded(recorded, count), $"step 1 num_batches_tracked: expected {recorded.Steps[0].Expected!.NumBatchesTracked}, actual {trace.Steps[0].NumBatchesTracked + 1}");
    }

    [Fact]
    public void A_case_without_steps_fails()
    {
        var (recorded, trace) = ReferenceOn("bn2d-default");
        var empty = recorded with { Steps = [] };
        AssertProblem(TraceComparer.CompareWithRecorded(empty, trace with { Steps = [], StateBefore = [] }), "the case has no steps");
    }

    /// <summary>The report of a numeric failure: verdict, case, the mismatch with its step, tensor, [n, c, s] location,
    /// values and budget, the exact count (beyond the kept 64), the worst ratio and the environment.</summary>
    [Fact]
    public void A_failure_report_says_where_and_by_how_much_and_counts_every_mismatch()
    {
        var (recorded, trace) = ReferenceOn("bn2d-default");
        var passed = TraceComparer.CompareWithRecorded(recorded, trace);
        Assert.StartsWith($"{Implementation} vs recorded PyTorch: PASS", passed.Format(), StringComparison.Ordinal);
        Assert.Equal("", passed.FirstFailure);
        Assert.InRange(passed.WorstBudgetRatio, double.Epsilon, 1.0);

        var output = trace.Steps[0].Output!;
        Assert.Equal([2, 3, 6, 6], output.Shape);
        int index = output.Data.Length - 1; // the last element: n = 1, c = 2, s = 35 (written out, not taken from Locate)
        var one = Edit(trace, 0, o => o with { Output = output with { Data = Bumped(output.Data, index) } });
        var report = TraceComparer.CompareWithRecorded(recorded, one);
        string text = report.Format();
        Assert.StartsWith($"{Implementation} vs recorded PyTorch: FAIL", text, StringComparison.Ordinal);
        Assert.Contains($"case {recorded}", text, StringComparison.Ordinal);
        Assert.Contains("  1 number(s) outside budget; first 1:", text, StringComparison.Ordinal);
        Assert.Contains("    step 1 output[n=1, c=2, s=35]: expected ", text, StringComparison.Ordinal);
        Assert.Equal((0, 1, 7), output.Locate(36 + 7)); // a middle element: n = 0, c = 1, s = 7
        Assert.Equal(report.Mismatches[0].ToString(), report.FirstFailure);
        Assert.Equal(index, report.Mismatches[0].Index);
        Assert.Equal(1.0, report.Mismatches[0].AbsoluteError, 6);
        Assert.True(report.WorstBudgetRatio > 1, $"worst ratio {report.WorstBudgetRatio} for an error of 1");
        Assert.Contains($"worst |error|/budget = {report.WorstBudgetRatio.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)}", text, StringComparison.Ordinal);

        var all = Edit(trace, 0, o => o with { Output = output with { Data = output.Data.Select(v => v + 1).ToArray() } });
        var many = TraceComparer.CompareWithRecorded(recorded, all);
        Assert.Equal(output.Data.Length, many.MismatchCount);
        Assert.Equal(output.Data.Length, many.MismatchCountByTensor["output"]);
        Assert.Equal(Math.Min(output.Data.Length, ComparisonReport.MaxKeptMismatches), many.Mismatches.Count);
        Assert.Contains($"  {output.Data.Length} number(s) outside budget; first 5:", many.Format(), StringComparison.Ordinal);
    }

    private static double[] Bumped(double[] data, int index)
    {
        var copy = (double[])data.Clone();
        copy[index] += 1;
        return copy;
    }
}
