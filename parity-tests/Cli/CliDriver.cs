using System.Globalization;
using System.Text.Json.Nodes;
using BnParity.Cli;
using BnParity.Harness.Cases;

namespace BnParity.ParityTests.Cli;

/// <summary>Runs the CLI in-process (<see cref="CliApp.Run"/>) and reads what it printed.</summary>
internal static class CliDriver
{
    public static (int Code, string Output) Run(params string[] args)
    {
        var output = new StringWriter(CultureInfo.InvariantCulture);
        int code = CliApp.Run(args, output);
        return (code, output.ToString());
    }

    public static string[] Lines(string output) => output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();

    public static JsonNode Committed(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(CaseJson.CommittedCasesDirectory, name + ".json")))!;

    /// <summary>The CLI's contract: problems are one-line messages, never a stack trace.</summary>
    public static void NoStackTrace(string output)
    {
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception:", output.Replace("CaseFormatException", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }
}
