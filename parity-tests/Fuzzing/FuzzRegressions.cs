using System.Globalization;
using BnParity.Cli;
using BnParity.Harness.Cases;

namespace BnParity.ParityTests.Fuzzing;

/// <summary>Every counterexample the file fuzz properties found, kept as a plain test (FsCheck's seed in the name of
/// the run that found it; the mutation is rebuilt exactly).</summary>
public sealed class FuzzRegressions : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("bnparity-fuzz-regression-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private (int Code, string[] Lines, string Path) Replay(string baseCase, FileMutation mutation)
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(CaseJson.CommittedCasesDirectory, baseCase + ".json"));
        string path = Path.Combine(_directory, "damaged.json");
        File.WriteAllBytes(path, mutation.Apply(bytes, 0, bytes.Length));
        var output = new StringWriter(CultureInfo.InvariantCulture);
        int code = CliApp.Run(["replay", path], output);
        return (code, output.ToString().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray(), path);
    }

    /// <summary>Found at the 5,564th case of a 100,000-case run (seed 9262871394832980488,1729662592569503161): random
    /// bytes with a newline inside a JSON token; System.Text.Json's message quotes the token, and the ERROR "line" was
    /// two lines. Result lines now escape control characters.</summary>
    [Fact]
    public void Case_file_with_raw_bytes_quoted_by_the_parser_message_is_still_one_ERROR_line()
    {
        var (code, lines, path) = Replay("bn3d-zero-batch", new FileMutation.RandomBytes(159, Convert.FromHexString("9F86AD0AE263B96800FCA0B063A5F205")));
        Assert.Equal(ExitCodes.Error, code);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("ERROR " + path + ": malformed JSON: ", lines[0], StringComparison.Ordinal);
        Assert.Contains("\\u000A", lines[0], StringComparison.Ordinal);
    }

    [Fact]
    public void A_case_name_with_a_line_break_is_one_PASS_line()
    {
        string text = File.ReadAllText(Path.Combine(CaseJson.CommittedCasesDirectory, "bn3d-zero-batch.json"))
            .Replace("\"name\":\"bn3d-zero-batch\"", "\"name\":\"two\\nlines\"", StringComparison.Ordinal);
        string path = Path.Combine(_directory, "named.json");
        File.WriteAllText(path, text);
        var output = new StringWriter(CultureInfo.InvariantCulture);
        Assert.Equal(ExitCodes.Pass, CliApp.Run(["replay", path], output));
        Assert.StartsWith("PASS two\\u000Alines (", output.ToString(), StringComparison.Ordinal);
    }
}
