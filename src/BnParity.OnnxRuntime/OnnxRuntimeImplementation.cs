using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;

namespace BnParity.OnnxRuntime;

/// <summary>
/// ONNX Runtime (CPU provider) as an implementation under test: each forward runs the one-node model
/// <see cref="OnnxNormalization"/> maps the step to, with the module's current parameters and buffers as initializers.
/// Inference only: <see cref="IBatchNormModule.Backward(CaseTensor)"/> throws. A step ONNX cannot express throws
/// <see cref="NotSupportedException"/> (the runner records it as the step's error); so does a model ORT refuses to
/// load or run (its message kept).
/// </summary>
public sealed class OnnxRuntimeImplementation(int threads = 1) : IBatchNormUnderTest
{
    public string Name => "ONNX Runtime " + OnnxRuntimePeer.Version;

    public IBatchNormModule Create(ModuleConfig config, ModuleState state) => new Module(config, state, threads);

    private sealed class Module(ModuleConfig config, ModuleState state, int threads) : IBatchNormModule
    {
        private ModuleState _state = state;

        public CaseTensor Forward(bool training, CaseTensor input)
        {
            var (node, modelShape) = OnnxNormalization.For(config, _state, training, input.Shape);
            using var session = OnnxRuntimePeer.CreateSession(node.Serialize(config.DType, modelShape), threads);
            var outputs = OnnxRuntimePeer.Run(session, config.DType == ElementType.Float32, input.Data, modelShape);
            if (config.TrackRunningStats && outputs.TryGetValue("running_mean", out var mean) && outputs.TryGetValue("running_var", out var variance))
            {
                // ONNX counts no batches: num_batches_tracked moves as PyTorch's would, the buffers as ORT wrote them.
                _state = _state with { RunningMean = mean.Values, RunningVar = variance.Values, NumBatchesTracked = _state.NumBatchesTracked + 1 };
            }

            return new CaseTensor((int[])input.Shape.Clone(), outputs["Y"].Values);
        }

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput) =>
            throw new NotSupportedException("ONNX Runtime's inference build has no gradients.");

        public ModuleState ReadState() => _state;

        public void Dispose()
        {
        }
    }
}
