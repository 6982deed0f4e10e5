using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Library;

/// <summary>
/// The float statistics' second pass, on every path and thread count. The first pass sums x − c about a shift c
/// sampled from 16 evenly spaced positions of the channel; here exactly those positions hold spikes 1000σ high, so c
/// lies ~15σ from the mean. x − c then rounds on float's coarse grid near |c|, and the first-pass mean is ~5 float
/// ulps off (found by the float64-truth property in CI: BatchNorm3d(3), [4, 3, 15, 9, 7], offset 3.37, scale 0.589).
/// The second pass must refine the mean as well as the variance: the running mean (momentum 1) is within one ulp of
/// the float64 mean, and every output within 2 ulps of its float64 truth plus the rounding of μ to float.
/// </summary>
public sealed class SecondPassAccuracyTests
{
    [Theory]
    [MemberData(nameof(LibraryRunMatrix.PathsAndThreads), MemberType = typeof(LibraryRunMatrix))]
    public void Float_mean_and_output_are_accurate_when_the_sampled_shift_lies_on_spikes(LibraryPath path, int threads)
    {
        var execution = new LibraryExecution(path, threads);
        const int batch = 4, channels = 3, spatial = 945;
        int[] shape = [batch, channels, spatial];
        long perChannel = (long)batch * spatial;
        var spikes = new HashSet<long>(Enumerable.Range(0, 16).Select(k => k * perChannel / 16));
        var random = new Random(82);
        var data = new float[batch * channels * spatial];
        for (int i = 0; i < data.Length; i++)
        {
            long p = ((long)(i / (channels * spatial)) * spatial) + (i % spatial);
            data[i] = (float)(3.37 + (0.589 * (SeededNormal.Next(random) + (spikes.Contains(p) ? 1000 : 0))));
        }

        var module = new BatchNorm1d<float>(channels, momentum: 1.0);
        execution.ApplyTo(module);
        var y = module.Forward(new DenseTensor<float>(data, shape));

        for (int c = 0; c < channels; c++)
        {
            var values = Enumerable.Range(0, batch).SelectMany(n => Enumerable.Range(((n * channels) + c) * spatial, spatial)).ToArray();
            double mean = values.Average(i => (double)data[i]);
            double invstd = 1 / Math.Sqrt((values.Sum(i => ((double)data[i] - mean) * ((double)data[i] - mean)) / values.Length) + 1e-5);
            float runningMean = module.RunningMean![c];
            Assert.True(Math.Abs(runningMean - mean) <= Ulp(mean),
                $"{execution}: channel {c} batch mean {runningMean:R} is more than one float ulp from the float64 mean {mean:R} (second pass did not refine the mean)");
            foreach (int i in values)
            {
                double truth = ((double)data[i] - mean) * invstd;
                double allowed = (2 * Ulp(truth)) + (Math.Abs(mean) * invstd * Math.ScaleB(1.0, -24));
                Assert.True(Math.Abs(y.Data[i] - truth) <= allowed,
                    $"{execution}: output[n={i / (channels * spatial)}, c={c}, s={i % spatial}] = {y.Data[i]:R}, float64 truth {truth:R}, error {Math.Abs(y.Data[i] - truth):E3} > {allowed:E3}");
            }
        }
    }

    /// <summary>The float32 spacing at |value|.</summary>
    private static double Ulp(double value) => Math.ScaleB(1.0, Math.ILogB(Math.Max(Math.Abs(value), Math.ScaleB(1.0, -126))) - 23);
}
