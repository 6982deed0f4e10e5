using System.Globalization;
using System.Numerics;
using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>What a scenario runs on a module (the matrix of the golden-bits and path tests).</summary>
public enum Scenario
{
    /// <summary>Two training forwards (cumulative average), loaded state.</summary>
    Train,

    /// <summary>One eval forward with loaded running statistics.</summary>
    Eval,

    /// <summary>Training forward then backward.</summary>
    TrainBackward,

    /// <summary>Eval forward then backward.</summary>
    EvalBackward,

    /// <summary>track_running_stats = false: training forward + backward, then eval forward (batch statistics in both).</summary>
    NotTracking,

    /// <summary>affine = false: training forward + backward.</summary>
    NotAffine,

    /// <summary>Span overload (the module copies the input), training then eval forward, each followed by a backward
    /// after the caller has overwritten its input buffer: proves every path saves its own copy.</summary>
    SpanCopyBackward,

    /// <summary>In-place tensor forward (destination = input, the module copies the input) in eval, then backward.</summary>
    InPlaceEvalBackward,

    /// <summary>Training forward + backward on data whose 16 sampled elements per channel sit far above the rest, so
    /// the float statistics' shift lies many σ from the mean and the second statistics pass must run.</summary>
    SecondPass,

    /// <summary>Training forwards on data whose float squares overflow (±5e37 and ±1e19) and underflow (1e-21 with
    /// eps = 0), each followed by a backward: the double recomputation of the statistics and PyTorch's held-in-dtype
    /// variance rules, on every path.</summary>
    ExtremeMagnitudes,

    /// <summary>BatchNorm2d/3d only (other shapes give no results): channels-last input through the tensor overloads,
    /// training forward + backward, then through the span overloads an eval forward + backward after the caller has
    /// overwritten its input buffer. Results are recorded in logical order, so indices read as [n, c, s].</summary>
    ChannelsLast,

    /// <summary>Training forward + backward where even channels need the second statistics pass (SecondPass's spiky,
    /// narrow data) and odd ones do not (plain data): the pass is decided per channel, and the split path, which
    /// reduces a channel in parts, must still agree with the channel path bit for bit.</summary>
    MixedSecondPass,

    /// <summary>Eval forward + backward with eps = 0, running_var = 1 and power-of-two weights, so α = weight·invstd is
    /// exact in float (its low part α_lo is 0), on data holding ±∞ and NaN: x = ±∞ must give ±∞ (sign of α), never
    /// NaN, and NaN stays NaN, at every vector width (the column kernels once formed ∞·0 from α_lo). Also run
    /// channels-last for 2d/3d shapes.</summary>
    NonFiniteExactScale,

    /// <summary>InstanceNorm (1d for 2- and 3-D shapes, a 2-D shape being unbatched (C, L); 2d, 3d), affine and
    /// tracking at momentum 0.3: channels-first training forward + backward, eval forward + backward with the running
    /// statistics, and for 4-D/5-D shapes a channels-last training forward + backward.</summary>
    InstanceNormTrainBackward,

    /// <summary>GroupNorm with sets of several channels (C/2 groups for even C, else one group), random weights:
    /// channels-first forward + backward, and channels-last for 4-D/5-D shapes.</summary>
    GroupNormTrainBackward,

    /// <summary>LayerNorm over the last dimension (random weight and bias), and for 3-D and higher shapes over the last
    /// two without a bias, on data offset by 3σ: forward + backward. Element sets always take the channel path, so
    /// every forced path must give the channel path's bits.</summary>
    LayerNormTrainBackward,

    /// <summary>RMSNorm over the last dimension (eps None, random weight), and for 3-D and higher shapes over the last two
    /// (eps 1e-6): forward + backward.</summary>
    RMSNormTrainBackward,
}

/// <summary>One named result tensor of a scenario (output of a step, a gradient, a buffer).</summary>
public sealed record NamedResult(string Name, int[] Shape, ulong[] Bits, double[] Values);

/// <summary>
/// Runs the scenarios on the library with a given execution (path, thread count) and returns every result as bits.
/// TorchSharp-free: these tests also run with AVX-512 off and with hardware intrinsics off (see .ci/run).
/// </summary>
public static class LibraryScenarios
{
    /// <summary>Odd shapes: vector tails, one channel, one spatial element, N = 1, several row blocks, several
    /// 4096-element blocks per run, groups of short runs.</summary>
    public static readonly int[][] Shapes =
    [
        [3, 5, 37],
        [1, 1, 4099],
        [67, 3],
        [2, 3, 17, 19],
        [1, 2, 3, 3],
        [300, 24],
        [2, 2, 5000],
        [40, 3, 100],
        [5, 4, 2, 3, 7],
        [100, 2, 100],
        [2, 70, 5, 3],
    ];

