using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>
/// The terms of a float column reduction at one position: it sums <c>A</c> and <c>P·Q</c> (the product fused into the
/// accumulator) per column. <see cref="FloatColumns"/> owns the loop; an operator only says what A, P and Q are at
/// element offset <c>p</c> (a row's start plus the column) for the columns starting at <c>j</c>.
/// </summary>
internal interface IFloatColumnTerms
{
    (Vector512<float> A, Vector512<float> P, Vector512<float> Q) Terms512(long p, int j);

    (Vector256<float> A, Vector256<float> P, Vector256<float> Q) Terms256(long p, int j);

    (float A, float P, float Q) TermsScalar(long p, int j);

    /// <summary>Asks for the cache lines of one row of the operands, <paramref name="columns"/> elements from offset
    /// <paramref name="p"/>.</summary>
    void Prefetch(long p, int columns);
}

/// <summary>An element-wise column operation: the output at element offset <c>p</c> for the columns starting at <c>j</c>.</summary>
internal interface IFloatColumnMap
{
    Vector512<float> Invoke512(long p, int j);

    Vector256<float> Invoke256(long p, int j);

    float InvokeScalar(long p, int j);
}

/// <summary>
/// Float column kernels of the row path: a block of <c>rows</c> rows of an (N, C·S) float matrix, <c>rowStride</c>
/// elements apart, with per-column float parameters. This is the layout a channels-last (N·H·W, C) input has, and
/// <see cref="FloatKernels"/>' arithmetic per column instead of per run:
/// <list type="bullet">
/// <item><b>Reductions</b> (<see cref="Reduce"/>) sum in float over stretches of at most <see cref="FlushRows"/> rows
/// (relative error ≤ 8u of the stretch's sum of magnitudes, as the channel path's float lanes), each stretch widened
/// and added into the column's double partial in row order, starting from 0.</item>
/// <item><b>Element-wise outputs</b> (<see cref="Map"/>) are the channel path's formulas with the column's
/// coefficients, so the same coefficients give the same bits in either layout.</item>
/// </list>
/// Lanes are columns, so every column sees the same operations in the same order whatever the vector width: the
/// 512-bit, 256-bit and scalar paths give identical bits.
/// </summary>
internal static unsafe class FloatColumns
{
    /// <summary>Rows per float accumulation stretch before it is widened into double.</summary>
    internal const int FlushRows = 8;

    /// <summary>sum[j] = Σ_r (x[r, j] − c[j]) and squares[j] = Σ_r (x[r, j] − c[j])².</summary>
    public static void SumAndSquaresShifted(float* x, long rowStride, int rows, float* c, double* sum, double* squares, int columns)
    {
        var terms = new ShiftedSquares(x, c);
        Reduce(ref terms, rowStride, rows, sum, squares, columns);
    }

    /// <summary>sumDy[j] = Σ_r dy[r, j] and dot[j] = Σ_r (x[r, j] − m[j])·dy[r, j].</summary>
    public static void SumAndDotAbout(float* x, float* dy, long rowStride, int rows, float* m, double* sumDy, double* dot, int columns)
    {
        var terms = new CentredDot(x, dy, m);
        Reduce(ref terms, rowStride, rows, sumDy, dot, columns);
    }

    /// <summary>y = fma(x − m, hi, fma(x − m, lo, b)) per column, or fma(x − m, hi, b) where lo = 0 (so an infinite x
    /// gives ±∞, not ∞·0 = NaN, as <see cref="FloatKernels.Normalize"/>). y may equal x.</summary>
    public static void Normalize(float* x, float* y, long rowStride, int rows, float* m, float* hi, float* lo, float* b, int columns, bool streaming = false)
    {
        var map = new NormalizeTerms(x, m, hi, lo, b);
        Map(ref map, y, rowStride, rows, columns, streaming);
    }

