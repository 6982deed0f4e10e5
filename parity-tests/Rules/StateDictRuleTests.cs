using System.Numerics;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Rules;

/// <summary>StateDict / LoadStateDict rules: PyTorch's names, order and shapes; strict names-and-shapes checks; atomic loads.</summary>
public sealed class StateDictRuleTests
{
    private static BatchNorm2d<T> Trained<T>(int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3);
        RandomAffine(m, seed);
        m.Forward(RandomTensor<T>(seed, [2, 3, 2, 2], mean: seed));
        m.Forward(RandomTensor<T>(seed + 1, [2, 3, 2, 2], mean: seed));
        return m;
    }

    [Fact]
    public void StateDict_has_PyTorchs_keys_in_order_with_shapes_C_and_scalar_count_float() => StateDict_has_PyTorchs_keys_in_order_with_shapes_C_and_scalar_count<float>();

    [Fact]
    public void StateDict_has_PyTorchs_keys_in_order_with_shapes_C_and_scalar_count_double() => StateDict_has_PyTorchs_keys_in_order_with_shapes_C_and_scalar_count<double>();

    private static void StateDict_has_PyTorchs_keys_in_order_with_shapes_C_and_scalar_count<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = Trained<T>(1);
        var state = m.StateDict();
        Assert.Equal(new[] { "weight", "bias", "running_mean", "running_var", "num_batches_tracked" }, state.Keys.ToArray());
        foreach (string key in new[] { "weight", "bias", "running_mean", "running_var" })
        {
            Assert.Equal(new[] { 3 }, state[key].Shape);
            Assert.Equal(typeof(T), state[key].ElementType);
        }

        Assert.Equal(Array.Empty<int>(), state["num_batches_tracked"].Shape);
        Assert.Equal(typeof(long), state["num_batches_tracked"].ElementType);
        Assert.Equal(new[] { 2L }, (long[])state["num_batches_tracked"].Data);
        BitEqual(m.Weight, (T[])state["weight"].Data, "weight");
        BitEqual(m.Bias, (T[])state["bias"].Data, "bias");
        BitEqual(m.RunningMean, (T[])state["running_mean"].Data, "running_mean");
        BitEqual(m.RunningVar, (T[])state["running_var"].Data, "running_var");
    }

    [Fact]
    public void StateDict_omits_parameters_when_not_affine_and_buffers_when_not_tracking()
    {
        Assert.Equal(new[] { "running_mean", "running_var", "num_batches_tracked" }, new BatchNorm1d<float>(2, affine: false).StateDict().Keys.ToArray());
        Assert.Equal(new[] { "weight", "bias" }, new BatchNorm1d<float>(2, trackRunningStats: false).StateDict().Keys.ToArray());
        Assert.Empty(new BatchNorm1d<float>(2, affine: false, trackRunningStats: false).StateDict());
    }

    [Fact]
    public void StateDict_returns_copies_not_aliases()
    {
        var m = Trained<float>(2);
        string before = Snapshot(m);
        var state = m.StateDict();
        ((float[])state["weight"].Data)[0] = 42;
        ((float[])state["running_var"].Data)[1] = 42;
        ((long[])state["num_batches_tracked"].Data)[0] = 42;
        Assert.Equal(before, Snapshot(m));
        m.Weight![2] = -7;
        Assert.NotEqual(-7f, ((float[])state["weight"].Data)[2]);
    }

    [Fact]
    public void LoadStateDict_round_trips_every_value_bitwise_float() => LoadStateDict_round_trips_every_value_bitwise<float>();

    [Fact]
    public void LoadStateDict_round_trips_every_value_bitwise_double() => LoadStateDict_round_trips_every_value_bitwise<double>();

    private static void LoadStateDict_round_trips_every_value_bitwise<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var source = Trained<T>(3);
        var target = new BatchNorm2d<T>(3);
        target.LoadStateDict(source.StateDict());
        Assert.Equal(Snapshot(source), Snapshot(target));
    }

    [Fact]
    public void LoadStateDict_strict_rejects_a_broadcastable_shape_naming_key_and_both_shapes()
    {
        var m = Trained<float>(4);
        string before = Snapshot(m);
        var state = new Dictionary<string, IStateTensor>(m.StateDict()) { ["running_mean"] = new DenseTensor<float>([0.5f], 1) };
        var error = Assert.Throws<ArgumentException>(() => m.LoadStateDict(state));
        Assert.Contains("running_mean", error.Message, StringComparison.Ordinal);
        Assert.Contains("[3]", error.Message, StringComparison.Ordinal);
        Assert.Contains("[1]", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(m));
    }

    [Fact]
    public void LoadStateDict_rejects_a_count_that_is_not_a_scalar_or_the_legacy_one_element_vector()
    {
        var m = Trained<float>(4);
        string before = Snapshot(m);
        foreach (int[] shape in new[] { new[] { 2 }, new[] { 1, 1 } })
        {
            var state = new Dictionary<string, IStateTensor>(m.StateDict()) { ["num_batches_tracked"] = new DenseTensor<long>(new long[shape.Aggregate(1, (a, b) => a * b)], shape) };
            var error = Assert.Throws<ArgumentException>(() => m.LoadStateDict(state, strict: false));
            Assert.Contains("size mismatch for num_batches_tracked", error.Message, StringComparison.Ordinal);
            Assert.Equal(before, Snapshot(m));
        }

        // PyTorch's _load_from_state_dict takes a [1] vector into the 0-dim buffer (checkpoints from PyTorch 0.3).
        var legacy = new Dictionary<string, IStateTensor>(m.StateDict()) { ["num_batches_tracked"] = new DenseTensor<long>([5L], 1) };
        m.LoadStateDict(legacy);
        Assert.Equal(5L, m.NumBatchesTracked);
    }

    [Fact]
    public void LoadStateDict_rejects_a_wrong_element_type()
    {
        var m = Trained<float>(5);
        string before = Snapshot(m);
        var asDouble = new Dictionary<string, IStateTensor>(m.StateDict()) { ["weight"] = new DenseTensor<double>([1, 2, 3], 3) };
        var error = Assert.Throws<ArgumentException>(() => m.LoadStateDict(asDouble));
        Assert.Contains("weight", error.Message, StringComparison.Ordinal);
        var countAsFloat = new Dictionary<string, IStateTensor>(m.StateDict()) { ["num_batches_tracked"] = new DenseTensor<float>([3f]) };
        Assert.Throws<ArgumentException>(() => m.LoadStateDict(countAsFloat));
        Assert.Equal(before, Snapshot(m));
    }

    [Fact]
    public void LoadStateDict_strict_rejects_missing_and_unexpected_keys()
    {
        var m = Trained<double>(6);
        string before = Snapshot(m);
        var missing = new Dictionary<string, IStateTensor>(m.StateDict());
        missing.Remove("running_var");
        var error = Assert.Throws<ArgumentException>(() => m.LoadStateDict(missing));
        Assert.Contains("running_var", error.Message, StringComparison.Ordinal);
        var unexpected = new Dictionary<string, IStateTensor>(Trained<double>(7).StateDict()) { ["momentum"] = new DenseTensor<double>([0.1]) };
        error = Assert.Throws<ArgumentException>(() => m.LoadStateDict(unexpected));
        Assert.Contains("momentum", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(m));
    }

    [Fact]
    public void LoadStateDict_without_num_batches_tracked_keeps_the_current_count()
    {
        var m = Trained<float>(8);
        m.NumBatchesTracked = 5;
        var source = Trained<float>(9);
        var old = new Dictionary<string, IStateTensor>(source.StateDict());
        old.Remove("num_batches_tracked");
        m.LoadStateDict(old);
        Assert.Equal(5L, m.NumBatchesTracked);
        BitEqual(source.RunningMean, m.RunningMean, "running_mean");
        BitEqual(source.Weight, m.Weight, "weight");
    }

    [Fact]
    public void LoadStateDict_non_strict_ignores_unexpected_and_missing_keys()
    {
        var m = Trained<float>(10);
        float[] weight = (float[])m.Weight!.Clone(), mean = (float[])m.RunningMean!.Clone();
        long? count = m.NumBatchesTracked;
        var partial = new Dictionary<string, IStateTensor>
        {
            ["bias"] = new DenseTensor<float>([1, 2, 3], 3),
            ["running_var"] = new DenseTensor<float>([4, 5, 6], 3),
            ["extra.thing"] = new DenseTensor<float>([9, 9], 2),
        };
        m.LoadStateDict(partial, strict: false);
        Assert.Equal(new[] { 1f, 2, 3 }, m.Bias);
        Assert.Equal(new[] { 4f, 5, 6 }, m.RunningVar);
        BitEqual(weight, m.Weight, "weight");
        BitEqual(mean, m.RunningMean, "running_mean");
        Assert.Equal(count, m.NumBatchesTracked);
    }

    [Fact]
    public void A_failed_load_changes_nothing_float() => A_failed_load_changes_nothing<float>();

    [Fact]
    public void A_failed_load_changes_nothing_double() => A_failed_load_changes_nothing<double>();

    private static void A_failed_load_changes_nothing<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = Trained<T>(11);
        string before = Snapshot(m);
        // Valid weight, bias, running_mean and count first; the last vector is bad.
        var state = new Dictionary<string, IStateTensor>(Trained<T>(12).StateDict()) { ["running_var"] = new DenseTensor<T>(4) };
        Assert.Throws<ArgumentException>(() => m.LoadStateDict(state));
        Assert.Equal(before, Snapshot(m));
        var negative = new Dictionary<string, IStateTensor>(Trained<T>(12).StateDict()) { ["num_batches_tracked"] = new DenseTensor<long>([-1L]) };
        Assert.Throws<ArgumentException>(() => m.LoadStateDict(negative));
        Assert.Equal(before, Snapshot(m));
    }
}
