using BnParity.Harness.Comparison;

namespace BnParity.ParityTests.Comparison;

/// <summary>Tolerance.Within's explicit rules for NaN, ±Infinity and ±0.</summary>
public sealed class ToleranceWithinTests
{
    [Theory]
    [InlineData(double.NaN, double.NaN, 0, true)]
    [InlineData(double.NaN, 0.0, 1e300, false)]
    [InlineData(0.0, double.NaN, 1e300, false)]
    [InlineData(double.NaN, 1.0, double.PositiveInfinity, false)]
    [InlineData(double.PositiveInfinity, double.PositiveInfinity, 0, true)]
    [InlineData(double.NegativeInfinity, double.NegativeInfinity, 0, true)]
    [InlineData(double.PositiveInfinity, double.NegativeInfinity, double.PositiveInfinity, false)]
    [InlineData(double.PositiveInfinity, double.MaxValue, double.PositiveInfinity, false)]
    [InlineData(double.MaxValue, double.PositiveInfinity, double.PositiveInfinity, false)]
    [InlineData(double.NaN, double.PositiveInfinity, double.PositiveInfinity, false)]
    [InlineData(1.0, 1.0, 0, true)]
    [InlineData(1.0, 1.0 + 5e-10, 1e-9, true)]
    [InlineData(1.0, 1.0 + 2e-9, 1e-9, false)]
    [InlineData(-1.0, 1.0, 1.0, false)]
    [InlineData(1.0, 1e300, double.PositiveInfinity, true)]
    [InlineData(-5.9e15, double.NegativeInfinity, Tolerance.IllPosed, true)]
    [InlineData(0.0, double.NaN, Tolerance.IllPosed, true)]
    public void Within_handles_nan_infinities_and_signed_zeros(double expected, double actual, double budget, bool within) =>
        Assert.Equal(within, Tolerance.Within(expected, actual, budget));

    [Fact]
    public void Positive_and_negative_zero_are_equal_at_zero_budget()
    {
        // (InlineData cannot hold both: xunit sees 0.0 and -0.0 as duplicate data.)
        Assert.True(Tolerance.Within(0.0, -0.0, 0));
        Assert.True(Tolerance.Within(-0.0, 0.0, 0));
        Assert.False(Tolerance.Within(-0.0, double.Epsilon, 0));
    }

    [Fact]
    public void Ulp_and_relative_errors_of_non_finite_values()
    {
        Assert.Equal(0, Tolerance.UlpError(double.NaN, double.NaN, Harness.Cases.ElementType.Float32));
        Assert.Equal(double.PositiveInfinity, Tolerance.UlpError(1, double.PositiveInfinity, Harness.Cases.ElementType.Float32));
        Assert.Equal(1, Tolerance.UlpError(1, 1 + Math.Pow(2, -23), Harness.Cases.ElementType.Float32));
        Assert.Equal(0, Tolerance.RelativeError(0.0, -0.0));
        Assert.Equal(double.PositiveInfinity, Tolerance.RelativeError(0, 1));
    }
}
