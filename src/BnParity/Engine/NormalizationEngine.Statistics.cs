namespace BnParity;

/// <content>Per-run statistics and element-wise formulas shared by the paths.</content>
internal sealed unsafe partial class NormalizationEngine<T>
{
    // ---- Per-run kernel selection: float uses FloatKernels (float FMA arithmetic with shifted/compensated
    // statistics, see its remarks), double the double kernels. Both are fixed-order functions of the run.

    private static bool IsFloat => typeof(T) == typeof(float);

    /// <summary>The shift c for the float statistics (so float partials add deviations, not magnitudes): the mean of
    /// up to 16 elements sampled evenly over the channel, rounded to float; 0 for double. A function of the data and
    /// shape only.</summary>
    private double ChannelShift(int ch)
    {
        if (!IsFloat)
        {
            return 0.0;
        }

        float* x = (float*)_pX + ((long)ch * _jobS);
        double total = 0;
        for (int k = 0; k < _shiftSampleCount; k++)
        {
            total += x[_shiftSampleOffsets[k]];
        }

        return (float)(total / _shiftSampleCount);
    }

    /// <summary>Offsets from channel 0's first element of the <see cref="ShiftSamples"/> positions k·n/samples of a
    /// channel's n = N·S values (the same for every channel: channel c's sample k is at offset + c·S), computed once
    /// per call: two 64-bit divisions per sample and channel cost more than the whole statistics pass of a small
    /// input with many channels.</summary>
    private readonly long[] _shiftSampleOffsets = new long[ShiftSamples];
    private int _shiftSampleCount;

    private void PrepareShiftSamples()
    {
        long s = _jobS;
        long count = _jobN * s;
        _shiftSampleCount = (int)Math.Min(ShiftSamples, count);
        for (int k = 0; k < _shiftSampleCount; k++)
        {
            // Element sets (LayerNorm) are short contiguous runs, one after another: samples spread over the set cost
            // up to 16 cache misses ahead of the streaming pass for every set (~100 ns each, the size of the whole pass
            // over a 768-element set), so the shift is the mean of the set's first 16 elements, which the pass reads
            // next anyway. A poor shift only costs the second pass (TryShiftedVarSum), never accuracy.
            long p = _element ? k : k * count / _shiftSampleCount;
            long n = p / s;
            _shiftSampleOffsets[k] = (n * _c * s) + (p - (n * s));
        }
    }

    private const int ShiftSamples = 16;

    /// <summary>double data: Σx over the group's runs (left fold of the per-run kernel sums).</summary>
    private static double BlockSum(T* x, int length, int runs, long stride)
    {
        double total = 0;
        for (int r = 0; r < runs; r++)
        {
            total += Kernels<T>.Sum(x + (r * stride), length);
        }

        return total;
    }

    /// <summary>First statistics pass: Σ(x − shift) and (float only) Σ(x − shift)², see <see cref="TryShiftedVarSum"/>.</summary>
    private static void BlockSumSquares(T* x, int length, int runs, long stride, double shift, out double sum, out double squares)
    {
        if (IsFloat)
        {
            FloatKernels.SumAndSquaresShifted((float*)x, length, runs, stride, (float)shift, out sum, out squares);
            return;
        }

        sum = BlockSum(x, length, runs, stride);
        squares = double.NaN;
    }

    /// <summary>
    /// float: Σ(x − μ)² = Σ(x − c)² − n·(μ − c)² with c the shift (<see cref="ChannelShift"/>), taken from the
    /// first pass when that cancels at most 3/4 of Σ(x − c)², i.e. |μ − c| ≤ √3·σ (the float partials' relative error,
    /// typically ≪ u, grows by at most 4×). Otherwise (c far from μ in units of σ, or double data) returns
    /// false and the caller runs the second pass Σ(x − μ_hi)². The decision depends only on the folded totals, never on
    /// the thread count.
    /// </summary>
    private static bool TryShiftedVarSum(double shiftedSquares, double mean, double shift, long count, out double varSum)
    {
        double d = mean - shift;
        double correction = count * d * d;
        if (IsFloat && correction <= 0.75 * shiftedSquares)
        {
            varSum = shiftedSquares - correction;
            return true;
        }

        varSum = 0;
        return false;
    }

