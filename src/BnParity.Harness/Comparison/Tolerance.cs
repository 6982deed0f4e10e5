namespace BnParity.Harness.Comparison;

/// <summary>
/// The one tolerance policy of the project (tests, CLI replay and check all use it).
///
/// Every comparison is condition-aware: |actual − expected| ≤ k · u · scale, where u is the unit
/// roundoff of the dtype (2⁻²⁴ for float32, 2⁻⁵³ for float64) and scale is the magnitude of the
/// terms that cancel in the quantity, derived from the exact (float64 reference) statistics of
/// the step — not |expected|, which is tiny exactly where cancellation makes errors large.
///
/// Derivations (each operation rounds with relative error ≤ u):
/// <list type="bullet">
/// <item>Output. libtorch computes α = invstd·w, β = b − μ·α, y = x·α + β in T, with μ and var
/// rounded to T; a more accurate implementation computes (x − μ)·α + b. Either way the error is a
/// few roundings of |x·α|, |μ·α| and |b| (≤ 6u·scale counted op by op), plus the error of invstd.
/// libtorch squares (x − μ_T) with μ_T = round(μ), so its variance carries a bias of about
/// (u·μ)², a relative error u·μ²/var, which reaches the output as |(x − μ)·α|·u·μ²/(var + eps).
/// The mean's own rounding error is bounded by u·m with m = Σ|x|/n (≥ |μ|; Σx may cancel), so m
/// stands for |μ| throughout: scale = |x·α| + m·|α| + |b| + |(x − μ)·α|·u·m²/(var + eps);
/// k = <see cref="ElementwiseRoundings"/>.</item>
/// <item>running_mean = (1 − f)·r + f·μ: scale = |(1 − f)·r| + |f·r| + |f|·m. running_var: scale =
/// |(1 − f)·r| + |f·r| + |f|·var_unbiased, plus the bias δ² of a mean off by δ. The |f·r| term: libtorch
/// blends with f rounded to T (observed: momentum 0.999 in float32 scales r by 1 − 0.999f, a relative
/// 1.3e-5 off 1 − 0.999), an error u·|f|·|v − r| that |(1 − f)·r| does not bound when f ≈ 1.
/// Float64 statistics are sums in T, so the mean's error (statisticRoundings·u·m) carries the (n − 1)
/// factor wherever it enters: the output's m·|α| term, running_var's δ², the gradients' mean shift. Errors already in r are carried forward
/// multiplied by |1 − f| (they grow when momentum is outside [0, 1], e.g. −1.2), so the budget of
/// a buffer is propagated step by step, never reset.</item>
/// <item>Eval output additionally inherits the buffers' budgets: |α|·B(running_mean) +
/// |(x − r_mean)·α|·B(running_var)/(2·(r_var + eps)).</item>
/// <item>Reductions of n terms (sums for statistics and gradients): error ≤ ~√n·u·Σ|terms| for
/// blocked or pairwise summation in T (libtorch accumulates float statistics in double, but its
/// float64 and some gradient reductions are in T). k = <see cref="ReductionRoundings"/>·√n.</item>
/// </list>
/// Tight enough to catch (tests in parity-tests/Comparison prove each): running_var from the biased
/// variance at n ≥ 100 (relative 1/n ≥ 1e-2), a 1e-4 relative error in one output element, eps
/// added outside the sqrt, the cumulative-average factor off by one, a 0.1 % weight-gradient error.
/// </summary>
public static class Tolerance
{
    /// <summary>Unit roundoff of float32: half an ULP of 1.</summary>
    public const double Float32UnitRoundoff = 5.9604644775390625E-08 /* 2^-24 */;

    /// <summary>Unit roundoff of float64.</summary>
    public const double Float64UnitRoundoff = 1.1102230246251565E-16 /* 2^-53 */;

    /// <summary>
    /// k for element-wise quantities: 6 roundings counted for libtorch's α/β form, and 2 more for
    /// the reference side and a T-rounded running buffer feeding an eval step. 16 keeps a 2× margin.
    /// </summary>
    public const double ElementwiseRoundings = 16;

    /// <summary>k per √n for reductions (statistics and Σ-gradients); same 16 as above.</summary>
    public const double ReductionRoundings = 16;

    /// <summary>
    /// For the float64-truth check: the library's error may be at most this multiple of
    /// TorchSharp's error against the truth (plus the floor below). 2 leaves room for a different
    /// but equally good rounding sequence; an implementation that loses digits libtorch keeps fails.
    /// </summary>
    public const double TruthErrorRatio = 2;