    /// <summary>dx = fma(dy, a, fma(x − m, k, c)) per column (<see cref="FloatKernels.Backward"/>'s formula).</summary>
    public static void Backward(float* x, float* dy, float* dx, long rowStride, int rows, float* m, float* k, float* c, float* a, int columns, bool streaming = false)
    {
        var map = new BackwardTerms(x, dy, m, k, c, a);
        Map(ref map, dx, rowStride, rows, columns, streaming);
    }

    /// <summary>dx = dy·scale per column in double arithmetic, rounded once to float: the same numbers as
    /// <see cref="Kernels{T}.ScaleColumns"/>, walked row by row (the eval backward).</summary>
    public static void Scale(float* dy, float* dx, long rowStride, int rows, double* scale, int columns, bool streaming = false)
    {
        var map = new ScaleTerms(dy, scale);
        Map(ref map, dx, rowStride, rows, columns, streaming);
    }

    /// <summary>Extra entries every per-column parameter array needs for a streaming <see cref="Map"/>: entry
    /// <c>columns + t</c> holds entry <c>t mod columns</c> (<see cref="WrapColumns{T}(T[], int)"/>), so a vector that starts in one
    /// row's last columns reads the next row's first coefficients.</summary>
    internal const int WrapPadding = 16;

    /// <summary>Fills the <see cref="WrapPadding"/> entries after <paramref name="columns"/>.</summary>
    internal static void WrapColumns<T>(T[] parameters, int columns)
    {
        for (int t = 0; t < WrapPadding; t++)
        {
            parameters[columns + t] = parameters[t % columns];
        }
    }

    /// <summary><see cref="WrapColumns{T}(T[], int)"/> for each array (a params span: no allocation).</summary>
    internal static void WrapColumns<T>(int columns, params ReadOnlySpan<T[]> parameters)
    {
        foreach (T[] array in parameters)
        {
            WrapColumns(array, columns);
        }
    }

