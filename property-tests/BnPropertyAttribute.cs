using System.Globalization;
using FsCheck.Xunit;

namespace BnParity.PropertyTests;

/// <summary>
/// FsCheck's [Property] with the suite's settings from the environment:
/// <c>BNPARITY_MAX_TEST</c> sets the number of cases per property (default <see cref="DefaultMaxTest"/>),
/// <c>BNPARITY_REPLAY="seed,gamma"</c> replays the run FsCheck printed on failure.
/// </summary>
public sealed class BnPropertyAttribute : PropertyAttribute
{
    /// <summary>Cases per property when BNPARITY_MAX_TEST is unset (sized so the whole project runs in a few minutes on 2 cores).</summary>
    public const int DefaultMaxTest = 40;

    public const string MaxTestVariable = "BNPARITY_MAX_TEST";
    public const string ReplayVariable = "BNPARITY_REPLAY";

    public BnPropertyAttribute()
    {
        MaxTest = ConfiguredMaxTest;
        QuietOnSuccess = true;
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