    /// <summary>Floor of the float64-truth check, as a multiple of k·u·scale: an error this small is never "worse".</summary>
    public const double TruthErrorFloorFraction = 0.25;

    /// <summary>
    /// The library's own float32 accuracy claim against the float64 truth (not parity with libtorch): every output is
    /// within this many u of <c>|y| + |b| + |w|</c>, and a running statistic within this many u of the magnitudes it
    /// blends (<see cref="RunningMeanAccuracyScale"/>, <see cref="RunningVarAccuracyScale"/>). Measured over 6 000
    /// generated cases on every path: at most 1.9 u (output), 1.0 u (running_mean), 2.0 u (running_var), whatever the
    /// condition number |μ|/σ. libtorch's x·α + β loses up to u·|x·α| there, orders of magnitude more on
    /// ill-conditioned data; so a lost correction term or a wrong second-pass decision cannot hide inside this budget.
    /// </summary>
    public const double LibraryAccuracyRoundings = 6;

    /// <summary>Scale of the output budget: |y| + |b| + |w| (the rounding of y, of the shift, and a u·σ error of the
    /// mean times |α| = |w|/σ).</summary>
    public static double OutputAccuracyScale(double y, double bias, double weight) =>
        Math.Abs(y) + Math.Abs(bias) + Math.Abs(weight);

    /// <summary>Scale of the running_mean budget: |f·μ| + |(1 − f)·old| + |f|·σ (the two blended terms and a u·σ error
    /// of the batch mean).</summary>
    public static double RunningMeanAccuracyScale(double factor, double mean, double old, double sigma) =>
        Math.Abs(factor * mean) + Math.Abs((1 - factor) * old) + (Math.Abs(factor) * sigma);

    /// <summary>Scale of the running_var budget: |f·var_unbiased| + |(1 − f)·old|.</summary>
    public static double RunningVarAccuracyScale(double factor, double unbiasedVariance, double old) =>
        Math.Abs(factor * unbiasedVariance) + Math.Abs((1 - factor) * old);

    /// <summary>The spacing of T's subnormal numbers (2^-149 for float32, 2^-1074 for float64): below T's normal range
    /// every rounding errs by up to this much absolutely, which no multiple of u·|value| bounds, so budgets of values
    /// that can be subnormal add a multiple of it (a subnormal mean reaches the output times |α|).</summary>
    public static double SubnormalSpacing(Cases.ElementType type) =>
        type == Cases.ElementType.Float32 ? 1.401298464324817E-45 : double.Epsilon;

    public static double UnitRoundoff(Cases.ElementType type) =>
        type == Cases.ElementType.Float32 ? Float32UnitRoundoff : Float64UnitRoundoff;

    /// <summary>The reduction multiplier for <paramref name="terms"/> summands: ReductionRoundings·√max(n, 1).</summary>
    public static double ReductionFactor(long terms) => ReductionRoundings * Math.Sqrt(Math.Max(terms, 1));

    /// <summary>
    /// Roundings (in units of u·Σ|x|/n) in a batch statistic of <paramref name="terms"/> values per
    /// channel with <paramref name="spatialSize"/> values per (n, c) plane, for input in <paramref name="layout"/>.
    /// float32 channels-first with spatial size &gt; 1: libtorch's contiguous kernel accumulates in
    /// acc_type&lt;float&gt; = double, as the library does, and rounds once to float, so the sum's own error
    /// (n·2⁻⁵³) is negligible and k roundings remain. float32 channels-last, and float32 with spatial size 1
    /// ((N, C) or (N, C, 1) input, which libtorch treats as NC11, i.e. channels-last): libtorch's channels-last
    /// kernel accumulates over rows in opmath = float (measured: running_var 69 ulp from the float64 truth on a
    /// [177, 2, 3, 3] channels-last batch of small integers, where the contiguous kernel is within 1 ulp).
    /// float64: the sums are in T.
    /// In the last two cases, √n is only the random-walk estimate and a constant channel defeats it
    /// (every partial sum rounds the same way), so the budget uses the worst-case bound of recursive
    /// or blocked summation, (n − 1)·u·Σ|x|, plus k.
    /// </summary>
    public static double StatisticRoundings(Cases.ElementType type, long terms, long spatialSize, MemoryLayout layout = MemoryLayout.ChannelsFirst) =>
        type == Cases.ElementType.Float32 && spatialSize > 1 && layout == MemoryLayout.ChannelsFirst
            ? ElementwiseRoundings
            : ElementwiseRoundings + Math.Max(terms - 1, 0);

