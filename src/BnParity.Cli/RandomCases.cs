using BnParity.Harness.Cases;

namespace BnParity.Cli;

/// <summary>A generated case and the configuration class it is reported under.</summary>
public sealed record SweepCase(string Class, BatchNormCase Case, bool TorchSharpDivergesByDesign);

/// <summary>
/// Deterministic random BatchNorm, InstanceNorm, GroupNorm, LayerNorm and RMSNorm configurations for <c>check</c>'s sweep: one
/// <see cref="System.Random"/> seeded once, so a seed reproduces the whole sweep. Data are
/// rounded to the case's dtype (float32 values are exact in the double case model).
/// </summary>
public static class RandomCases
{
    public const string OneValuePerChannelClass = "ledger: 1 value/channel (C# vs truth only)";

    /// <summary>BatchNorm2d/3d, float32 or float64, most steps channels-last (some channels-first, so a case can mix
    /// layouts on one module), half of them with gradients.</summary>
    public const string ChannelsLastClass = "channels-last 2d/3d (f32/f64, grads)";

    /// <summary>InstanceNorm1d/2d/3d, float32 or float64, affine and tracking drawn, channels-first (TorchSharp's
    /// channels-last InstanceNorm gradients are wrong at N = 1 or a unit spatial dimension: a ledger row), momentum
    /// never null (TorchSharp reads it as 0.1: a ledger row).</summary>
    public const string InstanceNormClass = "InstanceNorm 1d/2d/3d (f32/f64, grads)";

    /// <summary>GroupNorm, float32 or float64, groups dividing C, 3-D to 5-D input in either layout, on data centred
    /// near zero (libtorch's GroupNorm variance is one-pass: a ledger row).</summary>
    public const string GroupNormClass = "GroupNorm (f32/f64, grads, both layouts)";

    /// <summary>LayerNorm (bias drawn) and RMSNorm (eps None half the time), float32 or float64, normalized_shape of 1–2
    /// dimensions up to 1024 wide, 1–3 leading dimensions, offset data, half of them with gradients.</summary>
    public const string ElementNormClass = "LayerNorm/RMSNorm (f32/f64, grads)";

    /// <summary>The classes in report order, with their relative weights in the sweep.</summary>
    public static readonly IReadOnlyList<(string Name, int Weight)> Classes = new[]
    {
        ("BN1d float32 train/eval", 3),
        ("BN2d float32 train/eval", 3),
        ("BN3d float32 train/eval", 2),
        ("float32 momentum None (CMA)", 2),
        ("float32 not affine / not tracking", 2),
        ("float32 loaded state, odd momentum/eps", 2),
        ("float32 ill-conditioned", 2),
        ("float32 gradients", 3),
        ("float64 train/eval", 2),
        ("float64 ill-conditioned", 1),
        ("float64 gradients", 2),
        (ChannelsLastClass, 3),
        (OneValuePerChannelClass, 1),
        (InstanceNormClass, 3),
        (GroupNormClass, 3),
        (ElementNormClass, 3),
    };

