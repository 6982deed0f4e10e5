using System.Text.Json.Nodes;
using BnParity.Harness.Cases;
using static BnParity.ParityTests.Cli.CliDriver;

namespace BnParity.ParityTests.Cli;

/// <summary>
/// The CLI's error contract under hostile or careless input (README, "Checking parity from the command line", the error contract): whatever a path
/// names, `replay` prints exactly one `ERROR &lt;file&gt;: &lt;reason&gt;` line for it, no stack trace, exits 2, and the
/// other files still run; nothing it reads is allowed to allocate beyond what the file paid for, or to hang.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class HostileInputTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("bnparity-hostile-").FullName;

    public void Dispose()
    {
        foreach (string directory in Directory.GetDirectories(_directory, "*", SearchOption.AllDirectories))
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        Directory.Delete(_directory, recursive: true);
    }

    private string Write(string fileName, string text)
    {
        string path = Path.Combine(_directory, fileName);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    private string Good(string fileName = "z-good.json")
    {
        var node = Committed("bn1d-affine-2d-input");
        node["name"] = Path.GetFileNameWithoutExtension(fileName);
        return Write(fileName, node.ToJsonString());
    }

    /// <summary>Replays <paramref name="bad"/> then a good case: one ERROR line naming the bad path with
    /// <paramref name="reason"/>, the good case passes, exit code 2.</summary>
    private static void AssertOneErrorThenThePass(string bad, string good, string reason, params string[] paths)
    {
        var (code, output) = Run(["replay", .. paths.Length > 0 ? paths : [bad, good]]);
        string[] lines = Lines(output);
        string error = Assert.Single(lines, l => l.StartsWith("ERROR ", StringComparison.Ordinal));
        Assert.StartsWith("ERROR " + bad + ": ", error, StringComparison.Ordinal);
        Assert.Contains(reason, error, StringComparison.Ordinal);
        Assert.Contains(lines, l => l == "PASS " + Path.GetFileNameWithoutExtension(good));
        Assert.True(code == 2, $"[cli replay] exit code {code}, expected 2\n{output}");
        NoStackTrace(output);
    }

    public static TheoryData<string, string, string> Mutations() => new()
    {
        // what, a JSON path edit ("key=value" on the parsed case; value is raw JSON), the reason printed
        { "expect is a number", "steps.0.expect=3", "steps[0].expect must be an object" },
        { "expect.error is a number", "steps.1.expect={\"error\":42}", "steps[1].expect.error must be a string" },
        { "expect_grad is a string", "steps.0.expect_grad=\"x\"", "must be an object" },
        { "a step is a number", "steps.0=7", "steps[0] must be an object" },
        { "parameters is an array", "parameters=[1,2]", "case.parameters must be an object" },
        { "num_features is 2e9", "num_features=2000000000", "num_features must be between 1 and 16777216" },
        { "num_features is int.MaxValue", "num_features=2147483647", "num_features must be between 1 and 16777216" },
        { "num_features is 1e8", "num_features=100000000", "num_features must be between 1 and 16777216" },
        { "num_features is a fraction", "num_features=2.5", "'num_features' must be an integer" },
        { "num_features is a string", "num_features=\"10\"", "'num_features' must be an integer" },
        { "a number past double", "steps.0.input.data.0=1e400", "the number 1e400 is outside the range of a double" },
        { "a negative past double", "eps=-1e999", "the number -1e999 is outside the range of a double" },
        { "num_batches_tracked past int64", "buffers.num_batches_tracked=1e30", "buffers.num_batches_tracked must be a 64-bit integer" },
        { "a shape that wraps past 2^64", "steps.0.input={\"shape\":[1073741824,1073741824,65536,65536],\"data\":[]}", "multiplies past 2147483591" },
        { "huge dims beside a zero", "steps.0.input={\"shape\":[0,10,2147483647,2147483647],\"data\":[]}", "multiplies past 2147483591" },
        { "a shape entry past int32", "steps.0.input.shape.0=4294967296", "not a non-negative integer" },
        { "deep nesting", "parameters=" + new string('[', 200) + new string(']', 200), "malformed JSON" },
    };

    [Theory]
    [MemberData(nameof(Mutations))]
    public void A_hostile_case_file_is_one_ERROR_line_and_the_next_file_still_runs(string what, string edit, string reason)
    {
        var node = Committed("bn1d-affine-2d-input");
        int split = edit.IndexOf('=', StringComparison.Ordinal);
        string[] path = edit[..split].Split('.');
        JsonNode parent = node;
        foreach (string step in path[..^1])
        {
            parent = int.TryParse(step, out int index) ? parent[index]! : parent[step]!;
        }

        // Raw JSON is spliced in as text so that numbers System.Text.Json would not write (1e400) reach the reader.
        const string Marker = "\"@@hostile@@\"";
        if (int.TryParse(path[^1], out int last))
        {
            parent[last] = "@@hostile@@";
        }
        else
        {
            parent[path[^1]] = "@@hostile@@";
        }

        string bad = Write("a-bad.json", node.ToJsonString().Replace(Marker, edit[(split + 1)..], StringComparison.Ordinal));
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        AssertOneErrorThenThePass(bad, Good(), reason);
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.True(allocated < 64 << 20, $"[cli replay] {what}: reading a small bad file allocated {allocated} bytes");
    }

    [Fact]
    public void A_bad_file_named_first_does_not_stop_the_good_file_named_after_it()
    {
        string bad = Write("bad.json", "{\"format\":\"bnparity-case/1\",\"steps\":[{\"expect\":3}]}");
        AssertOneErrorThenThePass(bad, Good("good.json"), "missing 'module'");
    }

    [Fact]
    public void Dev_zero_is_an_ERROR_after_one_chunk()
    {
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        AssertOneErrorThenThePass("/dev/zero", Good(), "not a JSON object: the first byte is 0x00");
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.True(allocated < 16 << 20, $"[cli replay] /dev/zero allocated {allocated} bytes");
    }

    [Fact]
    public void A_file_over_the_size_limit_is_an_ERROR_before_it_is_read()
    {
        string big = Path.Combine(_directory, "big.json");
        using (var file = File.Create(big))
        {
            file.SetLength(CaseJson.MaxFileBytes + 1L); // sparse
        }

        AssertOneErrorThenThePass(big, Good(), $"more than the {CaseJson.MaxFileBytes} a case file may hold");
    }

    [Fact]
    public void A_path_longer_than_PATH_MAX_is_an_ERROR()
    {
        string longPath = Path.Combine(_directory, string.Join('/', Enumerable.Repeat(new string('d', 200), 25)), "case.json");
        AssertOneErrorThenThePass(longPath, Good(), "");
    }

    [Fact]
    public void A_symbolic_link_loop_to_a_file_is_an_ERROR()
    {
        string loop = Path.Combine(_directory, "loop.json");
        File.CreateSymbolicLink(loop, loop);
        AssertOneErrorThenThePass(loop, Good(), "cannot read file");
    }

    [Fact]
    public void A_directory_with_a_symbolic_link_loop_is_walked_once()
    {
        string cases = Path.Combine(_directory, "cases");
        Directory.CreateDirectory(Path.Combine(cases, "inner"));
        Directory.CreateSymbolicLink(Path.Combine(cases, "inner", "back"), cases);
        Good("cases/inner/z-good.json");
        Good("cases/y-good.json");

        var (code, output) = Run("replay", cases);
        Assert.True(code == 0, output);
        // Ordinal order of the full paths: cases/inner/z-good.json before cases/y-good.json; each once.
        Assert.Equal(["PASS z-good", "PASS y-good"], Lines(output).Where(l => l.StartsWith("PASS", StringComparison.Ordinal)).Select(l => l.Split(' ')[0] + " " + l.Split(' ')[1]));
    }

    [Fact]
    public void An_unreadable_directory_is_an_ERROR_and_the_readable_ones_still_run()
    {
        string locked = Path.Combine(_directory, "cases", "locked");
        Good("cases/locked/x-case.json");
        string good = Good("cases/z-good.json");
        File.SetUnixFileMode(locked, UnixFileMode.None);
        bool listable;
        try
        {
            Directory.GetFiles(locked);
            listable = true; // root (as in CI containers) reads every directory whatever its mode
        }
        catch (UnauthorizedAccessException)
        {
            listable = false;
        }

        var (code, output) = Run("replay", Path.Combine(_directory, "cases"));
        Assert.Contains("PASS z-good", output, StringComparison.Ordinal);
        if (listable)
        {
            Assert.True(code == 0, output);
            Assert.Contains("PASS x-case", output, StringComparison.Ordinal);
        }
        else
        {
            AssertOneErrorThenThePass(locked, good, "cannot list directory", Path.Combine(_directory, "cases"));
        }

        NoStackTrace(output);
    }

    [Fact]
    public void A_directory_given_as_a_file_path_inside_a_file_is_an_ERROR()
    {
        string good = Good();
        AssertOneErrorThenThePass(good + "/inner.json", good, "", good + "/inner.json", good);
    }
}
