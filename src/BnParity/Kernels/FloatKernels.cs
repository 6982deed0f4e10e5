using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>
/// float-only kernels for the per-channel (contiguous run) path. They do the arithmetic in float with FMA
/// (8 lanes per vector instead of 4 doubles, no widen/narrow) while keeping the accuracy of the double kernels
/// where it matters:
/// <list type="bullet">
/// <item><b>Reductions</b> accumulate in float over short stretches only: four <see cref="Vector256{T}"/> float
/// accumulators take 32 elements per step; after at most <see cref="FlushSteps"/> steps (each lane has then
/// summed ≤ 8 terms, relative error ≤ 8u of the sum of magnitudes) they are widened and added into four double
/// accumulators, lane by lane in a fixed order; the remaining whole 8-element vectors (at most 3) go into one float
/// accumulator flushed into the first double accumulator. A call may cover several runs (a group of short runs
/// of one channel): the accumulators carry over from run to run, scalar tails are summed in a separate double in
/// run order, and at the end the double accumulators are combined as in <see cref="Kernels{T}"/> and the tail
/// total added. The order depends on the run length and group size only, never on the thread count.</item>
/// <item><b>Shifts instead of cancellation</b>: the first pass takes Σ(x − c) and Σ(x − c)² with c a float near the
/// channel mean (the mean of 16 evenly sampled elements); Σ(x − μ)² = Σ(x − c)² − n·(μ − c)² is accepted when the
/// correction is at most 3/4 of Σ(x − c)², else a second pass takes Σ(x − μ_hi)² − n·μ_lo² with μ = μ_hi + μ_lo
/// (μ_hi = (float)μ; the correction is then at most about half the sum because μ_hi is the float nearest μ). For
/// ill-conditioned data (|μ| ≫ σ) x − c and x − μ_hi are exact (Sterbenz), so the float partials only ever add
/// numbers of the size of σ, and neither correction can cancel catastrophically.</item>
/// <item><b>Element-wise outputs</b> use y = fma(d, α_hi, fma(d, α_lo, β')) with d = x − μ_hi (exact when x is
/// within a factor 2 of μ_hi), α = α_hi + α_lo split exactly from the double α, β' = b − μ_lo·α rounded once.
/// The error is ≤ ½u·|d·α| (only when d is inexact) + ½u·|β'| + ½u·|y| (+ O(u²)), never more than libtorch's
/// x·α_T + β_T in float (which adds ½u·|x·α| twice and ½u·|β| with β = b − μ·α) and far smaller when |μ| ≫ σ.</item>
/// </list>
/// Vector and scalar-tail paths of the element-wise kernels perform identical IEEE operations (fused
/// multiply-adds via <see cref="MathF.FusedMultiplyAdd"/>), so they agree bit for bit.
/// </summary>
internal static unsafe class FloatKernels
{
    /// <summary>Steps (of 32 elements) per float accumulation stretch before flushing into double.</summary>
    private const int FlushSteps = 8;

    private const int Step = 32;

