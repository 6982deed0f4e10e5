namespace BnParity.Harness.Cases;

/// <summary>Which PyTorch module a case drives.</summary>
public enum ModuleKind
{
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    GroupNorm,
    LayerNorm,
    RMSNorm,
}

/// <summary>Element type of every tensor in a case.</summary>
public enum ElementType
{
    Float32,
    Float64,
}

/// <summary>
/// A dense row-major tensor as the harness exchanges it. Values are held as doubles whatever
/// the case's dtype: every float32 value is exactly representable, so nothing is lost.
/// </summary>
public sealed record CaseTensor(int[] Shape, double[] Data)
{
    public int Rank => Shape.Length;

    public override string ToString() => $"[{string.Join(", ", Shape)}]";

    /// <summary>Elements per (n, c) plane: the product of the spatial dimensions (1 for 2D input).</summary>
    public int SpatialSize => Shape.Skip(2).Aggregate(1, (a, b) => a * b);

    /// <summary>(n, c, spatial offset) of a flat row-major index of an (N, C, ...) tensor.</summary>
    public (int N, int C, int Spatial) Locate(int flatIndex)
    {
        int channels = Shape.Length > 1 ? Shape[1] : 1;
        int spatial = SpatialSize;
        return (flatIndex / (channels * spatial), flatIndex / spatial % channels, flatIndex % spatial);
    }
}

/// <summary>How a module is constructed: the constructor arguments of PyTorch's module, plus dtype. For GroupNorm
/// <see cref="NumFeatures"/> is num_channels, <see cref="NumGroups"/> num_groups, and there are no running statistics
/// (<see cref="TrackRunningStats"/> false, <see cref="Momentum"/> null). For LayerNorm and RMSNorm
/// <see cref="NormalizedShape"/> is normalized_shape, <see cref="NumFeatures"/> its product D (the length of the flat
/// weight and bias), <see cref="Affine"/> elementwise_affine, <see cref="Bias"/> LayerNorm's bias argument (false for
/// RMSNorm), and <see cref="EpsIsDefault"/> says RMSNorm's eps was null (<see cref="Eps"/> then holds torch.finfo(dtype).eps).</summary>
public sealed record ModuleConfig(
    ModuleKind Module,
    int NumFeatures,
    double Eps = 1e-5,
    double? Momentum = 0.1,
    bool Affine = true,
    bool TrackRunningStats = true,
    ElementType DType = ElementType.Float32,
    int NumGroups = 0,
    int[]? NormalizedShape = null,
    bool Bias = true,
    bool EpsIsDefault = false)
{
    /// <summary>A GroupNorm configuration (no running statistics).</summary>
    public static ModuleConfig GroupNorm(int numGroups, int numChannels, double eps = 1e-5, bool affine = true, ElementType dtype = ElementType.Float32) =>
        new(ModuleKind.GroupNorm, numChannels, eps, null, affine, false, dtype, numGroups);

    /// <summary>A LayerNorm configuration (PyTorch's LayerNorm(normalized_shape, eps, elementwise_affine, bias)).</summary>
    public static ModuleConfig LayerNorm(int[] normalizedShape, double eps = 1e-5, bool elementwiseAffine = true, bool bias = true, ElementType dtype = ElementType.Float32)
    {
        ArgumentNullException.ThrowIfNull(normalizedShape);
        return new(ModuleKind.LayerNorm, Product(normalizedShape), eps, null, elementwiseAffine, false, dtype, 0, (int[])normalizedShape.Clone(), bias);
    }

    /// <summary>An RMSNorm configuration (PyTorch 2.4's RMSNorm(normalized_shape, eps, elementwise_affine)); eps null is
    /// torch.finfo(dtype).eps.</summary>
    public static ModuleConfig RMSNorm(int[] normalizedShape, double? eps = null, bool elementwiseAffine = true, ElementType dtype = ElementType.Float32)
    {
        ArgumentNullException.ThrowIfNull(normalizedShape);
        return new(ModuleKind.RMSNorm, Product(normalizedShape), eps ?? MachineEpsilon(dtype), null, elementwiseAffine, false, dtype, 0,
            (int[])normalizedShape.Clone(), false, eps is null);
    }

    /// <summary>torch.finfo(dtype).eps: 2^-23 for float32, 2^-52 for float64.</summary>
    public static double MachineEpsilon(ElementType dtype) => dtype == ElementType.Float32 ? Math.ScaleB(1.0, -23) : Math.ScaleB(1.0, -52);

    private static int Product(int[] shape) => (int)Math.Min(shape.Aggregate(1L, (a, b) => a * Math.Max(b, 0)), int.MaxValue);

    /// <summary>Whether the module is InstanceNorm1d/2d/3d.</summary>
    public bool IsInstanceNorm => Module is ModuleKind.InstanceNorm1d or ModuleKind.InstanceNorm2d or ModuleKind.InstanceNorm3d;

    /// <summary>Whether the module is LayerNorm or RMSNorm: sets of the trailing normalized_shape elements, with
    /// parameters per element of a set.</summary>
    public bool IsElementNorm => Module is ModuleKind.LayerNorm or ModuleKind.RMSNorm;

    /// <summary>Whether the module has a bias parameter (affine, and for LayerNorm bias = true; never RMSNorm).</summary>
    public bool HasBias => Affine && Bias && Module != ModuleKind.RMSNorm;

    /// <summary>Whether the module's inputs have a channels-last form (the 2d/3d modules and GroupNorm).</summary>
    public bool HasChannelsLast => Module is not (ModuleKind.BatchNorm1d or ModuleKind.InstanceNorm1d or ModuleKind.LayerNorm or ModuleKind.RMSNorm);

    public override string ToString() => Module switch
    {
        ModuleKind.GroupNorm =>
            $"GroupNorm({NumGroups}, {NumFeatures}, eps={Eps:R}, affine={Affine}, dtype={DType.ToString().ToLowerInvariant()})",
        ModuleKind.LayerNorm =>
            $"LayerNorm([{string.Join(", ", NormalizedShape ?? [])}], eps={Eps:R}, elementwise_affine={Affine}, bias={Bias}, dtype={DType.ToString().ToLowerInvariant()})",
        ModuleKind.RMSNorm =>
            $"RMSNorm([{string.Join(", ", NormalizedShape ?? [])}], eps={(EpsIsDefault ? "None" : Eps.ToString("R"))}, elementwise_affine={Affine}, dtype={DType.ToString().ToLowerInvariant()})",
        _ => $"{Module}({NumFeatures}, eps={Eps:R}, momentum={(Momentum is { } m ? m.ToString("R") : "None")}, affine={Affine}, track_running_stats={TrackRunningStats}, dtype={DType.ToString().ToLowerInvariant()})",
    };
}

