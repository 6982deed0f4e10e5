using BnParity.Harness.Cases;

namespace BnParity.Harness.Implementations;

/// <summary>
/// The narrow interface through which every suite, the CLI and the benchmarks reach a BatchNorm:
/// the project's C# library, TorchSharp, the float64 reference, or any other implementation named
/// by <c>BNPARITY_IMPLEMENTATION=&lt;assembly path&gt;:&lt;type name&gt;</c> (see <see cref="ImplementationLoader"/>).
/// Values cross it as doubles; an implementation converts to its dtype.
/// </summary>
public interface IBatchNormUnderTest
{
    /// <summary>A short name for reports ("BnParity", "TorchSharp 0.107.0", ...).</summary>
    string Name { get; }

    /// <summary>A new module built with <paramref name="config"/>, with <paramref name="state"/> loaded.</summary>
    IBatchNormModule Create(ModuleConfig config, ModuleState state);
}

/// <summary>One module instance of an implementation under test.</summary>
public interface IBatchNormModule : IDisposable
{
    /// <summary>Forward in train (<paramref name="training"/>) or eval mode. Invalid input throws; the module's state must then be unchanged.</summary>
    CaseTensor Forward(bool training, CaseTensor input);

    /// <summary>
    /// Gradients of the last forward for upstream gradient <paramref name="gradOutput"/>:
    /// (input, weight, bias); weight and bias are null when the module is not affine.
    /// Gradients are for this call only, never accumulated across calls.
    /// </summary>
    (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput);

    /// <summary>
    /// Forward with the input lying in memory in <paramref name="layout"/>. The tensors stay logical (row-major
    /// (N, C, …)); an implementation converts to its own memory order (see <see cref="MemoryOrder"/>). The default runs
    /// the logical forward: an implementation without a layout of its own then proves only the layout-independent
    /// semantics, and should override this to run its channels-last path.
    /// </summary>
    CaseTensor Forward(bool training, CaseTensor input, MemoryLayout layout) => Forward(training, input);

    /// <summary>Backward of a forward that ran in <paramref name="layout"/> (the upstream gradient lies in the same
    /// layout). The default runs the logical backward, as <see cref="Forward(bool, CaseTensor, MemoryLayout)"/> does.</summary>
    (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput, MemoryLayout layout) => Backward(gradOutput);

    /// <summary>Current parameters and buffers.</summary>
    ModuleState ReadState();
}
