using System.Globalization;
using System.Numerics;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;

namespace BnParity.ParityTests.Rules;

/// <summary>
/// The one assertion helper of the rule tests: a float comparison with the project's condition-aware
/// budget k·u·scale (<see cref="Tolerance"/>), plus bitwise snapshots for "nothing changed" rules and a
/// seeded data generator. Everything else is plain xunit.
/// </summary>
internal static class RuleAssert
{
    /// <summary>Unit roundoff of T (float or double).</summary>
    public static double U<T>() => typeof(T) == typeof(float) ? Tolerance.Float32UnitRoundoff : Tolerance.Float64UnitRoundoff;

    public static ElementType DType<T>() => typeof(T) == typeof(float) ? ElementType.Float32 : ElementType.Float64;

    /// <summary>
    /// |actual − expected| ≤ roundings·u·scale, with roundings = <see cref="Tolerance.ElementwiseRoundings"/> unless given
    /// (e.g. <see cref="Tolerance.ReductionFactor"/> for a sum). NaN matches only NaN (<see cref="Tolerance.Within"/>).
    /// </summary>
    public static void Close<T>(double expected, double actual, double scale, string what, double roundings = Tolerance.ElementwiseRoundings)
    {
        double budget = roundings * U<T>() * Math.Abs(scale);
        Assert.True(
            Tolerance.Within(expected, actual, budget),
            string.Create(CultureInfo.InvariantCulture, $"{what} ({typeof(T).Name}): expected {expected:R}, actual {actual:R}, |error| {Math.Abs(actual - expected):R} > budget {budget:R} ({roundings}·u·{scale:R})"));
    }

    public static double D<T>(T value) where T : unmanaged, IFloatingPointIeee754<T> => double.CreateChecked(value);

    public static T[] Of<T>(params double[] values) where T : unmanaged, IFloatingPointIeee754<T> => Array.ConvertAll(values, T.CreateChecked);

    public static double[] ToDouble<T>(T[] values) where T : unmanaged, IFloatingPointIeee754<T> => Array.ConvertAll(values, double.CreateChecked);

    /// <summary>Seeded N(mean, std²) values, already rounded to T (the returned doubles are exactly the T values).</summary>
    public static double[] Normal<T>(int seed, int count, double mean = 0, double std = 1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = double.CreateChecked(T.CreateChecked(mean + (std * SeededNormal.Next(random))));
        }

        return values;
    }

    public static DenseTensor<T> Tensor<T>(double[] values, params int[] shape) where T : unmanaged, IFloatingPointIeee754<T> =>
        new(Of<T>(values), shape);

    public static DenseTensor<T> RandomTensor<T>(int seed, int[] shape, double mean = 0, double std = 1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        long length = 1;
        foreach (int d in shape)
        {
            length *= d;
        }

        return Tensor<T>(Normal<T>(seed, (int)length, mean, std), shape);
    }

    /// <summary>Sets weight and bias to seeded non-trivial values (weight in ±[0.5, 1.5]).</summary>
    public static void RandomAffine<T>(NormBase<T> module, int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        for (int c = 0; c < module.NumFeatures; c++)
        {
            module.Weight![c] = T.CreateChecked((random.Next(2) == 0 ? -1 : 1) * (0.5 + random.NextDouble()));
            double bias = random.NextDouble() - 0.5; // drawn without a bias too (RMSNorm), so the weights stay the same stream
            if (module.Bias is { } biases)
            {
                biases[c] = T.CreateChecked(bias);
            }
        }
    }

    /// <summary>Bit patterns of every parameter and buffer plus the count: two snapshots are equal only when nothing changed.</summary>
    public static string Snapshot<T>(NormBase<T> module) where T : unmanaged, IFloatingPointIeee754<T>
    {
        static string Bits(T[]? values) => values is null ? "null" : string.Join(",", values.Select(v => BitConverter.DoubleToInt64Bits(double.CreateChecked(v)).ToString("X16", CultureInfo.InvariantCulture)));
        return $"w={Bits(module.Weight)} b={Bits(module.Bias)} rm={Bits(module.RunningMean)} rv={Bits(module.RunningVar)} n={module.NumBatchesTracked?.ToString(CultureInfo.InvariantCulture) ?? "null"}";
    }

    /// <summary>Asserts two arrays are bit-identical (NaN payloads included).</summary>
    public static void BitEqual<T>(T[]? expected, T[]? actual, string what) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{what}: one side is null");
            return;
        }

        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            long e = BitConverter.DoubleToInt64Bits(double.CreateChecked(expected[i]));
            long a = BitConverter.DoubleToInt64Bits(double.CreateChecked(actual[i]));
            Assert.True(e == a, $"{what}[{i}] ({typeof(T).Name}): {expected[i]} vs {actual[i]} differ in bits");
        }
    }

    /// <summary>Per channel: mean, biased variance, mean |x| of an (N, C, ...) tensor, in double by two passes.</summary>
    public static (double[] Mean, double[] BiasedVar, double[] MeanAbs, long Count) Stats<T>(DenseTensor<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tensor = new CaseTensor(x.Shape, ToDouble(x.Data));
        var (mean, variance) = Harness.Implementations.ReferenceBatchNorm.BatchStatistics(tensor);
        return (mean, variance, Harness.Implementations.ReferenceBatchNorm.MeanAbsolute(tensor), (long)x.Shape[0] * tensor.SpatialSize);
    }

    /// <summary>Channel of flat index i of an (N, C, ...) tensor.</summary>
    public static int Channel<T>(DenseTensor<T> x, int i) where T : unmanaged
    {
        int spatial = 1;
        for (int d = 2; d < x.Rank; d++)
        {
            spatial *= x.ShapeSpan[d];
        }

        return i / spatial % x.ShapeSpan[1];
    }

    /// <summary>dx, dweight and dbias bit for bit (null gradients must be null on both sides).</summary>
    public static void AssertSameGradients<T>(BatchNormGradients<T> expected, BatchNormGradients<T> actual, string what)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        BitEqual(expected.Input.Data, actual.Input.Data, what + " grad_input");
        BitEqual(expected.Weight, actual.Weight, what + " grad_weight");
        BitEqual(expected.Bias, actual.Bias, what + " grad_bias");
    }
}
