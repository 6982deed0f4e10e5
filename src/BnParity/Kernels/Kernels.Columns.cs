using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <content>
/// Column kernels: a block of <c>rows</c> rows of an (N, C·S) matrix, <c>rowStride</c> elements apart, with per-column
/// double parameters, for the row path (short spatial runs). Each reduction gives every column its own sum, a left
/// fold over the block's rows starting from 0; the vector paths hold a strip of 16 or 32 columns in registers while
/// they walk down the rows (one load per element, one store per column and block), and the scalar tail folds the same
/// terms in the same order, so every width gives the same bits. The element-wise kernels round each output once to T.
/// </content>
internal static unsafe partial class Kernels<T>
{
    /// <summary>acc[j] = Σ_r x[r, j] (left fold over the rows from 0).</summary>
    public static void SumColumns(T* x, long rowStride, int rows, double* acc, int columns)
    {
        int j = 0;
        if (UseVectors)
        {
            for (; j <= columns - 32; j += 32)
            {
                Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
                Vector256<double> a4 = default, a5 = default, a6 = default, a7 = default;
                T* p = x + j;
                for (int r = 0; r < rows; r++, p += rowStride)
                {
                    Load16(p, out var v0, out var v1, out var v2, out var v3);
                    Load16(p + 16, out var v4, out var v5, out var v6, out var v7);
                    a0 += v0;
                    a1 += v1;
                    a2 += v2;
                    a3 += v3;
                    a4 += v4;
                    a5 += v5;
                    a6 += v6;
                    a7 += v7;
                }

                StoreColumns(acc + j, a0, a1, a2, a3);
                StoreColumns(acc + j + 16, a4, a5, a6, a7);
            }

            for (; j <= columns - 16; j += 16)
            {
                Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
                T* p = x + j;
                for (int r = 0; r < rows; r++, p += rowStride)
                {
                    Load16(p, out var v0, out var v1, out var v2, out var v3);
                    a0 += v0;
                    a1 += v1;
                    a2 += v2;
                    a3 += v3;
                }

                StoreColumns(acc + j, a0, a1, a2, a3);
            }
        }

        for (; j < columns; j++)
        {
            double a = 0;
            for (int r = 0; r < rows; r++)
            {
                a += ToDouble(x[(r * rowStride) + j]);
            }

            acc[j] = a;
        }
    }

    /// <summary>acc[j] = Σ_r (x[r, j] − mean[j])².</summary>
    public static void SumSquaredDeviationColumns(T* x, long rowStride, int rows, double* mean, double* acc, int columns)
    {
        int j = 0;
        if (UseVectors)
        {
            for (; j <= columns - 16; j += 16)
            {
                var m0 = Vector256.Load(mean + j);
                var m1 = Vector256.Load(mean + j + 4);
                var m2 = Vector256.Load(mean + j + 8);
                var m3 = Vector256.Load(mean + j + 12);
                Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
                T* p = x + j;
                for (int r = 0; r < rows; r++, p += rowStride)
                {
                    Load16(p, out var v0, out var v1, out var v2, out var v3);
                    v0 -= m0;
                    v1 -= m1;
                    v2 -= m2;
                    v3 -= m3;
                    a0 += v0 * v0;
                    a1 += v1 * v1;
                    a2 += v2 * v2;
                    a3 += v3 * v3;
                }

                StoreColumns(acc + j, a0, a1, a2, a3);
            }
        }

        for (; j < columns; j++)
        {
            double a = 0;
            for (int r = 0; r < rows; r++)
            {
                double d = ToDouble(x[(r * rowStride) + j]) - mean[j];
                a += d * d;
            }

            acc[j] = a;
        }
    }

    /// <summary>accS[j] = Σ_r dy[r, j]; accD[j] = Σ_r (x[r, j] − mean[j])·dy[r, j].</summary>
    public static void SumDotColumns(T* x, T* dy, long rowStride, int rows, double* mean, double* accS, double* accD, int columns)
    {
        int j = 0;
        if (UseVectors)
        {
            for (; j <= columns - 16; j += 16)
            {
                var m0 = Vector256.Load(mean + j);
                var m1 = Vector256.Load(mean + j + 4);
                var m2 = Vector256.Load(mean + j + 8);
                var m3 = Vector256.Load(mean + j + 12);
                Vector256<double> s0 = default, s1 = default, s2 = default, s3 = default;
                Vector256<double> d0 = default, d1 = default, d2 = default, d3 = default;
                long o = j;
                for (int r = 0; r < rows; r++, o += rowStride)
                {
                    Load16(x + o, out var x0, out var x1, out var x2, out var x3);
                    Load16(dy + o, out var g0, out var g1, out var g2, out var g3);
                    s0 += g0;
                    s1 += g1;
                    s2 += g2;
                    s3 += g3;
                    d0 += (x0 - m0) * g0;
                    d1 += (x1 - m1) * g1;
                    d2 += (x2 - m2) * g2;
                    d3 += (x3 - m3) * g3;
                }

                StoreColumns(accS + j, s0, s1, s2, s3);
                StoreColumns(accD + j, d0, d1, d2, d3);
            }
        }

        for (; j < columns; j++)
        {
            double s = 0, d = 0;
            for (int r = 0; r < rows; r++)
            {
                long o = (r * rowStride) + j;
                double g = ToDouble(dy[o]);
                s += g;
                d += (ToDouble(x[o]) - mean[j]) * g;
            }

            accS[j] = s;
            accD[j] = d;
        }
    }