    /// <summary>float: mean squares below this are recomputed in double (see <see cref="TrustedVarSum"/>).</summary>
    private static readonly double MinTrustedMeanSquare = Math.ScaleB(1.0, -120);

    /// <summary>
    /// float only: the channel's Σ(x − μ)², recomputed in double arithmetic when the float partials cannot be
    /// trusted. They cannot when a deviation's square leaves float's range: |x − c| above ~1.8e19 overflows (the
    /// sum of squares is not finite), and below ~1e-19 the squares are subnormal or flush to 0 (mean square below
    /// 2^-120). libtorch accumulates in double and gets finite, accurate statistics there, and so does the row path;
    /// the recomputation (one extra pass, also for a channel of exact zeros) makes every path agree. The decision
    /// depends on the folded totals only, so it is the same on every path and thread count.
    /// </summary>
    private double TrustedVarSum(int ch, double mean, double varSum, long count)
    {
        if (!IsFloat || (double.IsFinite(varSum) && varSum >= count * MinTrustedMeanSquare) || !double.IsFinite(mean))
        {
            return varSum;
        }

        return DoubleSquares(ch, mean);
    }

    /// <summary>float only: the channel's mean, recomputed in double when Σ(x − c) in float partials overflowed
    /// (|x| near float.MaxValue) although the data may be finite; non-finite data stays non-finite.</summary>
    private double TrustedMean(int ch, double mean)
    {
        if (!IsFloat || double.IsFinite(mean))
        {
            return mean;
        }

        return DoubleChannelSum(ch, squares: false, 0) / ((long)_jobN * _jobS);
    }

    /// <summary>Σ(x − mean)² of channel ch in double arithmetic (each element widened).</summary>
    private double DoubleSquares(int ch, double mean) => DoubleChannelSum(ch, squares: true, mean);

    /// <summary>Channel ch in double arithmetic, in the canonical run/block order (the same on every path):
    /// Σ(x − mean)² with <paramref name="squares"/>, else Σx.</summary>
    private double DoubleChannelSum(int ch, bool squares, double mean)
    {
        T* x = (T*)_pX;
        long s = _jobS;
        long stride = (long)_c * s;
        double total = 0;
        for (long n = 0; n < _jobN; n++)
        {
            long o = ((long)ch * s) + (n * stride);
            for (long b = 0; b < s; b += Block)
            {
                int length = (int)Math.Min(Block, s - b);
                total += squares ? Kernels<T>.SumSquaredDeviations(x + o + b, length, mean) : Kernels<T>.Sum(x + o + b, length);
            }
        }

        return total;
    }

    /// <summary>
    /// Σ(x − μ)² as PyTorch holds it (PyTorch 1.13 and libtorch 2.10 alike): in the input's dtype, so for float a
    /// sum beyond float's range is +∞ — invstd 0 and running_var ∞, although the variance itself may fit (64 values
    /// of ±3e18) — and one that rounds to 0 is 0. Otherwise the double value is kept, for accuracy.
    /// </summary>
    internal static double HeldVarSum(double varSum)
    {
        if (!IsFloat)
        {
            return varSum;
        }

        float held = (float)varSum;
        return held == 0 ? 0 : float.IsPositiveInfinity(held) ? double.PositiveInfinity : varSum;
    }

    /// <summary>
    /// 1/sqrt(var + eps) of the batch statistics, the one invstd formula of every path, with PyTorch's two rules
    /// (checked against PyTorch 1.13 and libtorch 2.10): the biased variance is held in the input's dtype, so a
    /// float variance beyond float's range is +∞ (invstd 0: the channel normalises to its bias) and one that rounds
    /// to 0 is 0; and PyTorch's InvStd returns 0 when var = 0 and eps = 0 (a constant channel without eps normalises
    /// to the bias, not to NaN). Otherwise the variance keeps its double value, for accuracy.
    /// </summary>
    internal static double InvstdOf(double variance, double eps)
    {
        if (IsFloat)
        {
            float held = (float)variance;
            variance = held == 0 ? 0 : float.IsPositiveInfinity(held) ? double.PositiveInfinity : variance;
        }

        return variance == 0 && eps == 0 ? 0 : 1.0 / Math.Sqrt(variance + eps);
    }

