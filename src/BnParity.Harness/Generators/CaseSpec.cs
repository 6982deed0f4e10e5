using System.Globalization;
using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;

namespace BnParity.Harness.Generators;

/// <summary>How a step's input (or upstream gradient) is drawn: a kind plus a seed and two small parameters.</summary>
public enum DataKind
{
    /// <summary>Standard normal.</summary>
    Normal,

    /// <summary>Uniform in [-1, 1).</summary>
    Uniform,

    /// <summary>offset + scale·normal: |offset| up to 1e4, scale down to 1e-3 (ill-conditioned).</summary>
    OffsetScale,

    /// <summary>Normal, but one channel (seed mod C) holds a single constant value.</summary>
    ConstantChannel,

    /// <summary>Normal times a large scale (up to 1e8).</summary>
    Large,

    /// <summary>Small integers in {-2..2}: many exact zeros and ties.</summary>
    ZerosAndTies,

    /// <summary>offset + scale·normal, except 16 evenly spaced elements of each channel (positions k·n/16 of its
    /// N·S values) that sit 1000·scale higher: adversarial for shifted float statistics whose shift is sampled at
    /// those positions (the library's), which then lies many σ from the mean and must take the second pass.</summary>
    SampledSpikes,

    /// <summary>scale·normal with scale in [1e17, 1e33]: float32 squares of deviations overflow from ~1e20.</summary>
    Huge,

    /// <summary>scale·normal with scale in [1e-44, 1e-39]: float32 subnormals, whose squares underflow.</summary>
    Tiny,

    /// <summary>Normal, with one element (seed mod count) set to +∞ or −∞ (seed parity).</summary>
    WithInfinity,
}

/// <summary>
/// A reproducible recipe for a tensor's values. Cases hold recipes, not arrays, so shrinking works
/// on a few readable numbers and a printed counterexample is short.
/// </summary>
public sealed record DataRecipe(DataKind Kind, int Seed, double Offset = 0, double Scale = 1)
{
    public static readonly DataRecipe Simplest = new(DataKind.Normal, 0);

    public override string ToString() => Kind switch
    {
        DataKind.OffsetScale or DataKind.SampledSpikes => string.Create(CultureInfo.InvariantCulture, $"{Kind}(seed {Seed}, offset {Offset:R}, scale {Scale:R})"),
        DataKind.Large or DataKind.Huge or DataKind.Tiny => string.Create(CultureInfo.InvariantCulture, $"{Kind}(seed {Seed}, scale {Scale:R})"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{Kind}(seed {Seed})"),
    };

    /// <summary>The values for an (N, C, ...) shape, rounded to float when <paramref name="type"/> is float32. With a
    /// <paramref name="setLength"/> (LayerNorm/RMSNorm: D), <see cref="DataKind.ConstantChannel"/> makes one whole set
    /// (seed mod M) constant instead of one channel.</summary>
    public double[] Values(int[] shape, ElementType type, int setLength = 0)
    {
        int count = shape.Aggregate(1, (a, b) => a * b);
        int channels = shape.Length > 1 ? shape[1] : 1;
        int spatial = shape.Skip(2).Aggregate(1, (a, b) => a * b);
        var random = new Random(Seed);
        var data = new double[count];
        int constantChannel = Math.Abs(Seed) % channels;
        long perChannel = (long)(count / Math.Max(channels * spatial, 1)) * spatial;
        double constant = Math.Round(SeededNormal.Next(random) * 4, 2);
        for (int i = 0; i < count; i++)
        {
            data[i] = Kind switch
            {
                DataKind.Uniform => random.NextDouble() * 2 - 1,
                DataKind.OffsetScale => Offset + Scale * SeededNormal.Next(random),
                DataKind.ConstantChannel when setLength > 0 => i / setLength == Math.Abs(Seed) % Math.Max(count / setLength, 1) ? constant : SeededNormal.Next(random),
                DataKind.ConstantChannel => i / spatial % channels == constantChannel ? constant : SeededNormal.Next(random),
                DataKind.Large or DataKind.Huge or DataKind.Tiny => Scale * SeededNormal.Next(random),
                DataKind.WithInfinity => i == Math.Abs(Seed) % count ? (Seed % 2 == 0 ? double.PositiveInfinity : double.NegativeInfinity) : SeededNormal.Next(random),
                DataKind.ZerosAndTies => random.Next(-2, 3),
                DataKind.SampledSpikes => Offset + Scale * (SeededNormal.Next(random) + (IsSampled(i, channels, spatial, perChannel) ? 1000 : 0)),
                _ => SeededNormal.Next(random),
            };
            if (type == ElementType.Float32)
            {
                data[i] = (float)data[i];
            }
        }

        return data;
    }

    /// <summary>Whether flat element i is at one of the 16 evenly spaced positions k·n/16 of its channel.</summary>
    private static bool IsSampled(int i, int channels, int spatial, long perChannel)
    {
        if (perChannel < 16)
        {
            return false;
        }

        long p = ((long)(i / (channels * spatial)) * spatial) + (i % spatial);
        long k = p * 16 / perChannel;
        return k * perChannel / 16 == p || (k + 1) * perChannel / 16 == p;
    }

}

/// <summary>One generated step: mode, batch shape (N and spatial dims; C comes from the case), data, whether backward
/// runs, and the memory layout the step's tensors lie in (channels-last only for BatchNorm2d/3d). For LayerNorm and
/// RMSNorm, N and the "spatial" dimensions are the leading dimensions (the input is (N, spatial…, normalized_shape…)).</summary>
public sealed record StepSpec(bool Training, int Batch, int[] Spatial, DataRecipe Data, DataRecipe? Gradient = null, MemoryLayout Layout = MemoryLayout.ChannelsFirst)
{
    public long ValuesPerChannel => (long)Batch * Spatial.Aggregate(1, (a, b) => a * b);