    /// <summary>
    /// Roundings (in units of u·Σ|terms|) in a gradient reduction (Σdy, Σ(x − μ)·dy) of
    /// <paramref name="terms"/> values. float64 sums are in T, and so are float32 sums on libtorch's channels-last
    /// backward kernel (opmath = float): there the worst-case (n − 1)·u bound is used, as for the statistics, since
    /// data with ties and zeros makes the rounding errors correlate. float32 channels-first keeps
    /// <see cref="ReductionFactor"/>: the sums are accumulated in double, and 16·√n is generous.
    /// </summary>
    public static double GradientReductionRoundings(Cases.ElementType type, long terms, MemoryLayout layout = MemoryLayout.ChannelsFirst) =>
        type == Cases.ElementType.Float64 || layout == MemoryLayout.ChannelsLast ? ElementwiseRoundings + Math.Max(terms - 1, 0) : ReductionFactor(terms);

    /// <summary>
    /// <see cref="GradientReductionRoundings(Cases.ElementType, long, MemoryLayout)"/> for a module: LayerNorm's and
    /// RMSNorm's gradient sums are in T on libtorch's layer_norm backward (its accumulator type for float is float) and in
    /// PyTorch's composite autograd (float sums), so they take the worst-case (n − 1)·u bound in either dtype.
    /// </summary>
    public static double GradientReductionRoundings(Cases.ModuleConfig config, long terms, MemoryLayout layout)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.IsElementNorm
            ? ElementwiseRoundings + Math.Max(terms - 1, 0)
            : GradientReductionRoundings(config.DType, terms, layout);
    }

    /// <summary>
    /// The budget of an element no rounding analysis bounds: an eval output whose running_var + eps is exactly 0, so that
    /// the truth's α is infinite and an implementation's α is infinite or huge depending on one rounding of noise in its
    /// running_var. <see cref="Within"/> accepts any pair there (including NaN and ±∞); every other budget that ∞·0 made
    /// NaN is replaced by +∞ in <see cref="ToleranceBudgets"/>, so this value is never produced by accident.
    /// </summary>
    public const double IllPosed = double.NaN;

    /// <summary>
    /// Whether <paramref name="actual"/> is within <paramref name="budget"/> of <paramref name="expected"/>.
    /// NaN matches only NaN; ±Infinity only the same infinity; +0 and −0 are equal (the sign of a
    /// zero output depends on whether x·α + β or (x − μ)·α + b was evaluated, which PyTorch does not fix).
    /// An infinite budget (an infinite input made the scale infinite) accepts any finite pair; <see cref="IllPosed"/> any pair.
    /// </summary>
    public static bool Within(double expected, double actual, double budget)
    {
        if (double.IsNaN(budget))
        {
            return true; // IllPosed: rounding noise in an exactly singular denominator decides the value
        }

        if (double.IsNaN(expected) || double.IsNaN(actual))
        {
            return double.IsNaN(expected) && double.IsNaN(actual);
        }

        if (double.IsInfinity(expected) || double.IsInfinity(actual))
        {
            return expected.Equals(actual);
        }

        if (expected == actual)
        {
            return true;
        }

        return !double.IsFinite(budget) || Math.Abs(actual - expected) <= budget;
    }

    /// <summary>Error in ULPs of the dtype at <paramref name="expected"/>.</summary>
    public static double UlpError(double expected, double actual, Cases.ElementType type)
    {
        if (!double.IsFinite(expected) || !double.IsFinite(actual))
        {
            return expected.Equals(actual) ? 0 : double.PositiveInfinity;
        }

        double magnitude = Math.Abs(expected);
        double ulp = type == Cases.ElementType.Float32
            ? MathF.BitIncrement((float)magnitude) - (float)magnitude
            : Math.BitIncrement(magnitude) - magnitude;
        return Math.Abs(actual - expected) / ulp;
    }

    /// <summary>Relative error |a − e|/|e| (∞ when e is 0 and a is not).</summary>
    public static double RelativeError(double expected, double actual) =>
        expected == actual ? 0 : Math.Abs(actual - expected) / Math.Abs(expected);
}
