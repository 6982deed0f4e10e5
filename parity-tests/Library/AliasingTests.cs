using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// Aliasing and in-place semantics, on every path: the expectation is PyTorch's — an in-place or span forward
/// differentiates exactly like the out-of-place tensor forward of the same values (autograd saves the input before
/// it is overwritten), a module reused across shapes behaves like a fresh one, and misuse is a clear exception that
/// changes nothing.
/// </summary>
public sealed class AliasingTests
{
    public static TheoryData<LibraryPath, int, bool> PathsThreadsModes()
    {
        var data = new TheoryData<LibraryPath, int, bool>();
        foreach (var path in new[] { LibraryPath.Default, LibraryPath.Channel, LibraryPath.Split, LibraryPath.Row })
        {
            foreach (int threads in new[] { 1, 3 })
            {
                data.Add(path, threads, true);
                data.Add(path, threads, false);
            }
        }

        return data;
    }

    private static BatchNorm1d<float> Module(LibraryExecution execution, bool training)
    {
        var module = new BatchNorm1d<float>(3, momentum: 0.3);
        execution.ApplyTo(module);
        RandomAffine(module, 8);
        module.RunningMean![1] = 0.5f;
        module.RunningVar![2] = 2.5f;
        module.Training = training;
        return module;
    }

    [Theory]
    [MemberData(nameof(PathsThreadsModes))]
    public void In_place_and_span_forwards_differentiate_like_the_out_of_place_tensor_forward(LibraryPath path, int threads, bool training)
    {
        var execution = new LibraryExecution(path, threads);
        string where = $"{execution}, {(training ? "train" : "eval")}";
        int[] shape = [70, 3, 9];
        var x = RandomTensor<float>(1, shape, mean: 4, std: 2);
        var dy = RandomTensor<float>(2, shape);

        var reference = Module(execution, training);
        var expectedY = reference.Forward(x);
        var expected = reference.Backward(dy);
        string expectedState = Snapshot(reference);

        // Tensor forward in place (destination = input): the module must keep a copy of the input.
        var inPlace = Module(execution, training);
        var buffer = new DenseTensor<float>((float[])x.Data.Clone(), shape);
        inPlace.Forward(buffer, buffer);
        BitEqual(expectedY.Data, buffer.Data, $"{where}: in-place tensor forward output");
        AssertSameGradients(expected, inPlace.Backward(dy), $"{where}: backward after an in-place tensor forward");
        Assert.Equal(expectedState, Snapshot(inPlace));

        // Span forward in place, then a span backward in place over the gradient buffer.
        var span = Module(execution, training);
        var data = (float[])x.Data.Clone();
        span.Forward(data, shape, data);
        BitEqual(expectedY.Data, data, $"{where}: in-place span forward output");
        var gradient = (float[])dy.Data.Clone();
        var gw = new float[3];
        var gb = new float[3];
        span.Backward(gradient, shape, gradient, gw, gb);
        BitEqual(expected.Input.Data, gradient, $"{where}: in-place span backward grad_input");
        BitEqual(expected.Weight, gw, $"{where}: span backward grad_weight");
        BitEqual(expected.Bias, gb, $"{where}: span backward grad_bias");

        // Span forward to another buffer; the caller then reuses its input buffer before Backward.
        var copying = Module(execution, training);
        var input = (float[])x.Data.Clone();
        var y = new float[input.Length];
        copying.Forward(input, shape, y);
        Array.Fill(input, float.NaN);
        BitEqual(expectedY.Data, y, $"{where}: span forward output");
        AssertSameGradients(expected, copying.Backward(dy), $"{where}: backward after the caller overwrote its span input");
    }

    [Theory]
    [MemberData(nameof(PathsThreadsModes))]
    public void A_module_reused_across_shapes_behaves_like_a_fresh_module_for_each_shape(LibraryPath path, int threads, bool training)
    {
        var execution = new LibraryExecution(path, threads);
        string where = $"{execution}, {(training ? "train" : "eval")}";
        int[][] shapes = [[40, 3, 5], [3, 3, 300], [200, 3], [1, 3, 4]];
        var reused = Module(execution, training);
        foreach (int[] shape in shapes)
        {
            var x = RandomTensor<float>(shape[0], shape, mean: 1, std: 3);
            var dy = RandomTensor<float>(shape[0] + 1, shape);
            var fresh = Module(execution, training);
            fresh.LoadStateDict(reused.StateDict());
            var expectedY = fresh.Forward(x);
            var expected = fresh.Backward(dy);
            BitEqual(expectedY.Data, reused.Forward(x).Data, $"{where}: output for shape [{string.Join(", ", shape)}] after other shapes");
            AssertSameGradients(expected, reused.Backward(dy), $"{where}: gradients for shape [{string.Join(", ", shape)}] after other shapes");
            Assert.Equal(Snapshot(fresh), Snapshot(reused));
        }

        var wrong = RandomTensor<float>(9, [40, 3, 5]);
        var e = Assert.Throws<ArgumentException>(() => reused.Backward(wrong));
        Assert.Equal("gradOutput", e.ParamName);
        Assert.Contains("[40, 3, 5]", e.Message, StringComparison.Ordinal);
        Assert.Contains("[1, 3, 4]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Backward_after_a_forward_with_SaveForBackward_off_throws_and_changes_nothing()
    {
        var module = new BatchNorm2d<double>(2);
        var x = RandomTensor<double>(1, [4, 2, 3, 3]);
        module.Forward(x);
        module.SaveForBackward = false;
        module.Forward(x);
        string before = Snapshot(module);
        var e = Assert.Throws<InvalidOperationException>(() => module.Backward(x));
        Assert.Contains("SaveForBackward = true", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(module));
        module.SaveForBackward = true;
        module.Forward(x);
        Assert.Equal(x.Length, module.Backward(x).Input.Length);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_gradient_destination_that_overlaps_the_saved_input_is_rejected(bool spanForward)
    {
        int[] shape = [8, 2, 5];
        var module = new BatchNorm1d<float>(2);
        var x = RandomTensor<float>(1, shape);
        var dy = RandomTensor<float>(2, shape);
        var input = (float[])x.Data.Clone();
        if (spanForward)
        {
            module.Forward(input, shape, new float[input.Length]);
        }
        else
        {
            module.Forward(new DenseTensor<float>(input, shape));
        }

        var expected = module.Backward(dy);
        if (!spanForward)
        {
            // The tensor forward saved the caller's buffer by reference: writing dx there would corrupt it.
            var e = Assert.Throws<ArgumentException>(() => module.Backward(dy.Data, shape, input, new float[2], new float[2]));
            Assert.Equal("gradInput", e.ParamName);
            Assert.Contains("saved", e.Message, StringComparison.Ordinal);
        }

        // Either way a second backward still sees the input of the forward.
        AssertSameGradients(expected, module.Backward(dy), $"{(spanForward ? "span" : "tensor")} forward: backward after a rejected aliasing call");
    }
}