    public static string Key(Scenario scenario, int[] shape) =>
        $"{scenario}/{string.Join('x', shape)}";

    public static List<NamedResult> Run<T>(Scenario scenario, int[] shape, LibraryExecution execution)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (scenario == Scenario.ChannelsLast && shape.Length < 4)
        {
            return [];
        }

        if (scenario is Scenario.InstanceNormTrainBackward or Scenario.GroupNormTrainBackward)
        {
            return RunInstanceOrGroupNorm<T>(scenario, shape, execution);
        }

        if (IsElementNorm(scenario))
        {
            return RunElementNorm<T>(scenario, shape, execution);
        }

        int c = shape[1];
        bool track = scenario != Scenario.NotTracking;
        bool affine = scenario != Scenario.NotAffine;
        BatchNorm<T> module = shape.Length switch
        {
            2 or 3 => new BatchNorm1d<T>(c, momentum: scenario == Scenario.Train ? null : 0.3, affine: affine, trackRunningStats: track),
            4 => new BatchNorm2d<T>(c, momentum: scenario == Scenario.Train ? null : 0.3, affine: affine, trackRunningStats: track),
            _ => new BatchNorm3d<T>(c, momentum: scenario == Scenario.Train ? null : 0.3, affine: affine, trackRunningStats: track),
        };
        execution.ApplyTo(module);
        if (affine)
        {
            RandomAffine(module, 11);
        }

        if (track)
        {
            LoadRunningStatistics(module, 5);

            module.NumBatchesTracked = 3;
        }