    /// <summary>The reduction skeleton: the block's rows in panels of <see cref="PanelRows"/>; per panel, strips of
    /// columns (64 with AVX-512, then 32, 16 with 256-bit vectors, then 8, then 1 at a time); per strip, the panel's rows
    /// in stretches of <see cref="FlushRows"/>, float accumulators down a stretch, each stretch widened and added into
    /// the strip's double partials in row order, starting from 0.</summary>
    /// <remarks>Measured on Zen 4 (x in L3, interleaved with a plain vector read of the same x, which is the unit):
    /// adding every stretch into memory made each stretch's 512-bit load wait on the previous stretch's store (a failed
    /// store forward), 2× a read for 64 columns; the partials now stay in registers for a strip's walk down the panel
    /// and go to memory between panels, ~1× a read. A matrix wider than one strip is read strip by strip, in strided
    /// streams the hardware prefetchers follow badly (3–4.5× a read for 128–320 columns, whatever the panel height, and
    /// row-major order with accumulators in memory was no better); the first strip of each panel asks for the next
    /// panel's rows (<see cref="IFloatColumnTerms.Prefetch"/>), ~2–2.5× a read. The column's operations and their order
    /// are the same in every arrangement, so are the bits.</remarks>
    private static void Reduce<TTerms>(ref TTerms terms, long rowStride, int rows, double* sumA, double* sumPQ, int columns)
        where TTerms : struct, IFloatColumnTerms
    {
        if (rows <= 0)
        {
            new Span<double>(sumA, columns).Clear();
            new Span<double>(sumPQ, columns).Clear();
            return;
        }

        for (int p0 = 0; p0 < rows; p0 += PanelRows)
        {
            int p1 = Math.Min(rows, p0 + PanelRows);
            bool first = p0 == 0;
            int j = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                // Four strips per row step (a whole 256-byte row of 64 columns): eight independent float chains hide
                // the add and FMA latencies; sixteen double partials stay in registers.
                for (; j <= columns - 64; j += 64)
                {
                    var s0 = Widened512.Start(first, sumA + j, sumPQ + j);
                    var s1 = Widened512.Start(first, sumA + j + 16, sumPQ + j + 16);
                    var s2 = Widened512.Start(first, sumA + j + 32, sumPQ + j + 32);
                    var s3 = Widened512.Start(first, sumA + j + 48, sumPQ + j + 48);
                    bool prefetch = j == 0 && columns > 64 && p1 < rows;
                    for (int r0 = p0; r0 < p1; r0 += FlushRows)
                    {
                        int r1 = Math.Min(p1, r0 + FlushRows);
                        Vector512<float> a0 = default, q0 = default, a1 = default, q1 = default;
                        Vector512<float> a2 = default, q2 = default, a3 = default, q3 = default;
                        for (long r = r0, p = (r0 * rowStride) + j; r < r1; r++, p += rowStride)
                        {
                            if (prefetch && r + PanelRows < rows)
                            {
                                terms.Prefetch(p + (PanelRows * rowStride), columns);
                            }


                            var (ta, tp, tq) = terms.Terms512(p, j);
                            var (ua, up, uq) = terms.Terms512(p + 16, j + 16);
                            var (va, vp, vq) = terms.Terms512(p + 32, j + 32);
                            var (wa, wp, wq) = terms.Terms512(p + 48, j + 48);
                            a0 += ta;
                            q0 = Vector512.FusedMultiplyAdd(tp, tq, q0);
                            a1 += ua;
                            q1 = Vector512.FusedMultiplyAdd(up, uq, q1);
                            a2 += va;
                            q2 = Vector512.FusedMultiplyAdd(vp, vq, q2);
                            a3 += wa;
                            q3 = Vector512.FusedMultiplyAdd(wp, wq, q3);
                        }

                        s0.Add(a0, q0);
                        s1.Add(a1, q1);
                        s2.Add(a2, q2);
                        s3.Add(a3, q3);
                    }

                    s0.Store(sumA + j, sumPQ + j);
                    s1.Store(sumA + j + 16, sumPQ + j + 16);
                    s2.Store(sumA + j + 32, sumPQ + j + 32);
                    s3.Store(sumA + j + 48, sumPQ + j + 48);
                }

                // Then two strips (four chains).
                for (; j <= columns - 32; j += 32)
                {
                    var s0 = Widened512.Start(first, sumA + j, sumPQ + j);
                    var s1 = Widened512.Start(first, sumA + j + 16, sumPQ + j + 16);
                    for (int r0 = p0; r0 < p1; r0 += FlushRows)
                    {
                        int r1 = Math.Min(p1, r0 + FlushRows);
                        Vector512<float> a0 = default, q0 = default, a1 = default, q1 = default;
                        for (long r = r0, p = (r0 * rowStride) + j; r < r1; r++, p += rowStride)
                        {
                            var (ta, tp, tq) = terms.Terms512(p, j);
                            var (ua, up, uq) = terms.Terms512(p + 16, j + 16);
                            a0 += ta;
                            q0 = Vector512.FusedMultiplyAdd(tp, tq, q0);
                            a1 += ua;
                            q1 = Vector512.FusedMultiplyAdd(up, uq, q1);
                        }

                        s0.Add(a0, q0);
                        s1.Add(a1, q1);
                    }

                    s0.Store(sumA + j, sumPQ + j);
                    s1.Store(sumA + j + 16, sumPQ + j + 16);
                }
            }

            // The 256-bit loops finish the columns the 512-bit loops left (lanes are columns, so the bits are the same).
            if (Vector256.IsHardwareAccelerated)
            {
                for (; j <= columns - 16; j += 16)
                {
                    var s0 = Widened256.Start(first, sumA + j, sumPQ + j);
                    var s1 = Widened256.Start(first, sumA + j + 8, sumPQ + j + 8);
                    for (int r0 = p0; r0 < p1; r0 += FlushRows)
                    {
                        int r1 = Math.Min(p1, r0 + FlushRows);
                        Vector256<float> a0 = default, q0 = default, a1 = default, q1 = default;
                        for (long r = r0, p = (r0 * rowStride) + j; r < r1; r++, p += rowStride)
                        {
                            var (ta, tp, tq) = terms.Terms256(p, j);
                            var (ua, up, uq) = terms.Terms256(p + 8, j + 8);
                            a0 += ta;
                            q0 = Vector256.FusedMultiplyAdd(tp, tq, q0);
                            a1 += ua;
                            q1 = Vector256.FusedMultiplyAdd(up, uq, q1);
                        }

                        s0.Add(a0, q0);
                        s1.Add(a1, q1);
                    }

                    s0.Store(sumA + j, sumPQ + j);
                    s1.Store(sumA + j + 8, sumPQ + j + 8);
                }

                for (; j <= columns - 8; j += 8)
                {
                    var s0 = Widened256.Start(first, sumA + j, sumPQ + j);
                    for (int r0 = p0; r0 < p1; r0 += FlushRows)
                    {
                        int r1 = Math.Min(p1, r0 + FlushRows);
                        Vector256<float> a = default, q = default;
                        for (long r = r0, p = (r0 * rowStride) + j; r < r1; r++, p += rowStride)
                        {
                            var (ta, tp, tq) = terms.Terms256(p, j);
                            a += ta;
                            q = Vector256.FusedMultiplyAdd(tp, tq, q);
                        }

                        s0.Add(a, q);
                    }

                    s0.Store(sumA + j, sumPQ + j);
                }
            }

            for (; j < columns; j++)
            {
                double totalA = first ? 0 : sumA[j], totalPQ = first ? 0 : sumPQ[j];
                for (int r0 = p0; r0 < p1; r0 += FlushRows)
                {
                    int r1 = Math.Min(p1, r0 + FlushRows);
                    float a = 0, q = 0;
                    for (long r = r0, p = (r0 * rowStride) + j; r < r1; r++, p += rowStride)
                    {
                        var (ta, tp, tq) = terms.TermsScalar(p, j);
                        a += ta;
                        q = MathF.FusedMultiplyAdd(tp, tq, q);
                    }

                    totalA += a;
                    totalPQ += q;
                }

                sumA[j] = totalA;
                sumPQ[j] = totalPQ;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRow(float* row, int columns)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            for (int l = 0; l < columns; l += 16)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(row + l);
            }
        }
    }

    /// <summary>Rows per panel of <see cref="Reduce"/> (a multiple of <see cref="FlushRows"/>).</summary>
    internal const int PanelRows = 32;

    /// <summary>The double partials of a 16-column strip (A and P·Q), held in registers: each stretch's float sums
    /// widened exactly and added, from 0.</summary>
    private struct Widened512
    {
        private Vector512<double> _aLow, _aHigh, _pqLow, _pqHigh;

        /// <summary>0 for a block's first panel, else the partials the previous panel stored.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Widened512 Start(bool first, double* a, double* pq) => first ? default : new Widened512
        {
            _aLow = Vector512.Load(a),
            _aHigh = Vector512.Load(a + 8),
            _pqLow = Vector512.Load(pq),
            _pqHigh = Vector512.Load(pq + 8),
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(Vector512<float> a, Vector512<float> pq)
        {
            var (aLow, aHigh) = Vector512.Widen(a);
            var (pqLow, pqHigh) = Vector512.Widen(pq);
            _aLow += aLow;
            _aHigh += aHigh;
            _pqLow += pqLow;
            _pqHigh += pqHigh;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(double* a, double* pq)
        {
            _aLow.Store(a);
            _aHigh.Store(a + 8);
            _pqLow.Store(pq);
            _pqHigh.Store(pq + 8);
        }
    }

    /// <summary><see cref="Widened512"/> for an 8-column strip.</summary>
    private struct Widened256
    {
        private Vector256<double> _aLow, _aHigh, _pqLow, _pqHigh;

        /// <summary>0 for a block's first panel, else the partials the previous panel stored.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Widened256 Start(bool first, double* a, double* pq) => first ? default : new Widened256
        {
            _aLow = Vector256.Load(a),
            _aHigh = Vector256.Load(a + 4),
            _pqLow = Vector256.Load(pq),
            _pqHigh = Vector256.Load(pq + 4),
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(Vector256<float> a, Vector256<float> pq)
        {
            var (aLow, aHigh) = Vector256.Widen(a);
            var (pqLow, pqHigh) = Vector256.Widen(pq);
            _aLow += aLow;
            _aHigh += aHigh;
            _pqLow += pqLow;
            _pqHigh += pqHigh;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(double* a, double* pq)
        {
            _aLow.Store(a);
            _aHigh.Store(a + 4);
            _pqLow.Store(pq);
            _pqHigh.Store(pq + 4);
        }
    }

    /// <summary>The element-wise skeleton: row by row, strips of 16, 8, then single columns. With
    /// <paramref name="streaming"/> (outputs far larger than the cache) and contiguous rows, the block is one run of
    /// rows·columns elements instead, written with aligned non-temporal stores after a scalar peel to the alignment; the
    /// column of element i is i mod columns, and the parameter arrays carry <see cref="WrapPadding"/> wrapped entries.
    /// Every element gets the same operations either way, so the bits do not depend on it.</summary>
    private static void Map<TMap>(ref TMap map, float* y, long rowStride, int rows, int columns, bool streaming)
        where TMap : struct, IFloatColumnMap
    {
        if (streaming && rowStride == columns && columns > 0 && Vector256.IsHardwareAccelerated)
        {
            MapStreaming(ref map, y, (long)rows * columns, columns);
            return;
        }

        for (long r = 0, row = 0; r < rows; r++, row += rowStride)
        {
            int j = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; j <= columns - 16; j += 16)
                {
                    map.Invoke512(row + j, j).Store(y + row + j);
                }
            }

            if (Vector256.IsHardwareAccelerated)
            {
                for (; j <= columns - 8; j += 8)
                {
                    map.Invoke256(row + j, j).Store(y + row + j);
                }
            }

            for (; j < columns; j++)
            {
                y[row + j] = map.InvokeScalar(row + j, j);
            }
        }
    }

    private static void MapStreaming<TMap>(ref TMap map, float* y, long length, int columns)
        where TMap : struct, IFloatColumnMap
    {
        bool wide = Vector512.IsHardwareAccelerated;
        int width = wide ? 16 : 8;
        long i = 0;
        int j = 0;
        for (; i < length && ((nint)(y + i) & ((width * sizeof(float)) - 1)) != 0; i++)
        {
            y[i] = map.InvokeScalar(i, j);
            j = j + 1 == columns ? 0 : j + 1;
        }

        for (; i <= length - width; i += width)
        {
            if (wide)
            {
                map.Invoke512(i, j).StoreAlignedNonTemporal(y + i);
            }
            else
            {
                map.Invoke256(i, j).StoreAlignedNonTemporal(y + i);
            }

            j = (j + width) % columns;
        }

        for (; i < length; i++)
        {
            y[i] = map.InvokeScalar(i, j);
            j = j + 1 == columns ? 0 : j + 1;
        }

        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            // Streaming stores are weakly ordered: the fence makes them visible before the phase's join publishes the
            // output to other threads.
            System.Runtime.Intrinsics.X86.Sse.StoreFence();
        }
    }

    /// <summary>A = P = Q = x − c[j].</summary>
    private readonly struct ShiftedSquares(float* x, float* c) : IFloatColumnTerms
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Prefetch(long p, int columns) => PrefetchRow(x + p, columns);


        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector512<float> A, Vector512<float> P, Vector512<float> Q) Terms512(long p, int j)
        {
            var d = Vector512.Load(x + p) - Vector512.Load(c + j);
            return (d, d, d);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector256<float> A, Vector256<float> P, Vector256<float> Q) Terms256(long p, int j)
        {
            var d = Vector256.Load(x + p) - Vector256.Load(c + j);
            return (d, d, d);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (float A, float P, float Q) TermsScalar(long p, int j)
        {
            float d = x[p] - c[j];
            return (d, d, d);
        }
    }

    /// <summary>A = Q = dy, P = x − m[j].</summary>
    private readonly struct CentredDot(float* x, float* dy, float* m) : IFloatColumnTerms
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Prefetch(long p, int columns)
        {
            PrefetchRow(x + p, columns);
            PrefetchRow(dy + p, columns);
        }


        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector512<float> A, Vector512<float> P, Vector512<float> Q) Terms512(long p, int j)
        {
            var g = Vector512.Load(dy + p);
            return (g, Vector512.Load(x + p) - Vector512.Load(m + j), g);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector256<float> A, Vector256<float> P, Vector256<float> Q) Terms256(long p, int j)
        {
            var g = Vector256.Load(dy + p);
            return (g, Vector256.Load(x + p) - Vector256.Load(m + j), g);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (float A, float P, float Q) TermsScalar(long p, int j) => (dy[p], x[p] - m[j], dy[p]);
    }

    private readonly struct NormalizeTerms(float* x, float* m, float* hi, float* lo, float* b) : IFloatColumnMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke512(long p, int j)
        {
            var d = Vector512.Load(x + p) - Vector512.Load(m + j);
            var low = Vector512.Load(lo + j);
            var shift = Vector512.Load(b + j);
            var inner = Vector512.ConditionalSelect(Vector512.Equals(low, Vector512<float>.Zero), shift, Vector512.FusedMultiplyAdd(d, low, shift));
            return Vector512.FusedMultiplyAdd(d, Vector512.Load(hi + j), inner);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke256(long p, int j)
        {
            var d = Vector256.Load(x + p) - Vector256.Load(m + j);
            var low = Vector256.Load(lo + j);
            var shift = Vector256.Load(b + j);
            var inner = Vector256.ConditionalSelect(Vector256.Equals(low, Vector256<float>.Zero), shift, Vector256.FusedMultiplyAdd(d, low, shift));
            return Vector256.FusedMultiplyAdd(d, Vector256.Load(hi + j), inner);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float InvokeScalar(long p, int j)
        {
            float d = x[p] - m[j];
            return MathF.FusedMultiplyAdd(d, hi[j], lo[j] == 0 ? b[j] : MathF.FusedMultiplyAdd(d, lo[j], b[j]));
        }
    }

    private readonly struct BackwardTerms(float* x, float* dy, float* m, float* k, float* c, float* a) : IFloatColumnMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke512(long p, int j)
        {
            var t = Vector512.FusedMultiplyAdd(Vector512.Load(x + p) - Vector512.Load(m + j), Vector512.Load(k + j), Vector512.Load(c + j));
            return Vector512.FusedMultiplyAdd(Vector512.Load(dy + p), Vector512.Load(a + j), t);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke256(long p, int j)
        {
            var t = Vector256.FusedMultiplyAdd(Vector256.Load(x + p) - Vector256.Load(m + j), Vector256.Load(k + j), Vector256.Load(c + j));
            return Vector256.FusedMultiplyAdd(Vector256.Load(dy + p), Vector256.Load(a + j), t);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float InvokeScalar(long p, int j) => MathF.FusedMultiplyAdd(dy[p], a[j], MathF.FusedMultiplyAdd(x[p] - m[j], k[j], c[j]));
    }

    /// <summary>(float)(dy·scale) with the product in double: each float widened exactly, each result rounded once.</summary>
    private readonly struct ScaleTerms(float* dy, double* scale) : IFloatColumnMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke512(long p, int j)
        {
            var (lower, upper) = Vector512.Widen(Vector512.Load(dy + p));
            return Vector512.Narrow(lower * Vector512.Load(scale + j), upper * Vector512.Load(scale + j + 8));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke256(long p, int j)
        {
            var (lower, upper) = Vector256.Widen(Vector256.Load(dy + p));
            return Vector256.Narrow(lower * Vector256.Load(scale + j), upper * Vector256.Load(scale + j + 4));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float InvokeScalar(long p, int j) => (float)(dy[p] * scale[j]);
    }
}
