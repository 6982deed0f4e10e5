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

    /// <summary>y = fma(x − m, aHi, fma(x − m, aLo, shift)) element-wise. <paramref name="y"/> may equal
    /// <paramref name="x"/>. <paramref name="streaming"/>: non-temporal stores (<see cref="FloatElementwise"/>).</summary>
    public static void Normalize(float* x, float* y, int length, float m, float aHi, float aLo, float shift, bool streaming = false)
    {
        if (aLo == 0)
        {
            // α is a float: the same numbers for finite x (d·0 + b' = b'), and ±∞ rather than ∞·0 = NaN for infinite x.
            var single = new NormalizeSingleTerm(x, m, aHi, shift);
            FloatElementwise.Run(ref single, y, length, streaming);
            return;
        }

        var split = new NormalizeSplitTerm(x, m, aHi, aLo, shift);
        FloatElementwise.Run(ref split, y, length, streaming);
    }

    /// <summary>dx = fma(dy, a, fma(x − m, k, c)) element-wise (see <see cref="BatchNorm{T}"/> backward).
    /// <paramref name="streaming"/>: non-temporal stores, for tensors far larger than the cache
    /// (<see cref="FloatElementwise"/>). Bit-identical either way.</summary>
    public static void Backward(float* x, float* dy, float* dx, int length, float m, float k, float c, float a, bool streaming = false)
    {
        var term = new BackwardTerm(x, dy, m, k, c, a);
        FloatElementwise.Run(ref term, dx, length, streaming);
    }

    /// <summary>fma(x − m, aHi, fma(x − m, aLo, b)): the output with α split into two floats.</summary>
    private readonly struct NormalizeSplitTerm(float* x, float m, float aHi, float aLo, float b) : IFloatElementwise
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke256(int i)
        {
            var d = Vector256.Load(x + i) - Vector256.Create(m);
            return Vector256.FusedMultiplyAdd(d, Vector256.Create(aHi), Vector256.FusedMultiplyAdd(d, Vector256.Create(aLo), Vector256.Create(b)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke512(int i)
        {
            var d = Vector512.Load(x + i) - Vector512.Create(m);
            return Vector512.FusedMultiplyAdd(d, Vector512.Create(aHi), Vector512.FusedMultiplyAdd(d, Vector512.Create(aLo), Vector512.Create(b)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float InvokeScalar(int i)
        {
            float d = x[i] - m;
            return MathF.FusedMultiplyAdd(d, aHi, MathF.FusedMultiplyAdd(d, aLo, b));
        }
    }

    /// <summary>fma(x − m, a, b): the output when α is a float.</summary>
    private readonly struct NormalizeSingleTerm(float* x, float m, float a, float b) : IFloatElementwise
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke256(int i) =>
            Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - Vector256.Create(m), Vector256.Create(a), Vector256.Create(b));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke512(int i) =>
            Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - Vector512.Create(m), Vector512.Create(a), Vector512.Create(b));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float InvokeScalar(int i) => MathF.FusedMultiplyAdd(x[i] - m, a, b);
    }

    /// <summary>fma(dy, a, fma(x − m, k, c)): the batch-statistics input gradient.</summary>
    private readonly struct BackwardTerm(float* x, float* dy, float m, float k, float c, float a) : IFloatElementwise
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke256(int i)
        {
            var t = Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - Vector256.Create(m), Vector256.Create(k), Vector256.Create(c));
            return Vector256.FusedMultiplyAdd(Vector256.Load(dy + i), Vector256.Create(a), t);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke512(int i)
        {
            var t = Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - Vector512.Create(m), Vector512.Create(k), Vector512.Create(c));
            return Vector512.FusedMultiplyAdd(Vector512.Load(dy + i), Vector512.Create(a), t);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float InvokeScalar(int i) => MathF.FusedMultiplyAdd(dy[i], a, MathF.FusedMultiplyAdd(x[i] - m, k, c));
    }
}