    /// <summary>1/sqrt(running_var + eps) for eval with running statistics: no special cases (libtorch's eval
    /// formula), so running_var + eps = 0 gives α = ∞ and libtorch's NaN/±∞ pattern.</summary>
    internal static double RunningInvstdOf(double runningVar, double eps) => 1.0 / Math.Sqrt(runningVar + eps);

    /// <summary>Whether α = invstd·weight is not finite in T (libtorch computes α in the input's dtype): such a
    /// channel uses libtorch's folded x·α + (b − μ·α), whose evaluation order decides between NaN and ±∞ as in
    /// PyTorch (see <see cref="RunNormalize"/>).</summary>
    internal static bool ScaleNotFiniteInT(double scale) =>
        IsFloat ? !float.IsFinite((float)scale) : !double.IsFinite(scale);

    /// <summary>α as libtorch holds it: rounded to T.</summary>
    internal static double ScaleInT(double scale) => IsFloat ? (float)scale : scale;

    /// <summary>Second statistics pass over a block: Σ(x − c) and Σ(x − c)² about c = μ_hi, the float nearest the
    /// first-pass mean (float, one kernel with the first pass's order); double: Σ(x − μ)² about the double mean, and
    /// no sum (the double mean is not refined).</summary>
    private static void BlockSecondPass(T* x, int length, int runs, long stride, double mean, out double sum, out double squares)
    {
        if (IsFloat)
        {
            FloatKernels.SumAndSquaresShifted((float*)x, length, runs, stride, (float)mean, out sum, out squares);
            return;
        }

        sum = 0;
        squares = 0;
        for (int r = 0; r < runs; r++)
        {
            squares += Kernels<T>.SumSquaredDeviations(x + (r * stride), length, mean);
        }
    }

    /// <summary>
    /// The second pass's mean and Σ(x − μ)², from its totals about c = μ_hi (see <see cref="BlockSecondPass"/>).
    /// float: the mean is refined to μ' = c + Σ(x − c)/n. The first pass's mean carries the rounding of x − shift
    /// when the shift lies far from the data (the reason the second pass runs): with a sampled shift on a spike
    /// 15σ away its float partials put the mean ~8u off, 100× libtorch's error. About c (within a rounding of μ)
    /// the deviations are of size σ and nearly exact. Then Σ(x − μ')² = Σ(x − c)² − n·(μ' − c)², an exact
    /// identity whose correction is tiny, clamped at 0. A refinement that is not finite (deviations beyond float's
    /// range; non-finite data) keeps the first mean, and Σ(x − μ)² is then recomputed in double if needed
    /// (<see cref="TrustedVarSum"/>). double: the mean is kept and the raw sum is Σ(x − μ)².
    /// </summary>
    private static (double Mean, double VarSum) FinishSecondPass(double sum, double squares, double mean, long count)
    {
        if (!IsFloat)
        {
            return (mean, squares);
        }

        double c = (float)mean;
        double refined = c + (sum / count);
        if (!double.IsFinite(refined) || !double.IsFinite(mean))
        {
            refined = mean;
        }

        double d = refined - c;
        return (refined, Math.Max(squares - (count * d * d), 0.0));
    }

    private static void BlockSumDot(T* x, T* dy, int length, int runs, long stride, double mean, out double sumDy, out double dot)
    {
        if (IsFloat)
        {
            FloatKernels.SumAndDotAbout((float*)x, (float*)dy, length, runs, stride, (float)mean, out sumDy, out dot);
            return;
        }

        sumDy = 0;
        dot = 0;
        for (int r = 0; r < runs; r++)
        {
            Kernels<T>.SumAndDot(x + (r * stride), dy + (r * stride), length, mean, out double sd, out double dd);
            sumDy += sd;
            dot += dd;
        }
    }

