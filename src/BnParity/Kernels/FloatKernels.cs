using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>
/// float-only kernels for the per-channel (contiguous run) path. They do the arithmetic in float with FMA
/// (8 lanes per vector instead of 4 doubles, no widen/narrow) while keeping the accuracy of the double kernels
/// where it matters:
/// <list type="bullet">
/// <item><b>Reductions</b> run on the one float loop skeleton, <see cref="FloatPairReduction"/> (float partials of at
/// most 8 terms per lane flushed into double in a fixed order); each reduction here is a small operator that says
/// which terms it sums.</item>
/// <item><b>Shifts instead of cancellation</b>: the first pass takes Σ(x − c) and Σ(x − c)² with c a float near the
/// channel mean (the mean of 16 evenly sampled elements); Σ(x − μ)² = Σ(x − c)² − n·(μ − c)² is accepted when the
/// correction is at most 3/4 of Σ(x − c)², else a second pass takes Σ(x − μ_hi) and Σ(x − μ_hi)² about
/// μ_hi = (float)μ, refines the mean to μ' = μ_hi + Σ(x − μ_hi)/n and takes Σ(x − μ_hi)² − n·(μ' − μ_hi)² (a tiny
/// correction, as μ_hi is within a rounding of μ'). For
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
    private static bool UseVectors => Vector256.IsHardwareAccelerated;

    /// <summary>One pass: Σ (x − c) and Σ (x − c)² over <paramref name="runs"/> runs of <paramref name="length"/>
    /// elements, <paramref name="stride"/> apart (<see cref="FloatPairReduction"/>, with its wide loop).</summary>
    public static void SumAndSquaresShifted(float* x, int length, int runs, long stride, float c, out double sum, out double squares)
    {
        var terms = new ShiftedSquares(x, c);
        FloatPairReduction.Run(ref terms, length, runs, stride, out sum, out squares);
    }

    /// <summary>Σ dy and Σ (x − m)·dy over runs (<see cref="FloatPairReduction"/>, without a wide loop).</summary>
    public static void SumAndDotAbout(float* x, float* dy, int length, int runs, long stride, float m, out double sumDy, out double dot)
    {
        var terms = new CentredDot(x, dy, m);
        FloatPairReduction.Run(ref terms, length, runs, stride, out sumDy, out dot);
    }

    /// <summary>A = P = Q = x − c (float; the scalar tail widens x first).</summary>
    private readonly struct ShiftedSquares(float* x, float c) : IFloatPairTerms
    {
        public static bool HasWideLoop => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector256<float> A, Vector256<float> P, Vector256<float> Q) Terms256(long p)
        {
            var d = Vector256.Load(x + p) - Vector256.Create(c);
            return (d, d, d);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector512<float> A, Vector512<float> P, Vector512<float> Q) Terms512(long p)
        {
            var d = Vector512.Load(x + p) - Vector512.Create(c);
            return (d, d, d);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (double A, double P, double Q) TermsScalar(long p)
        {
            double d = (double)x[p] - c;
            return (d, d, d);
        }
    }

    /// <summary>A = dy, P = x − m, Q = dy.</summary>
    private readonly struct CentredDot(float* x, float* dy, float m) : IFloatPairTerms
    {
        // No wide loop yet: adding one changes the order of Σdy and Σ(x − m)·dy on AVX-512 hardware (golden bits).
        public static bool HasWideLoop => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector256<float> A, Vector256<float> P, Vector256<float> Q) Terms256(long p)
        {
            var g = Vector256.Load(dy + p);
            return (g, Vector256.Load(x + p) - Vector256.Create(m), g);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector512<float> A, Vector512<float> P, Vector512<float> Q) Terms512(long p)
        {
            var g = Vector512.Load(dy + p);
            return (g, Vector512.Load(x + p) - Vector512.Create(m), g);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (double A, double P, double Q) TermsScalar(long p)
        {
            double g = dy[p];
            return (g, (double)x[p] - m, g);
        }
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
