using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// The public surface's rules one by one (TorchSharp-free, so the mutation run of the module surface executes them):
/// each invalid argument is an exception naming the argument and the rule with nothing changed, each setter keeps
/// what it was given, the span overloads validate like the tensor overloads, gradients a module without weights does
/// not have are never written, and warm calls allocate nothing. Written for the survivors of the module surface's
/// Stryker run (docs/mutation-testing.md).
/// </summary>
public sealed class ModuleSurfaceTests
{
    [Fact]
    public void Element_types_other_than_float_and_double_are_not_supported()
    {
        var e = Assert.Throws<NotSupportedException>(() => new BatchNorm1d<Half>(3));
        Assert.Contains("Half", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void Fewer_than_one_feature_is_an_argument_error(int numFeatures)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new BatchNorm2d<float>(numFeatures));
        Assert.Equal("numFeatures", e.ParamName);
    }

    [Fact]
    public void Setters_keep_their_values_and_reject_invalid_ones_naming_the_value()
    {
        var module = new BatchNorm1d<float>(2) { MaxDegreeOfParallelism = 3, NumBatchesTracked = 7 };
        Assert.Equal(3, module.MaxDegreeOfParallelism);
        Assert.Equal(7, module.NumBatchesTracked);
        string before = Snapshot(module);
        Assert.Equal("value", Assert.Throws<ArgumentOutOfRangeException>(() => module.MaxDegreeOfParallelism = 0).ParamName);
        Assert.Equal("value", Assert.Throws<ArgumentOutOfRangeException>(() => module.NumBatchesTracked = -1).ParamName);
        Assert.Throws<ArgumentNullException>(() => module.ExecutionOptions = null!);
        Assert.Equal(3, module.MaxDegreeOfParallelism);
        Assert.Equal(before, Snapshot(module));
    }

    [Fact]
    public void Backward_after_ReleaseBackwardContext_is_an_error_on_both_overloads()
    {
        var module = new BatchNorm1d<float>(2);
        var x = RandomTensor<float>(1, [5, 2]);
        module.Forward(x);
        module.ReleaseBackwardContext();
        Assert.Throws<InvalidOperationException>(() => module.Backward(x));
        Assert.Throws<InvalidOperationException>(() => module.Backward(x.Data, x.Shape, new float[10], new float[2], new float[2]));
    }

    [Fact]
    public void Rank_errors_name_input_on_every_forward_overload()
    {
        var module = new BatchNorm2d<float>(3);
        var x = new DenseTensor<float>(new float[6], 2, 3);
        Assert.Equal("input", Assert.Throws<ArgumentException>(() => module.Forward(x)).ParamName);
        Assert.Equal("input", Assert.Throws<ArgumentException>(() => module.Forward(x, new DenseTensor<float>(2, 3))).ParamName);
        Assert.Equal(0, module.NumBatchesTracked);
    }

