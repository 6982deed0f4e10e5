using Microsoft.ML.OnnxRuntime;

namespace BnParity.OnnxRuntime;

/// <summary>
/// The one place that loads ONNX Runtime (Microsoft.ML.OnnxRuntime, its CPU execution provider): sessions are created
/// here with the thread count pinned as TorchSharp's is (intra-op threads = the benchmark's or test's thread count,
/// one inter-op thread, sequential execution), so ORT and libtorch run side by side at the same parallelism.
/// </summary>
public static class OnnxRuntimePeer
{
    /// <summary>ONNX Runtime's version string (e.g. "1.32.0").</summary>
    public static string Version => OrtEnv.Instance().GetVersionString();

    /// <summary>A session for <paramref name="model"/> on the CPU provider with <paramref name="threads"/> intra-op
    /// threads (0: ORT's default).</summary>
    public static InferenceSession CreateSession(byte[] model, int threads)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        return new InferenceSession(model, options);
    }

    /// <summary>Runs a session on X (in the session's element type) and returns its outputs' values by name.</summary>
    public static IReadOnlyDictionary<string, (long[] Shape, double[] Values)> Run(InferenceSession session, bool isFloat, double[] x, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(shape);
        long[] dims = Array.ConvertAll(shape, d => (long)d);
        using var input = isFloat
            ? OrtValue.CreateTensorValueFromMemory(Array.ConvertAll(x, v => (float)v), dims)
            : OrtValue.CreateTensorValueFromMemory((double[])x.Clone(), dims);
        var names = session.OutputMetadata.Keys.ToArray();
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["X"], [input], names);
        var result = new Dictionary<string, (long[], double[])>(StringComparer.Ordinal);
        for (int i = 0; i < names.Length; i++)
        {
            var value = outputs[i];
            long[] outputShape = value.GetTensorTypeAndShape().Shape;
            double[] values = isFloat
                ? Array.ConvertAll(value.GetTensorDataAsSpan<float>().ToArray(), v => (double)v)
                : value.GetTensorDataAsSpan<double>().ToArray();
            result[names[i]] = (outputShape, values);
        }

        return result;
    }
}
