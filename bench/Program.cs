using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Order;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using BnParity.Benchmarks;
using BnParity.Harness.Oracle;

// Usage (from the repository root):
//   dotnet run -c Release --project bench -- --quick --filter '*8x256x14x14 f32*'   (one shape, ~2 min)
//   dotnet run -c Release --project bench -- --quick --filter '*' --anyCategories TrainFwd
//   dotnet run -c Release --project bench -- --filter '*'                            (full, ~13 min)
// Filters match "Namespace.Type.Method(Case: 8x256x14x14 f32, Threads: 2)"; categories: TrainFwd, Eval, FwdBwd.
// Exit code 1 when a benchmark ends in NA, was not run, or nothing matched the filter.
//   dotnet run -c Release --project bench -- --phases [shape ...]                   (per-phase CE, no TorchSharp)
// --quick (or BNPARITY_BENCH_QUICK=1) selects the short job; anything else goes to BenchmarkSwitcher.
if (args.Length > 0 && args[0] == "--phases")
{
    return PhaseProfile.Run(args[1..]);
}

bool quick = args.Contains("--quick") || Environment.GetEnvironmentVariable("BNPARITY_BENCH_QUICK") == "1";
args = args.Where(a => a != "--quick").ToArray();

Console.WriteLine(MachineInfo.Line());
Console.WriteLine(quick ? "Config: quick (short job: 1 launch, 3 warmups, 3 iterations)" : "Config: full");

// The in-process toolchain is chosen deliberately. BenchmarkDotNet's default toolchain generates
// and builds a separate project per run; TorchSharp 0.107 only loads on this Debian 12 host
// because our build patches the *build-output copy* of libLibTorchSharp.so
// (build/TorchSharpNativeFix.targets, after CopyFilesToOutputDirectory). In-process, the
// benchmarks run from this project's own output, where the patched file lives, and the process
// loads libtorch once, through TorchSharpOracle.Start, with the same thread settings the
// benchmark cases ask for (verified in every TorchSharp setup).
Job job = (quick ? Job.ShortRun : FullJob())
    .WithToolchain(InProcessEmitToolchain.Instance)
    .WithId(quick ? "Quick" : "Full");

// DefaultConfig's loggers, columns, validators and analysers, but only the GitHub markdown and CSV exporters
// (DefaultConfig already contains MarkdownExporter.GitHub; adding it again would warn).
IConfig config = ManualConfig.CreateEmpty()
    .AddLogger(DefaultConfig.Instance.GetLoggers().ToArray())
    .AddColumnProvider(DefaultConfig.Instance.GetColumnProviders().ToArray())
    .AddValidator(DefaultConfig.Instance.GetValidators().ToArray())
    .AddAnalyser(DefaultConfig.Instance.GetAnalysers().ToArray())
    .AddExporter(MarkdownExporter.GitHub, CsvExporter.Default)
    .AddJob(job)
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddColumn(CategoriesColumn.Default)
    .AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByCategory)
    .WithOrderer(new DefaultOrderer(SummaryOrderPolicy.Declared, MethodOrderPolicy.Declared))
    .WithSummaryStyle(SummaryStyle.Default.WithRatioStyle(RatioStyle.Value).WithTimeUnit(Perfolizer.Horology.TimeUnit.Microsecond))
    .WithOptions(ConfigOptions.DisableLogFile);

Summary[] summaries = BenchmarkSwitcher.FromAssembly(typeof(BatchNormBenchmarks).Assembly).Run(args, config).ToArray();

if (args.Any(a => a is "--list" or "--help" or "-h" or "--info" or "--version"))
{
    return 0;
}

var failures = new List<string>();
if (summaries.Length == 0)
{
    failures.Add("no benchmark ran (does the filter match anything?)");
}

foreach (Summary summary in summaries)
{
    if (summary.HasCriticalValidationErrors)
    {
        failures.AddRange(summary.ValidationErrors.Where(e => e.IsCritical).Select(e => "validation: " + e.Message));
    }

    var reported = summary.Reports.Select(r => r.BenchmarkCase).ToHashSet();
    failures.AddRange(summary.BenchmarksCases.Where(b => !reported.Contains(b)).Select(b => "not run: " + Describe(b)));
    failures.AddRange(summary.Reports
        .Where(r => !r.Success || r.ResultStatistics is null)
        .Select(r => "NA: " + Describe(r.BenchmarkCase)));
}

if (failures.Count > 0)
{
    Console.Error.WriteLine($"BENCHMARK FAILURES ({failures.Count}):");
    foreach (string failure in failures)
    {
        Console.Error.WriteLine("  " + failure);
    }

    return 1;
}

Console.WriteLine($"All {summaries.Sum(s => s.Reports.Length)} benchmarks produced results.");
string summaryText = RatioSummary.Build(summaries);
Console.WriteLine(summaryText);
string summaryPath = Path.Combine("BenchmarkDotNet.Artifacts", "results", "BnParity-summary.md");
Directory.CreateDirectory(Path.GetDirectoryName(summaryPath)!);
File.WriteAllText(summaryPath, summaryText);
Console.WriteLine($"summary written to {summaryPath}");
return 0;