    [Fact]
    public void A_destination_that_partially_overlaps_the_input_is_rejected()
    {
        var module = new BatchNorm1d<float>(2);
        var buffer = RandomTensor<float>(3, [10]).Data;
        string before = Snapshot(module);
        var e = Assert.Throws<ArgumentException>(() => module.Forward(buffer.AsSpan(0, 8), [4, 2], buffer.AsSpan(2, 8)));
        Assert.Contains("overlaps", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));
    }

    [Fact]
    public void Span_backward_validates_every_buffer_naming_it()
    {
        var module = new BatchNorm1d<float>(2);
        var x = RandomTensor<float>(4, [6, 2]);
        module.Forward(x);
        var dy = RandomTensor<float>(5, [6, 2]).Data;
        string before = Snapshot(module);
        Assert.Equal("shape", Assert.Throws<ArgumentException>(() => module.Backward(dy, [3, 4], new float[12], new float[2], new float[2])).ParamName);
        Assert.Equal("gradOutput", Assert.Throws<ArgumentException>(() => module.Backward(dy.AsSpan(1), [6, 2], new float[12], new float[2], new float[2])).ParamName);
        Assert.Equal("gradInput", Assert.Throws<ArgumentException>(() => module.Backward(dy, [6, 2], new float[11], new float[2], new float[2])).ParamName);
        Assert.Equal("gradWeight", Assert.Throws<ArgumentException>(() => module.Backward(dy, [6, 2], new float[12], new float[3], new float[2])).ParamName);
        Assert.Equal("gradBias", Assert.Throws<ArgumentException>(() => module.Backward(dy, [6, 2], new float[12], new float[2], new float[1])).ParamName);
        var shared = new float[14];
        dy.CopyTo(shared, 0);
        Assert.Equal("gradInput", Assert.Throws<ArgumentException>(() => module.Backward(shared.AsSpan(0, 12), [6, 2], shared.AsSpan(2, 12), new float[2], new float[2])).ParamName);
        Assert.Equal(before, Snapshot(module));

        // Valid: the gradients equal the tensor overload's.
        var expected = module.Backward(new DenseTensor<float>(dy, 6, 2));
        var dx = new float[12];
        var dw = new float[2];
        var db = new float[2];
        module.Backward(dy, [6, 2], dx, dw, db);
        BitEqual(expected.Input.Data, dx, "span backward dx");
        BitEqual(expected.Weight!, dw, "span backward dweight");
        BitEqual(expected.Bias!, db, "span backward dbias");
    }

    [Fact]
    public void A_module_without_weights_returns_no_weight_gradients_and_never_writes_the_spans_it_is_given()
    {
        var module = new BatchNorm1d<double>(2, affine: false);
        var x = RandomTensor<double>(6, [6, 2]);
        module.Forward(x);
        var dy = RandomTensor<double>(7, [6, 2]);
        var gradients = module.Backward(dy);
        Assert.Null(gradients.Weight);
        Assert.Null(gradients.Bias);

        var dw = new[] { 42.0 };
        var db = new[] { 43.0, 44.0, 45.0 };
        var dx = new double[12];
        module.Backward(dy.Data, dy.Shape, dx, dw, db); // any lengths: a module without weights ignores these spans
        Assert.Equal(new[] { 42.0 }, dw);
        Assert.Equal(new[] { 43.0, 44.0, 45.0 }, db);
        BitEqual(gradients.Input.Data, dx, "non-affine span backward dx");
    }

    [Fact]
    public void Backward_uses_the_weights_of_its_forward_when_they_change_before_Backward()
    {
        var reference = new BatchNorm1d<float>(2);
        RandomAffine(reference, 3);
        var module = new BatchNorm1d<float>(2);
        RandomAffine(module, 3);
        var x = RandomTensor<float>(8, [7, 2]);
        var dy = RandomTensor<float>(9, [7, 2]);
        reference.Forward(x);
        var expected = reference.Backward(dy);

        module.Forward(x);
        module.Weight![0] *= 3; // after the forward: Backward differentiates the forward that ran
        var actual = module.Backward(dy);
        AssertSameGradients(expected, actual, "backward after the weights changed");

        // An unsaved forward releases the context (one saved forward per module).
        module.Forward(x);
        module.SaveForBackward = false;
        module.Forward(x);
        Assert.Throws<InvalidOperationException>(() => module.Backward(dy));
    }

    [Fact]
    public void The_saved_input_of_a_span_forward_is_the_latest_one()
    {
        var module = new BatchNorm1d<float>(2);
        var reference = new BatchNorm1d<float>(2);
        var first = RandomTensor<float>(10, [9, 2]);
        var second = RandomTensor<float>(11, [9, 2]);
        var dy = RandomTensor<float>(12, [9, 2]);
        var y = new float[18];
        module.Forward(first.Data, first.Shape, y);
        module.Forward(second.Data, second.Shape, y);
        reference.Forward(first);
        reference.Forward(second);
        AssertSameGradients(reference.Backward(dy), module.Backward(dy), "backward after two span forwards");
    }

    [Fact]
    public void Gradients_constructor_and_tensor_constructors_reject_null_and_mismatched_arguments()
    {
        Assert.Equal("input", Assert.Throws<ArgumentNullException>(() => new BatchNormGradients<float>(null!, null, null)).ParamName);
        Assert.Equal("data", Assert.Throws<ArgumentNullException>(() => new DenseTensor<float>(null!, 2)).ParamName);
        Assert.Equal("shape", Assert.Throws<ArgumentNullException>(() => new DenseTensor<float>(new float[2], null!)).ParamName);
        Assert.Equal("shape", Assert.Throws<ArgumentNullException>(() => new DenseTensor<float>((int[])null!)).ParamName);
        var e = Assert.Throws<ArgumentException>(() => new DenseTensor<float>(new float[5], 2, 3));
        Assert.Contains("5", e.Message, StringComparison.Ordinal);
        Assert.Equal("DenseTensor<Single>[2, 3]", new DenseTensor<float>(2, 3).ToString());
    }

    [Fact]
    public void Tensor_lengths_are_checked_at_the_int_boundary_and_any_zero_dimension_means_empty()
    {
        Assert.Equal(int.MaxValue, DenseTensor<float>.CheckedLength([int.MaxValue], "shape"));
        Assert.Equal(int.MaxValue, DenseTensor<float>.CheckedLength([1, int.MaxValue, 1], "shape"));
        Assert.Throws<ArgumentException>(() => DenseTensor<float>.CheckedLength([int.MaxValue, 2], "shape"));
        Assert.Equal(0, DenseTensor<float>.CheckedLength([65536, 65536, 0, 0], "shape"));
        Assert.Equal(0, new DenseTensor<float>(65536, 0, 65536, 0).Length);
    }

    [Fact]
    public void Load_state_dict_errors_say_which_entry_and_what_is_wrong()
    {
        var module = new BatchNorm1d<float>(3);
        string before = Snapshot(module);
        string Error(string key, IStateTensor? value)
        {
            var state = module.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
            state[key] = value!;
            var e = Assert.Throws<ArgumentException>(() => module.LoadStateDict(state));
            Assert.Equal("state", e.ParamName);
            return e.Message;
        }

        Assert.Contains("state entry 'weight' is null.", Error("weight", null), StringComparison.Ordinal);
        Assert.Contains("state entry 'bias' has a null shape.", Error("bias", new FakeTensor(null, typeof(float), new float[3])), StringComparison.Ordinal);
        Assert.Contains("dtype mismatch for running_mean: expected Single, got Double (data Double[]).",
            Error("running_mean", new DenseTensor<double>(new double[3], 3)), StringComparison.Ordinal);
        Assert.Contains("dtype mismatch for running_mean: expected Single, got null (data null).",
            Error("running_mean", new FakeTensor([3], null, null)), StringComparison.Ordinal);
        Assert.Contains("state entry 'running_var' has 2 elements but shape [3].",
            Error("running_var", new FakeTensor([3], typeof(float), new float[2])), StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));
    }

    [Fact]
    public void Warm_forward_and_backward_calls_allocate_nothing_on_every_path()
    {
        foreach (var path in new[] { Harness.Implementations.LibraryPath.Channel, Harness.Implementations.LibraryPath.Split, Harness.Implementations.LibraryPath.Row })
        {
            var execution = new Harness.Implementations.LibraryExecution(path, 1);
            var module = new BatchNorm2d<float>(4);
            execution.ApplyTo(module);
            var x = RandomTensor<float>(13, [2, 4, 3, 3]).Data;
            var dy = RandomTensor<float>(14, [2, 4, 3, 3]).Data;
            var y = new float[x.Length];
            var dx = new float[x.Length];
            var dw = new float[4];
            var db = new float[4];
            int[] shape = [2, 4, 3, 3];
            for (int warm = 0; warm < 3; warm++)
            {
                module.Forward(x, shape, y);
                module.Backward(dy, shape, dx, dw, db);
            }

            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10; i++)
            {
                module.Forward(x, shape, y);
                module.Backward(dy, shape, dx, dw, db);
            }

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated == 0, $"{execution}: 10 warm training forward + backward calls on [2, 4, 3, 3] allocated {allocated} bytes");
        }
    }

    /// <summary>
    /// MaxDegreeOfParallelism = int.MaxValue queued one thread-pool item per channel, split unit or run of the eval
    /// sweep: past the thread pool queue's largest segment (2^20 items) every call allocated its queue anew (33.5 MB for
    /// the sweep of a channels-last [2, 32768, 4, 4] on the channel path), and each item cost a claim, 3–11× the time. The
    /// module now uses at most min(degree, processors) workers (and the path at most one per unit of work), so warm calls
    /// allocate (next to) nothing at any degree: on the default paths (channels-first: channel path, S = 16; channels-last: row
    /// path) and on the channel path forced for the channels-last input, whose sweep has 2^20 runs.
    /// </summary>
    [Theory]
    [InlineData(MemoryLayout.ChannelsFirst, false)]
    [InlineData(MemoryLayout.ChannelsLast, false)]
    [InlineData(MemoryLayout.ChannelsLast, true)]
    public void Warm_calls_allocate_nothing_whatever_MaxDegreeOfParallelism(MemoryLayout layout, bool channelPath)
    {
        const int channels = 32768;
        int[] shape = [2, channels, 4, 4];
        var x = RandomTensor<float>(15, shape).Data;
        var dy = RandomTensor<float>(16, shape).Data;
        var y = new float[x.Length];
        var dx = new float[x.Length];
        var dw = new float[channels];
        var db = new float[channels];
        var options = channelPath ? ExecutionOptions.Default with { Path = ExecutionPath.Channel } : ExecutionOptions.Default;
        foreach (int degree in new[] { 1, 2, 3, 64, int.MaxValue })
        {
            var training = new BatchNorm2d<float>(channels) { MaxDegreeOfParallelism = degree, ExecutionOptions = options };
            var eval = new BatchNorm2d<float>(channels) { MaxDegreeOfParallelism = degree, ExecutionOptions = options, SaveForBackward = false };
            eval.Eval();
            long allocated = long.MaxValue;
            for (int call = 0; call < 7; call++)
            {
                // Calls 1 and 2 allocate the scratch and both saved-input buffers; calls 3–7 are measured, and the least
                // counts: a steady allocation shows in every call, while the thread pool's own bookkeeping allocates on
                // the queuing thread only now and then (a new segment of its global queue, ~8 KB, seen under a loaded
                // test run; starting a pool thread, a few hundred bytes).
                long before = GC.GetAllocatedBytesForCurrentThread();
                training.Forward(x, shape, y, layout);
                training.Backward(dy, shape, dx, dw, db, layout);
                eval.Forward(x, shape, y, layout);
                long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
                allocated = call < 2 ? long.MaxValue : Math.Min(allocated, bytes);
            }

            // Not exactly 0 either: a pool thread started by the least of the calls costs a few hundred bytes.
            Assert.True(
                allocated <= 4096,
                $"MaxDegreeOfParallelism {degree}, {layout} [2, {channels}, 4, 4]{(channelPath ? " on the channel path" : "")}: a warm training forward, backward and eval forward allocated {allocated} bytes on the calling thread");
        }
    }

    /// <summary>The samples level (channels-last instances, whole samples per worker at 2 threads, in turn at 3) keeps
    /// its worker engines: warm calls allocate (next to) nothing, as a BatchNorm's do.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Warm_channels_last_GroupNorm_and_InstanceNorm_calls_allocate_nothing_at_any_sample_arrangement(int threads)
    {
        int[] shape = [4, 8, 16, 16];
        var x = RandomTensor<float>(15, shape).Data;
        var dy = RandomTensor<float>(16, shape).Data;
        var y = new float[x.Length];
        var dx = new float[x.Length];
        var dw = new float[8];
        var db = new float[8];
        var options = ExecutionOptions.Default with { ParallelThreshold = 0 };
        NormBase<float>[] modules =
        [
            new GroupNorm<float>(4, 8) { MaxDegreeOfParallelism = threads, ExecutionOptions = options },
            new InstanceNorm2d<float>(8, affine: true, trackRunningStats: true) { MaxDegreeOfParallelism = threads, ExecutionOptions = options },
        ];
        foreach (var module in modules)
        {
            long allocated = long.MaxValue;
            for (int call = 0; call < 7; call++)
            {
                // As above: the least of calls 3–7 counts.
                long before = GC.GetAllocatedBytesForCurrentThread();
                module.Forward(x, shape, y, MemoryLayout.ChannelsLast);
                module.Backward(dy, shape, dx, dw, db, MemoryLayout.ChannelsLast);
                long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
                allocated = call < 2 ? long.MaxValue : Math.Min(allocated, bytes);
            }

            string arrangement = PathSelection.SampleWorkers(4, 8 * 16 * 16, threads, options) > 1 ? "whole samples per worker" : "samples in turn";
            Assert.True(
                allocated <= 1024,
                $"{module.GetType().Name} channels-last [4, 8, 16, 16], {threads} threads ({arrangement}): a warm forward and backward allocated {allocated} bytes on the calling thread");
        }
    }

    private sealed class AnyRank : BatchNorm<float>
    {
        public AnyRank()
            : base(2)
        {
        }

        protected override void ValidateRank(int rank)
        {
        }
    }

    private sealed class Generic<TTag> : BatchNorm<double>
    {
        public Generic()
            : base(2)
        {
        }

        public TTag? Tag { get; set; }

        protected override void ValidateRank(int rank)
        {
        }
    }

    /// <summary>A user's subclass is named by its own name: the generic arity suffix ("`1") is the only thing trimmed
    /// (trimming two characters turned AnyRank into "AnyRa").</summary>
    [Fact]
    public void Messages_name_a_user_subclass_by_its_whole_name()
    {
        var x = new DenseTensor<float>(2, 2, 3, 3);
        var e = Assert.Throws<ArgumentException>(() => new AnyRank().Forward(x, MemoryLayout.ChannelsLast));
        Assert.Equal("layout", e.ParamName);
        Assert.StartsWith("AnyRank does not take MemoryLayout.ChannelsLast", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<ArgumentException>(() => new Generic<int>().Forward(new DenseTensor<double>(2, 2, 3, 3), MemoryLayout.ChannelsLast));
        Assert.StartsWith("Generic does not take MemoryLayout.ChannelsLast", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<ArgumentException>(() => new BatchNorm1d<float>(2).Forward(new DenseTensor<float>(2, 2, 3), MemoryLayout.ChannelsLast));
        Assert.StartsWith("BatchNorm1d does not take MemoryLayout.ChannelsLast", e.Message, StringComparison.Ordinal);
    }

    private sealed class FakeTensor(int[]? shape, Type? elementType, Array? data) : IStateTensor
    {
        public int[] Shape => shape!;

        public Type ElementType => elementType!;

        public Array Data => data!;
    }
}