        var results = new List<NamedResult>();
        var x = RandomTensor<T>(1, shape, mean: 3, std: 2);
        var gradOutput = RandomTensor<T>(2, shape);
        switch (scenario)
        {
            case Scenario.Train:
                Add(results, "step 0 output", module.Forward(x));
                Add(results, "step 1 output", module.Forward(RandomTensor<T>(3, shape, mean: -1000, std: 0.5)));
                break;
            case Scenario.Eval:
                module.Eval();
                Add(results, "step 0 output", module.Forward(x));
                break;
            case Scenario.TrainBackward:
            case Scenario.NotAffine:
                Add(results, "step 0 output", module.Forward(x));
                AddGradients(results, "step 0", module.Backward(gradOutput));
                break;
            case Scenario.EvalBackward:
                module.Eval();
                Add(results, "step 0 output", module.Forward(x));
                AddGradients(results, "step 0", module.Backward(gradOutput));
                break;
            case Scenario.SpanCopyBackward:
            {
                var buffer = (T[])x.Data.Clone();
                var y = new T[buffer.Length];
                module.Forward(buffer, shape, y);
                Array.Fill(buffer, T.CreateChecked(7));
                Add(results, "step 0 output", y, shape);
                AddGradients(results, "step 0", module.Backward(gradOutput));
                module.Eval();
                x.Data.CopyTo(buffer, 0);
                module.Forward(buffer, shape, y);
                Array.Fill(buffer, T.CreateChecked(-7));
                Add(results, "step 1 output", y, shape);
                AddGradients(results, "step 1", module.Backward(gradOutput));
                break;
            }

            case Scenario.InPlaceEvalBackward:
            {
                module.Eval();
                var inPlace = new DenseTensor<T>((T[])x.Data.Clone(), shape);
                module.Forward(inPlace, inPlace);
                Add(results, "step 0 output", inPlace);
                AddGradients(results, "step 0", module.Backward(gradOutput));
                break;
            }

            case Scenario.SecondPass:
            {
                // Spikes 0.05 above a narrow channel (σ = 0.001): the sampled shift is ~2σ from the mean, and μ − μ_hi
                // (up to 3e-5) is large enough that the n·μ_lo² correction of the second pass changes the result.
                var spiky = RandomTensor<T>(5, shape, mean: 1000, std: 0.001);
                long perChannel = spiky.Length / c;
                long spatial = perChannel / shape[0];
                for (int i = 0; i < spiky.Length; i++)
                {
                    long p = ((i / (c * spatial)) * spatial) + (i % spatial);
                    if (perChannel >= 16 && (p * 16 % perChannel) < 16)
                    {
                        spiky.Data[i] = T.CreateChecked(1000.05);
                    }
                }

                Add(results, "step 0 output", module.Forward(spiky));
                AddGradients(results, "step 0", module.Backward(gradOutput));
                break;
            }

            case Scenario.ExtremeMagnitudes:
            {
                int step = 0;
                foreach (var (scale, eps) in new[] { (5e37, 1e-5), (1e19, 1e-5), (1e-21, 0.0) })
                {
                    module.Eps = eps;
                    var extreme = RandomTensor<T>(6 + step, shape, mean: 0, std: scale);
                    Add(results, $"step {step} output", module.Forward(extreme));
                    AddGradients(results, $"step {step}", module.Backward(gradOutput));
                    step++;
                }

                break;
            }

            case Scenario.ChannelsLast:
            {
                const MemoryLayout layout = MemoryLayout.ChannelsLast;
                var stored = new DenseTensor<T>(MemoryOrder.ToMemory(x.Data, shape, layout), shape);
                var storedGradient = new DenseTensor<T>(MemoryOrder.ToMemory(gradOutput.Data, shape, layout), shape);
                Add(results, "step 0 output", MemoryOrder.ToLogical(module.Forward(stored, layout).Data, shape, layout), shape);
                var gradients = module.Backward(storedGradient, layout);
                AddGradients(results, "step 0", new BatchNormGradients<T>(
                    new DenseTensor<T>(MemoryOrder.ToLogical(gradients.Input.Data, shape, layout), shape), gradients.Weight, gradients.Bias));
                module.Eval();
                var buffer = (T[])stored.Data.Clone();
                var y = new T[buffer.Length];
                module.Forward(buffer, shape, y, layout);
                Array.Fill(buffer, T.CreateChecked(7));
                Add(results, "step 1 output", MemoryOrder.ToLogical(y, shape, layout), shape);
                var dx = new T[buffer.Length];
                T[] gw = new T[c], gb = new T[c];
                module.Backward(storedGradient.Data, shape, dx, gw, gb, layout);
                Add(results, "step 1 grad_input", MemoryOrder.ToLogical(dx, shape, layout), shape);
                Add(results, "step 1 grad_weight", gw, [c]);
                Add(results, "step 1 grad_bias", gb, [c]);
                break;
            }

            case Scenario.MixedSecondPass:
            {
                var mixed = RandomTensor<T>(5, shape, mean: 1000, std: 0.001);
                var plain = RandomTensor<T>(8, shape, mean: 3, std: 2);
                long perChannel = mixed.Length / c;
                long spatial = perChannel / shape[0];
                for (int i = 0; i < mixed.Length; i++)
                {
                    long channel = i / spatial % c;
                    long p = ((i / (c * spatial)) * spatial) + (i % spatial);
                    if (channel % 2 == 1)
                    {
                        mixed.Data[i] = plain.Data[i];
                    }
                    else if (perChannel >= 16 && (p * 16 % perChannel) < 16)
                    {
                        mixed.Data[i] = T.CreateChecked(1000.05);
                    }
                }

                Add(results, "step 0 output", module.Forward(mixed));
                AddGradients(results, "step 0", module.Backward(gradOutput));
                break;
            }

            case Scenario.NonFiniteExactScale:
            {
                module.Eval();
                module.Eps = 0;
                for (int ch = 0; ch < c; ch++)
                {
                    module.RunningVar![ch] = T.One;
                    module.Weight![ch] = T.CreateChecked(ch % 3 == 0 ? 2.0 : ch % 3 == 1 ? -0.5 : 1.0);
                }

                var special = new[] { T.PositiveInfinity, T.NegativeInfinity, T.NaN };
                var data = (T[])x.Data.Clone();
                for (int i = 0; i < data.Length; i += 7)
                {
                    data[i] = special[(i / 7) % 3];
                }

                foreach (var layout in shape.Length >= 4 ? new[] { MemoryLayout.ChannelsFirst, MemoryLayout.ChannelsLast } : [MemoryLayout.ChannelsFirst])
                {
                    string step = layout == MemoryLayout.ChannelsFirst ? "step 0" : "step 1 (channels-last)";
                    var stored = new DenseTensor<T>(MemoryOrder.ToMemory(data, shape, layout), shape);
                    var y = MemoryOrder.ToLogical(module.Forward(stored, layout).Data, shape, layout);
                    for (int i = 0; i < data.Length; i++)
                    {
                        int ch = (int)(i / (data.Length / shape[0] / c) % c);
                        T expected = T.IsNaN(data[i]) ? T.NaN : T.IsInfinity(data[i]) ? data[i] * module.Weight![ch] : y[i];
                        if (!(T.IsNaN(expected) ? T.IsNaN(y[i]) : y[i] == expected))
                        {
                            throw new InvalidOperationException(
                                $"NonFiniteExactScale {execution} {layout}: x{Index(shape, i)} = {data[i]} gave {y[i]}, expected {expected} (α exact, α_lo = 0)");
                        }
                    }

                    Add(results, step + " output", y, shape);
                    var gradients = module.Backward(new DenseTensor<T>(MemoryOrder.ToMemory(gradOutput.Data, shape, layout), shape), layout);
                    AddGradients(results, step, new BatchNormGradients<T>(
                        new DenseTensor<T>(MemoryOrder.ToLogical(gradients.Input.Data, shape, layout), shape), gradients.Weight, gradients.Bias));
                }

                break;
            }

            case Scenario.NotTracking:
                Add(results, "step 0 output", module.Forward(x));
                AddGradients(results, "step 0", module.Backward(gradOutput));
                module.Eval();
                Add(results, "step 1 output", module.Forward(RandomTensor<T>(4, shape, mean: 0.5, std: 3)));
                break;
        }

