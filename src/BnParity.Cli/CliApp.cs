using System.CommandLine;
using System.CommandLine.Help;
using System.Diagnostics;
using System.Globalization;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.Cli;

/// <summary>Exit codes of every command.</summary>
public static class ExitCodes
{
    public const int Pass = 0;
    public const int Fail = 1;
    public const int Error = 2;
}

/// <summary>
/// The <c>bnparity</c> command line (System.CommandLine): <c>replay</c> recorded cases and <c>check</c> (committed
/// cases + a seeded sweep against TorchSharp), with <c>--implementation &lt;dll&gt;:&lt;type&gt;</c> on every command,
/// <c>--help</c> and <c>--version</c>. Exit codes: 0 all pass, 1 any FAIL, 2 any ERROR or a usage error (which names
/// the option). <see cref="Run"/> is the whole program, callable in-process by tests.
/// </summary>
public static class CliApp
{
    public const int DefaultSeed = 20260101;
    public const int DefaultCases = 300;

    /// <summary>Runs the command line; everything goes to <paramref name="output"/>; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        var root = BuildCommand(output);
        var parsed = root.Parse(args);
        var configuration = new InvocationConfiguration { Output = output, Error = output };
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                output.WriteLine("ERROR usage: " + error.Message);
            }

            output.WriteLine();
            root.Parse([.. parsed.CommandResult.Command == root ? [] : new[] { parsed.CommandResult.Command.Name }, "--help"]).Invoke(configuration);
            return ExitCodes.Error;
        }

        return parsed.Invoke(configuration);
    }

    /// <summary>The command tree; actions write to <paramref name="output"/>.</summary>
    public static Command BuildCommand(TextWriter output)
    {
        var implementation = new Option<string?>("--implementation", "-i")
        {
            Description = "The implementation under test, '<path to assembly>:<type name>' (a type implementing IBatchNormUnderTest "
                + "with a public parameterless constructor). Default: " + ImplementationLoader.VariableName + ", else the BnParity library.",
            HelpName = "dll:type",
            Recursive = true,
        };
        implementation.Validators.Add(result =>
        {
            string? value = result.GetValueOrDefault<string?>();
            int split = value?.LastIndexOf(':') ?? -1;
            if (value is not null && (split <= 0 || split == value.Length - 1))
            {
                result.AddError($"--implementation must be '<path to assembly>:<type name>', got '{value}'.");
            }
        });

        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print the full report of every failing case." };
        var paths = new Argument<string[]>("paths")
        {
            Description = "bnparity-case/1 files, or directories (every *.json below them).",
            Arity = ArgumentArity.OneOrMore,
        };
        var replay = new Command("replay", "Replays recorded bnparity-case/1 files on the implementation under test with the "
            + "tests' tolerance policy. One line per case: PASS <name>, FAIL <name>: <first mismatch>, or ERROR <file>: <problem>.")
        {
            paths,
            verbose,
        };
        replay.SetAction(result => Replay(result.GetValue(paths)!, result.GetValue(implementation), result.GetValue(verbose), output));

        var seed = new Option<int>("--seed") { Description = "Seed of the sweep.", DefaultValueFactory = _ => DefaultSeed };
        var cases = new Option<int>("--cases") { Description = "Random configurations in the sweep.", DefaultValueFactory = _ => DefaultCases };
        cases.Validators.Add(result =>
        {
            // Validators also run when the token is not an int (that error is reported already): parse it here.
            if (result.Tokens.Count == 1 && int.TryParse(result.Tokens[0].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value < 0)
            {
                result.AddError($"--cases must be at least 0, got {value}.");
            }
        });
        var checkVerbose = new Option<bool>("--verbose", "-v") { Description = "Print every sweep case and full failure reports." };
        var check = new Command("check", "Replays the committed PyTorch cases, then a seeded sweep of random configurations against "
            + "TorchSharp and the float64 truth, and prints a summary table.")
        {
            seed,
            cases,
            checkVerbose,
        };
        check.SetAction(result => Check(result.GetValue(seed), result.GetValue(cases), result.GetValue(implementation), result.GetValue(checkVerbose), output));

        // A plain command named as users type it (a RootCommand takes the host's file name: BnParity.Cli, or testhost).
        var root = new Command("bnparity", "The BatchNorm parity oracle (exit codes: 0 all pass, 1 any FAIL, 2 any ERROR or usage error).")
        {
            new HelpOption(),
            new VersionOption(),
            implementation,
            replay,
            check,
        };
        foreach (var option in root.Options.OfType<VersionOption>())
        {
            option.Action = new PrintVersion(output);
        }

        root.SetAction(_ =>
        {
            output.WriteLine("ERROR usage: a command is required (replay or check); see --help.");
            return ExitCodes.Error;
        });
        return root;
    }

    // ---------------------------------------------------------------- replay

    private static int Replay(string[] paths, string? implementationSpecification, bool verbose, TextWriter output)
    {
        if (!TryImplementation(implementationSpecification, output, out var implementation))
        {
            return ExitCodes.Error;
        }

        var tally = new Tally();
        ReplayPaths(paths, implementation, verbose, output, tally);
        output.WriteLine(tally.Summary(implementation.Name));
        return tally.ExitCode;
    }

    private static bool TryImplementation(string? specification, TextWriter output, out IBatchNormUnderTest implementation)
    {
        try
        {
            implementation = specification is null ? ImplementationLoader.UnderTest() : ImplementationLoader.FromSpecification(specification);
            return true;
        }
        catch (Exception error) when (error is ArgumentException or IOException or BadImageFormatException or MissingMethodException or TypeLoadException)
        {
            output.WriteLine($"ERROR {(specification is null ? ImplementationLoader.VariableName : "--implementation")}: {error.Message}");
            implementation = null!;
            return false;
        }
    }

    private sealed class Tally
    {
        public int Passed;
        public int Failed;
        public int Errors;

        public int ExitCode => Errors > 0 ? ExitCodes.Error : Failed > 0 ? ExitCodes.Fail : ExitCodes.Pass;

        public string Summary(string implementation) => string.Create(CultureInfo.InvariantCulture,
            $"{Passed} passed, {Failed} failed, {Errors} error(s) ({implementation})");
    }

    private static void ReplayPaths(IEnumerable<string> paths, IBatchNormUnderTest implementation, bool verbose, TextWriter output, Tally tally)
    {
        foreach (string path in paths)
        {
            foreach (var entry in CaseJson.FindCaseFiles(path))
            {
                if (entry.Error is not null)
                {
                    output.WriteLine(ResultLine("ERROR", entry.Path, entry.Error));
                    tally.Errors++;
                    continue;
                }

                ReplayFile(entry.Path, implementation, verbose, output, tally);
            }
        }
    }

    private static void ReplayFile(string file, IBatchNormUnderTest implementation, bool verbose, TextWriter output, Tally tally)
    {
        BatchNormCase batchNormCase;
        try
        {
            batchNormCase = CaseJson.ReadFile(file);
        }
        catch (CaseFormatException error)
        {
            output.WriteLine(ResultLine("ERROR", file, error.Message));
            tally.Errors++;
            return;
        }

        ComparisonReport report;
        try
        {
            var trace = CaseRunner.Run(implementation, batchNormCase);
            report = TraceComparer.CompareWithRecorded(batchNormCase, trace);
        }
#pragma warning disable CA1031 // any failure of one case is that case's ERROR line; the other files still run
        catch (Exception error)
#pragma warning restore CA1031
        {
            // A case that parses but cannot be run (e.g. grad_output shaped unlike the input).
            output.WriteLine(ResultLine("ERROR", file, $"cannot run the case: {error.GetType().Name}: {error.Message}"));
            tally.Errors++;
            return;
        }

        string label = Label(batchNormCase.Name, file);
        if (report.Passed)
        {
            output.WriteLine(ResultLine("PASS", label, null));
            tally.Passed++;
        }
        else
        {
            output.WriteLine(ResultLine("FAIL", label, report.FirstFailure));
            if (verbose)
            {
                output.Write(Indent(report.Format()));
            }

            tally.Failed++;
        }
    }

    /// <summary>The most characters of a result line's reason: a message quoting a damaged file stays readable.</summary>
    public const int MaxReasonLength = 1000;

    /// <summary>
    /// One result line, <c>KIND subject[: reason]</c>, whatever the file put into it: control characters and Unicode
    /// line breaks (a case name, a parser message quoting raw bytes) are shown as <c>\uXXXX</c>, so every PASS / FAIL /
    /// ERROR is exactly one line for the scripts that read them. The subject (a file or case name) is kept whole; the
    /// reason is cut at <see cref="MaxReasonLength"/> characters.
    /// </summary>
    public static string ResultLine(string kind, string subject, string? reason) =>
        kind + " " + OneLine(subject, int.MaxValue) + (reason is null ? "" : ": " + OneLine(reason, MaxReasonLength));

    private static string OneLine(string text, int maxLength)
    {
        var line = new System.Text.StringBuilder(Math.Min(text.Length, 4096));
        foreach (char c in text)
        {
            if (line.Length >= maxLength)
            {
                line.Append('…');
                break;
            }

            if (char.IsControl(c) || c is '\u2028' or '\u2029')
            {
                line.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            }
            else
            {
                line.Append(c);
            }
        }

        return line.ToString();
    }

    private static string Label(string name, string file) =>
        string.Equals(Path.GetFileNameWithoutExtension(file), name, StringComparison.Ordinal) ? name : $"{name} ({file})";

    private static string Indent(string text) =>
        string.Join(Environment.NewLine, text.TrimEnd().Split('\n').Select(line => "    " + line.TrimEnd('\r'))) + Environment.NewLine;

    // ---------------------------------------------------------------- check

    private static int Check(int seed, int cases, string? implementationSpecification, bool verbose, TextWriter output)
    {
        if (!TryImplementation(implementationSpecification, output, out var implementation))
        {
            return ExitCodes.Error;
        }

        var clock = Stopwatch.StartNew();

        // 1. The committed PyTorch recordings.
        string committed = CaseJson.CommittedCasesDirectory;
        output.WriteLine($"== recorded PyTorch cases ({committed}) on {implementation.Name}");
        var tally = new Tally();
        var recordedOutput = new StringWriter(CultureInfo.InvariantCulture);
        if (!Directory.Exists(committed))
        {
            output.WriteLine($"ERROR {committed}: the committed cases are missing (rebuild the project)");
            tally.Errors++;
        }
        else
        {
            ReplayPaths(new[] { committed }, implementation, verbose, recordedOutput, tally);
        }

        // Only the lines that are not PASS: 52 PASS lines would bury the table.
        foreach (string line in recordedOutput.ToString().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0 && !l.StartsWith("PASS ", StringComparison.Ordinal)))
        {
            output.WriteLine(line);
        }

        output.WriteLine(tally.Summary(implementation.Name + " vs recorded PyTorch"));

        // 2. The seeded sweep against TorchSharp and the float64 truth.
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"== sweep: {cases} random configurations, --seed {seed}, {implementation.Name} vs TorchSharp vs float64 truth"));
        IBatchNormUnderTest torchSharp;
        try
        {
            torchSharp = new TorchSharpImplementation();
        }
        catch (Exception error) when (error is InvalidOperationException or DllNotFoundException or TypeInitializationException or BadImageFormatException)
        {
            output.WriteLine($"ERROR TorchSharp: {error.Message}");
            return ExitCodes.Error;
        }

        var sweep = Sweep.Run(RandomCases.Generate(seed, cases), cases, implementation, torchSharp, verbose, output);
        output.WriteLine();
        sweep.WriteTable(output);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sweep: {sweep.Passed} passed, {sweep.Failed} failed, {sweep.Errors} error(s); recorded: {tally.Passed} passed, {tally.Failed} failed, {tally.Errors} error(s); {clock.Elapsed.TotalSeconds:F1} s"));
        int sweepCode = sweep.Errors > 0 ? ExitCodes.Error : sweep.Failed > 0 ? ExitCodes.Fail : ExitCodes.Pass;
        return Math.Max(sweepCode, tally.ExitCode);
    }

    /// <summary>The package version of this tool (the default action prints the entry assembly's, which in-process is
    /// the host's).</summary>
    private sealed class PrintVersion(TextWriter output) : System.CommandLine.Invocation.SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            output.WriteLine(Version);
            return ExitCodes.Pass;
        }
    }

    /// <summary>The informational version without source-revision metadata (the package version).</summary>
    public static string Version =>
        (typeof(CliApp).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "0.0.0").Split('+')[0];
}
