using System.Globalization;
using BnParity.Harness.Cases;
using BnParity.Harness.Comparison;
using BnParity.Harness.Implementations;

namespace BnParity.Cli;

/// <summary>The seeded sweep of <c>check</c>: every generated case on the implementation under test, TorchSharp and the float64 truth.</summary>
public sealed class Sweep
{
    private readonly Dictionary<string, Row> _rows = new(StringComparer.Ordinal);

    public int Passed { get; private set; }
    public int Failed { get; private set; }
    public int Errors { get; private set; }

    /// <summary>Per class: cases, and the worst error ratios (|error| / derived budget) and absolute errors.</summary>
    public IReadOnlyDictionary<string, Row> Rows => _rows;

    public sealed class Row
    {
        public int Cases { get; set; }
        public double LibraryVsTorchSharpRatio { get; set; }
        public double LibraryVsTorchSharpAbs { get; set; }
        public double LibraryVsTruthRatio { get; set; }
        public double LibraryVsTruthAbs { get; set; }
        public double TorchSharpVsTruthRatio { get; set; }
        public double TorchSharpVsTruthAbs { get; set; }
        public bool TorchSharpCompared { get; set; }
    }

    /// <summary>Runs <paramref name="count"/> cases, generated one at a time as they run (a sweep of any length holds
    /// one case in memory).</summary>
    public static Sweep Run(IEnumerable<SweepCase> cases, int count, IBatchNormUnderTest library, IBatchNormUnderTest torchSharp, bool verbose, TextWriter output)
    {
        var sweep = new Sweep();
        var truth = new ReferenceBatchNorm();
        bool interactive = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        int i = -1;
        foreach (var sweepCase in cases.Take(count))
        {
            i++;
            if (interactive)
            {
                output.Write(string.Create(CultureInfo.InvariantCulture, $"\r  sweep {i + 1}/{count} {sweepCase.Class,-45}"));
            }
            else if ((i + 1) % 50 == 0 || i + 1 == count)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  sweep {i + 1}/{count}"));
            }

            string? failure = sweep.RunOne(sweepCase, library, torchSharp, truth, verbose);
            if (failure is not null)
            {
                if (interactive)
                {
                    output.Write('\r');
                }

                output.WriteLine(failure);
            }
        }

        if (interactive)
        {
            output.Write("\r" + new string(' ', 70) + "\r");
        }