        if (track)
        {
            Add(results, "running_mean", module.RunningMean!, [c]);
            Add(results, "running_var", module.RunningVar!, [c]);
            results.Add(new NamedResult("num_batches_tracked", [], [(ulong)module.NumBatchesTracked!.Value], [module.NumBatchesTracked!.Value]));
        }

        return results;
    }

    private static List<NamedResult> RunInstanceOrGroupNorm<T>(Scenario scenario, int[] shape, LibraryExecution execution)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool instance = scenario == Scenario.InstanceNormTrainBackward;
        bool unbatched = instance && shape.Length == 2;
        int c = unbatched ? shape[0] : shape[1];
        NormBase<T> module = !instance ? new GroupNorm<T>(c % 2 == 0 ? c / 2 : 1, c)
            : shape.Length switch
            {
                2 or 3 => new InstanceNorm1d<T>(c, momentum: 0.3, affine: true, trackRunningStats: true),
                4 => new InstanceNorm2d<T>(c, momentum: 0.3, affine: true, trackRunningStats: true),
                _ => new InstanceNorm3d<T>(c, momentum: 0.3, affine: true, trackRunningStats: true),
            };
        execution.ApplyTo(module);
        RandomAffine(module, 13);
        if (instance)
        {
            LoadRunningStatistics(module, 6);
        }

        var results = new List<NamedResult>();
        var x = RandomTensor<T>(1, shape, mean: 3, std: 2);
        var gradOutput = RandomTensor<T>(2, shape);
        Add(results, "step 0 output", module.Forward(x));
        AddGradients(results, "step 0", module.Backward(gradOutput));
        if (instance)
        {
            module.Eval();
            Add(results, "step 1 output", module.Forward(x));
            AddGradients(results, "step 1", module.Backward(gradOutput));
            module.Train();
        }

        if (shape.Length >= 4)
        {
            const MemoryLayout layout = MemoryLayout.ChannelsLast;
            var stored = new DenseTensor<T>(MemoryOrder.ToMemory(x.Data, shape, layout), shape);
            var storedGradient = new DenseTensor<T>(MemoryOrder.ToMemory(gradOutput.Data, shape, layout), shape);
            Add(results, "step 2 output (channels-last)", MemoryOrder.ToLogical(module.Forward(stored, layout).Data, shape, layout), shape);
            var gradients = module.Backward(storedGradient, layout);
            AddGradients(results, "step 2 (channels-last)", new BatchNormGradients<T>(
                new DenseTensor<T>(MemoryOrder.ToLogical(gradients.Input.Data, shape, layout), shape), gradients.Weight, gradients.Bias));
        }

        if (instance)
        {
            Add(results, "running_mean", module.RunningMean!, [c]);
            Add(results, "running_var", module.RunningVar!, [c]);
        }

        return results;
    }

    /// <summary>Whether the scenario runs LayerNorm or RMSNorm (always the channel path, whatever the forced path).</summary>
    public static bool IsElementNorm(Scenario scenario) => scenario is Scenario.LayerNormTrainBackward or Scenario.RMSNormTrainBackward;

    private static List<NamedResult> RunElementNorm<T>(Scenario scenario, int[] shape, LibraryExecution execution)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool layer = scenario == Scenario.LayerNormTrainBackward;
        var x = RandomTensor<T>(1, shape, mean: layer ? 3 : 0, std: 2);
        var gradOutput = RandomTensor<T>(2, shape);
        var results = new List<NamedResult>();
        var normalizedShapes = shape.Length >= 3 ? new[] { shape[^1..], shape[^2..] } : [shape[^1..]];
        for (int variant = 0; variant < normalizedShapes.Length; variant++)
        {
            int[] normalized = normalizedShapes[variant];
            NormBase<T> module = layer
                ? new LayerNorm<T>(normalized, bias: variant == 0)
                : new RMSNorm<T>(normalized, eps: variant == 0 ? null : 1e-6);
            execution.ApplyTo(module);
            RandomAffine(module, 17 + variant);
            string step = $"normalized [{string.Join('x', normalized)}]";
            Add(results, step + " output", module.Forward(x));
            AddGradients(results, step, module.Backward(gradOutput));
        }

        return results;
    }

    /// <summary>Seeded running statistics: means in [−2, 2), variances in [0.25, 2.25).</summary>
    private static void LoadRunningStatistics<T>(NormBase<T> module, int seed)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        for (int ch = 0; ch < module.NumFeatures; ch++)
        {
            module.RunningMean![ch] = T.CreateChecked(random.NextDouble() * 4 - 2);
            module.RunningVar![ch] = T.CreateChecked(0.25 + random.NextDouble() * 2);
        }
    }

    private static void AddGradients<T>(List<NamedResult> results, string step, BatchNormGradients<T> gradients)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Add(results, step + " grad_input", gradients.Input);
        if (gradients.Weight is not null)
        {
            Add(results, step + " grad_weight", gradients.Weight, [gradients.Weight.Length]);
        }

        if (gradients.Bias is not null)
        {
            Add(results, step + " grad_bias", gradients.Bias, [gradients.Bias.Length]);
        }
    }

    private static void Add<T>(List<NamedResult> results, string name, DenseTensor<T> tensor)
        where T : unmanaged, IFloatingPointIeee754<T> => Add(results, name, tensor.Data, tensor.Shape);

    private static void Add<T>(List<NamedResult> results, string name, T[] data, int[] shape)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var bits = new ulong[data.Length];
        var values = new double[data.Length];
        for (int i = 0; i < data.Length; i++)
        {
            values[i] = double.CreateChecked(data[i]);
            bits[i] = typeof(T) == typeof(float)
                ? BitConverter.SingleToUInt32Bits(float.CreateChecked(data[i]))
                : BitConverter.DoubleToUInt64Bits(values[i]);
        }

        results.Add(new NamedResult(name, shape, bits, values));
    }

    /// <summary>Null when equal, else a message naming the tensor and the first differing [n, c, s] index.</summary>
    public static string? FirstDifference(List<NamedResult> expected, List<NamedResult> actual)
    {
        if (expected.Count != actual.Count)
        {
            return $"{actual.Count} results instead of {expected.Count}";
        }

        for (int t = 0; t < expected.Count; t++)
        {
            var e = expected[t];
            var a = actual[t];
            if (e.Bits.Length != a.Bits.Length)
            {
                return $"{e.Name}: {a.Bits.Length} elements instead of {e.Bits.Length}";
            }

            for (int i = 0; i < e.Bits.Length; i++)
            {
                if (e.Bits[i] != a.Bits[i])
                {
                    return string.Create(CultureInfo.InvariantCulture,
                        $"{e.Name}{Index(e.Shape, i)}: {e.Values[i]:R} vs {a.Values[i]:R} (bits 0x{e.Bits[i]:X} vs 0x{a.Bits[i]:X})");
                }
            }
        }

        return null;
    }

    /// <summary>"[n=…, c=…, s=…]" for an (N, C, ...) tensor, "[c=…]" for a vector.</summary>
    public static string Index(int[] shape, long flat)
    {
        if (shape.Length < 2)
        {
            return string.Create(CultureInfo.InvariantCulture, $"[c={flat}]");
        }

        long spatial = 1;
        for (int d = 2; d < shape.Length; d++)
        {
            spatial *= shape[d];
        }

        long s = flat % spatial;
        long c = flat / spatial % shape[1];
        long n = flat / spatial / shape[1];
        return string.Create(CultureInfo.InvariantCulture, $"[n={n}, c={c}, s={s}]");
    }

    /// <summary>First 16 hex digits of SHA-256 over the result's bits (little-endian, 4 bytes per float element).</summary>
    public static string Hash(NamedResult result, bool isFloat)
    {
        int size = isFloat ? 4 : 8;
        var bytes = new byte[result.Bits.Length * size];
        for (int i = 0; i < result.Bits.Length; i++)
        {
            if (isFloat)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), (uint)result.Bits[i]);
            }
            else
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * 8), result.Bits[i]);
            }
        }

        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes))[..16];
    }
}
