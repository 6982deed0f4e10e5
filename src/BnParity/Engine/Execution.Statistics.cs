namespace BnParity;

/// <content>Per-run statistics and element-wise formulas shared by the paths.</content>
public abstract partial class BatchNorm<T>
{
    private sealed unsafe partial class Execution
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

            long s = _jobS;
            long count = _jobN * s;
            int samples = (int)Math.Min(ShiftSamples, count);
            float* x = (float*)_pX;
            double total = 0;
            for (int k = 0; k < samples; k++)
            {
                long p = k * count / samples;
                long n = p / s;
                total += x[(((n * _c) + ch) * s) + (p - (n * s))];
            }

            return (float)(total / samples);
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

        private static double BlockSquares(T* x, int length, int runs, long stride, double mean)
        {
            if (IsFloat)
            {
                return FloatKernels.SumSquaresAbout((float*)x, length, runs, stride, (float)mean);
            }

            double total = 0;
            for (int r = 0; r < runs; r++)
            {
                total += Kernels<T>.SumSquaredDeviations(x + (r * stride), length, mean);
            }

            return total;
        }

        /// <summary>float: Σ(x − μ)² = Σ(x − μ_hi)² − n·μ_lo² (exact identity; μ_hi is the float nearest μ, so the
        /// correction is at most about half the raw sum), clamped at 0.</summary>
        private static double FinishVarSum(double raw, double mean, long count)
        {
            if (!IsFloat)
            {
                return raw;
            }

            double lo = mean - (float)mean;
            return Math.Max(raw - (count * lo * lo), 0.0);
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

        /// <summary>float: Σ(x − μ)·dy = Σ(x − μ_hi)·dy − μ_lo·Σdy.</summary>
        private static double FinishDot(double raw, double sumDy, double mean) =>
            IsFloat ? raw - ((mean - (float)mean) * sumDy) : raw;

        /// <summary>y = (x − mean)·scale + shift (double: in double, rounded once; float: see FloatKernels).</summary>
        private static void RunNormalize(T* x, T* y, int length, double mean, double scale, double shift)
        {
            if (!double.IsFinite(scale))
            {
                // α = invstd·weight is ±∞ or NaN (var + eps = 0, e.g. a negative running_var from momentum
                // outside [0, 1], or a non-finite weight). Which non-finite value comes out (NaN or ±∞)
                // depends on the evaluation order, so use libtorch's folded x·α + (b − μ·α) here, as PyTorch does.
                Kernels<T>.Normalize(x, y, length, 0, scale, shift - (mean * scale));
                return;
            }

            if (IsFloat)
            {
                float m = (float)mean;
                double lo = mean - m;
                float hi = (float)scale;
                FloatKernels.Normalize((float*)x, (float*)y, length, m, hi, (float)(scale - hi), (float)(shift - (lo * scale)));
            }
            else
            {
                Kernels<T>.Normalize(x, y, length, mean, scale, shift);
            }
        }

        /// <summary>dx = (dy − gradMean − (x − mean)·k)·scale. float: dx = fma(dy, A, fma(x − μ_hi, K, C)) with
        /// A = scale, K = −k·scale, C = (μ_lo·k − gradMean)·scale, each rounded once from double.</summary>
        private static void RunBackwardBatch(T* x, T* dy, T* dx, int length, double mean, double k, double gradMean, double scale, bool nonTemporal = false)
        {
            if (IsFloat)
            {
                float m = (float)mean;
                double lo = mean - m;
                FloatKernels.Backward((float*)x, (float*)dy, (float*)dx, length, m, (float)(-k * scale), (float)(((lo * k) - gradMean) * scale), (float)scale, nonTemporal);
            }
            else
            {
                Kernels<T>.BackwardBatch(x, dy, dx, length, mean, k, gradMean, scale);
            }
        }
    }
}
