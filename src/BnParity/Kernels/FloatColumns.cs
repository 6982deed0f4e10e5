using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>
/// Float column kernels of the row path: a block of <c>rows</c> rows of an (N, C·S) float matrix, <c>rowStride</c>
/// elements apart, with per-column float parameters. This is the layout a channels-last (N·H·W, C) input has, and the
/// float arithmetic of <see cref="FloatKernels"/> per column instead of per run:
/// <list type="bullet">
/// <item><b>Statistics</b> sum x − c and (x − c)² in float over stretches of at most <see cref="FlushRows"/> rows
/// (relative error ≤ 8u of the stretch's sum of magnitudes, as the channel path's float lanes), each stretch widened
/// and added into the column's double partial in row order.</item>
/// <item><b>Outputs</b> are y = fma(x − m, α_hi, fma(x − m, α_lo, β')) per column (β' alone when α_lo = 0), the
/// channel path's formula, so the same coefficients give the same bits in either layout.</item>
/// </list>
/// Lanes are columns, so every column sees the same operations in the same order whatever the vector width: the
/// 512-bit, 256-bit and scalar paths give identical bits.
/// </summary>
internal static unsafe class FloatColumns
{
    /// <summary>Rows per float accumulation stretch before it is widened into double.</summary>
    internal const int FlushRows = 8;

    /// <summary>sum[j] = Σ_r (x[r, j] − c[j]) and squares[j] = Σ_r (x[r, j] − c[j])², each a left fold of the
    /// stretches' float partials (in double) from 0.</summary>
    public static void SumAndSquaresShifted(float* x, long rowStride, int rows, float* c, double* sum, double* squares, int columns)
    {
        new Span<double>(sum, columns).Clear();
        new Span<double>(squares, columns).Clear();
        for (int r0 = 0; r0 < rows; r0 += FlushRows)
        {
            int r1 = Math.Min(rows, r0 + FlushRows);
            float* stretch = x + (r0 * rowStride);
            int j = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; j <= columns - 16; j += 16)
                {
                    var shift = Vector512.Load(c + j);
                    Vector512<float> a = default, q = default;
                    float* p = stretch + j;
                    for (int r = r0; r < r1; r++, p += rowStride)
                    {
                        var d = Vector512.Load(p) - shift;
                        a += d;
                        q = Vector512.FusedMultiplyAdd(d, d, q);
                    }

                    AddWidened(sum + j, a);
                    AddWidened(squares + j, q);
                }
            }

            if (Vector256.IsHardwareAccelerated)
            {
                for (; j <= columns - 8; j += 8)
                {
                    var shift = Vector256.Load(c + j);
                    Vector256<float> a = default, q = default;
                    float* p = stretch + j;
                    for (int r = r0; r < r1; r++, p += rowStride)
                    {
                        var d = Vector256.Load(p) - shift;
                        a += d;
                        q = Vector256.FusedMultiplyAdd(d, d, q);
                    }

                    AddWidened(sum + j, a);
                    AddWidened(squares + j, q);
                }
            }

            for (; j < columns; j++)
            {
                float a = 0, q = 0;
                float* p = stretch + j;
                for (int r = r0; r < r1; r++, p += rowStride)
                {
                    float d = *p - c[j];
                    a += d;
                    q = MathF.FusedMultiplyAdd(d, d, q);
                }

                sum[j] += a;
                squares[j] += q;
            }
        }
    }

    /// <summary>y[r, j] = fma(x − m[j], hi[j], fma(x − m[j], lo[j], b[j])), or fma(x − m[j], hi[j], b[j]) where lo[j] = 0
    /// (so an infinite x gives ±∞, not ∞·0 = NaN, as <see cref="FloatKernels.Normalize"/>). y may equal x.</summary>
    public static void Normalize(float* x, float* y, long rowStride, int rows, float* m, float* hi, float* lo, float* b, int columns)
    {
        for (int r = 0; r < rows; r++)
        {
            float* xr = x + (r * rowStride);
            float* yr = y + (r * rowStride);
            int j = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; j <= columns - 16; j += 16)
                {
                    var d = Vector512.Load(xr + j) - Vector512.Load(m + j);
                    var low = Vector512.Load(lo + j);
                    var shift = Vector512.Load(b + j);
                    var inner = Vector512.ConditionalSelect(Vector512.Equals(low, Vector512<float>.Zero), shift, Vector512.FusedMultiplyAdd(d, low, shift));
                    Vector512.FusedMultiplyAdd(d, Vector512.Load(hi + j), inner).Store(yr + j);
                }
            }

            if (Vector256.IsHardwareAccelerated)
            {
                for (; j <= columns - 8; j += 8)
                {
                    var d = Vector256.Load(xr + j) - Vector256.Load(m + j);
                    var low = Vector256.Load(lo + j);
                    var shift = Vector256.Load(b + j);
                    var inner = Vector256.ConditionalSelect(Vector256.Equals(low, Vector256<float>.Zero), shift, Vector256.FusedMultiplyAdd(d, low, shift));
                    Vector256.FusedMultiplyAdd(d, Vector256.Load(hi + j), inner).Store(yr + j);
                }
            }

            for (; j < columns; j++)
            {
                float d = xr[j] - m[j];
                float inner = lo[j] == 0 ? b[j] : MathF.FusedMultiplyAdd(d, lo[j], b[j]);
                yr[j] = MathF.FusedMultiplyAdd(d, hi[j], inner);
            }
        }
    }

    /// <summary>acc[0..16) += the 16 floats of <paramref name="v"/>, widened exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddWidened(double* acc, Vector512<float> v)
    {
        var (lower, upper) = Vector512.Widen(v);
        (Vector512.Load(acc) + lower).Store(acc);
        (Vector512.Load(acc + 8) + upper).Store(acc + 8);
    }

    /// <summary>acc[0..8) += the 8 floats of <paramref name="v"/>, widened exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddWidened(double* acc, Vector256<float> v)
    {
        var (lower, upper) = Vector256.Widen(v);
        (Vector256.Load(acc) + lower).Store(acc);
        (Vector256.Load(acc + 4) + upper).Store(acc + 4);
    }
}