// The full job: BenchmarkDotNet's defaults (up to 100 iterations of 500 ms per case, with overhead
// evaluation) would take well over an hour for the 112 cases on 2 cores, so the counts are fixed:
// 3 warmups and 15 measured iterations of ~250 ms each (12 min 43 s for all 112 here).
static Job FullJob() => Job.Default
    .WithWarmupCount(3)
    .WithIterationCount(15)
    .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(250));

// "TrainFwd_CSharp [Threads=2, Case=2x4x3x3 f32]": the method name, not its table label.
static string Describe(BenchmarkDotNet.Running.BenchmarkCase b) =>
    $"{b.Descriptor.WorkloadMethod.Name} [{b.Parameters.DisplayInfo}]";

internal static class MachineInfo
{
    /// <summary>CPU, cores, SIMD, OS, .NET and TorchSharp versions on one line.</summary>
    public static string Line()
    {
        string cpu = "unknown CPU";
        try
        {
            string? model = File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))
                : null;
            if (model is not null)
            {
                cpu = model[(model.IndexOf(':') + 1)..].Trim();
            }
        }
        catch (IOException)
        {
        }

        string simd = Avx512F.IsSupported ? "AVX-512" : Avx2.IsSupported ? "AVX2" : Vector128.IsHardwareAccelerated ? "128-bit SIMD" : "no SIMD";
        return $"Machine: {cpu}, {Environment.ProcessorCount} logical cores, {simd} (Vector<T> {System.Numerics.Vector<byte>.Count * 8}-bit); "
            + $"{RuntimeInformation.OSDescription}; {RuntimeInformation.FrameworkDescription}; TorchSharp {TorchSharpOracle.Version} (TorchSharp-cpu 0.107.0, libtorch 2.10); "
            + $"ONNX Runtime {BnParity.OnnxRuntime.OnnxRuntimePeer.Version} (CPU provider)";
    }
}

/// <summary>
/// One line per (operation, shape, threads): speedup over TorchSharp and over ONNX Runtime (peer time / C# time, ORT
/// where it has the row) and the C# cost in
/// copy-equivalents (C# time / time of one managed copy of the input in the same run, same thread count; forward +
/// backward uses the training-forward category's copy row).
/// </summary>
internal static class RatioSummary
{
    /// <summary>Whether ORT's row of <paramref name="operation"/> times the same operation as C#'s: BatchNorm's eval
    /// (its training forward updates running statistics ORT's eval node does not have), every other layer's forward.</summary>
    private static bool OrtRowApplies(string operation, string caseName)
    {
        bool batchNorm = !(caseName.StartsWith("GN", StringComparison.Ordinal) || caseName.StartsWith("IN ", StringComparison.Ordinal)
            || caseName.StartsWith("LN ", StringComparison.Ordinal) || caseName.StartsWith("RMS ", StringComparison.Ordinal));
        return batchNorm ? operation == "Eval" : operation == "TrainFwd";
    }

    public static string Build(IEnumerable<Summary> summaries)
    {
        var means = new Dictionary<(string Method, string Case, string Threads), double>();
        foreach (var report in summaries.SelectMany(s => s.Reports))
        {
            if (report.ResultStatistics is { } statistics)
            {
                var b = report.BenchmarkCase;
                means[(b.Descriptor.WorkloadMethod.Name, b.Parameters["Case"].ToString()!, b.Parameters["Threads"].ToString()!)] = statistics.Mean;
            }
        }

        var lines = new List<string>
        {
            $"# BnParity benchmark summary ({DateTime.UtcNow:yyyy-MM-dd})",
            string.Empty,
            MachineInfo.Line(),
            string.Empty,
            "| operation | shape | threads | speedup over TorchSharp | speedup over ONNX Runtime | C# cost (CE) | TorchSharp cost (CE) | ONNX Runtime cost (CE) |",
            "|---|---|---|---|---|---|---|---|",
        };
        foreach (var key in means.Keys.Where(k => k.Method.EndsWith("_CSharp", StringComparison.Ordinal)).OrderBy(k => k.Method).ThenBy(k => k.Case).ThenBy(k => k.Threads))
        {
            string operation = key.Method[..key.Method.IndexOf('_', StringComparison.Ordinal)];
            double cs = means[key];
            bool hasTorch = means.TryGetValue((operation + "_TorchSharp", key.Case, key.Threads), out double ts);
            // ORT's rows: BatchNorm's Eval, the other layers' TrainFwd (OnnxRuntimeBenchmarks); "–" where ORT has no row.
            double ort = 0;
            bool hasOrt = OrtRowApplies(operation, key.Case) && means.TryGetValue((operation + "_OnnxRuntime", key.Case, key.Threads), out ort);

            string copyMethod = (operation == "FwdBwd" ? "TrainFwd" : operation) + "_Copy";
            bool hasCopy = means.TryGetValue((copyMethod, key.Case, key.Threads), out double copy);
            string Ce(bool has, double value) => has && hasCopy ? $"{value / copy:F2}" : "–";
            lines.Add($"| {operation} | {key.Case} | {key.Threads} | {(hasTorch ? $"{ts / cs:F2}×" : "–")} | {(hasOrt ? $"{ort / cs:F2}×" : "–")} | {Ce(true, cs)} | {Ce(hasTorch, ts)} | {Ce(hasOrt, ort)} |");
        }

        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }
}
