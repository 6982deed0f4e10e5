using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;

namespace BnParity.Harness.Comparison;

/// <summary>Absolute error budgets for every number one step produces, per <see cref="Tolerance"/>'s derivation.</summary>
public sealed record StepBudgets(
    double[]? Output,
    double[]? RunningMean,
    double[]? RunningVar,
    double[]? GradInput,
    double[]? GradWeight,
    double[]? GradBias);

/// <summary>
/// Turns a case and its exact (float64 reference) run into per-element budgets. The buffers'
/// budgets are carried from step to step (multiplied by |1 − f|), so a long run at momentum
/// −1.2 gets the larger budget its arithmetic really has.
/// </summary>
public static class ToleranceBudgets
{
    public static IReadOnlyList<StepBudgets> For(BatchNormCase batchNormCase, CaseTrace truth, IReadOnlyList<ReferenceBatchNorm.Normalization?> normalizations)
    {
        var config = batchNormCase.Config;
        double u = Tolerance.UnitRoundoff(config.DType);
        double k = Tolerance.ElementwiseRoundings;
        int channels = config.NumFeatures;
        var meanBudget = new double[channels];
        var varBudget = new double[channels];
        var result = new List<StepBudgets>();
        for (int stepIndex = 0; stepIndex < normalizations.Count; stepIndex++)
        {
            var norm = normalizations[stepIndex];
            var step = batchNormCase.Steps[stepIndex];
            if (norm is null)
            {
                result.Add(new StepBudgets(null, null, null, null, null, null));
                continue;
            }

            var before = truth.StateBefore[stepIndex];
            var x = step.Input;
            var geometry = norm.Geometry;
            int spatial = geometry.Spatial;
            long n = norm.ValuesPerSet;
            // Statistics of float32 data are accumulated in double by both libtorch and the library
            // (one rounding to T at the end) except on libtorch's channels-last path (channels-last input,
            // or spatial size 1); float64 statistics are sums in T (see StatisticRoundings).
            double statisticRoundings = Tolerance.StatisticRoundings(config.DType, n, spatial, step.Layout);

            // Output.
            double spacing = Tolerance.SubnormalSpacing(config.DType);
            var output = new double[x.Data.Length];
            for (int i = 0; i < output.Length; i++)
            {
                int j = geometry.SetOf(i), c = geometry.ChannelOf(i);
                double alpha = Math.Abs(norm.InvStd[j] * norm.Weight[c]);
                double centred = Math.Abs((x.Data[i] - norm.Mean[j]) * alpha);
                double magnitude = norm.MeanMagnitude[j];
                double scale = Math.Abs(x.Data[i]) * alpha + magnitude * alpha + Math.Abs(norm.Bias[c]);
                if (norm.UsesBatchStatistics)
                {
                    // The batch mean is a reduction: its error is statisticRoundings·u·m (growing with n
                    // for float64 sums in T), and it reaches every output through |α| even where x − μ = 0
                    // (a constant channel), so the m·|α| term takes that factor, not k.
                    double variance = norm.BatchVariance![j];
                    if (config.Eps == 0 && variance <= k * spacing)
                    {
                        // A variance within the subnormal spacing of 0 at eps = 0: whether T holds it as 0 (invstd 0 by
                        // PyTorch's rule, output 0) or as a few subnormal ulps (invstd ~1/√var, output ~±1) is decided by
                        // one rounding of Σ(x − μ)² (libtorch sums the subnormal squares in float; the truth, in double).
                        output[i] = Tolerance.IllPosed;
                        continue;
                    }

                    output[i] = k * u * scale + Math.Max(0, statisticRoundings - k) * u * magnitude * alpha
                        + centred * BatchInvStdRelative(u, k, statisticRoundings, magnitude, variance, config.Eps);
                    if (variance + config.Eps > 0)
                    {
                        // Squares of deviations below T's normal range are summed with absolute errors of the
                        // subnormal spacing (libtorch sums them in T): the variance is then off by up to k·spacing.
                        output[i] += centred * k * spacing / (variance + config.Eps);
                    }
                }
                else
                {
                    double bufferVar = before.RunningVar![c];
                    if (bufferVar + config.Eps == 0)
                    {
                        // running_var + eps = 0 exactly (eps = 0 after a constant channel): the truth's α is infinite,
                        // and an implementation whose running_var carries one rounding of noise (libtorch's inexact
                        // float64 mean of a constant channel gives var = δ²) has a huge finite α instead.
                        output[i] = Tolerance.IllPosed;
                        continue;
                    }

                    output[i] = k * u * scale + alpha * meanBudget[c] + centred * varBudget[c] / (2 * Math.Abs(bufferVar + config.Eps));
                }

                output[i] += k * spacing * (alpha + 1);
                if (double.IsNaN(output[i]))
                {
                    output[i] = double.PositiveInfinity; // ∞·0 of an infinite input: unbounded, but not ill-posed
                }
            }

            // Buffers (only training steps with tracking move them).
            double[]? runningMean = null, runningVar = null;
            if (before.RunningMean is not null)
            {
                double f = norm.RunningFactor;
                if (step.Training && n > 0)
                {
                    // Per channel, the mean over its sets of each set's blend budget: a BatchNorm channel is one set
                    // (the budget of its blend); an InstanceNorm channel averages one blend per instance, each rounded
                    // to T, and the average is rounded once more (the extra k·u of the per-instance term).
                    var meanTerms = new double[channels];
                    var varTerms = new double[channels];
                    var setsOfChannel = new int[channels];
                    for (int j = 0; j < geometry.SetCount; j++)
                    {
                        int c = geometry.ChannelOfSet(j);
                        double mu = norm.Mean[j];
                        double magnitude = norm.MeanMagnitude[j];
                        double unbiased = norm.BatchVariance![j] * n / (n - 1);
                        // libtorch blends with f rounded to T (a lerp: r + f_T·(v − r)); that rounding moves the
                        // result by u·|f|·|v − r|, which |(1 − f)·r| does not bound when f ≈ 1: hence the |f·r| terms.
                        double meanTerm = Math.Abs(1 - f) * meanBudget[c]
                            + k * u * (Math.Abs((1 - f) * before.RunningMean[c]) + Math.Abs(f * before.RunningMean[c]) + Math.Abs(f * mu))
                            + Math.Abs(f) * statisticRoundings * u * magnitude
                            + k * spacing;
                        // A mean off by δ ≤ statisticRoundings·u·m biases Σ(x − μ_T)²/n by δ²: for float32
                        // (statisticRoundings = k) this is the (k·u·m)² of the derivation; float64 sums in T
                        // grow with n (a constant channel's variance is δ², not 0, in libtorch).
                        double meanShift = statisticRoundings * u * magnitude;
                        double varTerm = Math.Abs(1 - f) * varBudget[c]
                            + k * u * (Math.Abs((1 - f) * before.RunningVar![c]) + Math.Abs(f * before.RunningVar[c]) + Math.Abs(f) * unbiased)
                            + Math.Abs(f) * meanShift * meanShift * n / (n - 1)
                            + Math.Abs(f) * statisticRoundings * u * unbiased
                            + k * spacing;
                        if (geometry.PerInstance)
                        {
                            // libtorch averages the N rounded blends with a sum in T: up to (N − 1) + k roundings of their size.
                            double averaging = k + Math.Max(geometry.Batch - 1, 0);
                            meanTerm += averaging * u * (Math.Abs((1 - f) * before.RunningMean[c]) + Math.Abs(f * mu));
                            varTerm += averaging * u * (Math.Abs((1 - f) * before.RunningVar[c]) + Math.Abs(f) * unbiased);
                        }

                        meanTerms[c] += meanTerm;
                        varTerms[c] += varTerm;
                        setsOfChannel[c]++;
                    }

                    for (int c = 0; c < channels; c++)
                    {
                        meanBudget[c] = meanTerms[c] / setsOfChannel[c];
                        varBudget[c] = varTerms[c] / setsOfChannel[c];
                    }
                }

                else if (geometry.PerInstance && !step.Training)
                {
                    // PyTorch's instance_norm writes back the mean over the batch of N copies of each buffer in eval too,
                    // which its float reduction may round by an ulp (the library leaves the buffer as it is).
                    for (int c = 0; c < channels; c++)
                    {
                        meanBudget[c] += k * u * Math.Abs(before.RunningMean[c]);
                        varBudget[c] += k * u * Math.Abs(before.RunningVar![c]);
                    }
                }

                runningMean = (double[])meanBudget.Clone();
                runningVar = (double[])varBudget.Clone();
            }

            double[]? gradInput = null, gradWeight = null, gradBias = null;
            if (step.GradOutput is { } gradOutput)
            {
                (gradInput, gradWeight, gradBias) = GradientBudgets(config, x, gradOutput.Data, norm, before, meanBudget, varBudget, u, k, step.Layout);
            }

            result.Add(new StepBudgets(output, NotIllPosed(runningMean), NotIllPosed(runningVar), NotIllPosed(gradInput), NotIllPosed(gradWeight), NotIllPosed(gradBias)));
        }

        return result;
    }

