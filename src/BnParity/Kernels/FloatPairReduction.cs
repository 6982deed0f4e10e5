using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>
/// The terms of a float pair reduction at one position: it sums <c>A</c> and <c>P·Q</c> (the product fused into the
/// accumulator). <see cref="FloatPairReduction"/> owns the loop; an operator only says what A, P and Q are.
/// </summary>
internal interface IFloatPairTerms
{
    /// <summary>Whether the reduction has a <see cref="Vector512{T}"/> main loop. It changes the summation order (16-lane
    /// partials), so enabling it for an operator changes its results on AVX-512 hardware and the golden bits.</summary>
    static abstract bool HasWideLoop { get; }

    /// <summary>A, P and Q for the 8 floats at element offset <paramref name="p"/> from the operator's bases.</summary>
    (Vector256<float> A, Vector256<float> P, Vector256<float> Q) Terms256(long p);

    /// <summary>A, P and Q for the 16 floats at element offset <paramref name="p"/>.</summary>
    (Vector512<float> A, Vector512<float> P, Vector512<float> Q) Terms512(long p);

    /// <summary>A, P and Q for the element at offset <paramref name="p"/>, in double (the scalar tail).</summary>
    (double A, double P, double Q) TermsScalar(long p);
}

/// <summary>
/// The one loop skeleton of the float reductions (<see cref="FloatKernels"/>): Σ A and Σ P·Q over <c>runs</c> runs of
/// <c>length</c> elements, <c>stride</c> apart. Float accumulates over short stretches only: four
/// <see cref="Vector256{T}"/> float accumulators per sum take 32 elements per step; after at most
/// <see cref="FlushSteps"/> steps (≤ 8 terms per lane, relative error ≤ 8u of the sum of magnitudes) they are widened
/// and added into four double accumulators, lane by lane in a fixed order; the remaining whole 8-element vectors (at
/// most 3) go into one float accumulator flushed into the first double accumulator. Operators with a wide loop first
/// take 64 elements per step in 16-lane float accumulators (the same ≤ 8 terms per lane), flushed into 8-lane double
/// accumulators that are folded into the 4-lane ones (lower half, upper half). The accumulators carry over from run to
/// run; scalar tails are summed in double in run order; at the end the double accumulators are combined in
/// <see cref="LaneOrder"/> and the tail total is added. The order depends on the run length, group size and vector
/// hardware only, never on the thread count. Float reductions are never aligned: a peel would make the order depend
/// on the address.
/// </summary>
internal static class FloatPairReduction
{
    /// <summary>Steps per float accumulation stretch before flushing into double.</summary>
    private const int FlushSteps = 8;

    private const int Step = 32;

    private const int WideStep = 64;

    public static void Run<TTerms>(ref TTerms terms, int length, int runs, long stride, out double sumA, out double sumPQ)
        where TTerms : struct, IFloatPairTerms
    {
        double t1 = 0, t2 = 0;
        Vector256<double> s0 = default, s1 = default, s2 = default, s3 = default;
        Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
        bool vec = Vector256.IsHardwareAccelerated && length >= 8;
        bool wide = vec && TTerms.HasWideLoop && Vector512.IsHardwareAccelerated && length >= WideStep;
        for (int run = 0; run < runs; run++)
        {
            long o = run * stride;
            int i = 0;
            if (wide)
            {
                i = RunWide(ref terms, o, length, ref s0, ref s1, ref s2, ref s3, ref a0, ref a1, ref a2, ref a3);
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
                        var (x0, p0, q0) = terms.Terms256(o + i);
                        var (x1, p1, q1) = terms.Terms256(o + i + 8);
                        var (x2, p2, q2) = terms.Terms256(o + i + 16);
                        var (x3, p3, q3) = terms.Terms256(o + i + 24);
                        g0 += x0;
                        g1 += x1;
                        g2 += x2;
                        g3 += x3;
                        f0 = Vector256.FusedMultiplyAdd(p0, q0, f0);
                        f1 = Vector256.FusedMultiplyAdd(p1, q1, f1);
                        f2 = Vector256.FusedMultiplyAdd(p2, q2, f2);
                        f3 = Vector256.FusedMultiplyAdd(p3, q3, f3);
                    }

                    Flush(g0, g1, g2, g3, ref s0, ref s1, ref s2, ref s3);
                    Flush(f0, f1, f2, f3, ref a0, ref a1, ref a2, ref a3);
                }

                if (i <= length - 8)
                {
                    Vector256<float> g = default, f = default;
                    for (; i <= length - 8; i += 8)
                    {
                        var (x0, p0, q0) = terms.Terms256(o + i);
                        g += x0;
                        f = Vector256.FusedMultiplyAdd(p0, q0, f);
                    }

                    Flush1(g, ref s0);
                    Flush1(f, ref a0);
                }
            }

            for (; i < length; i++)
            {
                var (x0, p0, q0) = terms.TermsScalar(o + i);
                t1 += x0;
                t2 += p0 * q0;
            }
        }

        sumA = vec ? LaneOrder.Combine(s0, s1, s2, s3) + t1 : t1;
        sumPQ = vec ? LaneOrder.Combine(a0, a1, a2, a3) + t2 : t2;
    }

    /// <summary>The <see cref="Vector512{T}"/> main loop of one run (AVX-512 hardware). Returns the index reached; the
    /// caller's 32/8-element loops and scalar tail finish the run.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int RunWide<TTerms>(
        ref TTerms terms, long o, int length,
        ref Vector256<double> s0, ref Vector256<double> s1, ref Vector256<double> s2, ref Vector256<double> s3,
        ref Vector256<double> a0, ref Vector256<double> a1, ref Vector256<double> a2, ref Vector256<double> a3)
        where TTerms : struct, IFloatPairTerms
    {
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
                var (x0, p0, q0) = terms.Terms512(o + i);
                var (x1, p1, q1) = terms.Terms512(o + i + 16);
                var (x2, p2, q2) = terms.Terms512(o + i + 32);
                var (x3, p3, q3) = terms.Terms512(o + i + 48);
                g0 += x0;
                g1 += x1;
                g2 += x2;
                g3 += x3;
                f0 = Vector512.FusedMultiplyAdd(p0, q0, f0);
                f1 = Vector512.FusedMultiplyAdd(p1, q1, f1);
                f2 = Vector512.FusedMultiplyAdd(p2, q2, f2);
                f3 = Vector512.FusedMultiplyAdd(p3, q3, f3);
            }

            ws0 += WidenPair(g0, g2);
            ws1 += WidenPair(g1, g3);
            wa0 += WidenPair(f0, f2);
            wa1 += WidenPair(f1, f3);
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

    /// <summary>(lo(u) + hi(u)) + (lo(v) + hi(v)) widened to double: the wide loop's fixed flush order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> WidenPair(Vector512<float> u, Vector512<float> v)
    {
        var (lu, hu) = Vector512.Widen(u);
        var (lv, hv) = Vector512.Widen(v);
        return (lu + hu) + (lv + hv);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Flush(
        Vector256<float> f0, Vector256<float> f1, Vector256<float> f2, Vector256<float> f3,
        ref Vector256<double> a0, ref Vector256<double> a1, ref Vector256<double> a2, ref Vector256<double> a3)
    {
        Flush1(f0, ref a0);
        Flush1(f1, ref a1);
        Flush1(f2, ref a2);
        Flush1(f3, ref a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Flush1(Vector256<float> f, ref Vector256<double> a)
    {
        var (l, h) = Vector256.Widen(f);
        a += l + h;
    }
}
