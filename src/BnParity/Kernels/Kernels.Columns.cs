using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <content>
/// Column kernels: one row segment of an (N, C·S) matrix with per-column double parameters and accumulators, for the
/// row path (short spatial runs). Each column is its own accumulator, summed sequentially over rows, so the vector
/// and scalar paths perform the same operations per column.
/// </content>
internal static unsafe partial class Kernels<T>
{
    /// <summary>acc[j] += x[j].</summary>
    public static void AddColumns(T* x, double* acc, int length)
    {
        int i = 0;
        if (UseVectors)
        {
            for (; i <= length - Step; i += Step)
            {
                Load16(x + i, out var v0, out var v1, out var v2, out var v3);
                (Vector256.Load(acc + i) + v0).Store(acc + i);
                (Vector256.Load(acc + i + 4) + v1).Store(acc + i + 4);
                (Vector256.Load(acc + i + 8) + v2).Store(acc + i + 8);
                (Vector256.Load(acc + i + 12) + v3).Store(acc + i + 12);
            }
        }

        for (; i < length; i++)
        {
            acc[i] += ToDouble(x[i]);
        }
    }

    /// <summary>acc[j] += (x[j] − mean[j])².</summary>
    public static void AddSquaredDeviationColumns(T* x, double* mean, double* acc, int length)
    {
        int i = 0;
        if (UseVectors)
        {
            for (; i <= length - Step; i += Step)
            {
                Load16(x + i, out var v0, out var v1, out var v2, out var v3);
                v0 -= Vector256.Load(mean + i);
                v1 -= Vector256.Load(mean + i + 4);
                v2 -= Vector256.Load(mean + i + 8);
                v3 -= Vector256.Load(mean + i + 12);
                (Vector256.Load(acc + i) + (v0 * v0)).Store(acc + i);
                (Vector256.Load(acc + i + 4) + (v1 * v1)).Store(acc + i + 4);
                (Vector256.Load(acc + i + 8) + (v2 * v2)).Store(acc + i + 8);
                (Vector256.Load(acc + i + 12) + (v3 * v3)).Store(acc + i + 12);
            }
        }

        for (; i < length; i++)
        {
            double d = ToDouble(x[i]) - mean[i];
            acc[i] += d * d;
        }
    }

    /// <summary>accS[j] += dy[j]; accD[j] += (x[j] − mean[j])·dy[j].</summary>
    public static void AddSumDotColumns(T* x, T* dy, double* mean, double* accS, double* accD, int length)
    {
        int i = 0;
        if (UseVectors)
        {
            for (; i <= length - 8; i += 8)
            {
                Load8(x + i, out var x0, out var x1);
                Load8(dy + i, out var g0, out var g1);
                (Vector256.Load(accS + i) + g0).Store(accS + i);
                (Vector256.Load(accS + i + 4) + g1).Store(accS + i + 4);
                (Vector256.Load(accD + i) + ((x0 - Vector256.Load(mean + i)) * g0)).Store(accD + i);
                (Vector256.Load(accD + i + 4) + ((x1 - Vector256.Load(mean + i + 4)) * g1)).Store(accD + i + 4);
            }
        }

        for (; i < length; i++)
        {
            double g = ToDouble(dy[i]);
            accS[i] += g;
            accD[i] += (ToDouble(x[i]) - mean[i]) * g;
        }
    }

    /// <summary>y[j] = (x[j] − mean[j])·scale[j] + shift[j], rounded once to T.</summary>
    public static void NormalizeColumns(T* x, T* y, double* mean, double* scale, double* shift, int length)
    {
        int i = 0;
        if (UseVectors)
        {
            for (; i <= length - 8; i += 8)
            {
                Load8(x + i, out var v0, out var v1);
                Store8(
                    y + i,
                    ((v0 - Vector256.Load(mean + i)) * Vector256.Load(scale + i)) + Vector256.Load(shift + i),
                    ((v1 - Vector256.Load(mean + i + 4)) * Vector256.Load(scale + i + 4)) + Vector256.Load(shift + i + 4));
            }
        }

        for (; i < length; i++)
        {
            y[i] = FromDouble(((ToDouble(x[i]) - mean[i]) * scale[i]) + shift[i]);
        }
    }

    /// <summary>dx[j] = (dy[j] − gradMean[j] − (x[j] − mean[j])·k[j])·scale[j], rounded once to T.</summary>
    public static void BackwardBatchColumns(T* x, T* dy, T* dx, double* mean, double* k, double* gradMean, double* scale, int length)
    {
        int i = 0;
        if (UseVectors)
        {
            for (; i <= length - 8; i += 8)
            {
                Load8(x + i, out var x0, out var x1);
                Load8(dy + i, out var g0, out var g1);
                Store8(
                    dx + i,
                    (g0 - Vector256.Load(gradMean + i) - ((x0 - Vector256.Load(mean + i)) * Vector256.Load(k + i))) * Vector256.Load(scale + i),
                    (g1 - Vector256.Load(gradMean + i + 4) - ((x1 - Vector256.Load(mean + i + 4)) * Vector256.Load(k + i + 4))) * Vector256.Load(scale + i + 4));
            }
        }

        for (; i < length; i++)
        {
            dx[i] = FromDouble((ToDouble(dy[i]) - gradMean[i] - ((ToDouble(x[i]) - mean[i]) * k[i])) * scale[i]);
        }
    }

    /// <summary>dx[j] = dy[j]·scale[j], rounded once to T.</summary>
    public static void ScaleColumns(T* dy, T* dx, double* scale, int length)
    {
        int i = 0;
        if (UseVectors)
        {
            for (; i <= length - 8; i += 8)
            {
                Load8(dy + i, out var v0, out var v1);
                Store8(dx + i, v0 * Vector256.Load(scale + i), v1 * Vector256.Load(scale + i + 4));
            }
        }

        for (; i < length; i++)
        {
            dx[i] = FromDouble(ToDouble(dy[i]) * scale[i]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load8(T* p, out Vector256<double> v0, out Vector256<double> v1)
    {
        if (typeof(T) == typeof(float))
        {
            (v0, v1) = Vector256.Widen(Vector256.Load((float*)p));
        }
        else
        {
            v0 = Vector256.Load((double*)p);
            v1 = Vector256.Load((double*)p + 4);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store8(T* p, Vector256<double> v0, Vector256<double> v1)
    {
        if (typeof(T) == typeof(float))
        {
            Vector256.Narrow(v0, v1).Store((float*)p);
        }
        else
        {
            v0.Store((double*)p);
            v1.Store((double*)p + 4);
        }
    }
}
