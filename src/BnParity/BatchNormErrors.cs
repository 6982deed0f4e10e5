namespace BnParity;

/// <summary>
/// Builders for the user-facing error texts, so tests and callers can compare exactly. Note that
/// <see cref="ArgumentException.Message"/> appends <c> (Parameter 'input')</c> to these texts; the
/// texts themselves are what these methods return.
/// </summary>
public static class BatchNormErrors
{
    /// <summary>PyTorch's text for training on one value per channel, e.g.
    /// <c>Expected more than 1 value per channel when training, got input size [1, 3, 1, 1]</c>.</summary>
    public static string MoreThanOneValuePerChannel(ReadOnlySpan<int> shape) =>
        "Expected more than 1 value per channel when training, got input size " + DenseTensor<float>.FormatShape(shape);

    /// <summary>PyTorch's text for instance statistics over one spatial element, e.g.
    /// <c>Expected more than 1 spatial element when training, got input size [2, 3, 1]</c> (an unbatched input shows
    /// its batch dimension of one, as PyTorch's check sees it).</summary>
    public static string MoreThanOneSpatialElement(ReadOnlySpan<int> shape) =>
        "Expected more than 1 spatial element when training, got input size " + DenseTensor<float>.FormatShape(shape);

    /// <summary>libtorch's text for a buffer or parameter whose length does not match the input's channels, e.g.
    /// <c>running_mean should contain 8 elements not 6</c> (an InstanceNorm's count is N·C of the input against N times
    /// the module's numFeatures).</summary>
    public static string WrongElementCount(string name, long expected, long actual) =>
        $"{name} should contain {expected} elements not {actual}";

    /// <summary>PyTorch's wrong-rank text, e.g. <c>expected 4D input (got 3D input)</c> or
    /// <c>expected 2D or 3D input (got 4D input)</c>.</summary>
    public static string WrongRank(string expected, int actualRank) =>
        $"expected {expected} input (got {actualRank}D input)";

    /// <summary>The wrong-channel-count text, e.g. <c>expected input with 3 channels (dimension 1), got 4</c>.</summary>
    public static string WrongChannels(int expected, int actual) =>
        $"expected input with {expected} channels (dimension 1), got {actual}";

    /// <summary>Formats a shape like PyTorch's size lists: <c>[1, 3, 1, 1]</c>.</summary>
    public static string FormatShape(ReadOnlySpan<int> shape) => DenseTensor<int>.FormatShape(shape);

    /// <summary>Creates an <see cref="ArgumentException"/> whose ParamName is <paramref name="paramName"/>.</summary>
    internal static ArgumentException Argument(string message, string paramName) => new(message, paramName);
}