    public override string ToString() =>
        $"{(Training ? "train" : "eval")} N={Batch}{(Spatial.Length == 0 ? "" : " spatial=" + string.Join("x", Spatial))}{(Layout == MemoryLayout.ChannelsLast ? " channels_last" : "")} {Data}{(Gradient is null ? "" : " backward " + Gradient)}";
}

/// <summary>
/// A generated case before its tensors are materialised: the module configuration, an optional
/// seed for a random "loaded checkpoint" state, and the steps. <see cref="ToCase"/> builds the
/// project's one case model from it. LayerNorm and RMSNorm: <see cref="NormalizedShape"/>, <see cref="Channels"/> its
/// product D, <see cref="Affine"/> elementwise_affine, <see cref="Bias"/> LayerNorm's bias, <see cref="EpsNull"/>
/// RMSNorm's eps = None.
/// </summary>
public sealed record CaseSpec(
    ModuleKind Module,
    ElementType DType,
    int Channels,
    double Eps,
    double? Momentum,
    bool Affine,
    bool Track,
    int? StateSeed,
    IReadOnlyList<StepSpec> Steps,
    LibraryExecution? Execution = null,
    int Groups = 0,
    int[]? NormalizedShape = null,
    bool Bias = true,
    bool EpsNull = false)
{
    /// <summary>How the library runs the case (path and thread count); ignored by other implementations.</summary>
    public LibraryExecution Run => Execution ?? LibraryExecution.Default;

    /// <summary>Spatial rank of every step's input (BatchNorm1d: 0 for 2D input, 1 for 3D input).</summary>
    public int SpatialRank => Steps.Count == 0 ? 0 : Steps[0].Spatial.Length;

    public ModuleConfig Config => Module switch
    {
        ModuleKind.GroupNorm => ModuleConfig.GroupNorm(Groups, Channels, Eps, Affine, DType),
        ModuleKind.LayerNorm => ModuleConfig.LayerNorm(NormalizedShape ?? [Channels], Eps, Affine, Bias, DType),
        ModuleKind.RMSNorm => ModuleConfig.RMSNorm(NormalizedShape ?? [Channels], EpsNull ? null : Eps, Affine, DType),
        _ => new(Module, Channels, Eps, Momentum, Affine, Track, DType),
    };

    /// <summary>Whether the module is LayerNorm or RMSNorm.</summary>
    public bool IsElementNorm => Module is ModuleKind.LayerNorm or ModuleKind.RMSNorm;

    /// <summary>Whether step <paramref name="index"/> normalises with batch statistics (and so needs more than one value per channel).</summary>
    public bool UsesBatchStatistics(int index) => Steps[index].Training || !Track;

    /// <summary>True when some batch-statistics step breaks its layer's "more than 1 value" rule (the error rule):
    /// BatchNorm N·spatial = 1, InstanceNorm spatial = 1, GroupNorm N·(C/G)·spatial = 1.</summary>
    public bool HasSingleValueStep => Steps.Select((s, i) => (s, i)).Any(p => UsesBatchStatistics(p.i) && IsSingleValue(p.s));

    /// <summary>Whether <paramref name="step"/> breaks the layer's "more than 1 value" rule.</summary>
    public bool IsSingleValue(StepSpec step)
    {
        ArgumentNullException.ThrowIfNull(step);
        long spatial = step.Spatial.Aggregate(1L, (a, b) => a * b);
        return IsElementNorm ? false // LayerNorm/RMSNorm normalise a set of one element too
            : Config.IsInstanceNorm ? spatial == 1
            : Module == ModuleKind.GroupNorm ? step.Batch * (Channels / Math.Max(Groups, 1)) * spatial == 1
            : step.ValuesPerChannel == 1;
    }

    /// <summary>Whether the settings are a valid module of their kind: GroupNorm's groups divide the channels and it
    /// has no running statistics or momentum.</summary>
    public bool IsValidModule => IsElementNorm
        ? NormalizedShape is { Length: > 0 } shape && shape.All(d => d >= 1) && shape.Aggregate(1L, (a, b) => a * b) == Channels
          && !Track && Momentum is null && Groups == 0 && (Module == ModuleKind.RMSNorm || !EpsNull)
        : Module != ModuleKind.GroupNorm || (Groups >= 1 && Channels % Groups == 0 && !Track && Momentum is null);

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture,
            $"{Config}{(StateSeed is { } seed ? $", loaded state seed {seed}" : "")}; library {Run}; steps: {string.Join(" | ", Steps)}");

