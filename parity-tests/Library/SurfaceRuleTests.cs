using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>Rules of the module surface that a plausible regression once slipped past (issue 21): strict state-dict keys
/// of a module that does not track running stats, and negative dimensions after a zero one.</summary>
public sealed class SurfaceRuleTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_module_not_tracking_running_stats_rejects_num_batches_tracked_under_strict_loading_as_PyTorch_does(bool affine)
    {
        var module = new BatchNorm2d<float>(3, affine: affine, trackRunningStats: false);
        var state = new Dictionary<string, IStateTensor>(module.StateDict()) { ["num_batches_tracked"] = DenseTensor<long>.Scalar(5) };
        string before = Snapshot(module);

        var error = Assert.Throws<ArgumentException>(() => module.LoadStateDict(state));
        Assert.Equal("state", error.ParamName);
        Assert.Contains("unexpected keys: [num_batches_tracked]", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));

        // Not strict: ignored, as PyTorch ignores unexpected keys.
        module.LoadStateDict(state, strict: false);
        Assert.Equal(before, Snapshot(module));
    }

    [Fact]
    public void A_module_not_tracking_running_stats_rejects_running_buffers_from_a_checkpoint_under_strict_loading()
    {
        var tracking = new BatchNorm1d<double>(2);
        string path = Path.Combine(Path.GetTempPath(), $"bnparity-untracked-{Guid.NewGuid():N}.safetensors");
        try
        {
            tracking.SaveSafetensors(path, "bn");
            var module = new BatchNorm1d<double>(2, trackRunningStats: false);
            var error = Assert.Throws<InvalidDataException>(() => module.LoadSafetensors(path, "bn"));
            Assert.Contains("unexpected keys: [bn.running_mean, bn.running_var, bn.num_batches_tracked]", error.Message, StringComparison.Ordinal);
            module.LoadSafetensors(path, "bn", strict: false);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static TheoryData<int[]> NegativeAfterZero() => new()
    {
        new[] { 0, -2 },
        new[] { 0, 3, -1 },
        new[] { 0, 3, 4, -5 },
        new[] { 4, 3, 0, -1, 2 },
        new[] { -1, 3, 0 },
    };

    [Theory]
    [MemberData(nameof(NegativeAfterZero))]
    public void A_negative_dimension_is_rejected_even_after_a_zero_one(int[] shape)
    {
        var tensorError = Assert.Throws<ArgumentException>(() => new DenseTensor<float>(shape));
        Assert.Equal("shape", tensorError.ParamName);
        Assert.Contains("is negative", tensorError.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new DenseTensor<float>([], shape));

        BatchNorm<float> module = shape.Length switch
        {
            <= 3 => new BatchNorm1d<float>(3),
            4 => new BatchNorm2d<float>(3),
            _ => new BatchNorm3d<float>(3),
        };
        string before = Snapshot(module);
        var spanError = Assert.Throws<ArgumentException>(() => module.Forward(ReadOnlySpan<float>.Empty, shape, Span<float>.Empty));
        Assert.Contains("negative", spanError.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));
    }
}
