using System.Numerics;
using BnParity.Harness.Cases;

namespace BnParity.Harness.Implementations;

/// <summary>The project's own pure C# layers (the default implementation under test).</summary>
public sealed class LibraryImplementation : IBatchNormUnderTest
{
    /// <param name="threads">MaxDegreeOfParallelism for every module; 0 = the oracle's default thread count.</param>
    public LibraryImplementation(int threads = 0)
        : this(new LibraryExecution(LibraryPath.Default, threads))
    {
    }

    /// <param name="execution">The path and thread count every module of this implementation runs with.</param>
    public LibraryImplementation(LibraryExecution execution)
    {
        ArgumentNullException.ThrowIfNull(execution);
        Execution = execution;
    }

    /// <summary>The path and thread count (printed with failures).</summary>
    public LibraryExecution Execution { get; }

    public string Name => Execution == LibraryExecution.Default ? "BnParity" : $"BnParity ({Execution})";

    public IBatchNormModule Create(ModuleConfig config, ModuleState state) => config.DType switch
    {
        ElementType.Float32 => new Module<float>(config, state, Execution),
        _ => new Module<double>(config, state, Execution),
    };

    /// <summary>Builds the library's module for a config (also used by benchmarks and unit tests).</summary>
    public static NormBase<T> CreateModule<T>(ModuleConfig config)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Module switch
        {
            ModuleKind.BatchNorm1d => new BatchNorm1d<T>(config.NumFeatures, config.Eps, config.Momentum, config.Affine, config.TrackRunningStats),
            ModuleKind.BatchNorm2d => new BatchNorm2d<T>(config.NumFeatures, config.Eps, config.Momentum, config.Affine, config.TrackRunningStats),
            ModuleKind.BatchNorm3d => new BatchNorm3d<T>(config.NumFeatures, config.Eps, config.Momentum, config.Affine, config.TrackRunningStats),
            ModuleKind.InstanceNorm1d => new InstanceNorm1d<T>(config.NumFeatures, config.Eps, config.Momentum, config.Affine, config.TrackRunningStats),
            ModuleKind.InstanceNorm2d => new InstanceNorm2d<T>(config.NumFeatures, config.Eps, config.Momentum, config.Affine, config.TrackRunningStats),
            ModuleKind.InstanceNorm3d => new InstanceNorm3d<T>(config.NumFeatures, config.Eps, config.Momentum, config.Affine, config.TrackRunningStats),
            ModuleKind.GroupNorm => new GroupNorm<T>(config.NumGroups, config.NumFeatures, config.Eps, config.Affine),
            ModuleKind.LayerNorm => new LayerNorm<T>(config.NormalizedShape!, config.Eps, config.Affine, config.Bias),
            ModuleKind.RMSNorm => new RMSNorm<T>(config.NormalizedShape!, config.EpsIsDefault ? null : config.Eps, config.Affine),
            _ => throw new ArgumentOutOfRangeException(nameof(config), config.Module, "unknown module"),
        };
    }

    private sealed class Module<T> : IBatchNormModule
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly NormBase<T> _module;

        public Module(ModuleConfig config, ModuleState state, LibraryExecution execution)
        {
            _module = CreateModule<T>(config);
            execution.ApplyTo(_module);
            Load(state);
        }

        private void Load(ModuleState state)
        {
            Copy(state.Weight, _module.Weight);
            Copy(state.Bias, _module.Bias);
            Copy(state.RunningMean, _module.RunningMean);
            Copy(state.RunningVar, _module.RunningVar);
            if (state.NumBatchesTracked is { } count && _module.TrackRunningStats)
            {
                _module.NumBatchesTracked = count;
            }
        }

        private static void Copy(double[]? source, T[]? destination)
        {
            if (source is null || destination is null)
            {
                return;
            }

            for (int i = 0; i < destination.Length; i++)
            {
                destination[i] = T.CreateChecked(source[i]);
            }
        }

        public CaseTensor Forward(bool training, CaseTensor input) => Forward(training, input, MemoryLayout.ChannelsFirst);

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput) => Backward(gradOutput, MemoryLayout.ChannelsFirst);

        public CaseTensor Forward(bool training, CaseTensor input, MemoryLayout layout)
        {
            _module.Training = training;
            var output = _module.Forward(new DenseTensor<T>(ToT(MemoryOrder.ToMemory(input, layout)), input.Shape), layout);
            return MemoryOrder.FromMemory(output.Shape, ToDouble(output.Data), layout);
        }

        public (CaseTensor Input, double[]? Weight, double[]? Bias) Backward(CaseTensor gradOutput, MemoryLayout layout)
        {
            var gradients = _module.Backward(new DenseTensor<T>(ToT(MemoryOrder.ToMemory(gradOutput, layout)), gradOutput.Shape), layout);
            return (MemoryOrder.FromMemory(gradients.Input.Shape, ToDouble(gradients.Input.Data), layout),
                gradients.Weight is null ? null : ToDouble(gradients.Weight),
                gradients.Bias is null ? null : ToDouble(gradients.Bias));
        }

        public ModuleState ReadState() => new(
            _module.Weight is null ? null : ToDouble(_module.Weight),
            _module.Bias is null ? null : ToDouble(_module.Bias),
            _module.RunningMean is null ? null : ToDouble(_module.RunningMean),
            _module.RunningVar is null ? null : ToDouble(_module.RunningVar),
            _module.NumBatchesTracked);

        public void Dispose()
        {
        }

        private static T[] ToT(double[] values) => Array.ConvertAll(values, T.CreateChecked);

        private static double[] ToDouble(T[] values) => Array.ConvertAll(values, double.CreateChecked);
    }
}
