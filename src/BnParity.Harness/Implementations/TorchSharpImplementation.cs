using BnParity.Harness.Cases;
using BnParity.Harness.Oracle;
using TorchSharp;
using TorchBatchNorm = TorchSharp.Modules.BatchNorm;
using TorchGroupNorm = TorchSharp.Modules.GroupNorm;
using TorchLayerNorm = TorchSharp.Modules.LayerNorm;
using TorchLayer = TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>;
using TorchNormBase = TorchSharp.Modules.NormBase;
using static TorchSharp.torch;

namespace BnParity.Harness.Implementations;

/// <summary>
/// TorchSharp 0.107's nn.BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, GroupNorm and LayerNorm (libtorch 2.10), and
/// PyTorch's RMSNorm composite from TorchSharp ops (<see cref="TorchSharpRmsNormComposite"/>), as an implementation
/// under test: the live oracle. It runs TorchSharp as it is — its differences from PyTorch are ledger rows
/// (docs/divergence-ledger.md), pinned by tests, not patched here. Every step runs inside its own dispose scope; the module itself is disposed with
/// the instance, so long property runs keep the native tensor count flat.
/// </summary>
public sealed class TorchSharpImplementation : IBatchNormUnderTest
{
    public TorchSharpImplementation(int threads = 0)
    {
        TorchSharpOracle.Start(threads);
    }

    public string Name => "TorchSharp " + TorchSharpOracle.Version;

    public IBatchNormModule Create(ModuleConfig config, ModuleState state) => new Module(config, state);

    /// <summary>Builds TorchSharp's module for a config; momentum null is set through the property (the factory takes a plain double).</summary>
    public static TorchBatchNorm CreateModule(ModuleConfig config)
    {
        ScalarType dtype = ToScalarType(config.DType);
        double momentum = config.Momentum ?? 0.1;
        TorchBatchNorm module = config.Module switch
        {
            ModuleKind.BatchNorm1d => nn.BatchNorm1d(config.NumFeatures, config.Eps, momentum, config.Affine, config.TrackRunningStats, dtype: dtype),
            ModuleKind.BatchNorm2d => nn.BatchNorm2d(config.NumFeatures, config.Eps, momentum, config.Affine, config.TrackRunningStats, dtype: dtype),
            _ => nn.BatchNorm3d(config.NumFeatures, config.Eps, momentum, config.Affine, config.TrackRunningStats, dtype: dtype),
        };
        if (config.Momentum is null)
        {
            module.momentum = null;
        }

        return module;
    }

    /// <summary>Builds TorchSharp's layer for any config. InstanceNorm's factories take a plain double: momentum null
    /// is set through the property, where TorchSharp reads it as 0.1 (PyTorch: 0.0; a ledger row).</summary>
    public static TorchLayer CreateLayer(ModuleConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        ScalarType dtype = ToScalarType(config.DType);
        double momentum = config.Momentum ?? 0.1;
        TorchNormBase? instanceNorm = config.Module switch
        {
            ModuleKind.InstanceNorm1d => nn.InstanceNorm1d(config.NumFeatures, config.Eps, momentum, config.Affine, config.TrackRunningStats, dtype: dtype),
            ModuleKind.InstanceNorm2d => nn.InstanceNorm2d(config.NumFeatures, config.Eps, momentum, config.Affine, config.TrackRunningStats, dtype: dtype),
            ModuleKind.InstanceNorm3d => nn.InstanceNorm3d(config.NumFeatures, config.Eps, momentum, config.Affine, config.TrackRunningStats, dtype: dtype),
            _ => null,
        };
        if (instanceNorm is not null)
        {
            if (config.Momentum is null)
            {
                instanceNorm.momentum = null;
            }

            return instanceNorm;
        }

        long[] normalized = Array.ConvertAll(config.NormalizedShape ?? [], d => (long)d);
        return config.Module switch
        {
            ModuleKind.GroupNorm => nn.GroupNorm(config.NumGroups, config.NumFeatures, config.Eps, config.Affine, dtype: dtype),
            ModuleKind.LayerNorm => nn.LayerNorm(normalized, config.Eps, config.Affine, config.Bias, dtype: dtype),
            ModuleKind.RMSNorm => new TorchSharpRmsNormComposite(normalized, config.Eps, config.Affine, dtype),
            _ => CreateModule(config),
        };
    }

    public static ScalarType ToScalarType(ElementType type) => type == ElementType.Float32 ? ScalarType.Float32 : ScalarType.Float64;

    /// <summary>A new tensor (caller's scope) holding <paramref name="value"/> in <paramref name="type"/>.</summary>
    public static Tensor ToTensor(CaseTensor value, ElementType type) => ToTensor(value.Data, value.Shape, type);

