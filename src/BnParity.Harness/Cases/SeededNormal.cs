namespace BnParity.Harness.Cases;

/// <summary>
/// The one seeded normal generator of the project (case generators, the CLI sweep, rule tests, benchmarks): Box–Muller
/// from two uniforms, u1 ∈ (0, 1] (so the logarithm is finite) and u2 ∈ [0, 1), consuming exactly two draws per value,
/// so a seed always reproduces the same values.
/// </summary>
public static class SeededNormal
{
    /// <summary>One standard normal value.</summary>
    public static double Next(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary><paramref name="count"/> values of N(mean, std²) from <paramref name="seed"/>.</summary>
    public static double[] Values(int seed, int count, double mean = 0, double std = 1)
    {
        var random = new Random(seed);
        var values = new double[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = mean + (std * Next(random));
        }

        return values;
    }
}
