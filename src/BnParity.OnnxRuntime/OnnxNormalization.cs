using BnParity.Harness.Cases;

namespace BnParity.OnnxRuntime;

/// <summary>
/// The ONNX operator a PyTorch module's step maps to, where one exists (the conversions exporters use):
/// <list type="bullet">
/// <item>BatchNorm eval with running statistics: BatchNormalization-15 on them. Training (and no running statistics):
/// BatchNormalization-15 with training_mode = 1, momentum = 1 − PyTorch's momentum (ONNX's momentum weighs the old
/// value: pytorch#40074); PyTorch's momentum None (cumulative average) has no ONNX form.</item>
/// <item>InstanceNorm without running statistics in use: InstanceNormalization-6 in an opset-17 model (instance statistics only; an
/// unbatched (C, …) input runs as a batch of one).</item>
/// <item>GroupNorm: GroupNormalization-21 (scale and bias per channel, as PyTorch's; -18 had them per group), or -18
/// when asked (<see cref="GroupNormOpset"/>).</item>
/// <item>LayerNorm: LayerNormalization-17 over the trailing normalized_shape axes (Scale ones without
/// elementwise_affine; B omitted without a bias).</item>
/// <item>RMSNorm: RMSNormalization-23.</item>
/// </list>
/// eps and momentum are float32 attributes in ONNX whatever the model's element type. Anything else is a
/// <see cref="NotSupportedException"/> that says why.
/// </summary>
public static class OnnxNormalization
{
    /// <summary>The opset GroupNorm maps to: 21 (per-channel scale and bias) unless set to 18.</summary>
    public static int GroupNormOpset { get; set; } = 21;

    /// <summary>The node for one step of <paramref name="config"/> with <paramref name="state"/> on an input of
    /// <paramref name="shape"/>, and the shape the model takes (an unbatched InstanceNorm input gains N = 1).</summary>
    /// <exception cref="NotSupportedException">ONNX has no operator with the step's semantics.</exception>
    public static (OnnxNode Node, int[] ModelShape) For(ModuleConfig config, ModuleState state, bool training, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(shape);
        int c = config.NumFeatures;
        var eps = new OnnxAttribute("epsilon", Float: config.Eps);
        OnnxParameter Scale(string name, int[] parameterShape) => new(name, parameterShape, state.Weight ?? Enumerable.Repeat(1.0, Product(parameterShape)).ToArray());
        OnnxParameter Bias(string name, int[] parameterShape) => new(name, parameterShape, state.Bias ?? new double[Product(parameterShape)]);
        switch (config.Module)
        {
            case ModuleKind.BatchNorm1d or ModuleKind.BatchNorm2d or ModuleKind.BatchNorm3d:
            {
                bool batchStatistics = training || !config.TrackRunningStats;
                var mean = new OnnxParameter("input_mean", [c], state.RunningMean ?? new double[c]);
                var variance = new OnnxParameter("input_var", [c], state.RunningVar ?? Enumerable.Repeat(1.0, c).ToArray());
                if (!batchStatistics)
                {
                    return (new OnnxNode("BatchNormalization", 15, [Scale("scale", [c]), Bias("B", [c]), mean, variance], [], [eps]), shape);
                }

                if (config.TrackRunningStats && config.Momentum is null)
                {
                    throw new NotSupportedException("PyTorch's momentum None (a cumulative average over the steps) has no ONNX form: BatchNormalization's momentum is a constant.");
                }

                double onnxMomentum = config.TrackRunningStats ? 1 - config.Momentum!.Value : 1.0;
                return (new OnnxNode("BatchNormalization", 15, [Scale("scale", [c]), Bias("B", [c]), mean, variance], ["running_mean", "running_var"],
                    [eps, new OnnxAttribute("momentum", Float: onnxMomentum), new OnnxAttribute("training_mode", Int: 1)]), shape);
            }

            case ModuleKind.InstanceNorm1d or ModuleKind.InstanceNorm2d or ModuleKind.InstanceNorm3d:
            {
                if (config.TrackRunningStats)
                {
                    throw new NotSupportedException("ONNX InstanceNormalization keeps no running statistics: PyTorch's eval with them, and their update in training, have no ONNX form.");
                }

                bool unbatched = shape.Length == ReductionGeometry.BatchedRank(config.Module) - 1;
                int channels = unbatched ? shape[0] : shape[1];
                // InstanceNormalization's newest version is 6; the model imports opset 17 (ORT warns below 7).
                return (new OnnxNode("InstanceNormalization", 17, [Scale("scale", [channels]), Bias("B", [channels])], [], [eps]), unbatched ? [1, .. shape] : shape);
            }

            case ModuleKind.GroupNorm:
            {
                var groups = new OnnxAttribute("num_groups", Int: config.NumGroups);
                if (GroupNormOpset >= 21)
                {
                    return (new OnnxNode("GroupNormalization", 21, [Scale("scale", [c]), Bias("bias", [c])], [], [eps, groups]), shape);
                }

                // Opset 18: scale and bias per group, representable only when each group's channels share them.
                var weight = state.Weight ?? Enumerable.Repeat(1.0, c).ToArray();
                var bias = state.Bias ?? new double[c];
                int k = c / config.NumGroups;
                var groupWeight = new double[config.NumGroups];
                var groupBias = new double[config.NumGroups];
                for (int g = 0; g < config.NumGroups; g++)
                {
                    groupWeight[g] = weight[g * k];
                    groupBias[g] = bias[g * k];
                    for (int j = 1; j < k; j++)
                    {
                        if (weight[(g * k) + j] != groupWeight[g] || bias[(g * k) + j] != groupBias[g])
                        {
                            throw new NotSupportedException("GroupNormalization-18 takes one scale and bias per group; PyTorch's GroupNorm has them per channel.");
                        }
                    }
                }

                return (new OnnxNode("GroupNormalization", 18, [new OnnxParameter("scale", [config.NumGroups], groupWeight), new OnnxParameter("bias", [config.NumGroups], groupBias)], [], [eps, groups]), shape);
            }

            case ModuleKind.LayerNorm:
            {
                int[] normalized = config.NormalizedShape!;
                var axis = new OnnxAttribute("axis", Int: shape.Length - normalized.Length);
                OnnxParameter? bias = config.HasBias ? Bias("B", normalized) : null;
                return (new OnnxNode("LayerNormalization", 17, [Scale("Scale", normalized), bias], [], [axis, eps]), shape);
            }

            case ModuleKind.RMSNorm:
            {
                int[] normalized = config.NormalizedShape!;
                var axis = new OnnxAttribute("axis", Int: shape.Length - normalized.Length);
                return (new OnnxNode("RMSNormalization", 23, [Scale("scale", normalized)], [], [axis, eps]), shape);
            }

            default:
                throw new NotSupportedException($"{config.Module} has no ONNX operator here.");
        }
    }

    private static int Product(int[] shape) => shape.Aggregate(1, (a, b) => a * b);
}
