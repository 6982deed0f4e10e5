namespace BnParity;

/// <summary>
/// The gradients produced by one <see cref="NormBase{T}.Backward(DenseTensor{T})"/> call. They are
/// returned fresh per call, never accumulated (unlike PyTorch's <c>.grad</c>).
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
public sealed class BatchNormGradients<T> where T : unmanaged
{
    /// <summary>Creates the gradient set.</summary>
    public BatchNormGradients(DenseTensor<T> input, T[]? weight, T[]? bias)
    {
        ArgumentNullException.ThrowIfNull(input);
        Input = input;
        Weight = weight;
        Bias = bias;
    }

    /// <summary>dL/dinput, shaped like the forward input.</summary>
    public DenseTensor<T> Input { get; }

    /// <summary>dL/dweight (length C), or null when the module is not affine.</summary>
    public T[]? Weight { get; }

    /// <summary>dL/dbias (length C), or null when the module is not affine.</summary>
    public T[]? Bias { get; }
}