        return sweep;
    }

    private string? RunOne(SweepCase sweepCase, IBatchNormUnderTest library, IBatchNormUnderTest torchSharp, ReferenceBatchNorm truth, bool verbose)
    {
        var batchNormCase = sweepCase.Case;
        if (!_rows.TryGetValue(sweepCase.Class, out var row))
        {
            row = new Row();
            _rows.Add(sweepCase.Class, row);
        }

        row.Cases++;
        string where = $"{batchNormCase.Name} [{sweepCase.Class}]";
        try
        {
            var truthTrace = CaseRunner.Run(truth, batchNormCase);
            var libraryTrace = CaseRunner.Run(library, batchNormCase);
            var libraryVsTruth = TraceComparer.Compare(batchNormCase, truthTrace, libraryTrace);
            row.LibraryVsTruthRatio = Math.Max(row.LibraryVsTruthRatio, libraryVsTruth.WorstBudgetRatio);
            row.LibraryVsTruthAbs = Math.Max(row.LibraryVsTruthAbs, MaxAbsoluteError(truthTrace, libraryTrace));
            ComparisonReport? libraryVsTorchSharp = null;
            if (!sweepCase.TorchSharpDivergesByDesign)
            {
                var torchTrace = CaseRunner.Run(torchSharp, batchNormCase);
                libraryVsTorchSharp = TraceComparer.Compare(batchNormCase, torchTrace, libraryTrace);
                var torchVsTruth = TraceComparer.Compare(batchNormCase, truthTrace, torchTrace);
                row.TorchSharpCompared = true;
                row.LibraryVsTorchSharpRatio = Math.Max(row.LibraryVsTorchSharpRatio, libraryVsTorchSharp.WorstBudgetRatio);
                row.LibraryVsTorchSharpAbs = Math.Max(row.LibraryVsTorchSharpAbs, MaxAbsoluteError(torchTrace, libraryTrace));
                row.TorchSharpVsTruthRatio = Math.Max(row.TorchSharpVsTruthRatio, torchVsTruth.WorstBudgetRatio);
                row.TorchSharpVsTruthAbs = Math.Max(row.TorchSharpVsTruthAbs, MaxAbsoluteError(truthTrace, torchTrace));
            }

            // The verdict: the library must match TorchSharp (where TorchSharp follows PyTorch) and the float64 truth.
            var failed = libraryVsTorchSharp is { Passed: false } ? libraryVsTorchSharp : !libraryVsTruth.Passed ? libraryVsTruth : null;
            if (failed is null)
            {
                Passed++;
                return null;
            }

            Failed++;
            string line = $"FAIL {where} vs {failed.ExpectedSource}: {failed.FirstFailure}";
            return verbose ? line + Environment.NewLine + failed.Format().TrimEnd() : line;
        }
#pragma warning disable CA1031 // an exception in one generated case is that case's ERROR line
        catch (Exception error)
#pragma warning restore CA1031
        {
            Errors++;
            return $"ERROR {where}: {error.GetType().Name}: {error.Message}";
        }
    }

    /// <summary>Largest |a − b| over every finite pair of numbers the two traces produced (outputs, buffers, gradients).</summary>
    public static double MaxAbsoluteError(CaseTrace expected, CaseTrace actual)
    {
        double worst = 0;
        void Values(double[]? a, double[]? b)
        {
            if (a is null || b is null || a.Length != b.Length)
            {
                return;
            }

            for (int i = 0; i < a.Length; i++)
            {
                double error = Math.Abs(a[i] - b[i]);
                if (double.IsFinite(error))
                {
                    worst = Math.Max(worst, error);
                }
            }
        }

        for (int s = 0; s < Math.Min(expected.Steps.Count, actual.Steps.Count); s++)
        {
            var e = expected.Steps[s];
            var a = actual.Steps[s];
            Values(e.Output?.Data, a.Output?.Data);
            Values(e.RunningMean, a.RunningMean);
            Values(e.RunningVar, a.RunningVar);
            Values(e.GradInput?.Data, a.GradInput?.Data);
            Values(e.GradWeight, a.GradWeight);
            Values(e.GradBias, a.GradBias);
        }

        return worst;
    }

    public void WriteTable(TextWriter output)
    {
        const string Format = "{0,-42} {1,5} | {2,9} {3,9} | {4,9} {5,9} | {6,9} {7,9}";
        output.WriteLine("Errors: 'err/bud' = worst |error| / derived budget over every number of every step (outputs, buffers,");
        output.WriteLine("gradients; budget = k·u·scale of the Tolerance policy, so it is an error relative to the scale of the");
        output.WriteLine("cancelling terms; <= 1 passes); 'max|err|' = largest absolute error. truth = float64 reference.");
        output.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-48} | {1,-19} | {2,-19} | {3,-19}", "", "C# vs TorchSharp", "C# vs truth", "TorchSharp vs truth"));
        output.WriteLine(string.Format(CultureInfo.InvariantCulture, Format, "class of configuration", "cases", "err/bud", "max|err|", "err/bud", "max|err|", "err/bud", "max|err|"));
        output.WriteLine(new string('-', 108));
        var total = new Row();
        foreach (var (name, _) in RandomCases.Classes)
        {
            if (!_rows.TryGetValue(name, out var row))
            {
                continue;
            }

            WriteRow(output, Format, name, row);
            total.Cases += row.Cases;
            total.TorchSharpCompared |= row.TorchSharpCompared;
            total.LibraryVsTorchSharpRatio = Math.Max(total.LibraryVsTorchSharpRatio, row.LibraryVsTorchSharpRatio);
            total.LibraryVsTorchSharpAbs = Math.Max(total.LibraryVsTorchSharpAbs, row.LibraryVsTorchSharpAbs);
            total.LibraryVsTruthRatio = Math.Max(total.LibraryVsTruthRatio, row.LibraryVsTruthRatio);
            total.LibraryVsTruthAbs = Math.Max(total.LibraryVsTruthAbs, row.LibraryVsTruthAbs);
            total.TorchSharpVsTruthRatio = Math.Max(total.TorchSharpVsTruthRatio, row.TorchSharpVsTruthRatio);
            total.TorchSharpVsTruthAbs = Math.Max(total.TorchSharpVsTruthAbs, row.TorchSharpVsTruthAbs);
        }

        output.WriteLine(new string('-', 108));
        WriteRow(output, Format, "all", total);
    }

    private static void WriteRow(TextWriter output, string format, string name, Row row)
    {
        static string Number(double value) => value.ToString("G3", CultureInfo.InvariantCulture);
        string na = "n/a";
        output.WriteLine(string.Format(CultureInfo.InvariantCulture, format, name, row.Cases,
            row.TorchSharpCompared ? Number(row.LibraryVsTorchSharpRatio) : na,
            row.TorchSharpCompared ? Number(row.LibraryVsTorchSharpAbs) : na,
            Number(row.LibraryVsTruthRatio), Number(row.LibraryVsTruthAbs),
            row.TorchSharpCompared ? Number(row.TorchSharpVsTruthRatio) : na,
            row.TorchSharpCompared ? Number(row.TorchSharpVsTruthAbs) : na));
    }
}
