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

    /// <summary>
    /// <see cref="Normalize"/> followed, element by element, by the element parameters of LayerNorm/RMSNorm:
    /// y = fma(t, weight[i], bias[i]) (t·weight[i] without a bias) with t the normalised value rounded to float, in one
    /// pass — the same two roundings per element as normalising into y and applying the parameters after, so the same
    /// bits, without the second pass over y.
    /// </summary>
    public static void NormalizeElementAffine(float* x, float* y, int length, float m, float aHi, float aLo, float shift, float* weight, float* bias)
    {
        if (aLo == 0)
        {
            var single = new ElementAffine<NormalizeSingleTerm>(new NormalizeSingleTerm(x, m, aHi, shift), weight, bias);
            FloatElementwise.Run(ref single, y, length, streaming: false);
            return;
        }

        var split = new ElementAffine<NormalizeSplitTerm>(new NormalizeSplitTerm(x, m, aHi, aLo, shift), weight, bias);
        FloatElementwise.Run(ref split, y, length, streaming: false);
    }

    /// <summary>Σ g and Σ (x − m)·g with g = dy·w rounded to float per element (LayerNorm/RMSNorm's backward over the
    /// weighted upstream gradient): <see cref="SumAndDotAbout"/> of the product, which is never stored.</summary>
    public static void SumAndDotAboutWeighted(float* x, float* dy, float* w, int length, float m, out double sumG, out double dot)
    {
        var terms = new WeightedCentredDot(x, dy, w, m);
        FloatPairReduction.Run(ref terms, length, 1, length, out sumG, out dot);
    }

    /// <summary><see cref="Backward"/> over g = dy·w rounded to float per element (never stored).</summary>
    public static void BackwardWeighted(float* x, float* dy, float* w, float* dx, int length, float m, float k, float c, float a)
    {
        var term = new WeightedBackwardTerm(x, dy, w, m, k, c, a);
        FloatElementwise.Run(ref term, dx, length, streaming: false);
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

    /// <summary>fma(t, w, b) (t·w without a bias) after the normalised value t of <typeparamref name="TTerm"/>.</summary>
    private readonly struct ElementAffine<TTerm>(TTerm term, float* weight, float* bias) : IFloatElementwise
        where TTerm : struct, IFloatElementwise
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke256(int i)
        {
            var t = term.Invoke256(i);
            var w = Vector256.Load(weight + i);
            return bias == null ? t * w : Vector256.FusedMultiplyAdd(t, w, Vector256.Load(bias + i));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke512(int i)
        {
            var t = term.Invoke512(i);
            var w = Vector512.Load(weight + i);
            return bias == null ? t * w : Vector512.FusedMultiplyAdd(t, w, Vector512.Load(bias + i));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float InvokeScalar(int i)
        {
            float t = term.InvokeScalar(i);
            return bias == null ? t * weight[i] : MathF.FusedMultiplyAdd(t, weight[i], bias[i]);
        }
    }

    /// <summary>A = Q = g = dy·w (rounded to float), P = x − m: <see cref="CentredDot"/> over the weighted gradient.</summary>
    private readonly struct WeightedCentredDot(float* x, float* dy, float* w, float m) : IFloatPairTerms
    {
        // CentredDot's order (no wide loop), so the sums are those of the stored product.
        public static bool HasWideLoop => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector256<float> A, Vector256<float> P, Vector256<float> Q) Terms256(long p)
        {
            var g = Vector256.Load(dy + p) * Vector256.Load(w + p);
            return (g, Vector256.Load(x + p) - Vector256.Create(m), g);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector512<float> A, Vector512<float> P, Vector512<float> Q) Terms512(long p)
        {
            var g = Vector512.Load(dy + p) * Vector512.Load(w + p);
            return (g, Vector512.Load(x + p) - Vector512.Create(m), g);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (double A, double P, double Q) TermsScalar(long p)
        {
            double g = dy[p] * w[p];
            return (g, (double)x[p] - m, g);
        }
    }

    /// <summary>fma(g, a, fma(x − m, k, c)) with g = dy·w rounded to float.</summary>
    private readonly struct WeightedBackwardTerm(float* x, float* dy, float* w, float m, float k, float c, float a) : IFloatElementwise
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke256(int i)
        {
            var t = Vector256.FusedMultiplyAdd(Vector256.Load(x + i) - Vector256.Create(m), Vector256.Create(k), Vector256.Create(c));
            return Vector256.FusedMultiplyAdd(Vector256.Load(dy + i) * Vector256.Load(w + i), Vector256.Create(a), t);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke512(int i)
        {
            var t = Vector512.FusedMultiplyAdd(Vector512.Load(x + i) - Vector512.Create(m), Vector512.Create(k), Vector512.Create(c));
            return Vector512.FusedMultiplyAdd(Vector512.Load(dy + i) * Vector512.Load(w + i), Vector512.Create(a), t);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float InvokeScalar(int i) => MathF.FusedMultiplyAdd(dy[i] * w[i], a, MathF.FusedMultiplyAdd(x[i] - m, k, c));
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