    public BatchNormCase ToCase(string name = "generated")
    {
        var config = Config;
        var state = StateSeed is { } seed ? LoadedState(config, seed) : ModuleState.Defaults(config);
        var steps = Steps.Select(step =>
        {
            int[] shape = IsElementNorm
                ? [step.Batch, .. step.Spatial, .. NormalizedShape!]
                : new[] { step.Batch, Channels }.Concat(step.Spatial).ToArray();
            int setLength = IsElementNorm ? Channels : 0;
            var input = new CaseTensor(shape, step.Data.Values(shape, DType, setLength));
            CaseTensor? gradient = step.Gradient is null ? null : new CaseTensor((int[])shape.Clone(), step.Gradient.Values(shape, DType, setLength));
            return new CaseStep(step.Training, input, gradient, Layout: step.Layout);
        }).ToList();
        return new BatchNormCase(name + ": " + this, config, state, steps);
    }

    /// <summary>Random weight/bias and buffers as if loaded from a checkpoint, with a non-zero count.</summary>
    public static ModuleState LoadedState(ModuleConfig config, int seed)
    {
        var random = new Random(seed);
        int c = config.NumFeatures;
        double Round(double v) => config.DType == ElementType.Float32 ? (float)v : v;
        double[] Draw(Func<double> f) => Enumerable.Range(0, c).Select(_ => Round(f())).ToArray();
        var weight = Draw(() => 1 + 0.5 * SeededNormal.Next(random));
        var bias = Draw(() => SeededNormal.Next(random));
        var mean = Draw(() => SeededNormal.Next(random));
        var variance = Draw(() => Math.Exp(SeededNormal.Next(random)));
        long count = 1 + random.Next(1000);
        return new ModuleState(
            config.Affine ? weight : null,
            config.HasBias ? bias : null,
            config.TrackRunningStats ? mean : null,
            config.TrackRunningStats ? variance : null,
            config.TrackRunningStats ? count : null);
    }
}
