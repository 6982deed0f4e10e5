using System.Globalization;
using System.Text.Json.Nodes;
using BnParity.Cli;
using BnParity.Harness.Cases;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Cli.CliDriver;

namespace BnParity.ParityTests.Cli;

/// <summary>The CLI driven in-process through <see cref="CliApp.Run"/>.</summary>
[Collection(TorchSharpCollection.Name)]
public sealed class CliTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("bnparity-cli-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Write(string fileName, string text)
    {
        string path = Path.Combine(_directory, fileName);
        File.WriteAllText(path, text);
        return path;
    }

    private string WriteCase(string fileName, JsonNode node, string? name = null)
    {
        node["name"] = name ?? Path.GetFileNameWithoutExtension(fileName);
        return Write(fileName, node.ToJsonString());
    }

    [Fact]
    public void Replay_of_the_committed_cases_passes_every_case_with_exit_code_0()
    {
        var (code, output) = Run("replay", CaseJson.CommittedCasesDirectory);
        int files = Directory.GetFiles(CaseJson.CommittedCasesDirectory, "*.json").Length;
        Assert.True(code == 0, output);
        Assert.Equal(files, Lines(output).Count(l => l.StartsWith("PASS ", StringComparison.Ordinal)));
        Assert.Contains("PASS bn2d-default", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_one_element_output_error_of_1e_minus_4_is_a_FAIL_naming_the_case_with_exit_code_1()
    {
        var node = Committed("bn2d-default");
        var data = node["steps"]![0]!["expect"]!["output"]!["data"]!.AsArray();
        data[5] = data[5]!.GetValue<double>() * (1 + 1e-4);
        WriteCase("defect-output.json", node);

        var (code, output) = Run("replay", _directory);
        Assert.Equal(1, code);
        var fail = Assert.Single(Lines(output), l => l.StartsWith("FAIL ", StringComparison.Ordinal));
        Assert.StartsWith("FAIL defect-output: step 1 output[", fail, StringComparison.Ordinal);
        Assert.Contains("expected", fail, StringComparison.Ordinal);
        Assert.Contains("actual", fail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_running_var_from_the_biased_variance_is_a_FAIL_with_exit_code_1()
    {
        // Recompute step 1's running_var with the biased batch variance: (1 − m)·1 + m·var_biased.
        var node = Committed("bn1d-affine-2d-input");
        var batchNormCase = CaseJson.Parse(node.ToJsonString());
        var (_, biased) = Harness.Implementations.ReferenceBatchNorm.BatchStatistics(batchNormCase.Steps[0].Input);
        double momentum = batchNormCase.Config.Momentum!.Value;
        var runningVar = node["steps"]![0]!["expect"]!["running_var"]!.AsArray();
        for (int c = 0; c < runningVar.Count; c++)
        {
            runningVar[c] = (double)(float)((1 - momentum) * batchNormCase.InitialState.RunningVar![c] + momentum * biased[c]);
        }

        WriteCase("defect-biased.json", node);
        var (code, output) = Run("replay", "--verbose", Path.Combine(_directory, "defect-biased.json"));
        Assert.Equal(1, code);
        Assert.Contains("FAIL defect-biased: step 1 running_var[c=", output, StringComparison.Ordinal);
        Assert.Contains("worst |error|/budget", output, StringComparison.Ordinal); // --verbose adds the report
    }

    [Theory]
    [InlineData("malformed.json", "{\"format\": \"bnparity-case/1\", \"module\": ", "malformed JSON")]
    [InlineData("wrong-format.json", null, "unsupported format")]
    [InlineData("data-length.json", null, "holds")]
    [InlineData("unknown-module.json", null, "unknown module 'BatchNorm4d'")]
    [InlineData("bad-nan.json", null, "the string \"nan\" is not a number")]
    public void Bad_input_is_an_ERROR_line_naming_the_file_the_other_files_still_run_and_exit_code_is_2(string fileName, string? text, string problem)
    {
        var node = Committed("bn1d-affine-2d-input");
        switch (fileName)
        {
            case "wrong-format.json":
                node["format"] = "bnparity-case/2";
                break;
            case "data-length.json":
                node["steps"]![0]!["input"]!["data"]!.AsArray().RemoveAt(0);
                break;
            case "unknown-module.json":
                node["module"] = "BatchNorm4d";
                break;
            case "bad-nan.json":
                node["steps"]![0]!["input"]!["data"]!.AsArray()[0] = "nan";
                break;
        }

        string bad = text is null ? WriteCase(fileName, node) : Write(fileName, text);
        WriteCase("a-good-case.json", Committed("bn1d-affine-2d-input"));
        WriteCase("z-good-case.json", Committed("bn2d-default"));

        var (code, output) = Run("replay", _directory);
        Assert.Equal(2, code);
        string error = Assert.Single(Lines(output), l => l.StartsWith("ERROR ", StringComparison.Ordinal));
        Assert.StartsWith("ERROR " + bad + ": ", error, StringComparison.Ordinal);
        Assert.Contains(problem, error, StringComparison.Ordinal);
        Assert.Contains("PASS a-good-case", output, StringComparison.Ordinal);
        Assert.Contains("PASS z-good-case", output, StringComparison.Ordinal);
        NoStackTrace(output);
    }

    [Fact]
    public void FAIL_and_ERROR_together_exit_with_2_and_a_missing_file_is_an_ERROR()
    {
        var node = Committed("bn2d-default");
        node["steps"]![0]!["expect"]!["num_batches_tracked"] = 5;
        string failing = WriteCase("counter.json", node);
        string missing = Path.Combine(_directory, "does-not-exist.json");

        var (code, output) = Run("replay", failing, missing);
        Assert.Equal(2, code);
        Assert.Contains("FAIL counter: step 1 num_batches_tracked: expected 5, actual 1", output, StringComparison.Ordinal);
        Assert.Contains("ERROR " + missing + ": ", output, StringComparison.Ordinal);
        NoStackTrace(output);
    }

    [Theory]
    [InlineData(new string[0], 2)]
    [InlineData(new[] { "--help" }, 0)]
    [InlineData(new[] { "replay", "--help" }, 0)]
    [InlineData(new[] { "frobnicate" }, 2)]
    [InlineData(new[] { "replay" }, 2)]
    [InlineData(new[] { "check", "--cases", "many" }, 2)]
    [InlineData(new[] { "check", "--cases", "-3" }, 2)]
    [InlineData(new[] { "check", "--implementation", "no-colon" }, 2)]
    public void Usage(string[] args, int expected)
    {
        var (code, output) = Run(args);
        Assert.True(expected == code, output);
        if (expected == 0)
        {
            Assert.Contains("Usage:", output, StringComparison.Ordinal);
            Assert.Contains("Options:", output, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("ERROR usage: ", output, StringComparison.Ordinal);
        }

        NoStackTrace(output);
    }

    [Theory]
    [InlineData("check --cases many", "--cases")]
    [InlineData("check --cases -3", "--cases must be at least 0")]
    [InlineData("replay --implementation no-colon x.json", "--implementation must be '<path to assembly>:<type name>'")]
    public void Validation_errors_name_the_option(string commandLine, string expected)
    {
        var (code, output) = Run(commandLine.Split(' '));
        Assert.Equal(2, code);
        Assert.Contains(expected, output, StringComparison.Ordinal);
    }

    [Fact]
    public void Version_prints_the_package_version()
    {
        var (code, output) = Run("--version");
        Assert.Equal(0, code);
        string version = typeof(CliApp).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        Assert.StartsWith(version.Split('+')[0], output.Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public void Implementation_option_loads_the_named_type_and_a_missing_assembly_is_an_ERROR()
    {
        string library = typeof(BnParity.Harness.Implementations.ReferenceBatchNorm).Assembly.Location;
        var (code, output) = Run("replay", "--implementation", library + ":BnParity.Harness.Implementations.ReferenceBatchNorm",
            Path.Combine(CaseJson.CommittedCasesDirectory, "bn2d-default.json"));
        Assert.True(code == 0, output);
        Assert.Contains("1 passed, 0 failed, 0 error(s) (float64 reference)", output, StringComparison.Ordinal);

        (code, output) = Run("replay", "--implementation", Path.Combine(_directory, "missing.dll") + ":Some.Type", "x.json");
        Assert.Equal(2, code);
        Assert.Contains("ERROR --implementation: ", output, StringComparison.Ordinal);
        NoStackTrace(output);
    }

    [Fact]
    public void Check_with_a_small_sweep_passes_and_prints_the_summary_table()
    {
        var (code, output) = Run("check", "--cases", "20", "--seed", "5");
        Assert.True(code == 0, output);
        Assert.Contains("passed, 0 failed, 0 error(s) (BnParity vs recorded PyTorch)", output, StringComparison.Ordinal);
        Assert.Contains("class of configuration", output, StringComparison.Ordinal);
        Assert.Contains("BN2d float32 train/eval", output, StringComparison.Ordinal);
        Assert.Contains("float32 gradients", output, StringComparison.Ordinal);
        Assert.Contains("sweep: 20 passed, 0 failed, 0 error(s)", output, StringComparison.Ordinal);
        Assert.DoesNotContain('\r', output);
    }

    [Fact]
    public void The_sweep_is_deterministic_for_a_seed()
    {
        var first = RandomCases.Generate(11, 30).Select(c => c.Case.ToString()).ToList();
        var second = RandomCases.Generate(11, 30).Select(c => c.Case.ToString()).ToList();
        var other = RandomCases.Generate(12, 30).Select(c => c.Case.ToString()).ToList();
        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
        Assert.All(RandomCases.Classes, c => Assert.Contains(RandomCases.Generate(11, 40), s => s.Class == c.Name));
    }

    [Fact]
    public void The_check_sweep_generates_cases_as_it_runs_them_so_any_count_holds_one_case_in_memory()
    {
        int pulled = 0;
        IEnumerable<SweepCase> Endless()
        {
            foreach (var sweepCase in RandomCases.Generate(CliApp.DefaultSeed, int.MaxValue))
            {
                pulled++;
                yield return sweepCase;
            }
        }

        var output = new StringWriter(CultureInfo.InvariantCulture);
        var sweep = Sweep.Run(Endless(), 3, ImplementationLoader.UnderTest(), new TorchSharpImplementation(), verbose: false, output);
        Assert.Equal(3, pulled);
        Assert.Equal(3, sweep.Passed + sweep.Failed + sweep.Errors);
        Assert.Contains("sweep 3/3", output.ToString(), StringComparison.Ordinal);
    }
}
