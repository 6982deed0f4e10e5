using System.Globalization;
using BnParity.Cli;
using BnParity.Harness.Cases;
using BnParity.ParityTests.Checkpoints;
using BnParity.Testing;
using FsCheck;
using FsCheck.Fluent;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Fuzzing;

/// <summary>
/// Fuzzing as properties: valid safetensors checkpoints and valid case files, damaged by <see cref="FileMutation"/>.
/// The only outcomes allowed are success or the documented failure: <see cref="InvalidDataException"/> naming the file
/// with the module unchanged (checkpoints), <see cref="CaseFormatException"/> and one `ERROR` line with exit code 2
/// (case files; a case that still parses runs to PASS or FAIL). Any other exception, a hang or a changed module
/// falsifies the property. BNPARITY_MAX_TEST sets the count (300 by default; the README says how to run 100,000).
/// </summary>
public sealed class FileFuzzProperties : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("bnparity-fuzz-").FullName;
    private int _next;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string FreshPath(string extension) =>
        Path.Combine(_directory, string.Create(CultureInfo.InvariantCulture, $"f{Interlocked.Increment(ref _next)}{extension}"));

    // ---------------------------------------------------------------- checkpoints

    /// <summary>A valid checkpoint, the module kind that loads from it and the prefixes it holds.</summary>
    public sealed record CheckpointBase(string Name, byte[] Bytes, int Features, bool TwoD, string[] Prefixes)
    {
        public int HeaderEnd => 8 + (int)BitConverter.ToUInt64(Bytes, 0);

        public override string ToString() => Name;
    }

    public sealed record CheckpointFuzz(CheckpointBase Base, FileMutation Mutation, string Prefix, bool Strict)
    {
        public override string ToString() => $"{Base} / {Mutation} / prefix '{Prefix}' / strict {Strict}";
    }

    private static readonly CheckpointBase[] CheckpointBases =
    [
        new("pytorch-smallnet-f32.safetensors (PyTorch 1.13)",
            File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "fixtures", "safetensors", "pytorch-smallnet-f32.safetensors")),
            4, true, ["bn1", "layer1.0.bn1", "layer1.0.bn2", "layer1.1.bn2", "head", ""]),
        new("foreign dtypes + BatchNorm1d(3) under bn1",
            SafetensorsBytes.File([
                new RawTensor("conv.weight", "F16", [2, 3], new byte[12]),
                new RawTensor("mask", "BOOL", [5], [1, 0, 1, 1, 0]),
                .. SafetensorsBytes.BatchNorm1dOfThree("bn1."),
                new RawTensor("ids", "I32", [2], new byte[8]),
            ]),
            3, false, ["bn1", ""]),
    ];

    private static Gen<CheckpointFuzz> Checkpoints() =>
        from checkpoint in Gen.Elements(CheckpointBases)
        from mutation in FileMutation.Any(checkpoint.Bytes.Length)
        from prefix in Gen.Elements(checkpoint.Prefixes)
        from strict in Gen.Elements(true, false)
        select new CheckpointFuzz(checkpoint, mutation, prefix, strict);

    [BnProperty]
    public Property A_damaged_checkpoint_loads_or_is_InvalidDataException_naming_the_file_and_the_module_is_unchanged() =>
        Prop.ForAll(Arb.From(Checkpoints()), fuzz =>
        {
            string path = FreshPath(".safetensors");
            File.WriteAllBytes(path, fuzz.Mutation.Apply(fuzz.Base.Bytes, 8, Math.Min(fuzz.Base.HeaderEnd, fuzz.Base.Bytes.Length)));
            BatchNorm<float> module = fuzz.Base.TwoD ? new BatchNorm2d<float>(fuzz.Base.Features) : new BatchNorm1d<float>(fuzz.Base.Features);
            RandomAffine(module, 3);
            module.NumBatchesTracked = 77;
            string before = Snapshot(module);
            try
            {
                module.LoadSafetensors(path, fuzz.Prefix, fuzz.Strict);
            }
            catch (InvalidDataException error)
            {
                Assert.True(error.Message.StartsWith(path, StringComparison.Ordinal), $"[checkpoint fuzz] {fuzz}: the message does not name the file: {error.Message}");
                Assert.True(before == Snapshot(module), $"[checkpoint fuzz] {fuzz}: a failed load changed the module ({error.Message})");
            }

            try
            {
                Safetensors.Read(path);
            }
            catch (InvalidDataException error)
            {
                Assert.True(error.Message.StartsWith(path, StringComparison.Ordinal), $"[checkpoint fuzz] {fuzz}: Read's message does not name the file: {error.Message}");
            }

            File.Delete(path);
        });

    // ---------------------------------------------------------------- case files

    public sealed record CaseFuzz(string Base, byte[] Bytes, FileMutation Mutation)
    {
        public override string ToString() => $"{Base}.json / {Mutation}";
    }

    private static readonly (string Name, byte[] Bytes)[] CaseBases =
        new[] { "bn1d-affine-2d-input", "bn2d-one-value-per-channel-error", "cl-spatial-1x1", "loaded-random-state-cma", "bn3d-zero-batch" }
            .Select(name => (name, File.ReadAllBytes(Path.Combine(CaseJson.CommittedCasesDirectory, name + ".json"))))
            .ToArray();

    private static Gen<CaseFuzz> CaseFiles() =>
        from source in Gen.Elements(CaseBases)
        from mutation in FileMutation.Any(source.Bytes.Length)
        select new CaseFuzz(source.Name, source.Bytes, mutation);

    [BnProperty]
    public Property A_damaged_case_file_is_PASS_FAIL_or_one_ERROR_line_never_a_crash() =>
        Prop.ForAll(Arb.From(CaseFiles()), fuzz =>
        {
            string path = FreshPath(".json");
            File.WriteAllBytes(path, fuzz.Mutation.Apply(fuzz.Bytes, 0, fuzz.Bytes.Length));
            bool parses;
            try
            {
                CaseJson.ReadFile(path);
                parses = true;
            }
            catch (CaseFormatException)
            {
                parses = false;
            }

            var output = new StringWriter(CultureInfo.InvariantCulture);
            int code = CliApp.Run(["replay", path], output);
            string[] lines = output.ToString().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();
            string where = $"[case-file fuzz] {fuzz}: exit {code}\n{output}";
            Assert.True(lines.Length == 2, where);
            Assert.True(parses
                ? lines[0].StartsWith("PASS ", StringComparison.Ordinal) || lines[0].StartsWith("FAIL ", StringComparison.Ordinal) || lines[0].StartsWith("ERROR " + path + ": cannot run the case", StringComparison.Ordinal)
                : lines[0].StartsWith("ERROR " + path + ": ", StringComparison.Ordinal) && code == ExitCodes.Error, where);
            Assert.True(code is ExitCodes.Pass or ExitCodes.Fail or ExitCodes.Error, where);
            Assert.DoesNotContain("   at ", output.ToString(), StringComparison.Ordinal);
            File.Delete(path);
        });
}