    public static IEnumerable<SweepCase> Generate(int seed, int count)
    {
        var random = new Random(seed);
        int totalWeight = Classes.Sum(c => c.Weight);
        for (int i = 0; i < count; i++)
        {
            // Cycle deterministically through the weighted classes so every class is represented even in short sweeps.
            int slot = i % totalWeight;
            int index = 0;
            while (slot >= Classes[index].Weight)
            {
                slot -= Classes[index].Weight;
                index++;
            }

            string name = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"sweep-{seed}-{i:D4}");
            yield return Make(random, Classes[index].Name, name);
        }
    }

    private static SweepCase Make(Random random, string className, string name)
    {
        if (className is InstanceNormClass or GroupNormClass)
        {
            return MakeInstanceOrGroupNorm(random, className, name);
        }

        if (className == ElementNormClass)
        {
            return MakeElementNorm(random, className, name);
        }

        bool channelsLast = className == ChannelsLastClass;
        ElementType dtype = className.StartsWith("float64", StringComparison.Ordinal) || (channelsLast && random.NextDouble() < 0.3)
            ? ElementType.Float64
            : ElementType.Float32;
        ModuleKind module = className switch
        {
            ChannelsLastClass => random.NextDouble() < 0.6 ? ModuleKind.BatchNorm2d : ModuleKind.BatchNorm3d,
            _ when className.StartsWith("BN1d", StringComparison.Ordinal) => ModuleKind.BatchNorm1d,
            _ when className.StartsWith("BN2d", StringComparison.Ordinal) => ModuleKind.BatchNorm2d,
            _ when className.StartsWith("BN3d", StringComparison.Ordinal) => ModuleKind.BatchNorm3d,
            _ => (ModuleKind)random.Next(3),
        };
        int channels = random.Next(1, 6);
        double eps = 1e-5;
        double? momentum = 0.1;
        bool affine = true, track = true;
        bool illConditioned = className.Contains("ill-conditioned", StringComparison.Ordinal);
        bool gradients = className.Contains("gradients", StringComparison.Ordinal) || (channelsLast && random.NextDouble() < 0.5);
        bool loadState = random.NextDouble() < 0.3;
        bool oneValue = className == OneValuePerChannelClass;
        switch (className)
        {
            case "float32 momentum None (CMA)":
                momentum = null;
                break;
            case "float32 not affine / not tracking":
                affine = random.NextDouble() < 0.5;
                track = !affine || random.NextDouble() < 0.5;
                break;
            case "float32 loaded state, odd momentum/eps":
                loadState = true;
                momentum = Pick(random, new double?[] { 0.0, 1.0, 0.8, -1.2, null, Math.Round(random.NextDouble(), 3) });
                eps = Pick(random, new[] { 0.5, 1e-3, 1e-10, 1e-5 });
                break;
            default:
                momentum = Pick(random, new double?[] { 0.1, 0.1, 0.5, null });
                eps = Pick(random, new[] { 1e-5, 1e-5, 1e-3 });
                if (!oneValue && random.NextDouble() < 0.15)
                {
                    affine = false;
                }

                break;
        }

        var config = new ModuleConfig(module, channels, eps, momentum, affine, track, dtype);
        var state = loadState ? RandomState(random, config) : ModuleState.Defaults(config);
        int stepCount = random.Next(1, 5);
        var steps = new List<CaseStep>();
        for (int s = 0; s < stepCount; s++)
        {
            bool training = s == 0 || random.NextDouble() < 0.6;
            bool last = s == stepCount - 1;
            if (oneValue && last)
            {
                // Batch statistics from one value per channel: PyTorch raises, TorchSharp 0.107 does not (ledger).
                training = true;
            }

            bool usesBatchStatistics = training || !track;
            int[] shape = Shape(random, module, channels, usesBatchStatistics, oneValue && last);
            var input = Tensor(random, shape, dtype, illConditioned);
            CaseTensor? gradOutput = gradients && !(oneValue && last) && random.NextDouble() < 0.8
                ? Tensor(random, shape, dtype, illConditioned: false)
                : null;
            var layout = channelsLast && random.NextDouble() < 0.8 ? MemoryLayout.ChannelsLast : MemoryLayout.ChannelsFirst;
            steps.Add(new CaseStep(training, input, gradOutput, Layout: layout));
            if (oneValue && last)
            {
                break;
            }
        }

        return new SweepCase(className, new BatchNormCase(name, config, state, steps), oneValue);
    }

    private static SweepCase MakeInstanceOrGroupNorm(Random random, string className, string name)
    {
        bool groupNorm = className == GroupNormClass;
        ElementType dtype = random.NextDouble() < 0.3 ? ElementType.Float64 : ElementType.Float32;
        int channels = random.Next(1, 9);
        int spatialRank = random.Next(1, 4);
        double eps = Pick(random, new[] { 1e-5, 1e-5, 1e-3 });
        bool affine = random.NextDouble() < 0.7;
        bool gradients = random.NextDouble() < 0.6;
        ModuleConfig config;
        if (groupNorm)
        {
            int[] divisors = Enumerable.Range(1, channels).Where(d => channels % d == 0).ToArray();
            config = ModuleConfig.GroupNorm(Pick(random, divisors), channels, eps, affine, dtype);
        }
        else
        {
            var module = (ModuleKind)((int)ModuleKind.InstanceNorm1d + spatialRank - 1);
            bool track = random.NextDouble() < 0.5;
            config = new ModuleConfig(module, channels, eps, Pick(random, new double?[] { 0.1, 0.5, 1.0 }), affine, track, dtype);
        }

        var state = random.NextDouble() < 0.3 ? RandomState(random, config) : ModuleState.Defaults(config);
        int stepCount = random.Next(1, 4);
        var steps = new List<CaseStep>();
        for (int s = 0; s < stepCount; s++)
        {
            bool training = s == 0 || random.NextDouble() < 0.6;
            // Every spatial dimension 2..5 and N ≥ 1: more than one value per set for both layers (PyTorch's errors are
            // the recorded cases' job).
            int[] shape = [random.Next(1, 6), channels, .. Enumerable.Range(0, spatialRank).Select(_ => random.Next(2, 6))];
            var input = Tensor(random, shape, dtype, illConditioned: false, centred: groupNorm);
            CaseTensor? gradOutput = gradients ? Tensor(random, shape, dtype, illConditioned: false) : null;
            var layout = groupNorm && spatialRank >= 2 && random.NextDouble() < 0.5 ? MemoryLayout.ChannelsLast : MemoryLayout.ChannelsFirst;
            steps.Add(new CaseStep(training, input, gradOutput, Layout: layout));
        }

        return new SweepCase(className, new BatchNormCase(name, config, state, steps), false);
    }

    private static SweepCase MakeElementNorm(Random random, string className, string name)
    {
        bool layerNorm = random.NextDouble() < 0.5;
        ElementType dtype = random.NextDouble() < 0.3 ? ElementType.Float64 : ElementType.Float32;
        int[] normalized = random.NextDouble() < 0.7
            ? [Pick(random, new[] { 1, 2, 7, 32, 100, 768, 1024 })]
            : [random.Next(1, 6), random.Next(1, 40)];
        bool affine = random.NextDouble() < 0.8;
        var config = layerNorm
            ? ModuleConfig.LayerNorm(normalized, Pick(random, new[] { 1e-5, 1e-5, 1e-3 }), affine, random.NextDouble() < 0.7, dtype)
            : ModuleConfig.RMSNorm(normalized, Pick(random, new double?[] { null, null, 1e-6, 1e-5 }), affine, dtype);
        var state = random.NextDouble() < 0.4 ? RandomState(random, config) : ModuleState.Defaults(config);
        bool gradients = random.NextDouble() < 0.5;
        int stepCount = random.Next(1, 3);
        var steps = new List<CaseStep>();
        for (int s = 0; s < stepCount; s++)
        {
            int[] leading = [random.Next(1, 9), .. Enumerable.Range(0, random.Next(0, 3)).Select(_ => random.Next(1, 4))];
            int[] shape = [.. leading, .. normalized];
            var input = Tensor(random, shape, dtype, illConditioned: false);
            CaseTensor? gradOutput = gradients ? Tensor(random, shape, dtype, illConditioned: false) : null;
            steps.Add(new CaseStep(random.NextDouble() < 0.7, input, gradOutput));
        }

        return new SweepCase(className, new BatchNormCase(name, config, state, steps), false);
    }

    private static T Pick<T>(Random random, T[] values) => values[random.Next(values.Length)];

    private static int[] Shape(Random random, ModuleKind module, int channels, bool usesBatchStatistics, bool oneValuePerChannel)
    {
        if (oneValuePerChannel)
        {
            return module switch
            {
                ModuleKind.BatchNorm1d => random.NextDouble() < 0.5 ? new[] { 1, channels } : new[] { 1, channels, 1 },
                ModuleKind.BatchNorm2d => new[] { 1, channels, 1, 1 },
                _ => new[] { 1, channels, 1, 1, 1 },
            };
        }

        while (true)
        {
            int batch = random.Next(1, 7);
            int[] shape = module switch
            {
                ModuleKind.BatchNorm1d => random.NextDouble() < 0.5
                    ? new[] { batch, channels }
                    : new[] { batch, channels, random.Next(1, 9) },
                ModuleKind.BatchNorm2d => new[] { batch, channels, random.Next(1, 6), random.Next(1, 6) },
                _ => new[] { batch, channels, random.Next(1, 4), random.Next(1, 4), random.Next(1, 4) },
            };
            long perChannel = shape.Aggregate(1L, (a, b) => a * b) / channels;
            if (!usesBatchStatistics || perChannel > 1)
            {
                return shape;
            }
        }
    }

    private static CaseTensor Tensor(Random random, int[] shape, ElementType dtype, bool illConditioned, bool centred = false)
    {
        int channels = shape[1];
        int spatial = shape.Skip(2).Aggregate(1, (a, b) => a * b);
        var offsets = new double[channels];
        var scales = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            if (illConditioned)
            {
                // Large offset, small spread: the variance cancels catastrophically in naive E[x²] − E[x]².
                offsets[c] = (random.NextDouble() < 0.5 ? -1 : 1) * Math.Pow(10, 2 + 2 * random.NextDouble());
                scales[c] = Math.Pow(10, -2 + 2 * random.NextDouble());
            }
            else
            {
                offsets[c] = 4 * random.NextDouble() - 2;
                scales[c] = Math.Pow(10, -1 + 2 * random.NextDouble());
                if (centred)
                {
                    offsets[c] = 0;
                }
            }
        }

        var data = new double[shape.Aggregate(1, (a, b) => a * b)];
        for (int i = 0; i < data.Length; i++)
        {
            int c = i / spatial % channels;
            data[i] = Round(offsets[c] + scales[c] * SeededNormal.Next(random), dtype);
        }

        return new CaseTensor(shape, data);
    }

    private static ModuleState RandomState(Random random, ModuleConfig config)
    {
        double[] Vector(Func<double> value) => Enumerable.Range(0, config.NumFeatures).Select(_ => Round(value(), config.DType)).ToArray();
        return new ModuleState(
            config.Affine ? Vector(() => 0.5 + 1.5 * random.NextDouble()) : null,
            config.HasBias ? Vector(() => 2 * random.NextDouble() - 1) : null,
            config.TrackRunningStats ? Vector(() => 2 * random.NextDouble() - 1) : null,
            config.TrackRunningStats ? Vector(() => 0.1 + 3 * random.NextDouble()) : null,
            config.TrackRunningStats ? random.Next(0, 20) : null);
    }

    private static double Round(double value, ElementType dtype) => dtype == ElementType.Float32 ? (float)value : value;
}
