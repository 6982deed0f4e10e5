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
/// The <c>bnparity</c> command line: <c>replay</c> recorded cases and <c>check</c> (committed
/// cases + a seeded sweep against TorchSharp). <see cref="Run"/> is the whole program, callable
/// in-process by tests.
/// </summary>
public static class CliApp
{
    public const int DefaultSeed = 20260101;
    public const int DefaultCases = 300;

    public const string Usage = """
        usage: bnparity <command> [options]

          replay [--verbose] <file-or-dir>...
              Replays recorded bnparity-case/1 files (directories: every *.json below) on the
              implementation under test (the C# library, or BNPARITY_IMPLEMENTATION=<dll>:<type>)
              with the tests' tolerance policy. One line per case: PASS <name>,
              FAIL <name>: <first mismatch>, or ERROR <file>: <problem>.

          check [--seed N] [--cases N] [--verbose]
              Replays the committed PyTorch cases, then a seeded sweep of N random configurations
              (default 300, seed 20260101) against TorchSharp and the float64 truth, and prints a
              summary table.

        exit codes: 0 all pass, 1 any FAIL, 2 any ERROR, unreadable input or usage error.
        """;

    /// <summary>Runs the command line; everything goes to <paramref name="output"/>; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
        {
            output.WriteLine(Usage);
            return args.Length == 0 ? ExitCodes.Error : ExitCodes.Pass;
        }

        try
        {
            return args[0] switch
            {
                "replay" => Replay(args[1..], output),
                "check" => Check(args[1..], output),
                _ => UsageError(output, $"unknown command '{args[0]}'"),
            };
        }
        catch (UsageException error)
        {
            return UsageError(output, error.Message);
        }
    }

    private static int UsageError(TextWriter output, string message)
    {
        output.WriteLine("ERROR usage: " + message);
        output.WriteLine(Usage);
        return ExitCodes.Error;
    }

    private sealed class UsageException(string message) : Exception(message);

    // ---------------------------------------------------------------- replay

    private static int Replay(string[] args, TextWriter output)
    {
        bool verbose = false;
        var paths = new List<string>();
        foreach (string arg in args)
        {
            if (arg is "--verbose" or "-v")
            {
                verbose = true;
            }
            else if (arg is "--help" or "-h")
            {
                output.WriteLine(Usage);
                return ExitCodes.Pass;
            }
            else if (arg.StartsWith('-') && arg.Length > 1)
            {
                throw new UsageException($"unknown option '{arg}' for replay");
            }
            else
            {
                paths.Add(arg);
            }
        }

        if (paths.Count == 0)
        {
            throw new UsageException("replay needs at least one file or directory");
        }

        if (!TryImplementation(output, out var implementation))
        {
            return ExitCodes.Error;
        }

        var tally = new Tally();
        ReplayPaths(paths, implementation, verbose, output, tally);
        output.WriteLine(tally.Summary(implementation.Name));
        return tally.ExitCode;
    }

    private static bool TryImplementation(TextWriter output, out IBatchNormUnderTest implementation)
    {
        try
        {
            implementation = ImplementationLoader.UnderTest();
            return true;
        }
        catch (Exception error) when (error is ArgumentException or IOException or BadImageFormatException or MissingMethodException or TypeLoadException)
        {
            output.WriteLine($"ERROR {ImplementationLoader.VariableName}: {error.Message}");
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
            if (Directory.Exists(path))
            {
                var files = CaseJson.ExpandPaths(new[] { path });
                if (files.Count == 0)
                {
                    output.WriteLine($"ERROR {path}: no *.json case files in this directory");
                    tally.Errors++;
                }

                foreach (string file in files)
                {
                    ReplayFile(file, implementation, verbose, output, tally);
                }
            }
            else
            {
                ReplayFile(path, implementation, verbose, output, tally);
            }
        }
    }

    private static void ReplayFile(string file, IBatchNormUnderTest implementation, bool verbose, TextWriter output, Tally tally)
    {
        BatchNormCase batchNormCase;
        try
        {
            if (!File.Exists(file))
            {
                throw new CaseFormatException(Directory.Exists(file) ? "is a directory" : "no such file");
            }

            batchNormCase = CaseJson.ReadFile(file);
        }
        catch (CaseFormatException error)
        {
            output.WriteLine($"ERROR {file}: {error.Message}");
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
            output.WriteLine($"ERROR {file}: cannot run the case: {error.GetType().Name}: {error.Message}");
            tally.Errors++;
            return;
        }

        string label = Label(batchNormCase.Name, file);
        if (report.Passed)
        {
            output.WriteLine("PASS " + label);
            tally.Passed++;
        }
        else
        {
            output.WriteLine($"FAIL {label}: {report.FirstFailure}");
            if (verbose)
            {
                output.Write(Indent(report.Format()));
            }

            tally.Failed++;
        }
    }

    private static string Label(string name, string file) =>
        string.Equals(Path.GetFileNameWithoutExtension(file), name, StringComparison.Ordinal) ? name : $"{name} ({file})";

    private static string Indent(string text) =>
        string.Join(Environment.NewLine, text.TrimEnd().Split('\n').Select(line => "    " + line.TrimEnd('\r'))) + Environment.NewLine;

    // ---------------------------------------------------------------- check

    private static int Check(string[] args, TextWriter output)
    {
        int seed = DefaultSeed, cases = DefaultCases;
        bool verbose = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--seed":
                    seed = IntOption(args, ref i, min: int.MinValue);
                    break;
                case "--cases":
                    cases = IntOption(args, ref i, min: 0);
                    break;
                case "--verbose" or "-v":
                    verbose = true;
                    break;
                case "--help" or "-h":
                    output.WriteLine(Usage);
                    return ExitCodes.Pass;
                default:
                    throw new UsageException($"unknown argument '{args[i]}' for check");
            }
        }

        if (!TryImplementation(output, out var implementation))
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

        var sweep = Sweep.Run(RandomCases.Generate(seed, cases), implementation, torchSharp, verbose, output);
        output.WriteLine();
        sweep.WriteTable(output);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sweep: {sweep.Passed} passed, {sweep.Failed} failed, {sweep.Errors} error(s); recorded: {tally.Passed} passed, {tally.Failed} failed, {tally.Errors} error(s); {clock.Elapsed.TotalSeconds:F1} s"));
        int sweepCode = sweep.Errors > 0 ? ExitCodes.Error : sweep.Failed > 0 ? ExitCodes.Fail : ExitCodes.Pass;
        return Math.Max(sweepCode, tally.ExitCode);
    }

    private static int IntOption(string[] args, ref int i, int min)
    {
        string option = args[i];
        if (i + 1 >= args.Length)
        {
            throw new UsageException($"{option} needs a value");
        }

        i++;
        if (!int.TryParse(args[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min)
        {
            throw new UsageException($"{option} needs an integer{(min == 0 ? " ≥ 0" : "")}, got '{args[i]}'");
        }

        return value;
    }
}
