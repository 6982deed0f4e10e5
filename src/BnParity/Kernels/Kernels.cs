using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>
/// Contiguous-run kernels shared by float and double. Every reduction accumulates in double with a
/// FIXED order: 16 elements per step into four independent <see cref="Vector256{T}"/> double
/// accumulators (lanes 0..15 of the step map to accumulator/lane by position), combined as
/// <c>(a0 + a1) + (a2 + a3)</c>, then lanes summed 0+1+2+3 left to right, then the scalar tail
/// (elements past the last full step) added left to right. The order depends only on the run length,
/// never on the thread count, so results are bit-identical for any degree of parallelism.
/// Element-wise kernels compute in double and round to T once; vector and scalar-tail paths perform
/// the same IEEE operations, so they agree bit for bit.
/// </summary>
internal static unsafe partial class Kernels<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private const int Step = 16;

    private static bool UseVectors => Vector256.IsHardwareAccelerated;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double ToDouble(T value) => Widening<T>.ToDouble(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T FromDouble(double value) => Widening<T>.FromDouble(value);

    /// <summary>Loads 16 elements at p as four double vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load16(T* p, out Vector256<double> v0, out Vector256<double> v1, out Vector256<double> v2, out Vector256<double> v3)
    {
        if (typeof(T) == typeof(float))
        {
            float* f = (float*)p;
            (v0, v1) = Vector256.Widen(Vector256.Load(f));
            (v2, v3) = Vector256.Widen(Vector256.Load(f + 8));
        }
        else
        {
            double* d = (double*)p;
            v0 = Vector256.Load(d);
            v1 = Vector256.Load(d + 4);
            v2 = Vector256.Load(d + 8);
            v3 = Vector256.Load(d + 12);
        }
    }

    /// <summary>Stores four double vectors as 16 elements at p (rounding to float when T is float).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store16(T* p, Vector256<double> v0, Vector256<double> v1, Vector256<double> v2, Vector256<double> v3)
    {
        if (typeof(T) == typeof(float))
        {
            float* f = (float*)p;
            Vector256.Narrow(v0, v1).Store(f);
            Vector256.Narrow(v2, v3).Store(f + 8);
        }
        else
        {
            double* d = (double*)p;
            v0.Store(d);
            v1.Store(d + 4);
            v2.Store(d + 8);
            v3.Store(d + 12);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double Combine(Vector256<double> a0, Vector256<double> a1, Vector256<double> a2, Vector256<double> a3) =>
        LaneOrder.Combine(a0, a1, a2, a3);

    /// <summary>Σ x over a run, in double (fixed order, see class remarks).</summary>
    public static double Sum(T* x, int length)
    {
        int i = 0;
        double total = 0;
        if (UseVectors && length >= Step)
        {
            Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= length - Step; i += Step)
            {
                Load16(x + i, out var v0, out var v1, out var v2, out var v3);
                a0 += v0;
                a1 += v1;
                a2 += v2;
                a3 += v3;
            }

            total = Combine(a0, a1, a2, a3);
        }

        for (; i < length; i++)
        {
            total += ToDouble(x[i]);
        }

        return total;
    }

    /// <summary>Σ (x − mean)² over a run, in double.</summary>
    public static double SumSquaredDeviations(T* x, int length, double mean)
    {
        int i = 0;
        double total = 0;
        if (UseVectors && length >= Step)
        {
            var m = Vector256.Create(mean);
            Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= length - Step; i += Step)
            {
                Load16(x + i, out var v0, out var v1, out var v2, out var v3);
                v0 -= m;
                v1 -= m;
                v2 -= m;
                v3 -= m;
                a0 += v0 * v0;
                a1 += v1 * v1;
                a2 += v2 * v2;
                a3 += v3 * v3;
            }

            total = Combine(a0, a1, a2, a3);
        }

        for (; i < length; i++)
        {
            double d = ToDouble(x[i]) - mean;
            total += d * d;
        }

        return total;
    }

    /// <summary>Σ dy and Σ (x − mean)·dy over a run, in double.</summary>
    public static void SumAndDot(T* x, T* dy, int length, double mean, out double sumDy, out double dot)
    {
        int i = 0;
        double s = 0, d = 0;
        if (UseVectors && length >= Step)
        {
            var m = Vector256.Create(mean);
            Vector256<double> s0 = default, s1 = default, s2 = default, s3 = default;
            Vector256<double> d0 = default, d1 = default, d2 = default, d3 = default;
            for (; i <= length - Step; i += Step)
            {
                Load16(x + i, out var x0, out var x1, out var x2, out var x3);
                Load16(dy + i, out var g0, out var g1, out var g2, out var g3);
                s0 += g0;
                s1 += g1;
                s2 += g2;
                s3 += g3;
                d0 += (x0 - m) * g0;
                d1 += (x1 - m) * g1;
                d2 += (x2 - m) * g2;
                d3 += (x3 - m) * g3;
            }

            s = Combine(s0, s1, s2, s3);
            d = Combine(d0, d1, d2, d3);
        }

        for (; i < length; i++)
        {
            double g = ToDouble(dy[i]);
            s += g;
            d += (ToDouble(x[i]) - mean) * g;
        }

        sumDy = s;
        dot = d;
    }

    /// <summary>y = (x − mean)·scale + shift, in double, rounded once to T. <paramref name="y"/> may equal <paramref name="x"/>.</summary>
    public static void Normalize(T* x, T* y, int length, double mean, double scale, double shift)
    {
        int i = 0;
        if (UseVectors && length >= Step)
        {
            var m = Vector256.Create(mean);
            var a = Vector256.Create(scale);
            var b = Vector256.Create(shift);
            for (; i <= length - Step; i += Step)
            {
                Load16(x + i, out var v0, out var v1, out var v2, out var v3);
                Store16(y + i, ((v0 - m) * a) + b, ((v1 - m) * a) + b, ((v2 - m) * a) + b, ((v3 - m) * a) + b);
            }
        }

        for (; i < length; i++)
        {
            y[i] = FromDouble(((ToDouble(x[i]) - mean) * scale) + shift);
        }
    }

    /// <summary>dx = dy·scale, in double, rounded once to T.</summary>
    public static void Scale(T* dy, T* dx, int length, double scale)
    {
        int i = 0;
        if (UseVectors && length >= Step)
        {
            var a = Vector256.Create(scale);
            for (; i <= length - Step; i += Step)
            {
                Load16(dy + i, out var v0, out var v1, out var v2, out var v3);
                Store16(dx + i, v0 * a, v1 * a, v2 * a, v3 * a);
            }
        }

        for (; i < length; i++)
        {
            dx[i] = FromDouble(ToDouble(dy[i]) * scale);
        }
    }

    /// <summary>
    /// Training-mode input gradient: dx = (a·dy − gradMean − (x − mean)·k)·scale with a = <paramref name="dyScale"/>,
    /// in double, rounded once to T (a = 1 for a set of one channel: a·dy is then dy exactly).
    /// </summary>
    public static void BackwardBatch(T* x, T* dy, T* dx, int length, double mean, double k, double gradMean, double scale, double dyScale)
    {
        int i = 0;
        if (UseVectors && length >= Step)
        {
            var m = Vector256.Create(mean);
            var kk = Vector256.Create(k);
            var gm = Vector256.Create(gradMean);
            var a = Vector256.Create(scale);
            var d = Vector256.Create(dyScale);
            for (; i <= length - Step; i += Step)
            {
                Load16(x + i, out var x0, out var x1, out var x2, out var x3);
                Load16(dy + i, out var g0, out var g1, out var g2, out var g3);
                Store16(
                    dx + i,
                    ((g0 * d) - gm - ((x0 - m) * kk)) * a,
                    ((g1 * d) - gm - ((x1 - m) * kk)) * a,
                    ((g2 * d) - gm - ((x2 - m) * kk)) * a,
                    ((g3 * d) - gm - ((x3 - m) * kk)) * a);
            }
        }

        for (; i < length; i++)
        {
            dx[i] = FromDouble(((ToDouble(dy[i]) * dyScale) - gradMean - ((ToDouble(x[i]) - mean) * k)) * scale);
        }
    }
}