    /// <summary>
    /// A new tensor (caller's scope) holding the logical <paramref name="value"/> in <paramref name="layout"/>'s
    /// strides. TorchSharp 0.107 has no memory-format argument, so channels-last is built as PyTorch stores it: an
    /// (N, H, W, C) tensor permuted to an (N, C, H, W) view, whose strides are exactly
    /// <c>x.contiguous(memory_format=torch.channels_last)</c>'s. libtorch picks its kernel from those strides
    /// (<see cref="IsChannelsLast"/> tells which one it took by the output's strides).
    /// </summary>
    public static Tensor ToTensor(CaseTensor value, ElementType type, MemoryLayout layout)
    {
        if (layout == MemoryLayout.ChannelsFirst || value.Rank < 3)
        {
            return ToTensor(value, type);
        }

        int[] memoryShape = Array.ConvertAll(MemoryOrder.MemoryShape(value.Shape, layout), d => (int)d);
        using var stored = ToTensor(MemoryOrder.ToMemory(value, layout), memoryShape, type);
        return ChannelsLastView(stored);
    }

    /// <summary>The (N, C, …) view of a tensor stored as (N, …, C): channels-last strides, sharing the storage (the
    /// caller may dispose <paramref name="stored"/>; the view keeps the storage alive).</summary>
    public static Tensor ChannelsLastView(Tensor stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        int rank = (int)stored.ndim;
        long[] toLogical = [0, rank - 1, .. Enumerable.Range(1, rank - 2).Select(d => (long)d)];
        return stored.permute(toLogical);
    }

    /// <summary>Whether <paramref name="value"/> (rank 4 or 5) has channels-last strides: C innermost, then W, H, (D).</summary>
    public static bool IsChannelsLast(Tensor value)
    {
        long[] strides = value.stride();
        long[] shape = value.shape;
        long expected = 1;
        foreach (int dim in new[] { 1 }.Concat(Enumerable.Range(2, shape.Length - 2).Reverse()).Append(0))
        {
            if (shape[dim] != 1 && strides[dim] != expected)
            {
                return false;
            }

            expected *= shape[dim];
        }

        return true;
    }

    public static Tensor ToTensor(double[] data, int[] shape, ElementType type)
    {
        long[] dims = Array.ConvertAll(shape, d => (long)d);
        if (data.Length == 0)
        {
            return empty(dims, ToScalarType(type)); // tensor(T[], dims) rejects an empty array (an N = 0 batch)
        }

        return type == ElementType.Float32
            ? tensor(Array.ConvertAll(data, v => (float)v), dims)
            : tensor((double[])data.Clone(), dims);
    }

    public static double[] ToArray(Tensor value)
    {
        if (value.numel() == 0)
        {
            return Array.Empty<double>(); // data<T>() of an empty tensor throws in TorchSharp 0.107
        }

        // Read in the tensor's own dtype: to_type/contiguous may hand back the same native tensor,
        // and disposing that alias would free a module buffer under the module's feet.
        using var detached = value.detach();
        using var contiguous = detached.is_contiguous() ? null : detached.contiguous();
        var source = contiguous ?? detached;
        return source.dtype == ScalarType.Float32
            ? Array.ConvertAll(source.data<float>().ToArray(), v => (double)v)
            : source.data<double>().ToArray();
    }

    /// <summary>
    /// TorchSharp 0.107's BatchNorm.forward bumps num_batches_tracked with <c>add_(1)</c>. The implicit
    /// Scalar is unreachable once its handle has been passed to native code, so a garbage collection
    /// during the call can finalize it, and libtorch then reads a freed Scalar. That shows up rarely,
    /// as "Expected false to be true … toFloat/toLong at c10/core/Scalar.h". No collection may start
    /// while the oracle's forward runs: the garbage collector is paused around it.
    /// </summary>
    private static Tensor ForwardWithoutGc(TorchLayer module, Tensor input)
    {
        bool paused = GC.TryStartNoGCRegion(NoGcBudgetBytes);
        try
        {
            return module.forward(input);
        }
        finally
        {
            if (paused && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion)
            {
                GC.EndNoGCRegion();
            }
        }
    }

    /// <summary>Managed allocation allowed while paused: forward allocates only a few small wrappers.</summary>
    private const long NoGcBudgetBytes = 4 * 1024 * 1024;

    private sealed class Module : IBatchNormModule
    {
        private readonly ModuleConfig _config;
        private readonly TorchLayer _module;
        private Tensor? _lastInput;
        private Tensor? _lastOutput;

        public Module(ModuleConfig config, ModuleState state)
        {
            _config = config;
            _module = CreateLayer(config);
            using var scope = TorchSharpOracle.Scope();
            using var noGrad = torch.no_grad();
            // Always loaded (the defaults included): TorchSharp's GroupNorm leaves weight and bias uninitialised.
            Set(Weight, state.Weight);
            Set(Bias, state.Bias);
            Set(RunningMean, state.RunningMean);
            Set(RunningVar, state.RunningVar);
            if (state.NumBatchesTracked is { } count && NumBatchesTracked is { } tracked)
            {
                tracked.fill_(count);
            }
        }