    /// <summary>
    /// The per-channel backward terms of a set of one channel, in one place: dL/dweight = Σ(x − μ)·dy·invstd, dL/dbias = Σdy, and for batch
    /// statistics dx = (dy − gradMean − (x − μ)·k)·invstd·weight with k = Σ(x − μ)·dy·invstd²/n and
    /// gradMean = Σdy/n (the mean and the variance depend on x). Evaluated left to right in double.
    /// </summary>
    private readonly record struct ChannelBackward(double GradWeight, double GradBias, double K, double GradMean)
    {
        public static ChannelBackward From(double dot, double sumDy, double invstd, long count) =>
            new(dot * invstd, sumDy, dot * invstd * invstd / count, sumDy / count);
    }

    /// <summary>Channel <paramref name="ch"/>'s backward terms from its folded sums Σdy and Σ(x − μ_hi)·dy (the split and
    /// row paths): the parameter gradients, Σ(x − μ)·dy (for <see cref="CombineSet"/>), and dx's coefficients as a set of
    /// one channel (a = 1, the weight in the scale).</summary>
    private void StoreChannelTerms(int ch, double sumDy, double rawDot, long count)
    {
        double dot = FinishDot(rawDot, sumDy, Mean[ch]);
        var terms = ChannelBackward.From(dot, sumDy, Invstd[ch], count);
        GradWeight[ch] = terms.GradWeight;
        GradBias[ch] = terms.GradBias;
        SumDot[ch] = dot;
        _chK[ch] = terms.K;
        _chGradMean[ch] = terms.GradMean;
        _chScale[ch] = Invstd[ch] * Weight[ch];
        _chDyScale[ch] = 1;
    }

    /// <summary>The running-statistics blend f·stat + (1 − f)·running, in double (rounded once to T by the caller,
    /// libtorch's order); f = momentum, or 1/num_batches_tracked for the cumulative average.</summary>
    internal static double RunningBlend(double factor, double statistic, double running) =>
        (factor * statistic) + ((1.0 - factor) * running);

    /// <summary>Σ(x − μ)²/(n − 1): the unbiased variance running_var takes (n = <paramref name="count"/> ≥ 2).</summary>
    internal static double UnbiasedVariance(double varSum, long count) => varSum * (1.0 / (count - 1));

    /// <summary>Copies one run of the input into the saved-for-backward buffer (same offset).</summary>
    private static void SaveRun(T* x, T* save, long offset, int length) =>
        new ReadOnlySpan<T>(x + offset, length).CopyTo(new Span<T>(save + offset, length));

    /// <summary>float: Σ(x − μ)·dy = Σ(x − μ_hi)·dy − μ_lo·Σdy. A mean that is ±∞ (an infinite running_mean in eval)
    /// is its own μ_hi with no μ_lo: μ − μ_hi = ∞ − ∞ = NaN would turn the ∓∞ the runs summed into NaN.</summary>
    private static double FinishDot(double raw, double sumDy, double mean) =>
        IsFloat && double.IsFinite(mean) ? raw - ((mean - (float)mean) * sumDy) : raw;

    /// <summary>y = (x − mean)·scale + shift over one run (see <see cref="NormalizeCoefficients"/>).</summary>
    private static void RunNormalize(T* x, T* y, int length, double mean, double scale, double shift, bool streaming) =>
        NormalizeCoefficients.Of(mean, scale, shift).Apply(x, y, length, streaming);

