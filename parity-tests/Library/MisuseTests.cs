using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>Misuse and limits found by probing the public API: each gets a clear exception naming the argument and the
/// rule, with nothing changed, or PyTorch's behaviour.</summary>
public sealed class MisuseTests
{
    [Theory]
    [InlineData(new[] { 65536, 3, 65536, 0 })]
    [InlineData(new[] { 0, 3, 65536, 65536 })]
    [InlineData(new[] { 65536, 3, 0, 65536 })]
    [InlineData(new[] { 2, 3, 65536, 65536, 0 })]
    public void Zero_element_shapes_are_accepted_in_any_dimension_order(int[] shape)
    {
        var tensor = new DenseTensor<float>(shape);
        Assert.Equal(0, tensor.Length);
        BatchNorm<float> module = shape.Length == 4 ? new BatchNorm2d<float>(3) : new BatchNorm3d<float>(3);
        string before = Snapshot(module);
        var y = module.Forward(tensor);
        Assert.Equal(shape, y.Shape);
        Assert.Equal(1, module.NumBatchesTracked); // PyTorch counts an empty training batch, buffers unchanged
        Assert.Equal(before.Replace("n=0", "n=1", StringComparison.Ordinal), Snapshot(module));
        Assert.Equal(0, module.Backward(tensor).Input.Length);
        module.Eval();
        module.Forward(ReadOnlySpan<float>.Empty, shape, Span<float>.Empty);
    }

