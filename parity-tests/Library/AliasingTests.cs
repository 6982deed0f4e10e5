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

    /// <summary>
    /// gradWeight and gradBias are written after dx, element by element: pointed into gradInput they overwrite dx,
    /// into gradOutput the caller's gradient, into each other one another, and into the input a tensor forward saved by
    /// reference they silently change what the next Backward differentiates. Each overlap is an argument error naming
    /// the argument and the rule, and nothing is written: not the module, not a buffer.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Parameter_gradients_that_overlap_another_buffer_are_rejected_and_nothing_is_written(bool spanForward)
    {
        int[] shape = [8, 2, 5];
        const int length = 80;
        var x = RandomTensor<float>(1, shape);
        var dy = RandomTensor<float>(2, shape);
        var module = new BatchNorm1d<float>(2);
        RandomAffine(module, 3);
        var input = (float[])x.Data.Clone();
        if (spanForward)
        {
            module.Forward(input, shape, new float[length]);
        }
        else
        {
            module.Forward(new DenseTensor<float>(input, shape));
        }

        var expected = module.Backward(dy);
        string before = Snapshot(module);
        var gradInput = new float[length];
        var gradOutput = (float[])dy.Data.Clone();
        var parameters = new float[4];
        void Check(string name, string param, string rule, Span<float> gi, Span<float> gw, Span<float> gb)
        {
            string where = $"{(spanForward ? "span" : "tensor")} forward, {name}";
            var inputBefore = (float[])input.Clone();
            var gradInputBefore = (float[])gradInput.Clone();
            var gradOutputBefore = (float[])gradOutput.Clone();
            var parametersBefore = (float[])parameters.Clone();
            ArgumentException? e = null;
            try
            {
                module.Backward(gradOutput, shape, gi, gw, gb);
            }
            catch (ArgumentException caught)
            {
                e = caught;
            }

            Assert.True(e is not null, $"{where}: accepted");
            Assert.True(e.ParamName == param, $"{where}: ParamName {e.ParamName}, expected {param} ({e.Message})");
            Assert.True(e.Message.Contains(rule, StringComparison.Ordinal), $"{where}: message \"{e.Message}\" does not state the rule \"{rule}\"");
            BitEqual(inputBefore, input, $"{where}: the saved input");
            BitEqual(gradInputBefore, gradInput, $"{where}: gradInput");
            BitEqual(gradOutputBefore, gradOutput, $"{where}: gradOutput");
            BitEqual(parametersBefore, parameters, $"{where}: the parameter-gradient buffer");
            Assert.Equal(before, Snapshot(module));
        }

        var ownWeight = new float[2];
        var ownBias = new float[2];
        Check("gradWeight inside gradInput", "gradWeight", "gradWeight overlaps gradInput", gradInput, gradInput.AsSpan(10, 2), ownBias);
        Check("gradBias inside gradInput", "gradBias", "gradBias overlaps gradInput", gradInput, ownWeight, gradInput.AsSpan(length - 2, 2));
        Check("gradWeight inside gradOutput", "gradWeight", "gradWeight overlaps gradOutput", gradInput, gradOutput.AsSpan(0, 2), ownBias);
        Check("gradBias inside gradOutput", "gradBias", "gradBias overlaps gradOutput", gradInput, ownWeight, gradOutput.AsSpan(7, 2));
        Check("gradBias inside gradOutput used in place", "gradBias", "gradBias overlaps gradOutput", gradOutput, ownWeight, gradOutput.AsSpan(40, 2));
        Check("gradWeight and gradBias the same buffer", "gradBias", "gradBias overlaps gradWeight", gradInput, parameters.AsSpan(0, 2), parameters.AsSpan(0, 2));
        Check("gradWeight and gradBias sharing an element", "gradBias", "gradBias overlaps gradWeight", gradInput, parameters.AsSpan(0, 2), parameters.AsSpan(1, 2));
        if (!spanForward)
        {
            // The tensor forward keeps the caller's input buffer: the gradients of the next Backward would change.
            Check("gradWeight inside the saved input", "gradWeight", "gradWeight overlaps the input saved by the last Forward", gradInput, input.AsSpan(4, 2), ownBias);
            Check("gradBias inside the saved input", "gradBias", "gradBias overlaps the input saved by the last Forward", gradInput, ownWeight, input.AsSpan(78, 2));
        }

        AssertSameGradients(expected, module.Backward(dy), $"{(spanForward ? "span" : "tensor")} forward: backward after the rejected calls");
        module.Backward(gradOutput, shape, gradInput, parameters.AsSpan(0, 2), parameters.AsSpan(2, 2));
        BitEqual(expected.Weight, parameters[..2], "disjoint parameter gradients in one buffer: grad_weight");
        BitEqual(expected.Bias, parameters[2..], "disjoint parameter gradients in one buffer: grad_bias");
    }
}
