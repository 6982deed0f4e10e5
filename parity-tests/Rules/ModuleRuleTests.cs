using System.Numerics;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Rules;

/// <summary>Construction, training/eval statistics and running-buffer rules of issue 3 (no TorchSharp needed).</summary>
public sealed class ModuleRuleTests
{
    // ------------------------------------------------------------------ Defaults

    [Fact]
    public void Defaults_are_weight_1_bias_0_running_mean_0_running_var_1_count_0_float() => Defaults_are_weight_1_bias_0_running_mean_0_running_var_1_count_0<float>();

    [Fact]
    public void Defaults_are_weight_1_bias_0_running_mean_0_running_var_1_count_0_double() => Defaults_are_weight_1_bias_0_running_mean_0_running_var_1_count_0<double>();

    private static void Defaults_are_weight_1_bias_0_running_mean_0_running_var_1_count_0<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        BatchNorm<T>[] modules = [new BatchNorm1d<T>(3), new BatchNorm2d<T>(3), new BatchNorm3d<T>(3)];
        foreach (var m in modules)
        {
            Assert.True(m.Training);
            Assert.Equal(1e-5, m.Eps);
            Assert.Equal(0.1, m.Momentum);
            Assert.True(m.Affine);
            Assert.True(m.TrackRunningStats);
            Assert.Equal(Of<T>(1, 1, 1), m.Weight);
            Assert.Equal(Of<T>(0, 0, 0), m.Bias);
            Assert.Equal(Of<T>(0, 0, 0), m.RunningMean);
            Assert.Equal(Of<T>(1, 1, 1), m.RunningVar);
            Assert.Equal(0L, m.NumBatchesTracked);
        }
    }

    [Fact]
    public void Not_affine_has_no_weight_and_no_bias()
    {
        var m = new BatchNorm2d<float>(3, affine: false);
        Assert.Null(m.Weight);
        Assert.Null(m.Bias);
        Assert.NotNull(m.RunningMean);
        Assert.Equal(0L, m.NumBatchesTracked);
    }

    [Fact]
    public void Not_tracking_has_no_buffers_and_a_null_count()
    {
        var m = new BatchNorm2d<double>(3, trackRunningStats: false);
        Assert.Null(m.RunningMean);
        Assert.Null(m.RunningVar);
        Assert.Null(m.NumBatchesTracked);
        Assert.NotNull(m.Weight);
        m.Forward(RandomTensor<double>(1, [2, 3, 2, 2]));
        Assert.Null(m.NumBatchesTracked);
    }

    [Fact]
    public void Train_and_Eval_set_Training()
    {
        var m = new BatchNorm1d<float>(2);
        Assert.Same(m, m.Eval());
        Assert.False(m.Training);
        Assert.Same(m, m.Train());
        Assert.True(m.Training);
        m.Train(false);
        Assert.False(m.Training);
    }

    // ------------------------------------------------------------------ Training statistics

    [Fact]
    public void Training_normalises_with_the_batch_mean_and_biased_variance_float() => Training_normalises_with_the_batch_mean_and_biased_variance<float>();

    [Fact]
    public void Training_normalises_with_the_batch_mean_and_biased_variance_double() => Training_normalises_with_the_batch_mean_and_biased_variance<double>();

    private static void Training_normalises_with_the_batch_mean_and_biased_variance<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        // n = 2·3 = 6 values per channel: the unbiased variance would differ by 20 %.
        var m = new BatchNorm1d<T>(4);
        RandomAffine(m, 7);
        var x = RandomTensor<T>(11, [2, 4, 3], mean: 3, std: 2);
        var y = m.Forward(x);
        var (mean, variance, meanAbs, _) = Stats(x);
        for (int i = 0; i < x.Length; i++)
        {
            int c = Channel(x, i);
            double alpha = D(m.Weight![c]) / Math.Sqrt(variance[c] + m.Eps);
            double expected = ((D(x.Data[i]) - mean[c]) * alpha) + D(m.Bias![c]);
            double scale = (Math.Abs(D(x.Data[i]) * alpha)) + (meanAbs[c] * Math.Abs(alpha)) + Math.Abs(D(m.Bias[c]));
            Close<T>(expected, D(y.Data[i]), scale, $"y[{i}]");
        }
    }

    [Fact]
    public void Training_updates_running_stats_with_momentum_and_the_unbiased_variance_float() => Training_updates_running_stats_with_momentum_and_the_unbiased_variance<float>();

    [Fact]
    public void Training_updates_running_stats_with_momentum_and_the_unbiased_variance_double() => Training_updates_running_stats_with_momentum_and_the_unbiased_variance<double>();

    [Fact]
    public void Training_updates_running_stats_with_momentum_and_the_unbiased_variance_channels_last_float() =>
        Training_updates_running_stats_with_momentum_and_the_unbiased_variance<float>(MemoryLayout.ChannelsLast);

    [Fact]
    public void Training_updates_running_stats_with_momentum_and_the_unbiased_variance_channels_last_double() =>
        Training_updates_running_stats_with_momentum_and_the_unbiased_variance<double>(MemoryLayout.ChannelsLast);

    /// <summary>The (N, C, …) tensor's data in <paramref name="layout"/>'s memory order (the shape stays logical).</summary>
    private static DenseTensor<T> InLayout<T>(DenseTensor<T> x, MemoryLayout layout) where T : unmanaged =>
        new(Harness.Cases.MemoryOrder.ToMemory(x.Data, x.Shape, layout), x.Shape);

    private static void Training_updates_running_stats_with_momentum_and_the_unbiased_variance<T>(MemoryLayout layout = MemoryLayout.ChannelsFirst) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3, momentum: 0.25);
        m.RunningMean![0] = T.CreateChecked(0.5);
        m.RunningVar![2] = T.CreateChecked(2.0);
        double[] r0 = ToDouble(m.RunningMean), v0 = ToDouble(m.RunningVar);
        var x = RandomTensor<T>(12, [2, 3, 2, 2], mean: -1, std: 3); // n = 8
        m.Forward(InLayout(x, layout), layout);
        var (mean, variance, meanAbs, n) = Stats(x);
        for (int c = 0; c < 3; c++)
        {
            double unbiased = variance[c] * n / (n - 1);
            Close<T>((0.75 * r0[c]) + (0.25 * mean[c]), D(m.RunningMean[c]), (0.75 * Math.Abs(r0[c])) + (0.25 * meanAbs[c]), $"running_mean[{c}]");
            Close<T>((0.75 * v0[c]) + (0.25 * unbiased), D(m.RunningVar[c]), (0.75 * v0[c]) + (0.25 * unbiased), $"running_var[{c}]");
        }
    }

    [Fact]
    public void Training_updates_running_var_with_the_unbiased_variance()
    {
        // Momentum 1 makes running_var the batch's unbiased variance itself: [1, 2, 3, 4] → 5/3, not 5/4.
        var m = new BatchNorm1d<double>(1, momentum: 1.0);
        m.Forward(Tensor<double>([1, 2, 3, 4], 4, 1));
        Close<double>(5.0 / 3.0, m.RunningVar![0], 5.0 / 3.0, "running_var");
        Close<double>(2.5, m.RunningMean![0], 2.5, "running_mean");
    }

    [Fact]
    public void Each_training_step_adds_one_to_the_count_and_eval_steps_do_not()
    {
        var m = new BatchNorm2d<float>(3);
        var x = RandomTensor<float>(3, [2, 3, 2, 2]);
        m.Forward(x);
        m.Forward(x);
        m.Forward(x);
        Assert.Equal(3L, m.NumBatchesTracked);
        m.Eval().Forward(x);
        Assert.Equal(3L, m.NumBatchesTracked);
    }

    [Fact]
    public void Momentum_null_is_the_cumulative_average_over_three_steps_float() => Momentum_null_is_the_cumulative_average_over_three_steps<float>();

    [Fact]
    public void Momentum_null_is_the_cumulative_average_over_three_steps_double() => Momentum_null_is_the_cumulative_average_over_three_steps<double>();

    private static void Momentum_null_is_the_cumulative_average_over_three_steps<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm1d<T>(2, momentum: null);
        var sumMean = new double[2];
        var sumVar = new double[2];
        var sumAbs = new double[2];
        for (int step = 0; step < 3; step++)
        {
            var x = RandomTensor<T>(20 + step, [5, 2], mean: step, std: 1 + step);
            m.Forward(x);
            var (mean, variance, meanAbs, n) = Stats(x);
            for (int c = 0; c < 2; c++)
            {
                sumMean[c] += mean[c];
                sumVar[c] += variance[c] * n / (n - 1);
                sumAbs[c] += meanAbs[c];
            }
        }

        // Factors 1, 1/2, 1/3: the defaults are wiped by the first step, then a plain average.
        Assert.Equal(3L, m.NumBatchesTracked);
        for (int c = 0; c < 2; c++)
        {
            Close<T>(sumMean[c] / 3, D(m.RunningMean![c]), sumAbs[c], $"running_mean[{c}]");
            Close<T>(sumVar[c] / 3, D(m.RunningVar![c]), sumVar[c], $"running_var[{c}]");
        }
    }

    [Fact]
    public void Momentum_null_after_a_loaded_count_of_7_uses_factor_one_eighth_float() => Momentum_null_after_a_loaded_count_of_7_uses_factor_one_eighth<float>();

    [Fact]
    public void Momentum_null_after_a_loaded_count_of_7_uses_factor_one_eighth_double() => Momentum_null_after_a_loaded_count_of_7_uses_factor_one_eighth<double>();

    [Fact]
    public void Momentum_null_after_a_loaded_count_of_7_uses_factor_one_eighth_channels_last_float() =>
        Momentum_null_after_a_loaded_count_of_7_uses_factor_one_eighth<float>(MemoryLayout.ChannelsLast);

    private static void Momentum_null_after_a_loaded_count_of_7_uses_factor_one_eighth<T>(MemoryLayout layout = MemoryLayout.ChannelsFirst) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(2, momentum: null);
        m.NumBatchesTracked = 7;
        m.RunningMean![0] = T.CreateChecked(2.0);
        m.RunningMean[1] = T.CreateChecked(-4.0);
        m.RunningVar![0] = T.CreateChecked(3.0);
        m.RunningVar[1] = T.CreateChecked(0.5);
        double[] r0 = ToDouble(m.RunningMean), v0 = ToDouble(m.RunningVar);
        var x = RandomTensor<T>(8, [3, 2, 2, 2], mean: 1, std: 2);
        m.Forward(InLayout(x, layout), layout);
        var (mean, variance, meanAbs, n) = Stats(x);
        Assert.Equal(8L, m.NumBatchesTracked);
        for (int c = 0; c < 2; c++)
        {
            double unbiased = variance[c] * n / (n - 1);
            Close<T>((7.0 / 8 * r0[c]) + (mean[c] / 8), D(m.RunningMean[c]), (7.0 / 8 * Math.Abs(r0[c])) + (meanAbs[c] / 8), $"running_mean[{c}]");
            Close<T>((7.0 / 8 * v0[c]) + (unbiased / 8), D(m.RunningVar[c]), (7.0 / 8 * v0[c]) + (unbiased / 8), $"running_var[{c}]");
        }
    }

    // ------------------------------------------------------------------ Eval and trackRunningStats = false

    [Fact]
    public void Eval_normalises_with_the_running_stats_and_changes_nothing_float() => Eval_normalises_with_the_running_stats_and_changes_nothing<float>();

    [Fact]
    public void Eval_normalises_with_the_running_stats_and_changes_nothing_double() => Eval_normalises_with_the_running_stats_and_changes_nothing<double>();

    private static void Eval_normalises_with_the_running_stats_and_changes_nothing<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3);
        RandomAffine(m, 5);
        m.RunningMean![0] = T.CreateChecked(1.5);
        m.RunningMean[2] = T.CreateChecked(-0.25);
        m.RunningVar![1] = T.CreateChecked(4.0);
        m.RunningVar[2] = T.CreateChecked(0.3);
        m.NumBatchesTracked = 4;
        m.Eval();
        string before = Snapshot(m);
        var x = RandomTensor<T>(6, [2, 3, 3, 2], mean: 1, std: 2);
        var y = m.Forward(x);
        Assert.Equal(before, Snapshot(m));
        for (int i = 0; i < x.Length; i++)
        {
            int c = Channel(x, i);
            double alpha = D(m.Weight![c]) / Math.Sqrt(D(m.RunningVar[c]) + m.Eps);
            double expected = ((D(x.Data[i]) - D(m.RunningMean[c])) * alpha) + D(m.Bias![c]);
            double scale = Math.Abs(D(x.Data[i]) * alpha) + Math.Abs(D(m.RunningMean[c]) * alpha) + Math.Abs(D(m.Bias[c]));
            Close<T>(expected, D(y.Data[i]), scale, $"y[{i}]");
        }
    }

    [Fact]
    public void Not_tracking_uses_batch_stats_in_both_modes_float() => Not_tracking_uses_batch_stats_in_both_modes<float>();

    [Fact]
    public void Not_tracking_uses_batch_stats_in_both_modes_double() => Not_tracking_uses_batch_stats_in_both_modes<double>();

    private static void Not_tracking_uses_batch_stats_in_both_modes<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm3d<T>(2, trackRunningStats: false);
        RandomAffine(m, 3);
        var x = RandomTensor<T>(4, [2, 2, 2, 2, 3], mean: 5, std: 2);
        var trained = m.Forward(x);
        var evaluated = m.Eval().Forward(x);
        BitEqual(trained.Data, evaluated.Data, "eval output vs train output");
        var (mean, variance, meanAbs, _) = Stats(x);
        for (int i = 0; i < x.Length; i++)
        {
            int c = Channel(x, i);
            double alpha = D(m.Weight![c]) / Math.Sqrt(variance[c] + m.Eps);
            double scale = Math.Abs(D(x.Data[i]) * alpha) + (meanAbs[c] * Math.Abs(alpha)) + Math.Abs(D(m.Bias![c]));
            Close<T>(((D(x.Data[i]) - mean[c]) * alpha) + D(m.Bias[c]), D(evaluated.Data[i]), scale, $"y[{i}]");
        }

        Assert.Null(m.RunningMean);
        Assert.Null(m.NumBatchesTracked);
    }

    // ------------------------------------------------------------------ Empty batch

    [Fact]
    public void Empty_batch_in_training_gives_empty_output_keeps_running_stats_and_counts_the_step_float() => Empty_batch_in_training_gives_empty_output_keeps_running_stats_and_counts_the_step<float>();

    [Fact]
    public void Empty_batch_in_training_gives_empty_output_keeps_running_stats_and_counts_the_step_double() => Empty_batch_in_training_gives_empty_output_keeps_running_stats_and_counts_the_step<double>();

    private static void Empty_batch_in_training_gives_empty_output_keeps_running_stats_and_counts_the_step<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3);
        m.RunningMean![1] = T.CreateChecked(0.7);
        m.RunningVar![2] = T.CreateChecked(1.9);
        T[] mean = (T[])m.RunningMean.Clone(), variance = (T[])m.RunningVar.Clone();
        var y = m.Forward(new DenseTensor<T>(0, 3, 4, 4));
        Assert.Equal([0, 3, 4, 4], y.Shape);
        Assert.Equal(0, y.Length);
        BitEqual(mean, m.RunningMean, "running_mean");
        BitEqual(variance, m.RunningVar, "running_var");
        Assert.Equal(1L, m.NumBatchesTracked);
    }

    [Fact]
    public void Empty_batch_in_eval_gives_empty_output_and_changes_nothing()
    {
        var m = new BatchNorm1d<float>(3).Eval();
        string before = Snapshot(m);
        var y = m.Forward(new DenseTensor<float>(0, 3));
        Assert.Equal([0, 3], y.Shape);
        Assert.Equal(before, Snapshot(m));
    }

    [Fact]
    public void Empty_batch_counts_toward_the_cumulative_average_factor()
    {
        // PyTorch bumps num_batches_tracked for the empty batch, so the next batch with momentum None gets f = 1/2.
        var m = new BatchNorm1d<double>(2, momentum: null);
        m.Forward(new DenseTensor<double>(0, 2));
        var x = RandomTensor<double>(40, [6, 2], mean: 3);
        m.Forward(x);
        var (mean, variance, meanAbs, n) = Stats(x);
        Assert.Equal(2L, m.NumBatchesTracked);
        for (int c = 0; c < 2; c++)
        {
            Close<double>(mean[c] / 2, m.RunningMean![c], meanAbs[c], $"running_mean[{c}]");
            Close<double>(0.5 + (variance[c] * n / (n - 1) / 2), m.RunningVar![c], 1 + (variance[c] * n / (n - 1)), $"running_var[{c}]");
        }
    }

    [Fact]
    public void Empty_batch_without_tracking_is_fine_in_both_modes()
    {
        var m = new BatchNorm3d<float>(2, trackRunningStats: false);
        Assert.Equal(0, m.Forward(new DenseTensor<float>(0, 2, 3, 3, 3)).Length);
        Assert.Equal(0, m.Eval().Forward(new DenseTensor<float>(0, 2, 3, 3, 3)).Length);
    }

    // ------------------------------------------------------------------ One value per channel

    [Fact]
    public void Training_with_one_value_per_channel_throws_PyTorchs_message_and_changes_nothing_float() => Training_with_one_value_per_channel_throws_PyTorchs_message_and_changes_nothing<float>();

    [Fact]
    public void Training_with_one_value_per_channel_throws_PyTorchs_message_and_changes_nothing_double() => Training_with_one_value_per_channel_throws_PyTorchs_message_and_changes_nothing<double>();

    private static void Training_with_one_value_per_channel_throws_PyTorchs_message_and_changes_nothing<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3);
        RandomAffine(m, 9);
        m.Forward(RandomTensor<T>(1, [2, 3, 2, 2]));
        string before = Snapshot(m);
        var error = Assert.Throws<ArgumentException>(() => m.Forward(new DenseTensor<T>(1, 3, 1, 1)));
        const string Text = "Expected more than 1 value per channel when training, got input size [1, 3, 1, 1]";
        Assert.Equal(Text + " (Parameter 'input')", error.Message);
        Assert.Equal(before, Snapshot(m));
        Assert.Equal(1L, m.NumBatchesTracked);
    }

    [Fact]
    public void Training_BatchNorm1d_with_one_row_throws_with_its_shape()
    {
        var m = new BatchNorm1d<float>(3);
        var error = Assert.Throws<ArgumentException>(() => m.Forward(new DenseTensor<float>(1, 3)));
        Assert.StartsWith("Expected more than 1 value per channel when training, got input size [1, 3]", error.Message, StringComparison.Ordinal);
        Assert.Equal(0L, m.NumBatchesTracked);
    }

    [Fact]
    public void Eval_with_one_value_per_channel_is_fine()
    {
        var m = new BatchNorm2d<double>(3).Eval();
        var y = m.Forward(Tensor<double>([1, 2, 3], 1, 3, 1, 1));
        for (int c = 0; c < 3; c++)
        {
            Close<double>((c + 1) / Math.Sqrt(1 + 1e-5), y.Data[c], c + 1, $"y[{c}]");
        }
    }

    [Fact]
    public void Not_tracking_with_one_value_per_channel_throws_in_eval_too()
    {
        var m = new BatchNorm2d<float>(3, trackRunningStats: false).Eval();
        string before = Snapshot(m);
        var error = Assert.Throws<ArgumentException>(() => m.Forward(new DenseTensor<float>(1, 3, 1, 1)));
        Assert.StartsWith("Expected more than 1 value per channel when training, got input size [1, 3, 1, 1]", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(m));
    }

    // ------------------------------------------------------------------ Parameters are not range-checked

    [Fact]
    public void Momentum_minus_1_2_is_accepted_and_applied_float() => Momentum_minus_1_2_is_accepted_and_applied<float>();

    [Fact]
    public void Momentum_minus_1_2_is_accepted_and_applied_double() => Momentum_minus_1_2_is_accepted_and_applied<double>();

    private static void Momentum_minus_1_2_is_accepted_and_applied<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm1d<T>(2, momentum: -1.2);
        Assert.Equal(-1.2, m.Momentum);
        m.RunningMean![0] = T.CreateChecked(0.5);
        m.RunningVar![1] = T.CreateChecked(2.0);
        double[] r0 = ToDouble(m.RunningMean), v0 = ToDouble(m.RunningVar);
        var x = RandomTensor<T>(30, [4, 2, 3], mean: 2, std: 1.5);
        m.Forward(x);
        var (mean, variance, meanAbs, n) = Stats(x);
        for (int c = 0; c < 2; c++)
        {
            double unbiased = variance[c] * n / (n - 1);
            Close<T>((2.2 * r0[c]) - (1.2 * mean[c]), D(m.RunningMean[c]), (2.2 * Math.Abs(r0[c])) + (1.2 * meanAbs[c]), $"running_mean[{c}]");
            Close<T>((2.2 * v0[c]) - (1.2 * unbiased), D(m.RunningVar[c]), (2.2 * v0[c]) + (1.2 * unbiased), $"running_var[{c}]");
        }
    }

    [Fact]
    public void Eps_is_not_range_checked()
    {
        var m = new BatchNorm1d<double>(1, eps: -0.5);
        Assert.Equal(-0.5, m.Eps);
        m.Eps = 0;
        m.Eps = -0.5;
        var y = m.Forward(Tensor<double>([0, 2, 4, 6], 4, 1)); // biased var 5 → invstd = 1/sqrt(4.5)
        for (int i = 0; i < 4; i++)
        {
            double expected = ((2 * i) - 3) / Math.Sqrt(4.5);
            Close<double>(expected, y.Data[i], 6 / Math.Sqrt(4.5), $"y[{i}]");
        }
    }

    [Fact]
    public void NaN_input_propagates_to_its_channel_output_and_running_stats_only_float() => NaN_input_propagates_to_its_channel_output_and_running_stats_only<float>();

    [Fact]
    public void NaN_input_propagates_to_its_channel_output_and_running_stats_only_double() => NaN_input_propagates_to_its_channel_output_and_running_stats_only<double>();

    private static void NaN_input_propagates_to_its_channel_output_and_running_stats_only<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3);
        var x = RandomTensor<T>(2, [2, 3, 2, 2]);
        x.Data[(1 * 3 * 4) + (1 * 4) + 2] = T.NaN; // n = 1, c = 1
        var y = m.Forward(x);
        for (int i = 0; i < y.Length; i++)
        {
            Assert.Equal(Channel(x, i) == 1, T.IsNaN(y.Data[i]));
        }

        for (int c = 0; c < 3; c++)
        {
            Assert.Equal(c == 1, T.IsNaN(m.RunningMean![c]));
            Assert.Equal(c == 1, T.IsNaN(m.RunningVar![c]));
        }
    }

    [Fact]
    public void Infinite_input_makes_its_channel_NaN_and_its_running_mean_infinite_float() => Infinite_input_makes_its_channel_NaN_and_its_running_mean_infinite<float>();

    [Fact]
    public void Infinite_input_makes_its_channel_NaN_and_its_running_mean_infinite_double() => Infinite_input_makes_its_channel_NaN_and_its_running_mean_infinite<double>();

    private static void Infinite_input_makes_its_channel_NaN_and_its_running_mean_infinite<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        // As in PyTorch: mean = +Inf, var = NaN (Inf − Inf), so every output of the channel is NaN.
        var m = new BatchNorm2d<T>(3);
        var x = RandomTensor<T>(2, [2, 3, 2, 2]);
        x.Data[(0 * 3 * 4) + (2 * 4) + 1] = T.PositiveInfinity; // n = 0, c = 2
        var y = m.Forward(x);
        for (int i = 0; i < y.Length; i++)
        {
            Assert.Equal(Channel(x, i) == 2, T.IsNaN(y.Data[i]));
        }

        Assert.True(T.IsPositiveInfinity(m.RunningMean![2]), "running_mean[2] should be +Inf");
        Assert.True(T.IsNaN(m.RunningVar![2]), "running_var[2] should be NaN");
        Assert.True(T.IsFinite(m.RunningMean[0]) && T.IsFinite(m.RunningVar[1]));
    }

    // ------------------------------------------------------------------ Reset

    [Fact]
    public void ResetParameters_restores_every_default()
    {
        var m = new BatchNorm2d<float>(3);
        RandomAffine(m, 1);
        m.Forward(RandomTensor<float>(2, [2, 3, 2, 2], mean: 3));
        m.ResetParameters();
        Assert.Equal(Snapshot(new BatchNorm2d<float>(3)), Snapshot(m));
    }

    [Fact]
    public void ResetRunningStats_resets_buffers_and_count_but_keeps_weight_and_bias()
    {
        var m = new BatchNorm2d<double>(3);
        RandomAffine(m, 1);
        double[] w = (double[])m.Weight!.Clone(), b = (double[])m.Bias!.Clone();
        m.Forward(RandomTensor<double>(2, [2, 3, 2, 2], mean: 3));
        m.ResetRunningStats();
        Assert.Equal(new[] { 0.0, 0, 0 }, m.RunningMean!);
        Assert.Equal(new[] { 1.0, 1, 1 }, m.RunningVar!);
        Assert.Equal(0L, m.NumBatchesTracked);
        BitEqual(w, m.Weight, "weight");
        BitEqual(b, m.Bias, "bias");
    }

    [Fact]
    public void Reset_without_tracking_or_affine_is_a_no_op()
    {
        var m = new BatchNorm1d<float>(2, affine: false, trackRunningStats: false);
        m.ResetParameters();
        m.ResetRunningStats();
        Assert.Null(m.Weight);
        Assert.Null(m.RunningMean);
    }
}