    private static bool UseVectors => Vector256.IsHardwareAccelerated;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Flush(
        Vector256<float> f0, Vector256<float> f1, Vector256<float> f2, Vector256<float> f3,
        ref Vector256<double> a0, ref Vector256<double> a1, ref Vector256<double> a2, ref Vector256<double> a3)
    {
        var (l0, h0) = Vector256.Widen(f0);
        var (l1, h1) = Vector256.Widen(f1);
        var (l2, h2) = Vector256.Widen(f2);
        var (l3, h3) = Vector256.Widen(f3);
        a0 += l0 + h0;
        a1 += l1 + h1;
        a2 += l2 + h2;
        a3 += l3 + h3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Flush1(Vector256<float> f, ref Vector256<double> a)
    {
        var (l, h) = Vector256.Widen(f);
        a += l + h;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double Combine(Vector256<double> a0, Vector256<double> a1, Vector256<double> a2, Vector256<double> a3) =>
        LaneOrder.Combine(a0, a1, a2, a3);

    /// <summary>One pass: Σ (x − c) and Σ (x − c)² over <paramref name="runs"/> runs of <paramref name="length"/>
    /// elements, <paramref name="stride"/> apart (float partials of ≤ 8 terms per lane flushed into double, the squares
    /// via FMA; scalar tails summed in double in run order and added at the end).</summary>
    public static void SumAndSquaresShifted(float* x, int length, int runs, long stride, float c, out double sum, out double squares)
    {
        double t1 = 0, t2 = 0;
        var cv = Vector256.Create(c);
        Vector256<double> s0 = default, s1 = default, s2 = default, s3 = default;
        Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
        bool vec = UseVectors && length >= 8;
        bool wide = vec && Vector512.IsHardwareAccelerated && length >= WideStep;
        for (int run = 0; run < runs; run++, x += stride)
        {
            int i = 0;
            if (wide)
            {
                i = SumAndSquaresWide(x, length, c, ref s0, ref s1, ref s2, ref s3, ref a0, ref a1, ref a2, ref a3);
            }

            if (vec)
            {
                int full = length - Step;
                while (i <= full)
                {
                    Vector256<float> g0 = default, g1 = default, g2 = default, g3 = default;
                    Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
                    int end = Math.Min(full, i + ((FlushSteps - 1) * Step));
                    for (; i <= end; i += Step)
                    {
                        var d0 = Vector256.Load(x + i) - cv;
                        var d1 = Vector256.Load(x + i + 8) - cv;
                        var d2 = Vector256.Load(x + i + 16) - cv;
                        var d3 = Vector256.Load(x + i + 24) - cv;
                        g0 += d0;
                        g1 += d1;
                        g2 += d2;
                        g3 += d3;
                        f0 = Vector256.FusedMultiplyAdd(d0, d0, f0);
                        f1 = Vector256.FusedMultiplyAdd(d1, d1, f1);
                        f2 = Vector256.FusedMultiplyAdd(d2, d2, f2);
                        f3 = Vector256.FusedMultiplyAdd(d3, d3, f3);
                    }

                    Flush(g0, g1, g2, g3, ref s0, ref s1, ref s2, ref s3);
                    Flush(f0, f1, f2, f3, ref a0, ref a1, ref a2, ref a3);
                }

                if (i <= length - 8)
                {
                    Vector256<float> g = default, f = default;
                    for (; i <= length - 8; i += 8)
                    {
                        var d0 = Vector256.Load(x + i) - cv;
                        g += d0;
                        f = Vector256.FusedMultiplyAdd(d0, d0, f);
                    }

                    Flush1(g, ref s0);
                    Flush1(f, ref a0);
                }
            }

            for (; i < length; i++)
            {
                double d = (double)x[i] - c;
                t1 += d;
                t2 += d * d;
            }
        }

        sum = vec ? Combine(s0, s1, s2, s3) + t1 : t1;
        squares = vec ? Combine(a0, a1, a2, a3) + t2 : t2;
    }

    private const int WideStep = 64;

    /// <summary>
    /// The <see cref="Vector512{T}"/> main loop of <see cref="SumAndSquaresShifted"/> (AVX-512 hardware): 64 elements
    /// per step into four 16-lane float accumulators per sum, flushed after at most <see cref="FlushSteps"/> steps into
    /// 8-lane double accumulators (the same ≤ 8 terms per lane), which are finally folded into the caller's 4-lane
    /// accumulators (lower half + upper half). Returns the index reached (the caller's 32/8-element loops and scalar
    /// tail finish the run). Fixed order for a given run length on a given machine.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int SumAndSquaresWide(
        float* x, int length, float c,
        ref Vector256<double> s0, ref Vector256<double> s1, ref Vector256<double> s2, ref Vector256<double> s3,
        ref Vector256<double> a0, ref Vector256<double> a1, ref Vector256<double> a2, ref Vector256<double> a3)
    {
        var cv = Vector512.Create(c);
        Vector512<double> ws0 = default, ws1 = default, wa0 = default, wa1 = default;
        int i = 0;
        int full = length - WideStep;
        while (i <= full)
        {
            Vector512<float> g0 = default, g1 = default, g2 = default, g3 = default;
            Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
            int end = Math.Min(full, i + ((FlushSteps - 1) * WideStep));
            for (; i <= end; i += WideStep)
            {
                var d0 = Vector512.Load(x + i) - cv;
                var d1 = Vector512.Load(x + i + 16) - cv;
                var d2 = Vector512.Load(x + i + 32) - cv;
                var d3 = Vector512.Load(x + i + 48) - cv;
                g0 += d0;
                g1 += d1;
                g2 += d2;
                g3 += d3;
                f0 = Vector512.FusedMultiplyAdd(d0, d0, f0);
                f1 = Vector512.FusedMultiplyAdd(d1, d1, f1);
                f2 = Vector512.FusedMultiplyAdd(d2, d2, f2);
                f3 = Vector512.FusedMultiplyAdd(d3, d3, f3);
            }

            var (l0, h0) = Vector512.Widen(g0);
            var (l1, h1) = Vector512.Widen(g1);
            var (l2, h2) = Vector512.Widen(g2);
            var (l3, h3) = Vector512.Widen(g3);
            ws0 += (l0 + h0) + (l2 + h2);
            ws1 += (l1 + h1) + (l3 + h3);
            (l0, h0) = Vector512.Widen(f0);
            (l1, h1) = Vector512.Widen(f1);
            (l2, h2) = Vector512.Widen(f2);
            (l3, h3) = Vector512.Widen(f3);
            wa0 += (l0 + h0) + (l2 + h2);
            wa1 += (l1 + h1) + (l3 + h3);
        }

        s0 += ws0.GetLower();
        s1 += ws0.GetUpper();
        s2 += ws1.GetLower();
        s3 += ws1.GetUpper();
        a0 += wa0.GetLower();
        a1 += wa0.GetUpper();
        a2 += wa1.GetLower();
        a3 += wa1.GetUpper();
        return i;
    }

    /// <summary>Σ dy and Σ (x − m)·dy over runs as in <see cref="SumAndSquaresShifted"/> (m a float), float partials flushed into double.</summary>
    public static void SumAndDotAbout(float* x, float* dy, int length, int runs, long stride, float m, out double sumDy, out double dot)
    {
        double ts = 0, td = 0;
        var mv = Vector256.Create(m);
        Vector256<double> s0 = default, s1 = default, s2 = default, s3 = default;
        Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
        bool vec = UseVectors && length >= 8;
        for (int run = 0; run < runs; run++, x += stride, dy += stride)
        {
            int i = 0;
            if (vec)
            {
                int full = length - Step;
                while (i <= full)
                {
                    Vector256<float> g0 = default, g1 = default, g2 = default, g3 = default;
                    Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
                    int end = Math.Min(full, i + ((FlushSteps - 1) * Step));
                    for (; i <= end; i += Step)
                    {
                        var y0 = Vector256.Load(dy + i);
                        var y1 = Vector256.Load(dy + i + 8);
                        var y2 = Vector256.Load(dy + i + 16);
                        var y3 = Vector256.Load(dy + i + 24);
                        g0 += y0;
                        g1 += y1;
                        g2 += y2;
                        g3 += y3;
                        f0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - mv, y0, f0);
                        f1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 8) - mv, y1, f1);
                        f2 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 16) - mv, y2, f2);
                        f3 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 24) - mv, y3, f3);
                    }

                    Flush(g0, g1, g2, g3, ref s0, ref s1, ref s2, ref s3);
                    Flush(f0, f1, f2, f3, ref a0, ref a1, ref a2, ref a3);
                }

                if (i <= length - 8)
                {
                    Vector256<float> g = default, f = default;
                    for (; i <= length - 8; i += 8)
                    {
                        var y0 = Vector256.Load(dy + i);
                        g += y0;
                        f = Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - mv, y0, f);
                    }

                    Flush1(g, ref s0);
                    Flush1(f, ref a0);
                }
            }

            for (; i < length; i++)
            {
                double g = dy[i];
                ts += g;
                td += ((double)x[i] - m) * g;
            }
        }

        sumDy = vec ? Combine(s0, s1, s2, s3) + ts : ts;
        dot = vec ? Combine(a0, a1, a2, a3) + td : td;
    }

    /// <summary>y = fma(x − m, aHi, fma(x − m, aLo, shift)) element-wise. <paramref name="y"/> may equal <paramref name="x"/>.</summary>
    public static void Normalize(float* x, float* y, int length, float m, float aHi, float aLo, float shift)
    {
        if (aLo == 0)
        {
            // α is a float: the same numbers for finite x (d·0 + b' = b'), and ±∞ rather than ∞·0 = NaN for infinite x.
            NormalizeSingle(x, y, length, m, aHi, shift);
            return;
        }

        int i = 0;
        if (UseVectors && Vector512.IsHardwareAccelerated)
        {
            var mw = Vector512.Create(m);
            var hw = Vector512.Create(aHi);
            var lw = Vector512.Create(aLo);
            var bw = Vector512.Create(shift);
            for (; i <= length - 32; i += 32)
            {
                var d0 = Vector512.Load(x + i) - mw;
                var d1 = Vector512.Load(x + i + 16) - mw;
                Vector512.FusedMultiplyAdd(d0, hw, Vector512.FusedMultiplyAdd(d0, lw, bw)).Store(y + i);
                Vector512.FusedMultiplyAdd(d1, hw, Vector512.FusedMultiplyAdd(d1, lw, bw)).Store(y + i + 16);
            }
        }

        if (UseVectors)
        {
            var mv = Vector256.Create(m);
            var hi = Vector256.Create(aHi);
            var lo = Vector256.Create(aLo);
            var b = Vector256.Create(shift);
            for (; i <= length - 16; i += 16)
            {
                var d0 = Vector256.Load(x + i) - mv;
                var d1 = Vector256.Load(x + i + 8) - mv;
                Vector256.FusedMultiplyAdd(d0, hi, Vector256.FusedMultiplyAdd(d0, lo, b)).Store(y + i);
                Vector256.FusedMultiplyAdd(d1, hi, Vector256.FusedMultiplyAdd(d1, lo, b)).Store(y + i + 8);
            }

            if (i <= length - 8)
            {
                var d0 = Vector256.Load(x + i) - mv;
                Vector256.FusedMultiplyAdd(d0, hi, Vector256.FusedMultiplyAdd(d0, lo, b)).Store(y + i);
                i += 8;
            }
        }

        for (; i < length; i++)
        {
            float d = x[i] - m;
            y[i] = MathF.FusedMultiplyAdd(d, aHi, MathF.FusedMultiplyAdd(d, aLo, shift));
        }
    }

    /// <summary>y = fma(x − m, a, shift) element-wise (<see cref="Normalize"/> when α_lo = 0).</summary>
    private static void NormalizeSingle(float* x, float* y, int length, float m, float a, float shift)
    {
        int i = 0;
        if (UseVectors && Vector512.IsHardwareAccelerated)
        {
            var mw = Vector512.Create(m);
            var aw = Vector512.Create(a);
            var bw = Vector512.Create(shift);
            for (; i <= length - 16; i += 16)
            {
                Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - mw, aw, bw).Store(y + i);
            }
        }

        if (UseVectors)
        {
            var mv = Vector256.Create(m);
            var av = Vector256.Create(a);
            var bv = Vector256.Create(shift);
            for (; i <= length - 8; i += 8)
            {
                Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - mv, av, bv).Store(y + i);
            }
        }

        for (; i < length; i++)
        {
            y[i] = MathF.FusedMultiplyAdd(x[i] - m, a, shift);
        }
    }

    /// <summary>dx = fma(dy, a, fma(x − m, k, c)) element-wise (see <see cref="BatchNorm{T}"/> backward).
    /// <paramref name="nonTemporal"/>: write dx with streaming (non-temporal) stores after a scalar peel to vector
    /// alignment, so that dx neither reads its lines from memory first nor evicts the channel's x and dy from the cache
    /// (the caller sets it for tensors far larger than the cache). Every path performs the same fused multiply-adds, so
    /// the result is bit-identical either way; the kernel ends with a store fence.</summary>
    public static void Backward(float* x, float* dy, float* dx, int length, float m, float k, float c, float a, bool nonTemporal = false)
    {
        int i = 0;
        if (nonTemporal && UseVectors && length >= 64)
        {
            BackwardStreaming(x, dy, dx, length, m, k, c, a);
            return;
        }

        if (UseVectors)
        {
            var mv = Vector256.Create(m);
            var kv = Vector256.Create(k);
            var cv = Vector256.Create(c);
            var av = Vector256.Create(a);
            for (; i <= length - 16; i += 16)
            {
                var t0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - mv, kv, cv);
                var t1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 8) - mv, kv, cv);
                Vector256.FusedMultiplyAdd(Vector256.Load(dy + i), av, t0).Store(dx + i);
                Vector256.FusedMultiplyAdd(Vector256.Load(dy + i + 8), av, t1).Store(dx + i + 8);
            }

            if (i <= length - 8)
            {
                var t0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - mv, kv, cv);
                Vector256.FusedMultiplyAdd(Vector256.Load(dy + i), av, t0).Store(dx + i);
                i += 8;
            }
        }

        for (; i < length; i++)
        {
            dx[i] = MathF.FusedMultiplyAdd(dy[i], a, MathF.FusedMultiplyAdd(x[i] - m, k, c));
        }
    }
    private static void BackwardStreaming(float* x, float* dy, float* dx, int length, float m, float k, float c, float a)
    {
        bool wide = Vector512.IsHardwareAccelerated;
        int align = wide ? 64 : 32;
        int i = 0;
        while (i < length && ((nint)(dx + i) & (align - 1)) != 0)
        {
            dx[i] = MathF.FusedMultiplyAdd(dy[i], a, MathF.FusedMultiplyAdd(x[i] - m, k, c));
            i++;
        }

        if (wide)
        {
            var mw = Vector512.Create(m);
            var kw = Vector512.Create(k);
            var cw = Vector512.Create(c);
            var aw = Vector512.Create(a);
            for (; i <= length - 32; i += 32)
            {
                var t0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - mw, kw, cw);
                var t1 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 16) - mw, kw, cw);
                Vector512.FusedMultiplyAdd(Vector512.Load(dy + i), aw, t0).StoreAlignedNonTemporal(dx + i);
                Vector512.FusedMultiplyAdd(Vector512.Load(dy + i + 16), aw, t1).StoreAlignedNonTemporal(dx + i + 16);
            }
        }
        else
        {
            var mv = Vector256.Create(m);
            var kv = Vector256.Create(k);
            var cv = Vector256.Create(c);
            var av = Vector256.Create(a);
            for (; i <= length - 16; i += 16)
            {
                var t0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - mv, kv, cv);
                var t1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 8) - mv, kv, cv);
                Vector256.FusedMultiplyAdd(Vector256.Load(dy + i), av, t0).StoreAlignedNonTemporal(dx + i);
                Vector256.FusedMultiplyAdd(Vector256.Load(dy + i + 8), av, t1).StoreAlignedNonTemporal(dx + i + 8);
            }
        }

        for (; i < length; i++)
        {
            dx[i] = MathF.FusedMultiplyAdd(dy[i], a, MathF.FusedMultiplyAdd(x[i] - m, k, c));
        }

        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            System.Runtime.Intrinsics.X86.Sse.StoreFence();
        }
    }
}