    /// <summary>A NaN from ∞·0 in a budget means unbounded (∞), never <see cref="Tolerance.IllPosed"/>.</summary>
    private static double[]? NotIllPosed(double[]? budgets)
    {
        if (budgets is not null)
        {
            for (int i = 0; i < budgets.Length; i++)
            {
                if (double.IsNaN(budgets[i]))
                {
                    budgets[i] = double.PositiveInfinity;
                }
            }
        }

        return budgets;
    }

    /// <summary>
    /// Relative error of a batch invstd = 1/√(var + eps), the one formula the output and gradient budgets share:
    /// Σ(x − μ)² of <paramref name="statisticRoundings"/>·u (sums in T grow with n: float64, and float32 on libtorch's
    /// channels-last path; a sum of squares has no cancellation, so the worst case is (n − 1)·u), plus the bias of
    /// squaring about a mean rounded to T, k·u·m²/(var + eps).
    /// </summary>
    private static double BatchInvStdRelative(double u, double k, double statisticRoundings, double magnitude, double variance, double eps) =>
        u * (statisticRoundings + (k * magnitude * magnitude / (variance + eps)));

    private static (double[] Input, double[]? Weight, double[]? Bias) GradientBudgets(
        ModuleConfig config, CaseTensor x, double[] g, ReferenceBatchNorm.Normalization norm, ModuleState before,
        double[] meanBudget, double[] varBudget, double u, double k, MemoryLayout layout)
    {
        var geometry = norm.Geometry;
        int channels = geometry.Channels, spatial = geometry.Spatial, sets = geometry.SetCount, segments = geometry.SegmentCount;
        long n = norm.ValuesPerSet;
        double reduction = Tolerance.GradientReductionRoundings(config, n, layout);

        // Per segment (a set's part in one channel): the sums of the parameter gradients. Per set: the sums dx's
        // terms share, each term scaled by a = the channel's weight where several weighted channels share the set
        // (GroupNorm), else a = 1 (the weight is then in the set's scale, and the set sums are the segment sums).
        var sumAbsGrad = new double[segments];
        var sumAbsCentredGrad = new double[segments];
        var sumCentredGrad = new double[segments];
        var sumGrad = new double[segments];
        var setSumAbsGrad = new double[sets];
        var setSumAbsCentredGrad = new double[sets];
        var setSumCentredGrad = new double[sets];
        var setSumGrad = new double[sets];
        for (int i = 0; i < g.Length; i++)
        {
            int segment = geometry.SegmentOf(i), j = geometry.SetOfSegment(segment);
            double a = geometry.WeightsInsideSets ? norm.Weight[geometry.ChannelOf(i)] : 1;
            double centred = x.Data[i] - norm.Mean[j];
            sumAbsGrad[segment] += Math.Abs(g[i]);
            sumAbsCentredGrad[segment] += Math.Abs(centred * g[i]);
            sumCentredGrad[segment] += centred * g[i];
            sumGrad[segment] += g[i];
            setSumAbsGrad[j] += Math.Abs(a * g[i]);
            setSumAbsCentredGrad[j] += Math.Abs(a * centred * g[i]);
            setSumCentredGrad[j] += a * centred * g[i];
            setSumGrad[j] += a * g[i];
        }

        var meanShifts = new double[sets];
        var invStdRelatives = new double[sets];
        var setWeight = new double[sets];
        var setBias = new double[sets];
        for (int j = 0; j < sets; j++)
        {
            int c = geometry.ChannelOfSet(j);
            double invStd = norm.InvStd[j];
            // A mean rounded to T shifts every centred value by ~u·|μ|: it enters Σ(x − μ)·g through Σ|g|.
            // Float64 means are sums in T: their error grows with n (as for the statistics above).
            double statistics = Tolerance.StatisticRoundings(config.DType, n, spatial, layout);
            double meanGrowth = norm.UsesBatchStatistics ? statistics / k : 1;
            double meanShift = u * norm.MeanMagnitude[j] * meanGrowth + (norm.UsesBatchStatistics ? 0 : meanBudget[c]);
            double invStdRelative = norm.UsesBatchStatistics
                ? k * u + BatchInvStdRelative(u, k, statistics, norm.MeanMagnitude[j], norm.BatchVariance![j], config.Eps)
                : k * u + varBudget[c] / (2 * Math.Abs(before.RunningVar![c] + config.Eps));
            meanShifts[j] = meanShift;
            invStdRelatives[j] = invStdRelative;
            setBias[j] = reduction * u * setSumAbsGrad[j];
            setWeight[j] = (reduction * u * setSumAbsCentredGrad[j] + k * meanShift * setSumAbsGrad[j]) * invStd
                + Math.Abs(setSumCentredGrad[j] * invStd) * invStdRelative;
        }

        var weight = new double[channels];
        var bias = new double[channels];
        for (int segment = 0; segment < segments; segment++)
        {
            int j = geometry.SetOfSegment(segment), c = geometry.ChannelOfSegment(segment);
            double invStd = norm.InvStd[j];
            bias[c] += reduction * u * sumAbsGrad[segment];
            weight[c] += (reduction * u * sumAbsCentredGrad[segment] + k * meanShifts[j] * sumAbsGrad[segment]) * invStd
                + Math.Abs(sumCentredGrad[segment] * invStd) * invStdRelatives[j];
            if (geometry.PerInstance)
            {
                // A channel's gradient is the sum over its N instances of per-instance sums, which libtorch adds in T:
                // up to (N − 1) + k roundings of their size.
                double across = k + Math.Max(geometry.Batch - 1, 0);
                bias[c] += across * u * Math.Abs(sumGrad[segment]);
                weight[c] += across * u * Math.Abs(sumCentredGrad[segment] * invStd);
            }
        }

        var input = new double[g.Length];
        for (int i = 0; i < g.Length; i++)
        {
            int j = geometry.SetOf(i), c = geometry.ChannelOf(i);
            double invStd = norm.InvStd[j];
            double a = geometry.WeightsInsideSets ? norm.Weight[c] : 1;
            double scaleFactor = geometry.WeightsInsideSets ? Math.Abs(invStd) : Math.Abs(invStd * norm.Weight[c]);
            if (norm.UsesBatchStatistics)
            {
                double centred = Math.Abs(x.Data[i] - norm.Mean[j]);
                double kc = Math.Abs(setSumCentredGrad[j]) * invStd * invStd / n;
                double kcBudget = setWeight[j] * invStd / n;
                // An implementation's centred value is x − μ − δ with δ its mean's error (meanShift): where x − μ = 0
                // (a constant channel) its k is δ·Σg·invstd²/n, not 0, and reaches dx as (δ)·k — quadratic in δ,
                // large when invstd = 1/√eps (observed: float32 [83, 1] constant channel at eps 1e-10, libtorch
                // off by 1.9e5 through this term alone). kcBudget holds the δ·Σ|g| part, so it takes centred + δ.
                double shifted = centred + meanShifts[j];
                double terms = Math.Abs(a * g[i]) + Math.Abs(setSumGrad[j]) / n + shifted * kc;
                input[i] = (k * u * terms + setBias[j] / n + shifted * kcBudget) * scaleFactor
                    + Math.Abs(a * g[i] - setSumGrad[j] / n - (x.Data[i] - norm.Mean[j]) * kc) * scaleFactor * invStdRelatives[j];
            }
            else
            {
                double invStdRelative = k * u + varBudget[c] / (2 * Math.Abs(before.RunningVar![c] + config.Eps));
                input[i] = Math.Abs(g[i]) * scaleFactor * (k * u + invStdRelative);
            }
        }

        return (input, config.Affine ? weight : null, config.HasBias ? bias : null);
    }
}