    [Fact]
    public void A_shape_with_more_than_int_MaxValue_elements_is_an_argument_error()
    {
        var e = Assert.Throws<ArgumentException>(() => new DenseTensor<float>(65536, 3, 65536, 1));
        Assert.Equal("shape", e.ParamName);
        Assert.Contains("2147483647", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(BatchNorm<float>.MaxNumFeatures + 1)]
    public void Too_many_features_is_an_argument_error_not_an_out_of_memory_failure(int numFeatures)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new BatchNorm1d<float>(numFeatures));
        Assert.Equal("numFeatures", e.ParamName);
        Assert.Contains("2^24", e.Message, StringComparison.Ordinal);
    }

    /// <summary>The limit's message states the bytes a module allocates per channel, measured here: the difference
    /// between a module of 2048 and one of 1024 channels (the fixed costs cancel) over 1024 channels. It said "about
    /// 120" where float modules allocate 169 and double ones 185.</summary>
    [Fact]
    public void The_numFeatures_limit_states_the_bytes_a_module_really_allocates_per_channel()
    {
        foreach (var (name, create) in new (string, Func<int, object>)[]
        {
            ("BatchNorm1d<float>", c => new BatchNorm1d<float>(c)),
            ("BatchNorm2d<float>", c => new BatchNorm2d<float>(c)),
            ("BatchNorm3d<double>", c => new BatchNorm3d<double>(c)),
            ("BatchNorm1d<double>", c => new BatchNorm1d<double>(c)),
        })
        {
            long perChannel = Allocated(() => create(2048)) - Allocated(() => create(1024));
            Assert.True(perChannel % 1024 == 0, $"{name}: {perChannel} bytes more for 1024 more channels");
            perChannel /= 1024;
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => create(BatchNorm<float>.MaxNumFeatures + 1));
            Assert.True(
                e.Message.Contains($" {perChannel} bytes", StringComparison.Ordinal),
                $"{name} allocates {perChannel} bytes per channel; the message says: {e.Message}");
        }

        static long Allocated(Func<object> create)
        {
            // The least of a few constructions: a first call's one-time costs (type loading, JIT) are not per channel.
            long least = long.MaxValue;
            for (int attempt = 0; attempt < 3; attempt++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                GC.KeepAlive(create());
                least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
            }

            return least;
        }
    }

    [Fact]
    public void The_batch_counter_cannot_wrap_into_a_state_the_module_cannot_reload()
    {
        var module = new BatchNorm1d<double>(2, momentum: null) { NumBatchesTracked = long.MaxValue };
        var x = RandomTensor<double>(1, [4, 2]);
        string before = Snapshot(module);
        var e = Assert.Throws<InvalidOperationException>(() => module.Forward(x));
        Assert.Contains("num_batches_tracked", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));
        module.Eval();
        module.Forward(x);
        var copy = new BatchNorm1d<double>(2);
        copy.LoadStateDict(module.StateDict());
        Assert.Equal(long.MaxValue, copy.NumBatchesTracked);
    }

    [Fact]
    public void A_scalar_long_tensor_is_built_with_Scalar_and_the_collection_expression_trap_is_documented()
    {
        var scalar = DenseTensor<long>.Scalar(42);
        Assert.Empty(scalar.Shape);
        Assert.Equal([42L], scalar.Data);
        var trap = new DenseTensor<long>([42]); // binds to the shape constructor: a zero tensor of shape [42]
        Assert.Equal([42], trap.Shape);
        var module = new BatchNorm1d<float>(1);
        module.LoadStateDict(new Dictionary<string, IStateTensor>(module.StateDict()) { ["num_batches_tracked"] = DenseTensor<long>.Scalar(7) });
        Assert.Equal(7, module.NumBatchesTracked);
    }

    [Theory]
    [InlineData(Harness.Implementations.LibraryPath.Channel)]
    [InlineData(Harness.Implementations.LibraryPath.Split)]
    [InlineData(Harness.Implementations.LibraryPath.Row)]
    public void A_non_finite_scale_gives_libtorchs_folded_NaN_and_infinity_pattern_on_every_path(Harness.Implementations.LibraryPath path)
    {
        // running_var + eps = 0 → α = ∞ → libtorch's y = x·∞ + (b − μ·∞) with μ = 0.5 > 0, b = 0.25:
        // x > 0 → ∞ − ∞ = NaN, x = 0 → 0·∞ = NaN, x < 0 → −∞ − ∞ = −∞.
        var execution = new Harness.Implementations.LibraryExecution(path, 2);
        foreach (int[] shape in new[] { new[] { 6, 2, 3 }, new[] { 3, 2, 40 } })
        {
            var module = new BatchNorm1d<float>(2, eps: 0);
            execution.ApplyTo(module);
            module.RunningMean![0] = 0.5f;
            module.RunningVar![0] = 0;
            module.Bias![0] = 0.25f;
            module.Eval();
            var x = RandomTensor<float>(3, shape);
            x.Data[0] = 0;
            var y = module.Forward(x);
            int spatial = shape[2];
            for (int i = 0; i < y.Length; i++)
            {
                if (i / spatial % 2 != 0)
                {
                    Assert.True(float.IsFinite(y.Data[i]), $"{execution} [{string.Join(", ", shape)}] channel 1 output{LibraryScenarios.Index(shape, i)} is {y.Data[i]}");
                    continue;
                }

                float expected = x.Data[i] < 0 ? float.NegativeInfinity : float.NaN;
                Assert.True(expected.Equals(y.Data[i]), $"{execution} [{string.Join(", ", shape)}] output{LibraryScenarios.Index(shape, i)} for x = {x.Data[i]}: expected {expected}, actual {y.Data[i]}");
            }
        }
    }

    [Fact]
    public void An_empty_backward_after_a_full_one_returns_zero_parameter_gradients()
    {
        var module = new BatchNorm1d<double>(3);
        var x = RandomTensor<double>(1, [8, 3]);
        module.Forward(x);
        Assert.Contains(module.Backward(RandomTensor<double>(2, [8, 3])).Weight!, w => w != 0);
        var empty = new DenseTensor<double>(0, 3);
        module.Forward(empty);
        var gradients = module.Backward(empty);
        Assert.Equal(new double[3], gradients.Weight);
        Assert.Equal(new double[3], gradients.Bias);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_scale_that_is_not_finite_in_float_takes_libtorchs_folded_form_on_every_path(bool training)
    {
        // weight +∞ (α = ∞ in double) and weight 3e38 with σ ≈ 1e-3 (α ≈ 3e41: finite in double, ∞ in float): both are
        // α = +∞ as libtorch holds it, so y = x·∞ + (b − μ·∞) — the same NaN/±∞ pattern on every path.
        foreach (float weight in new[] { float.PositiveInfinity, 3e38f })
        {
            float[]? reference = null;
            foreach (var path in new[] { Harness.Implementations.LibraryPath.Channel, Harness.Implementations.LibraryPath.Split, Harness.Implementations.LibraryPath.Row })
            {
                var execution = new Harness.Implementations.LibraryExecution(path, 2);
                var module = new BatchNorm1d<float>(2) { Training = training };
                execution.ApplyTo(module);
                module.Weight![0] = weight;
                module.RunningMean![0] = 0.25f;
                module.RunningVar![0] = 1e-6f;
                var x = RandomTensor<float>(5, [6, 2, 3], mean: 0, std: 1e-3);
                x.Data[0] = 0.25f;
                var y = module.Forward(x);
                for (int i = 0; i < y.Length; i++)
                {
                    if (i / 3 % 2 == 0)
                    {
                        Assert.True(!float.IsFinite(y.Data[i]), $"{execution} weight {weight} {(training ? "train" : "eval")}: output{LibraryScenarios.Index([6, 2, 3], i)} = {y.Data[i]} is finite");
                    }
                }

                if (reference is null)
                {
                    reference = y.Data;
                    continue;
                }

                for (int i = 0; i < y.Length; i++)
                {
                    Assert.True(reference[i].Equals(y.Data[i]) || (i / 3 % 2 == 1 && Math.Abs(reference[i] - y.Data[i]) <= 1e-5f),
                        $"{execution} weight {weight} {(training ? "train" : "eval")}: output{LibraryScenarios.Index([6, 2, 3], i)} {y.Data[i]} vs path=Channel {reference[i]}");
                }
            }
        }
    }

    [Theory]
    [InlineData(Harness.Implementations.LibraryPath.Channel)]
    [InlineData(Harness.Implementations.LibraryPath.Split)]
    [InlineData(Harness.Implementations.LibraryPath.Row)]
    public void A_constant_channel_with_eps_0_normalises_to_the_bias_as_in_PyTorch(Harness.Implementations.LibraryPath path)
    {
        // PyTorch's InvStd is 0 for var = 0 and eps = 0 (PyTorch 1.13 and libtorch 2.10 give the bias, not NaN).
        var execution = new Harness.Implementations.LibraryExecution(path, 2);
        foreach (bool isFloat in new[] { true, false })
        {
            var x = new float[2 * 2 * 40];
            Array.Fill(x, 3f);
            for (int i = 40; i < 80; i++)
            {
                x[i] = i; // channel 1 varies
            }

            double[] y;
            if (isFloat)
            {
                var module = new BatchNorm1d<float>(2, eps: 0);
                execution.ApplyTo(module);
                module.Bias![0] = 0.75f;
                y = Array.ConvertAll(module.Forward(new DenseTensor<float>(x, 2, 2, 40)).Data, v => (double)v);
            }
            else
            {
                var module = new BatchNorm1d<double>(2, eps: 0);
                execution.ApplyTo(module);
                module.Bias![0] = 0.75;
                y = module.Forward(new DenseTensor<double>(Array.ConvertAll(x, v => (double)v), 2, 2, 40)).Data;
            }

            for (int i = 0; i < y.Length; i++)
            {
                if (i / 40 % 2 == 0)
                {
                    Assert.True(y[i] == 0.75, $"{execution} {(isFloat ? "float" : "double")}: output{LibraryScenarios.Index([2, 2, 40], i)} = {y[i]}, expected the bias 0.75");
                }
            }
        }
    }

    [Fact]
    public void A_scale_beyond_float_range_stays_finite_for_double_on_every_path()
    {
        foreach (var path in new[] { Harness.Implementations.LibraryPath.Channel, Harness.Implementations.LibraryPath.Split, Harness.Implementations.LibraryPath.Row })
        {
            var execution = new Harness.Implementations.LibraryExecution(path, 2);
            var module = new BatchNorm1d<double>(2);
            execution.ApplyTo(module);
            module.Weight![0] = 3e38; // α ≈ 9e40: not a float, but a perfectly good double
            module.RunningVar![0] = 1e-6;
            module.RunningMean![0] = 0.3;
            module.Eval();
            var x = RandomTensor<double>(4, [6, 2, 3]);
            var y = module.Forward(x);
            double scale = 1.0 / Math.Sqrt(1e-6 + 1e-5) * 3e38;
            for (int i = 0; i < y.Length; i++)
            {
                if (i / 3 % 2 == 0)
                {
                    // The ordinary (x − μ)·α + b, not libtorch's folded form (which only non-finite α takes).
                    double expected = ((x.Data[i] - 0.3) * scale) + 0;
                    Assert.True(expected.Equals(y.Data[i]), $"{execution} double: output{LibraryScenarios.Index([6, 2, 3], i)} {y.Data[i]:R}, expected {expected:R}");
                }
            }
        }
    }
}
