using System.Numerics;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Rules;

/// <summary>Input validation rules: PyTorch's messages, argument names, and atomic failure.</summary>
public sealed class ValidationRuleTests
{
    /// <summary>ArgumentException.Message appends the parameter name to PyTorch's text.</summary>
    private static string Message(string text) => text + " (Parameter 'input')";

    [Theory]
    [InlineData(1, new[] { 2, 3, 4, 4 }, "expected 2D or 3D input (got 4D input)")]
    [InlineData(1, new[] { 3 }, "expected 2D or 3D input (got 1D input)")]
    [InlineData(2, new[] { 2, 3, 4 }, "expected 4D input (got 3D input)")]
    [InlineData(2, new[] { 2, 3, 4, 4, 4 }, "expected 4D input (got 5D input)")]
    [InlineData(3, new[] { 2, 3, 4, 4 }, "expected 5D input (got 4D input)")]
    [InlineData(3, new[] { 2, 3 }, "expected 5D input (got 2D input)")]
    public void Wrong_rank_throws_PyTorchs_message(int dims, int[] shape, string text)
    {
        foreach (bool training in new[] { true, false })
        {
            BatchNorm<float> m = dims switch { 1 => new BatchNorm1d<float>(3), 2 => new BatchNorm2d<float>(3), _ => new BatchNorm3d<float>(3) };
            m.Training = training;
            string before = Snapshot(m);
            var error = Assert.Throws<ArgumentException>(() => m.Forward(new DenseTensor<float>(shape)));
            Assert.Equal(Message(text), error.Message);
            Assert.Equal("input", error.ParamName);
            Assert.Equal(before, Snapshot(m));
        }
    }

    [Fact]
    public void Wrong_channel_count_names_the_expected_and_actual_channels()
    {
        var m = new BatchNorm2d<double>(3);
        string before = Snapshot(m);
        var error = Assert.Throws<ArgumentException>(() => m.Forward(new DenseTensor<double>(2, 4, 2, 2)));
        Assert.Equal(Message("expected input with 3 channels (dimension 1), got 4"), error.Message);
        Assert.Equal(before, Snapshot(m));
        m.Eval();
        error = Assert.Throws<ArgumentException>(() => m.Forward(new DenseTensor<double>(2, 1, 2, 2)));
        Assert.Equal(Message("expected input with 3 channels (dimension 1), got 1"), error.Message);
    }

    [Fact]
    public void Null_arguments_throw_ArgumentNullException_naming_the_argument()
    {
        var m = new BatchNorm2d<float>(3);
        var x = new DenseTensor<float>(2, 3, 2, 2);
        Assert.Equal("input", Assert.Throws<ArgumentNullException>(() => m.Forward(null!)).ParamName);
        Assert.Equal("input", Assert.Throws<ArgumentNullException>(() => m.Forward(null!, x)).ParamName);
        Assert.Equal("destination", Assert.Throws<ArgumentNullException>(() => m.Forward(x, null!)).ParamName);
        Assert.Equal("state", Assert.Throws<ArgumentNullException>(() => m.LoadStateDict(null!)).ParamName);
        m.Forward(x);
        Assert.Equal("gradOutput", Assert.Throws<ArgumentNullException>(() => m.Backward(null!)).ParamName);
        Assert.Equal(0L + 1, m.NumBatchesTracked);
    }

    [Fact]
    public void Destination_shape_mismatch_throws_naming_destination()
    {
        var m = new BatchNorm2d<float>(3);
        string before = Snapshot(m);
        var x = RandomTensor<float>(1, [2, 3, 2, 2]);
        var error = Assert.Throws<ArgumentException>(() => m.Forward(x, new DenseTensor<float>(2, 3, 4, 1)));
        Assert.Equal("destination", error.ParamName);
        float[] destination = new float[23];
        error = Assert.Throws<ArgumentException>(() => m.Forward(x.Data, [2, 3, 2, 2], destination));
        Assert.Equal("destination", error.ParamName);
        Assert.Equal(before, Snapshot(m));
    }

    [Fact]
    public void Span_shape_and_length_mismatch_throws_naming_shape()
    {
        var m = new BatchNorm2d<float>(3);
        string before = Snapshot(m);
        float[] data = new float[24];
        var error = Assert.Throws<ArgumentException>(() => m.Forward(data, [2, 3, 2, 3], new float[24]));
        Assert.Equal("shape", error.ParamName);
        error = Assert.Throws<ArgumentException>(() => m.Forward(data, [2, 3, -2, -2], new float[24]));
        Assert.Equal("shape", error.ParamName);
        Assert.Equal(before, Snapshot(m));
    }

    [Fact]
    public void Destination_overloads_give_the_same_bits_as_Forward()
    {
        var x = RandomTensor<float>(3, [2, 3, 5, 5], mean: 2);
        var a = new BatchNorm2d<float>(3);
        var b = new BatchNorm2d<float>(3);
        var c = new BatchNorm2d<float>(3);
        var ya = a.Forward(x);
        var yb = new DenseTensor<float>(2, 3, 5, 5);
        b.Forward(x, yb);
        var yc = x.Clone();
        c.Forward(yc.Data, [2, 3, 5, 5], yc.Data); // in place
        BitEqual(ya.Data, yb.Data, "destination overload");
        BitEqual(ya.Data, yc.Data, "in-place span overload");
        Assert.Equal(Snapshot(a), Snapshot(b));
        Assert.Equal(Snapshot(a), Snapshot(c));
    }

    [Fact]
    public void Every_failed_call_leaves_weights_and_buffers_exactly_as_they_were_float() => Every_failed_call_leaves_weights_and_buffers_exactly_as_they_were<float>();

    [Fact]
    public void Every_failed_call_leaves_weights_and_buffers_exactly_as_they_were_double() => Every_failed_call_leaves_weights_and_buffers_exactly_as_they_were<double>();

    private static void Every_failed_call_leaves_weights_and_buffers_exactly_as_they_were<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new BatchNorm2d<T>(3, momentum: null);
        RandomAffine(m, 4);
        var good = RandomTensor<T>(5, [2, 3, 2, 2], mean: 1);
        m.Forward(good);
        var gradients = m.Backward(RandomTensor<T>(6, [2, 3, 2, 2]));
        string before = Snapshot(m);
        Action[] failing =
        [
            () => m.Forward(new DenseTensor<T>(2, 3, 2)),
            () => m.Forward(new DenseTensor<T>(2, 4, 2, 2)),
            () => m.Forward(new DenseTensor<T>(1, 3, 1, 1)),
            () => m.Forward(null!),
            () => m.Forward(good, new DenseTensor<T>(2, 3, 2, 1)),
            () => m.Forward(good.Data, [2, 3, 2, 3], new T[24]),
            () => m.Backward(new DenseTensor<T>(2, 3, 2, 1)),
            () => m.LoadStateDict(new Dictionary<string, IStateTensor> { ["weight"] = new DenseTensor<T>(1) }),
        ];
        foreach (var call in failing)
        {
            Assert.ThrowsAny<ArgumentException>(call);
            Assert.Equal(before, Snapshot(m));
        }

        // The saved backward context is still the last successful forward's.
        var again = m.Backward(RandomTensor<T>(6, [2, 3, 2, 2]));
        BitEqual(gradients.Input.Data, again.Input.Data, "grad_input after failed calls");
        BitEqual(gradients.Weight, again.Weight, "grad_weight after failed calls");
    }
}
