namespace BnParity.ParityTests.Library;

/// <summary>
/// The float64 definition of LayerNorm and RMSNorm over M sets of D contiguous elements with per-element weight and
/// bias: y = x̂·w + b with x̂ = (x − mean)·r, r = 1/sqrt(var + eps) (RMSNorm: mean 0, var = mean of x²); g = w·dy,
/// dx = r·(g − mean(g) − x̂·mean(g·x̂)) (no mean(g) term for RMSNorm); dweight = Σ_sets dy·x̂, dbias = Σ_sets dy.
/// The mean is refined once (the mean of the deviations): a plain double sum of thousands of values far off zero
/// carries more error of its own than a double result's budget.
/// </summary>
internal static class ElementNormReference
{
    public sealed record Truth(double[] Y, double[] Dx, double[] GradWeight, double[] GradBias, double[] Invstd);

    public static Truth Compute(double[] x, double[] dy, double[] weight, double[] bias, int sets, int length, bool centered, double eps)
    {
        var y = new double[x.Length];
        var dx = new double[x.Length];
        var gradWeight = new double[length];
        var gradBias = new double[length];
        var invstd = new double[sets];
        for (int m = 0; m < sets; m++)
        {
            int o = m * length;
            double mean = 0;
            if (centered)
            {
                for (int e = 0; e < length; e++)
                {
                    mean += x[o + e];
                }

                mean /= length;
                double correction = 0;
                for (int e = 0; e < length; e++)
                {
                    correction += x[o + e] - mean;
                }

                mean += correction / length;
            }

            double sq = 0, g = 0, gDot = 0;
            for (int e = 0; e < length; e++)
            {
                sq += (x[o + e] - mean) * (x[o + e] - mean);
                g += weight[e] * dy[o + e];
                gDot += weight[e] * dy[o + e] * (x[o + e] - mean);
            }

            double r = 1 / Math.Sqrt((sq / length) + eps);
            invstd[m] = r;
            for (int e = 0; e < length; e++)
            {
                double xhat = (x[o + e] - mean) * r;
                y[o + e] = (xhat * weight[e]) + bias[e];
                dx[o + e] = r * ((weight[e] * dy[o + e]) - (centered ? g / length : 0) - (xhat * r * gDot / length));
                gradWeight[e] += xhat * dy[o + e];
                gradBias[e] += dy[o + e];
            }
        }

        return new Truth(y, dx, gradWeight, gradBias, invstd);
    }
}
