using System.Globalization;
using FsCheck.Xunit;

namespace BnParity.Testing;

/// <summary>
/// FsCheck's [Property] with the suite's settings from the environment:
/// <c>BNPARITY_MAX_TEST</c> sets the number of cases per property (default <see cref="DefaultMaxTest"/>),
/// <c>BNPARITY_REPLAY="seed,gamma"</c> replays the run FsCheck printed on failure.
/// </summary>
public sealed class BnPropertyAttribute : PropertyAttribute
{
    /// <summary>Cases per property when BNPARITY_MAX_TEST is unset (the whole project then takes ~1.5 min on this 2-core machine, 19 tests).</summary>
    public const int DefaultMaxTest = 300;

    public const string MaxTestVariable = "BNPARITY_MAX_TEST";
    public const string ReplayVariable = "BNPARITY_REPLAY";

    public BnPropertyAttribute()
    {
        MaxTest = ConfiguredMaxTest;
        // BNPARITY_QUIET=0 prints FsCheck's "Ok, passed N tests" for every property.
        QuietOnSuccess = Environment.GetEnvironmentVariable("BNPARITY_QUIET") != "0";
        string? replay = Environment.GetEnvironmentVariable(ReplayVariable);
        if (!string.IsNullOrWhiteSpace(replay))
        {
            Replay = replay.Trim();
        }
    }

    /// <summary>BNPARITY_MAX_TEST, else the default.</summary>
    public static int ConfiguredMaxTest =>
        int.TryParse(Environment.GetEnvironmentVariable(MaxTestVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value > 0
            ? value
            : DefaultMaxTest;
}