    /// <summary>
    /// One channel's output formula y = (x − mean)·scale + shift, decided once per channel and applied to any number
    /// of runs. double: in double, rounded once. float: y = fma(x − μ_hi, α_hi, fma(x − μ_hi, α_lo, β')) (see
    /// <see cref="FloatKernels"/>), with non-temporal stores when the caller streams.
    /// </summary>
    private readonly struct NormalizeCoefficients
    {
        private readonly double _mean;
        private readonly double _scale;
        private readonly double _shift;
        private readonly float _m;
        private readonly float _hi;
        private readonly float _lo;
        private readonly float _b;
        private readonly bool _folded;

        private NormalizeCoefficients(double mean, double scale, double shift)
        {
            if (ScaleNotFiniteInT(scale) || scale == 0 || !double.IsFinite(mean))
            {
                // α = invstd·weight is ±∞ or NaN in T (var + eps = 0 or tiny, e.g. a negative running_var from
                // momentum outside [0, 1], or a non-finite or huge weight). Which non-finite value comes out (NaN or
                // ±∞) depends on the evaluation order, so use libtorch's folded x·α + (b − μ·α) here, as PyTorch does.
                // α = 0 (a zero weight, or Σ(x − μ)² held as ∞ so invstd = 0) too: x − μ can overflow for data near
                // float's range (−3e38 − 7.5e37), and (x − μ)·0 would be NaN where libtorch's x·0 + b is b.
                // μ = ±∞ (an infinite running_mean in eval) too: the float terms split μ into μ_hi + μ_lo with
                // μ_lo = ∞ − ∞ = NaN, so b' = b − μ_lo·α made every output NaN where x·α + (b − ∞·α) is ∓∞.
                double alpha = ScaleInT(scale);
                _folded = true;
                _mean = 0;
                _scale = alpha;
                _shift = shift - (mean * alpha);
                return;
            }

            _mean = mean;
            _scale = scale;
            _shift = shift;
            if (IsFloat)
            {
                _m = (float)mean;
                double lo = mean - _m;
                _hi = TowardZero(scale);
                _lo = (float)(scale - _hi);
                _b = (float)(shift - (lo * scale));
            }
        }

        public static NormalizeCoefficients Of(double mean, double scale, double shift) => new(mean, scale, shift);

        /// <summary>The float terms of y = fma(x − m, hi, fma(x − m, lo, b)); false for double, and for a channel that
        /// takes libtorch's folded form (then only <see cref="Apply"/> evaluates it).</summary>
        public bool TryFloatTerms(out float m, out float hi, out float lo, out float b)
        {
            (m, hi, lo, b) = (_m, _hi, _lo, _b);
            return IsFloat && !_folded;
        }

        /// <summary>Writes <paramref name="length"/> outputs (<paramref name="y"/> may equal <paramref name="x"/>).</summary>
        public void Apply(T* x, T* y, int length, bool streaming)
        {
            if (IsFloat && !_folded)
            {
                FloatKernels.Normalize((float*)x, (float*)y, length, _m, _hi, _lo, _b, streaming);
            }
            else
            {
                Kernels<T>.Normalize(x, y, length, _mean, _scale, _shift);
            }
        }
    }

    /// <summary>α_hi of the output's α = α_hi + α_lo split: the float next to α toward zero, so that α_lo has α's sign
    /// (or is 0). An infinite input then gives ∞·α_hi + ∞·α_lo = ±∞, as libtorch's x·α + β does; with α_lo of the
    /// opposite sign (round to nearest) it gave ∞ − ∞ = NaN.</summary>
    private static float TowardZero(double scale)
    {
        float hi = (float)scale;
        return Math.Abs((double)hi) > Math.Abs(scale) ? MathF.BitDecrement(Math.Abs(hi)) * MathF.Sign(hi) : hi;
    }

    /// <summary>dx = (a·dy − gradMean − (x − mean)·k)·scale, a = <paramref name="dyScale"/> (1 for a set of one
    /// channel, where a·dy is dy exactly). float: dx = fma(dy, A, fma(x − μ_hi, K, C)) with A = a·scale,
    /// K = −k·scale, C = (μ_lo·k − gradMean)·scale, each rounded once from double.</summary>
    private static void RunBackwardBatch(T* x, T* dy, T* dx, int length, double mean, double k, double gradMean, double scale, double dyScale, bool streaming)
    {
        if (IsFloat)
        {
            float m = (float)mean;
            double lo = mean - m;
            FloatKernels.Backward((float*)x, (float*)dy, (float*)dx, length, m, (float)(-k * scale), (float)(((lo * k) - gradMean) * scale), (float)(dyScale * scale), streaming);
        }
        else
        {
            Kernels<T>.BackwardBatch(x, dy, dx, length, mean, k, gradMean, scale, dyScale);
        }
    }
}