/// <summary>
/// Parameters and buffers with PyTorch's names. A member is null when the module does not have it
/// (weight/bias when not affine, bias for RMSNorm and LayerNorm(bias=False), the buffers when not tracking running
/// stats). LayerNorm's and RMSNorm's parameters are flat (row-major over normalized_shape).
/// </summary>
public sealed record ModuleState(
    double[]? Weight,
    double[]? Bias,
    double[]? RunningMean,
    double[]? RunningVar,
    long? NumBatchesTracked)
{
    /// <summary>PyTorch's initial values: weight 1, bias 0, running_mean 0, running_var 1, count 0.</summary>
    public static ModuleState Defaults(ModuleConfig config) => new(
        config.Affine ? Filled(config.NumFeatures, 1) : null,
        config.HasBias ? Filled(config.NumFeatures, 0) : null,
        config.TrackRunningStats ? Filled(config.NumFeatures, 0) : null,
        config.TrackRunningStats ? Filled(config.NumFeatures, 1) : null,
        config.TrackRunningStats ? 0 : null);

    private static double[] Filled(int length, double value) => Enumerable.Repeat(value, length).ToArray();
}

/// <summary>
/// What one step produced (or, in a recorded case, must produce): the forward output and the
/// state after the step, or the error it raised; plus gradients when the step ran backward.
/// </summary>
public sealed record StepOutcome
{
    public CaseTensor? Output { get; init; }
    public double[]? RunningMean { get; init; }
    public double[]? RunningVar { get; init; }
    public long? NumBatchesTracked { get; init; }

    /// <summary>The error message (or recorded prefix) when the step raised; then nothing else is set.</summary>
    public string? Error { get; init; }

    public CaseTensor? GradInput { get; init; }
    public double[]? GradWeight { get; init; }
    public double[]? GradBias { get; init; }

    public bool HasGradients => GradInput is not null;
}

/// <summary>
/// One forward step (optionally followed by backward) on the case's module. <paramref name="Layout"/> is how the
/// input, the upstream gradient and the outputs lie in memory when the step runs; the tensors here are logical
/// (row-major (N, C, …)) in either layout, so expectations compare element by element across layouts.
/// </summary>
public sealed record CaseStep(
    bool Training,
    CaseTensor Input,
    CaseTensor? GradOutput = null,
    StepOutcome? Expected = null,
    MemoryLayout Layout = MemoryLayout.ChannelsFirst)
{
    public override string ToString() =>
        $"{(Training ? "train" : "eval")} {Input}{(Layout == MemoryLayout.ChannelsLast ? " channels_last" : "")}{(GradOutput is null ? "" : " +backward")}";
}

/// <summary>
/// The one case model of the project: a module configuration, the state loaded before step 1,
/// and the steps. Recorded PyTorch cases, the property generators and the CLI's sweep all
/// produce it; every implementation runs it through <see cref="CaseRunner"/>.
/// </summary>
public sealed record BatchNormCase(
    string Name,
    ModuleConfig Config,
    ModuleState InitialState,
    IReadOnlyList<CaseStep> Steps)
{
    public override string ToString()
    {
        var text = new System.Text.StringBuilder();
        text.Append(Name).Append(": ").Append(Config);
        if (InitialState.NumBatchesTracked is > 0 || InitialState.Weight?.Any(w => w != 1) == true)
        {
            text.Append(", loaded state (num_batches_tracked=").Append(InitialState.NumBatchesTracked?.ToString() ?? "-").Append(')');
        }

        for (int i = 0; i < Steps.Count; i++)
        {
            text.Append("; step ").Append(i + 1).Append(": ").Append(Steps[i]);
        }

        return text.ToString();
    }
}
