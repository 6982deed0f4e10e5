using System.Globalization;
using System.Text.Json;

namespace BnParity.Harness.Cases;

/// <summary>A recorded case file that cannot be used, with the reason (the CLI prints it on an ERROR line).</summary>
public sealed class CaseFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A case file to read, or a path that could not be listed and why (the CLI's ERROR line).</summary>
public sealed record CaseFileEntry(string Path, string? Error);

/// <summary>
/// Reads <c>bnparity-case/1</c> files (docs/case-format.md) into the case model. Strict: unknown
/// module or dtype, a shape whose product differs from the data length, a non-finite string other
/// than "NaN", "Infinity", "-Infinity", or a missing required key is a <see cref="CaseFormatException"/>.
/// </summary>
public static class CaseJson
{
    public const string Format = "bnparity-case/1";

    /// <summary>The largest case file read (the recorded cases are at most a few MB): a larger file, or a device that
    /// never ends, is rejected after this many bytes instead of exhausting memory.</summary>
    public const int MaxFileBytes = 256 << 20;

    /// <summary>The most elements one tensor of a case may hold (and the most its non-zero dimensions may multiply to):
    /// the largest .NET array, so no implementation's size arithmetic can wrap.</summary>
    public static readonly long MaxTensorElements = Array.MaxLength;

    /// <summary>Reads and parses one case file. Every failure (missing, unreadable, a directory, too long a path, a
    /// device or a file over <see cref="MaxFileBytes"/>, malformed content) is a <see cref="CaseFormatException"/>.</summary>
    public static BatchNormCase ReadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Parse(ReadBounded(path), Path.GetFileNameWithoutExtension(path));
    }

    /// <summary>Whether <paramref name="chunk"/> settles the question "is this a JSON object?": false while it holds only
    /// blanks; true once '{' is seen first; a <see cref="CaseFormatException"/> when anything else comes first.</summary>
    private static bool FirstByteOpensAnObject(ReadOnlySpan<byte> chunk)
    {
        if (chunk.StartsWith("\uFEFF"u8))
        {
            chunk = chunk[3..];
        }

        foreach (byte b in chunk)
        {
            switch (b)
            {
                case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n':
                    continue;
                case (byte)'{':
                    return true;
                default:
                    throw new CaseFormatException($"not a JSON object: the first byte is 0x{b:X2}, not '{{'");
            }
        }

        return false;
    }

    private static byte[] ReadBounded(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                throw new CaseFormatException("is a directory");
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
            if (stream.CanSeek && stream.Length > MaxFileBytes)
            {
                throw new CaseFormatException($"the file has {stream.Length} bytes, more than the {MaxFileBytes} a case file may hold");
            }

            using var buffer = new MemoryStream(stream.CanSeek ? (int)stream.Length : 0);
            byte[] chunk = new byte[1 << 16];
            int read;
            bool opened = false;
            while ((read = stream.Read(chunk, 0, chunk.Length)) > 0)
            {
                // Never trust the reported length (devices report 0 and never end): count what arrives.
                if (buffer.Length + read > MaxFileBytes)
                {
                    throw new CaseFormatException($"the file is larger than {MaxFileBytes} bytes, the most a case file may hold");
                }

                // A case is a JSON object: a first non-blank byte other than '{' (or a UTF-8 byte order mark) ends the
                // read at once, so /dev/zero or a binary file costs one chunk, not MaxFileBytes.
                opened = opened || FirstByteOpensAnObject(chunk.AsSpan(0, read));
                buffer.Write(chunk, 0, read);
            }

            return buffer.ToArray();
        }
        catch (Exception error) when (error is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CaseFormatException("no such file", error);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException or System.Security.SecurityException)
        {
            throw new CaseFormatException($"cannot read file: {error.Message}", error);
        }
    }

    /// <summary>Parses a case held as text. Every problem is a <see cref="CaseFormatException"/>.</summary>
    public static BatchNormCase Parse(string json, string fallbackName = "case")
    {
        ArgumentNullException.ThrowIfNull(json);
        return Parse(System.Text.Encoding.UTF8.GetBytes(json), fallbackName);
    }

    /// <summary>Parses a case held as UTF-8 bytes. Every problem is a <see cref="CaseFormatException"/>.</summary>
    public static BatchNormCase Parse(ReadOnlyMemory<byte> utf8Json, string fallbackName = "case")
    {
        try
        {
            return ParseCore(utf8Json, fallbackName);
        }
        catch (Exception error) when (error is InvalidOperationException or FormatException or OverflowException or ArgumentException or KeyNotFoundException)
        {
            // A defect of the reader, not of the file, if it ever happens: the file still gets its ERROR line, not a
            // crash of the whole run.
            throw new CaseFormatException($"malformed case ({error.GetType().Name}): {error.Message}", error);
        }
    }

    private static BatchNormCase ParseCore(ReadOnlyMemory<byte> utf8Json, string fallbackName)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8Json);
        }
        catch (JsonException error)
        {
            throw new CaseFormatException($"malformed JSON: {error.Message}", error);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CaseFormatException("the top level must be a JSON object");
            }

            string format = String(root, "format");
            if (format != Format)
            {
                throw new CaseFormatException($"unsupported format '{format}' (expected '{Format}')");
            }

            string name = root.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : fallbackName;
            string moduleName = String(root, "module");
            ModuleKind module = moduleName switch
            {
                "BatchNorm1d" => ModuleKind.BatchNorm1d,
                "BatchNorm2d" => ModuleKind.BatchNorm2d,
                "BatchNorm3d" => ModuleKind.BatchNorm3d,
                "InstanceNorm1d" => ModuleKind.InstanceNorm1d,
                "InstanceNorm2d" => ModuleKind.InstanceNorm2d,
                "InstanceNorm3d" => ModuleKind.InstanceNorm3d,
                "GroupNorm" => ModuleKind.GroupNorm,
                "LayerNorm" => ModuleKind.LayerNorm,
                "RMSNorm" => ModuleKind.RMSNorm,
                _ => throw new CaseFormatException($"unknown module '{moduleName}' (expected BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, GroupNorm, LayerNorm or RMSNorm)"),
            };
            string dtypeName = String(root, "dtype");
            ElementType dtype = dtypeName switch
            {
                "float32" => ElementType.Float32,
                "float64" => ElementType.Float64,
                _ => throw new CaseFormatException($"unknown dtype '{dtypeName}' (expected float32 or float64)"),
            };
            ModuleConfig config = module is ModuleKind.LayerNorm or ModuleKind.RMSNorm
                ? ElementNormConfig(root, module, dtype)
                : ChannelNormConfig(root, module, dtype);
            int features = config.NumFeatures;
            var defaults = ModuleState.Defaults(config);
            double[]? weight = defaults.Weight, bias = defaults.Bias, runningMean = defaults.RunningMean, runningVar = defaults.RunningVar;
            long? count = defaults.NumBatchesTracked;
            if (config.Affine && Optional(root, "parameters", "case") is { } parameters)
            {
                weight = Vector(parameters, "weight", features, "parameters.weight");
                bias = config.HasBias ? Vector(parameters, "bias", features, "parameters.bias") : null;
            }

            if (config.TrackRunningStats && Optional(root, "buffers", "case") is { } buffers)
            {
                runningMean = Vector(buffers, "running_mean", features, "buffers.running_mean");
                runningVar = Vector(buffers, "running_var", features, "buffers.running_var");
                count = Long(buffers, "num_batches_tracked");
            }

            var stepsElement = Property(root, "steps");
            if (stepsElement.ValueKind != JsonValueKind.Array)
            {
                throw new CaseFormatException("'steps' must be an array");
            }

            var steps = new List<CaseStep>();
            int index = 0;
            foreach (var step in stepsElement.EnumerateArray())
            {
                index++;
                if (step.ValueKind != JsonValueKind.Object)
                {
                    throw new CaseFormatException($"steps[{index - 1}] must be an object");
                }

                steps.Add(Step(step, index, config));
            }

            for (int i = 0; i < steps.Count - 1; i++)
            {
                if (steps[i].Expected?.Error is not null)
                {
                    throw new CaseFormatException($"step {i + 1} expects an error but is not the last step");
                }
            }

            return new BatchNormCase(name, config, new ModuleState(weight, bias, runningMean, runningVar, count), steps);
        }
    }

    /// <summary>BatchNorm/InstanceNorm (num_features, momentum, affine, track_running_stats) or GroupNorm (num_groups,
    /// num_channels, affine).</summary>
    private static ModuleConfig ChannelNormConfig(JsonElement root, ModuleKind module, ElementType dtype)
    {
        bool groupNorm = module == ModuleKind.GroupNorm;
        string featuresKey = groupNorm ? "num_channels" : "num_features";
        int features = Int(root, featuresKey);
        if (features < 1 || features > NormBase<float>.MaxNumFeatures)
        {
            // Checked before anything is sized by it: the module state below is 4 vectors of num_features.
            throw new CaseFormatException($"{featuresKey} must be between 1 and {NormBase<float>.MaxNumFeatures} (the library's limit), got {features}");
        }

        if (groupNorm)
        {
            int groups = Int(root, "num_groups");
            if (groups < 1 || features % groups != 0)
            {
                throw new CaseFormatException($"num_groups must be a positive divisor of num_channels ({features}), got {groups}");
            }

            return ModuleConfig.GroupNorm(groups, features, Number(Property(root, "eps"), "eps"), Bool(root, "affine"), dtype);
        }

        var momentumElement = Property(root, "momentum");
        double? momentum = momentumElement.ValueKind == JsonValueKind.Null ? null : Number(momentumElement, "momentum");
        return new ModuleConfig(module, features, Number(Property(root, "eps"), "eps"), momentum,
            Bool(root, "affine"), Bool(root, "track_running_stats"), dtype);
    }

    /// <summary>LayerNorm (normalized_shape, eps, elementwise_affine, bias) or RMSNorm (normalized_shape, eps or null,
    /// elementwise_affine). normalized_shape holds at least one dimension, each ≥ 1, whose product is at most the
    /// library's limit (the parameters are vectors of that many values).</summary>
    private static ModuleConfig ElementNormConfig(JsonElement root, ModuleKind module, ElementType dtype)
    {
        var shapeElement = Property(root, "normalized_shape");
        if (shapeElement.ValueKind != JsonValueKind.Array || shapeElement.GetArrayLength() == 0)
        {
            throw new CaseFormatException("normalized_shape must be a non-empty array of positive integers");
        }

        long product = 1;
        var shape = new List<int>();
        foreach (var d in shapeElement.EnumerateArray())
        {
            int value = d.ValueKind == JsonValueKind.Number && d.TryGetInt32(out int v) && v >= 1
                ? v
                : throw new CaseFormatException($"normalized_shape holds '{d}', not a positive integer");
            product *= value;
            if (product > NormBase<float>.MaxNumFeatures)
            {
                throw new CaseFormatException($"normalized_shape multiplies past {NormBase<float>.MaxNumFeatures} (the library's limit)");
            }

            shape.Add(value);
        }

        bool affine = Bool(root, "elementwise_affine");
        if (module == ModuleKind.LayerNorm)
        {
            return ModuleConfig.LayerNorm([.. shape], Number(Property(root, "eps"), "eps"), affine, Bool(root, "bias"), dtype);
        }

        var epsElement = Property(root, "eps");
        return ModuleConfig.RMSNorm([.. shape], epsElement.ValueKind == JsonValueKind.Null ? null : Number(epsElement, "eps"), affine, dtype);
    }

    private static CaseStep Step(JsonElement step, int index, ModuleConfig config)
    {
        string where = $"steps[{index - 1}]";
        bool training = Bool(step, "training", where);
        var input = Tensor(Property(step, "input", where), where + ".input");
        CaseTensor? gradOutput = step.TryGetProperty("grad_output", out var g) ? Tensor(g, where + ".grad_output") : null;
        StepOutcome? expected = null;
        if (Optional(step, "expect", where) is { } expect)
        {
            if (expect.TryGetProperty("error", out var error))
            {
                expected = new StepOutcome
                {
                    Error = error.ValueKind == JsonValueKind.String ? error.GetString()! : throw new CaseFormatException($"{where}.expect.error must be a string"),
                };
            }
            else
            {
                expected = new StepOutcome
                {
                    Output = Tensor(Property(expect, "output", where + ".expect"), where + ".expect.output"),
                    RunningMean = config.TrackRunningStats ? Vector(expect, "running_mean", config.NumFeatures, where + ".expect.running_mean") : null,
                    RunningVar = config.TrackRunningStats ? Vector(expect, "running_var", config.NumFeatures, where + ".expect.running_var") : null,
                    NumBatchesTracked = config.TrackRunningStats ? Long(expect, "num_batches_tracked", where + ".expect") : null,
                };
            }
        }

        if (expected is not null && Optional(step, "expect_grad", where) is { } expectGrad)
        {
            if (gradOutput is null)
            {
                throw new CaseFormatException($"{where}: expect_grad without grad_output");
            }

            expected = expected with
            {
                GradInput = Tensor(Property(expectGrad, "input", where + ".expect_grad"), where + ".expect_grad.input"),
                GradWeight = config.Affine ? Vector(expectGrad, "weight", config.NumFeatures, where + ".expect_grad.weight") : null,
                GradBias = config.HasBias ? Vector(expectGrad, "bias", config.NumFeatures, where + ".expect_grad.bias") : null,
            };
        }

        return new CaseStep(training, input, gradOutput, expected, Layout(step, where, config));
    }

    /// <summary>The optional <c>layout</c> of a step: absent (files before it existed) means channels-first.</summary>
    private static MemoryLayout Layout(JsonElement step, string where, ModuleConfig config)
    {
        if (!step.TryGetProperty("layout", out var element))
        {
            return MemoryLayout.ChannelsFirst;
        }

        MemoryLayout layout = element.ValueKind == JsonValueKind.String ? element.GetString() switch
        {
            "channels_first" => MemoryLayout.ChannelsFirst,
            "channels_last" => MemoryLayout.ChannelsLast,
            var other => throw new CaseFormatException($"{where}.layout is '{other}' (expected \"channels_first\" or \"channels_last\")"),
        } : throw new CaseFormatException($"{where}.layout must be a string");
        if (layout == MemoryLayout.ChannelsLast && !config.HasChannelsLast)
        {
            throw new CaseFormatException($"{where}.layout is channels_last, which {config.Module} inputs do not have (only the 2d/3d modules' and GroupNorm's)");
        }

        return layout;
    }

    private static CaseTensor Tensor(JsonElement element, string where)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new CaseFormatException($"{where} must be an object {{\"shape\": [...], \"data\": [...]}}");
        }

        var shapeElement = Property(element, "shape", where);
        if (shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new CaseFormatException($"{where}.shape must be an array");
        }

        int[] shape = shapeElement.EnumerateArray().Select(d => d.TryGetInt32(out int v) && v >= 0
            ? v
            : throw new CaseFormatException($"{where}.shape holds '{d}', not a non-negative integer")).ToArray();
        long expected = ElementCount(shape, where);
        double[] data = Numbers(Property(element, "data", where), where + ".data");
        if (expected != data.Length)
        {
            throw new CaseFormatException($"{where}: shape [{string.Join(", ", shape)}] holds {expected} values but data has {data.Length}");
        }

        return new CaseTensor(shape, data);
    }

    /// <summary>
    /// The element count of <paramref name="shape"/>, exact in any dimension order: a zero anywhere makes it 0, and
    /// the non-zero dimensions must multiply to at most <see cref="MaxTensorElements"/> (the implementations size
    /// planes and strides from them in 32-bit arithmetic; a product that wrapped once made an empty tensor look like
    /// 2^60 iterations of work).
    /// </summary>
    private static long ElementCount(int[] shape, string where)
    {
        long product = 1;
        bool empty = false;
        foreach (int d in shape)
        {
            if (d == 0)
            {
                empty = true;
                continue;
            }

            product *= d; // both factors are at most 2^31, so this cannot wrap before the check below
            if (product > MaxTensorElements)
            {
                throw new CaseFormatException(
                    $"{where}.shape [{string.Join(", ", shape)}] multiplies past {MaxTensorElements}, the most elements a tensor may have");
            }
        }

        return empty ? 0 : product;
    }

    private static double[] Vector(JsonElement parent, string key, int length, string where)
    {
        double[] values = Numbers(Property(parent, key, where), where);
        if (values.Length != length)
        {
            throw new CaseFormatException($"{where} has {values.Length} values, expected {length} (num_features, or the product of normalized_shape)");
        }

        return values;
    }

    private static double[] Numbers(JsonElement array, string where)
    {
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw new CaseFormatException($"{where} must be an array of numbers");
        }

        var values = new double[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            values[i] = Number(item, $"{where}[{i}]");
            i++;
        }

        return values;
    }

    private static double Number(JsonElement element, string where) => element.ValueKind switch
    {
        JsonValueKind.Number => element.TryGetDouble(out double value) && double.IsFinite(value)
            ? value
            : throw new CaseFormatException($"{where}: the number {element.GetRawText()} is outside the range of a double (write \"Infinity\" or \"-Infinity\" for an infinity)"),
        JsonValueKind.String => element.GetString() switch
        {
            "NaN" => double.NaN,
            "Infinity" => double.PositiveInfinity,
            "-Infinity" => double.NegativeInfinity,
            var other => throw new CaseFormatException($"{where}: the string \"{other}\" is not a number (only \"NaN\", \"Infinity\", \"-Infinity\" are allowed)"),
        },
        _ => throw new CaseFormatException($"{where}: expected a number, got {element.ValueKind}"),
    };

    private static JsonElement Property(JsonElement parent, string key, string where = "case") =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(key, out var value)
            ? value
            : throw new CaseFormatException($"{where}: missing '{key}'");

    private static string String(JsonElement parent, string key) =>
        Property(parent, key) is { ValueKind: JsonValueKind.String } value ? value.GetString()! : throw new CaseFormatException($"'{key}' must be a string");

    private static int Int(JsonElement parent, string key) =>
        Property(parent, key) is { ValueKind: JsonValueKind.Number } element && element.TryGetInt32(out int value)
            ? value
            : throw new CaseFormatException($"'{key}' must be an integer between {int.MinValue} and {int.MaxValue}");

    private static long Long(JsonElement parent, string key, string where = "buffers") =>
        Property(parent, key, where) is { ValueKind: JsonValueKind.Number } element && element.TryGetInt64(out long value)
            ? value
            : throw new CaseFormatException($"{where}.{key} must be a 64-bit integer");

    /// <summary>An optional object member: absent gives null; present, it must be an object.</summary>
    private static JsonElement? Optional(JsonElement parent, string key, string where) =>
        !parent.TryGetProperty(key, out var value) ? null
        : value.ValueKind == JsonValueKind.Object ? value
        : throw new CaseFormatException($"{where}.{key} must be an object");

    private static bool Bool(JsonElement parent, string key, string where = "case") => Property(parent, key, where).ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new CaseFormatException($"{where}.{key} must be true or false"),
    };

    /// <summary>The committed PyTorch cases, copied next to every assembly that references the harness.</summary>
    public static string CommittedCasesDirectory => Path.Combine(AppContext.BaseDirectory, "fixtures", "pytorch");

    /// <summary>Every *.json under the given files and directories, in ordinal order (directories that cannot be listed
    /// are left out; <see cref="FindCaseFiles"/> reports them).</summary>
    public static IReadOnlyList<string> ExpandPaths(IEnumerable<string> paths) =>
        paths.SelectMany(FindCaseFiles).Where(entry => entry.Error is null).Select(entry => entry.Path).ToList();

    /// <summary>
    /// The case files a command-line path names: the path itself when it is not a directory (reading it reports any
    /// problem), else every *.json below it in ordinal order. A directory that cannot be listed (unreadable, a path
    /// too long) is an entry with an <see cref="CaseFileEntry.Error"/>, and the walk goes on; a directory reached
    /// again through a symbolic link (a loop) is walked once.
    /// </summary>
    public static IReadOnlyList<CaseFileEntry> FindCaseFiles(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!Directory.Exists(path))
        {
            return [new CaseFileEntry(path, null)];
        }

        var files = new List<string>();
        var problems = new List<CaseFileEntry>();
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>();
        pending.Push(path);
        while (pending.Count > 0)
        {
            string directory = pending.Pop();
            try
            {
                var info = new DirectoryInfo(directory);
                string identity = (info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true) ?? info).FullName;
                if (!visited.Add(identity))
                {
                    continue;
                }

                files.AddRange(Directory.GetFiles(directory, "*.json"));
                foreach (string child in Directory.GetDirectories(directory).OrderByDescending(d => d, StringComparer.Ordinal))
                {
                    pending.Push(child);
                }
            }
            catch (Exception error) when (error is IOException or UnauthorizedAccessException or System.Security.SecurityException)
            {
                problems.Add(new CaseFileEntry(directory, $"cannot list directory: {error.Message}"));
            }
        }

        if (files.Count == 0 && problems.Count == 0)
        {
            problems.Add(new CaseFileEntry(path, "no *.json case files in this directory"));
        }

        return [.. problems, .. files.OrderBy(f => f, StringComparer.Ordinal).Select(f => new CaseFileEntry(f, null))];
    }

    internal static string Invariant(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
