using System.Globalization;
using System.Numerics;
using System.Runtime.Intrinsics;
using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Library;

/// <summary>
/// The golden-bits matrix: every scenario × odd shape × path (channel, split, row, and each of them with streaming
/// (non-temporal) float outputs forced on, forward and backward) × threads
/// {1, 2, 3, 5}, float and double. Asserts (1) bit-identical results for every thread count of a path, (2) split and
/// streaming bit-identical to the channel path (the library documents them as equivalent), (3) the SHA-256 of every
/// result equals the committed table for the vector width this machine runs (golden-bits.&lt;width&gt;.txt). Any change
/// of arithmetic therefore shows up as a named hash change; regenerate deliberately with
/// <c>BNPARITY_GOLDEN_UPDATE=&lt;folder&gt; dotnet test parity-tests --filter GoldenBits</c> under each width (see README).
/// </summary>
public sealed class GoldenBitsTests
{
    private const string UpdateVariable = "BNPARITY_GOLDEN_UPDATE";

    private static readonly int[] s_threads = [1, 2, 3, 5];

    /// <summary>The vector width the kernels use on this machine (also with DOTNET_EnableAVX512F=0 / DOTNET_EnableHWIntrinsic=0).</summary>
    public static string Width => !Vector256.IsHardwareAccelerated ? "scalar" : Vector512.IsHardwareAccelerated ? "vector512" : "vector256";

    public static TheoryData<string, Scenario> Matrix()
    {
        var data = new TheoryData<string, Scenario>();
        foreach (string type in new[] { "float", "double" })
        {
            foreach (Scenario scenario in Enum.GetValues<Scenario>())
            {
                data.Add(type, scenario);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Every_path_and_thread_count_gives_the_committed_bits(string type, Scenario scenario)
    {
        if (type == "float")
        {
            Check<float>(type, scenario);
        }
        else
        {
            Check<double>(type, scenario);
        }
    }

    private static void Check<T>(string type, Scenario scenario)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var failures = new List<string>();
        var lines = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (int[] shape in LibraryScenarios.Shapes)
        {
            string where = $"{type} {LibraryScenarios.Key(scenario, shape)}";
            var channel = LibraryScenarios.Run<T>(scenario, shape, new LibraryExecution(LibraryPath.Channel, 1));
            var row = LibraryScenarios.Run<T>(scenario, shape, new LibraryExecution(LibraryPath.Row, 1));
            foreach (var path in new[] { LibraryPath.Channel, LibraryPath.Split, LibraryPath.ChannelStreaming, LibraryPath.SplitStreaming, LibraryPath.Row, LibraryPath.RowStreaming })
            {
                foreach (int threads in s_threads)
                {
                    var execution = new LibraryExecution(path, threads);
                    // LayerNorm/RMSNorm sets always take the channel path: a forced row path must give its bits too.
                    bool rowOrder = path is LibraryPath.Row or LibraryPath.RowStreaming && !LibraryScenarios.IsElementNorm(scenario);
                    var reference = rowOrder ? row : channel;
                    string referenceName = rowOrder ? "path=Row threads=1" : "path=Channel threads=1";
                    var results = LibraryScenarios.Run<T>(scenario, shape, execution);
                    if (LibraryScenarios.FirstDifference(reference, results) is { } difference)
                    {
                        failures.Add($"{where} {execution} differs from {referenceName}: {difference}");
                    }
                }
            }

            foreach (var (group, results) in LibraryScenarios.IsElementNorm(scenario) ? [("channel", channel)] : new[] { ("channel", channel), ("row", row) })
            {
                foreach (var result in results)
                {
                    lines[$"{type}/{LibraryScenarios.Key(scenario, shape)}/{group}/{result.Name.Replace(' ', '_')}"] =
                        LibraryScenarios.Hash(result, typeof(T) == typeof(float));
                }
            }
        }

        string prefix = $"{type}/{scenario}/";
        if (Environment.GetEnvironmentVariable(UpdateVariable) is { Length: > 0 } folder)
        {
            WriteTable(folder, prefix, lines);
        }
        else
        {
            var table = ReadTable(failures);
            foreach (var (key, hash) in lines)
            {
                if (table is null)
                {
                    break;
                }

                if (!table.TryGetValue(key, out string? expected))
                {
                    failures.Add($"{key}: no committed hash for vector width {Width} (regenerate the table)");
                }
                else if (expected != hash)
                {
                    failures.Add($"{key}: bits changed on vector width {Width}: committed {expected}, now {hash} (path=Channel/Row threads=1)");
                }
            }

            foreach (string key in table?.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !lines.ContainsKey(k)) ?? [])
            {
                failures.Add($"{key}: committed but no longer produced");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} golden-bits failure(s), {type} {scenario}, width {Width}:\n" + string.Join('\n', failures.Take(40)));
    }

    private static string TablePath(string folder) => Path.Combine(folder, $"golden-bits.{Width}.txt");

    private static Dictionary<string, string>? ReadTable(List<string> failures)
    {
        string path = TablePath(Path.Combine(AppContext.BaseDirectory, "GoldenBits"));
        if (!File.Exists(path))
        {
            failures.Add($"no golden table for vector width {Width} at {path}; generate it with {UpdateVariable}=<folder> (README: Golden bits)");
            return null;
        }

        return File.ReadLines(path)
            .Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l.Split(' ', 2))
            .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
    }

    /// <summary>Replaces this theory case's keys in the table file of the current width (theory cases of one class run
    /// one after another, so read-modify-write is safe).</summary>
    private static void WriteTable(string folder, string prefix, SortedDictionary<string, string> lines)
    {
        Directory.CreateDirectory(folder);
        string path = TablePath(folder);
        var table = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (File.Exists(path))
        {
            foreach (string line in File.ReadLines(path).Where(l => l.Length > 0 && l[0] != '#'))
            {
                string[] parts = line.Split(' ', 2);
                table[parts[0]] = parts[1];
            }
        }

        foreach (string key in table.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList())
        {
            table.Remove(key);
        }

        foreach (var (key, hash) in lines)
        {
            table[key] = hash;
        }

        File.WriteAllLines(path, new[]
        {
            string.Create(CultureInfo.InvariantCulture, $"# Golden bits for vector width {Width}: SHA-256 (16 hex digits) of every result of parity-tests/Library/GoldenBitsTests.cs."),
            "# Regenerate only for a deliberate change of arithmetic, in a commit that says why (README: Golden bits).",
        }.Concat(table.Select(p => $"{p.Key} {p.Value}")));
    }
}