    /// <summary>y[r, j] = (x[r, j] − mean[j])·scale[j] + shift[j], rounded once to T.</summary>
    public static void NormalizeColumns(T* x, T* y, long rowStride, int rows, double* mean, double* scale, double* shift, int columns)
    {
        int j = 0;
        if (UseVectors)
        {
            for (; j <= columns - 16; j += 16)
            {
                LoadColumns(mean + j, out var m0, out var m1, out var m2, out var m3);
                LoadColumns(scale + j, out var a0, out var a1, out var a2, out var a3);
                LoadColumns(shift + j, out var b0, out var b1, out var b2, out var b3);
                long o = j;
                for (int r = 0; r < rows; r++, o += rowStride)
                {
                    Load16(x + o, out var v0, out var v1, out var v2, out var v3);
                    Store16(y + o, ((v0 - m0) * a0) + b0, ((v1 - m1) * a1) + b1, ((v2 - m2) * a2) + b2, ((v3 - m3) * a3) + b3);
                }
            }
        }

        for (; j < columns; j++)
        {
            for (int r = 0; r < rows; r++)
            {
                long o = (r * rowStride) + j;
                y[o] = FromDouble(((ToDouble(x[o]) - mean[j]) * scale[j]) + shift[j]);
            }
        }
    }

    /// <summary>dx[r, j] = (dy[r, j] − gradMean[j] − (x[r, j] − mean[j])·k[j])·scale[j], rounded once to T.</summary>
    public static void BackwardBatchColumns(T* x, T* dy, T* dx, long rowStride, int rows, double* mean, double* k, double* gradMean, double* scale, int columns)
    {
        int j = 0;
        if (UseVectors)
        {
            for (; j <= columns - 16; j += 16)
            {
                LoadColumns(mean + j, out var m0, out var m1, out var m2, out var m3);
                LoadColumns(k + j, out var k0, out var k1, out var k2, out var k3);
                LoadColumns(gradMean + j, out var c0, out var c1, out var c2, out var c3);
                LoadColumns(scale + j, out var a0, out var a1, out var a2, out var a3);
                long o = j;
                for (int r = 0; r < rows; r++, o += rowStride)
                {
                    Load16(x + o, out var x0, out var x1, out var x2, out var x3);
                    Load16(dy + o, out var g0, out var g1, out var g2, out var g3);
                    Store16(
                        dx + o,
                        (g0 - c0 - ((x0 - m0) * k0)) * a0,
                        (g1 - c1 - ((x1 - m1) * k1)) * a1,
                        (g2 - c2 - ((x2 - m2) * k2)) * a2,
                        (g3 - c3 - ((x3 - m3) * k3)) * a3);
                }
            }
        }

        for (; j < columns; j++)
        {
            for (int r = 0; r < rows; r++)
            {
                long o = (r * rowStride) + j;
                dx[o] = FromDouble((ToDouble(dy[o]) - gradMean[j] - ((ToDouble(x[o]) - mean[j]) * k[j])) * scale[j]);
            }
        }
    }

    /// <summary>dx[r, j] = dy[r, j]·scale[j], rounded once to T.</summary>
    public static void ScaleColumns(T* dy, T* dx, long rowStride, int rows, double* scale, int columns)
    {
        int j = 0;
        if (UseVectors)
        {
            for (; j <= columns - 16; j += 16)
            {
                LoadColumns(scale + j, out var a0, out var a1, out var a2, out var a3);
                long o = j;
                for (int r = 0; r < rows; r++, o += rowStride)
                {
                    Load16(dy + o, out var v0, out var v1, out var v2, out var v3);
                    Store16(dx + o, v0 * a0, v1 * a1, v2 * a2, v3 * a3);
                }
            }
        }

        for (; j < columns; j++)
        {
            for (int r = 0; r < rows; r++)
            {
                long o = (r * rowStride) + j;
                dx[o] = FromDouble(ToDouble(dy[o]) * scale[j]);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void LoadColumns(double* p, out Vector256<double> v0, out Vector256<double> v1, out Vector256<double> v2, out Vector256<double> v3)
    {
        v0 = Vector256.Load(p);
        v1 = Vector256.Load(p + 4);
        v2 = Vector256.Load(p + 8);
        v3 = Vector256.Load(p + 12);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreColumns(double* p, Vector256<double> v0, Vector256<double> v1, Vector256<double> v2, Vector256<double> v3)
    {
        v0.Store(p);
        v1.Store(p + 4);
        v2.Store(p + 8);
        v3.Store(p + 12);
    }
}
