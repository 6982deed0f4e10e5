using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BnParity.Harness.Implementations;

/// <summary>
/// RMSNorm for the live oracle: TorchSharp 0.107 has no <c>nn.RMSNorm</c> (PyTorch 2.4+; a ledger row), so this is
/// PyTorch's composite definition of it built from TorchSharp tensor ops, y = x · rsqrt(mean(x², normalized dims) + eps)
/// · weight, in the input's dtype, with autograd for the gradients — the same definition the recorder uses on
/// PyTorch 1.13. The benchmarks time it as "TorchSharp RMSNorm".
/// </summary>
public sealed class TorchSharpRmsNormComposite : nn.Module<Tensor, Tensor>
{
    private readonly long[] _normalizedShape;
    private readonly double _eps;

    /// <param name="normalizedShape">The trailing dimensions each set spans.</param>
    /// <param name="eps">Added to the mean square (already resolved: null is torch.finfo(dtype).eps).</param>
    /// <param name="elementwiseAffine">Whether there is a weight (ones) of shape <paramref name="normalizedShape"/>.</param>
    /// <param name="dtype">The parameters' dtype.</param>
    public TorchSharpRmsNormComposite(long[] normalizedShape, double eps, bool elementwiseAffine, ScalarType dtype)
        : base("RMSNorm")
    {
        ArgumentNullException.ThrowIfNull(normalizedShape);
        _normalizedShape = (long[])normalizedShape.Clone();
        _eps = eps;
        weight = elementwiseAffine ? new Parameter(ones(_normalizedShape, dtype: dtype)) : null;
        RegisterComponents();
    }

    /// <summary>The per-element weight (null without elementwise_affine).</summary>
    public Parameter? weight { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        long rank = input.ndim;
        if (rank < _normalizedShape.Length || !input.shape.AsSpan((int)rank - _normalizedShape.Length).SequenceEqual(_normalizedShape))
        {
            // at::rms_norm checks its input as layer_norm does, with the same text.
            string text = string.Join(", ", _normalizedShape);
            throw new ArgumentException($"Given normalized_shape=[{text}], expected input with shape [*, {text}], but got input of size[{string.Join(", ", input.shape)}]");
        }

        long[] dims = Enumerable.Range((int)rank - _normalizedShape.Length, _normalizedShape.Length).Select(d => (long)d).ToArray();
        using var scope = NewDisposeScope();
        var normalized = input * rsqrt(input.pow(2).mean(dims, keepdim: true) + _eps);
        var output = weight is null ? normalized : normalized * weight;
        return output.MoveToOuterDisposeScope();
    }
}