        private Tensor? Weight => _module switch
        {
            TorchNormBase norm => norm.affine ? norm.weight : null,
            TorchGroupNorm group => _config.Affine ? group.weight : null,
            TorchLayerNorm layer => _config.Affine ? layer.weight : null,
            TorchSharpRmsNormComposite rms => rms.weight,
            _ => null,
        };

        private Tensor? Bias => _module switch
        {
            TorchNormBase norm => norm.bias,
            TorchGroupNorm group => group.bias,
            TorchLayerNorm layer => _config.HasBias ? layer.bias : null,
            _ => null,
        };

        private Tensor? RunningMean => (_module as TorchNormBase)?.running_mean;

        private Tensor? RunningVar => (_module as TorchNormBase)?.running_var;

        private Tensor? NumBatchesTracked => (_module as TorchNormBase)?.num_batches_tracked;

        private void Set(Tensor? target, double[]? values)
        {
            if (target is null || values is null)
            {
                return;
            }

            // Flat values in the parameter's own shape (LayerNorm/RMSNorm: normalized_shape).
            using var source = ToTensor(values, Array.ConvertAll(target.shape, d => (int)d), _config.DType);
            target.copy_(source);
        }

        public CaseTensor Forward(bool training, CaseTensor input) => Forward(training, input, MemoryLayout.ChannelsFirst);

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput) => Backward(gradOutput, MemoryLayout.ChannelsFirst);

        public CaseTensor Forward(bool training, CaseTensor input, MemoryLayout layout)
        {
            ReleaseSaved();
            _module.train(training);
            using var scope = TorchSharpOracle.Scope();
            // A leaf in the layout's strides: detach() keeps the permuted view's strides, so autograd's grad of it is
            // the input gradient libtorch computed in that layout.
            var x = ToTensor(input, _config.DType, layout).detach().requires_grad_(true);
            var y = ForwardWithoutGc(_module, x);
            // libtorch's instance_norm runs on input.contiguous() and returns channels-first whatever the input (as
            // PyTorch 1.13 does): only the other layers must keep the layout to have tested it.
            if (layout == MemoryLayout.ChannelsLast && y.numel() > 0 && !IsChannelsLast(y) && !_config.IsInstanceNorm)
            {
                throw new InvalidOperationException(
                    $"libtorch returned a {string.Join("x", y.shape)} output with strides [{string.Join(", ", y.stride())}] for a channels-last input: it did not take its channels-last kernel, so this run does not test that layout.");
            }

            var result = new CaseTensor(Array.ConvertAll(y.shape, d => (int)d), ToArray(y));
            _lastInput = x.MoveToOuterDisposeScope();
            _lastOutput = y.MoveToOuterDisposeScope();
            return result;
        }

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput, MemoryLayout layout)
        {
            if (_lastInput is null || _lastOutput is null)
            {
                throw new InvalidOperationException("Backward needs a preceding Forward.");
            }

            using var scope = TorchSharpOracle.Scope();
            _module.zero_grad();
            var upstream = ToTensor(gradOutput, _config.DType, layout);
            _lastOutput.backward(new[] { upstream });
            var gradInput = new CaseTensor(gradOutput.Shape, ToArray(_lastInput.grad!));
            double[]? gradWeight = Weight?.grad is { } w ? ToArray(w) : null;
            double[]? gradBias = Bias?.grad is { } b ? ToArray(b) : null;
            _module.zero_grad();
            ReleaseSaved();
            return (gradInput, gradWeight, gradBias);
        }

        public ModuleState ReadState()
        {
            using var scope = TorchSharpOracle.Scope();
            return new ModuleState(
                Weight is { } w ? ToArray(w) : null,
                Bias is { } b ? ToArray(b) : null,
                RunningMean is { } m ? ToArray(m) : null,
                RunningVar is { } v ? ToArray(v) : null,
                NumBatchesTracked is { } n ? ReadCount(n) : null);
        }

        /// <summary>num_batches_tracked takes the module dtype in TorchSharp 0.107 (PyTorch: always int64): read either.</summary>
        private static long ReadCount(Tensor count) =>
            count.dtype switch
            {
                ScalarType.Int64 => count.item<long>(),
                ScalarType.Float32 => (long)count.item<float>(),
                _ => (long)count.item<double>(),
            };

        private void ReleaseSaved()
        {
            _lastOutput?.Dispose();
            _lastInput?.Dispose();
            _lastOutput = null;
            _lastInput = null;
        }

        public void Dispose()
        {
            ReleaseSaved();
            _module.Dispose();
        }
    }
}
