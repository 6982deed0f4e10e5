using System.Diagnostics;
using System.Numerics;
using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;

namespace BnParity.Benchmarks;

/// <summary>
/// <c>--phases</c>: a roofline-style breakdown of the C# module by phase, in copy-equivalents, without TorchSharp.
/// Each call kind is timed on its own (Stopwatch, median of 15 samples of ≥ 20 ms each, same buffers, same thread
/// count), and the phases are differences of call kinds that share everything else:
/// <list type="bullet">
/// <item>eval = the normalise pass alone (read x, write y) — its floor is 1 CE;</item>
/// <item>statistics = train-fwd − eval (the reduction passes over x);</item>
/// <item>save = train-fwd with SaveForBackward − train-fwd (the span API's copy of x for backward);</item>
/// <item>bwd-batch = the backward of a training step: its reductions over x and dy and the dx pass;</item>
/// <item>bwd-fixed = the backward of an eval step (dx = dy·scale): one read and one write, floor 1 CE;</item>
/// <item>read = one vectorised sum over x: the cost of streaming x once with no writes (the reduction floor);</item>
/// <item>fwd+bwd = a training step as the benchmark runs it (tensor forward that keeps a reference, span backward).</item>
/// </list>
/// Numbers are for reading the design, never for asserting (the machine is shared).
/// </summary>
internal static class PhaseProfile
{
    public static int Run(string[] filters)
    {
        Console.WriteLine(MachineInfo.Line());
        Console.WriteLine("Phase profile (Stopwatch medians; CE = time / one managed copy of x at the same thread count)");
        Console.WriteLine();
        Console.WriteLine("| shape | threads | copy µs | read | eval | train-fwd | statistics | save | bwd-batch | bwd-fixed | fwd+bwd |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (BenchCase c in BatchNormBenchmarks.Cases())
        {
            if (filters.Length > 0 && !filters.Any(f => c.ToString().Contains(f, StringComparison.Ordinal)))
            {
                continue;
            }

            foreach (int threads in new[] { 1, 2 })
            {
                Console.WriteLine(c.DType == ElementType.Float32 ? Profile<float>(c, threads) : Profile<double>(c, threads));
            }
        }

        return 0;
    }

    private static string Profile<T>(BenchCase c, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ModuleConfig config = c.Config;
        MemoryLayout layout = c.Layout;
        int[] shape = c.Shape;
        T[] x = BenchData.Input<T>(shape, 1, layout);
        T[] dy = BenchData.GradOutput<T>(shape, 2);
        T[] y = new T[x.Length];
        T[] dx = new T[x.Length];
        T[] gw = new T[config.NumFeatures];
        T[] gb = new T[config.HasBias ? config.NumFeatures : 0];
        NormBase<T> module = LibraryImplementation.CreateModule<T>(config);
        module.MaxDegreeOfParallelism = threads;

        double copy = Median(() => x.AsSpan().CopyTo(y));
        T sink = T.Zero;
        double read = Median(() => sink += ReadAll(x));

        module.Training = false;
        module.SaveForBackward = false;
        double eval = Median(() => module.Forward(x, shape, y, layout));
        module.SaveForBackward = true;
        module.Forward(x, shape, y, layout);
        double backwardFixed = Median(() => module.Backward(dy, shape, dx, gw, gb, layout));

        module.Training = true;
        module.SaveForBackward = false;
        double train = Median(() => module.Forward(x, shape, y, layout));
        module.SaveForBackward = true;
        double trainSave = Median(() => module.Forward(x, shape, y, layout));
        double backwardBatch = Median(() => module.Backward(dy, shape, dx, gw, gb, layout));
        var xt = new DenseTensor<T>(x, shape);
        var yt = new DenseTensor<T>(y, shape);
        double forwardBackward = Median(() =>
        {
            module.Forward(xt, yt, layout);
            module.Backward(dy, shape, dx, gw, gb, layout);
        });
        GC.KeepAlive(sink);

        string Ce(double t) => (t / copy).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
        return $"| {c} | {threads} | {copy * 1e6:F1} | {Ce(read)} | {Ce(eval)} | {Ce(train)} | {Ce(train - eval)} | {Ce(trainSave - train)} | "
            + $"{Ce(backwardBatch)} | {Ce(backwardFixed)} | {Ce(forwardBackward)} |";
    }

    /// <summary>Streams x once with 4 independent vector accumulators (no writes): the floor of a reduction pass.</summary>
    private static T ReadAll<T>(T[] x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var v = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(x.AsSpan());
        Vector<T> a0 = Vector<T>.Zero, a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        for (; i <= v.Length - 4; i += 4)
        {
            a0 += v[i];
            a1 += v[i + 1];
            a2 += v[i + 2];
            a3 += v[i + 3];
        }

        return Vector.Sum(a0 + a1 + a2 + a3);
    }

    /// <summary>Median seconds per call over 15 samples of enough calls to last ≥ 20 ms, after a warm-up of ≥ 200 ms
    /// and ≥ 60 calls (so the JIT has promoted the kernels to tier 1 before anything is timed).</summary>
    private static double Median(Action call)
    {
        var watch = Stopwatch.StartNew();
        int calls = 0;
        for (int warm = 0; watch.Elapsed.TotalMilliseconds < 200 || warm < 60; warm++)
        {
            call();
        }

        watch.Restart();
        while (watch.Elapsed.TotalMilliseconds < 20 || calls < 3)
        {
            call();
            calls++;
        }

        var samples = new double[15];
        for (int s = 0; s < samples.Length; s++)
        {
            watch.Restart();
            for (int i = 0; i < calls; i++)
            {
                call();
            }

            samples[s] = watch.Elapsed.TotalSeconds / calls;
        }

        Array.Sort(samples);
        return samples[samples.Length / 2];
    }
}
