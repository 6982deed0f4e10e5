using System.Globalization;
using System.Text.Json;

namespace BnParity.Harness.Cases;

/// <summary>A recorded case file that cannot be used, with the reason (the CLI prints it on an ERROR line).</summary>
public sealed class CaseFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Reads <c>bnparity-case/1</c> files (docs/case-format.md) into the case model. Strict: unknown
/// module or dtype, a shape whose product differs from the data length, a non-finite string other
/// than "NaN", "Infinity", "-Infinity", or a missing required key is a <see cref="CaseFormatException"/>.
/// </summary>
public static class CaseJson
{
    public const string Format = "bnparity-case/1";

    public static BatchNormCase ReadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new CaseFormatException($"cannot read file: {error.Message}", error);
        }

        return Parse(text, Path.GetFileNameWithoutExtension(path));
    }

    public static BatchNormCase Parse(string json, string fallbackName = "case")
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
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
                _ => throw new CaseFormatException($"unknown module '{moduleName}' (expected BatchNorm1d, BatchNorm2d or BatchNorm3d)"),
            };
            string dtypeName = String(root, "dtype");
            ElementType dtype = dtypeName switch
            {
                "float32" => ElementType.Float32,
                "float64" => ElementType.Float64,
                _ => throw new CaseFormatException($"unknown dtype '{dtypeName}' (expected float32 or float64)"),
            };
            int features = Int(root, "num_features");
            if (features < 1)
            {
                throw new CaseFormatException($"num_features must be at least 1, got {features}");
            }

            var momentumElement = Property(root, "momentum");
            double? momentum = momentumElement.ValueKind == JsonValueKind.Null ? null : Number(momentumElement, "momentum");
            var config = new ModuleConfig(module, features, Number(Property(root, "eps"), "eps"), momentum,
                Bool(root, "affine"), Bool(root, "track_running_stats"), dtype);

            var defaults = ModuleState.Defaults(config);
            double[]? weight = defaults.Weight, bias = defaults.Bias, runningMean = defaults.RunningMean, runningVar = defaults.RunningVar;
            long? count = defaults.NumBatchesTracked;
            if (config.Affine && root.TryGetProperty("parameters", out var parameters))
            {
                weight = Vector(parameters, "weight", features, "parameters.weight");
                bias = Vector(parameters, "bias", features, "parameters.bias");
            }

            if (config.TrackRunningStats && root.TryGetProperty("buffers", out var buffers))
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

    private static CaseStep Step(JsonElement step, int index, ModuleConfig config)
    {
        string where = $"steps[{index - 1}]";
        bool training = Bool(step, "training", where);
        var input = Tensor(Property(step, "input", where), where + ".input");
        CaseTensor? gradOutput = step.TryGetProperty("grad_output", out var g) ? Tensor(g, where + ".grad_output") : null;
        StepOutcome? expected = null;
        if (step.TryGetProperty("expect", out var expect))
        {
            if (expect.TryGetProperty("error", out var error))
            {
                expected = new StepOutcome { Error = error.GetString() ?? "" };
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

        if (expected is not null && step.TryGetProperty("expect_grad", out var expectGrad))
        {
            if (gradOutput is null)
            {
                throw new CaseFormatException($"{where}: expect_grad without grad_output");
            }

            expected = expected with
            {
                GradInput = Tensor(Property(expectGrad, "input", where + ".expect_grad"), where + ".expect_grad.input"),
                GradWeight = config.Affine ? Vector(expectGrad, "weight", config.NumFeatures, where + ".expect_grad.weight") : null,
                GradBias = config.Affine ? Vector(expectGrad, "bias", config.NumFeatures, where + ".expect_grad.bias") : null,
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
        if (layout == MemoryLayout.ChannelsLast && config.Module == ModuleKind.BatchNorm1d)
        {
            throw new CaseFormatException($"{where}.layout is channels_last, which only BatchNorm2d and BatchNorm3d inputs have");
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
        double[] data = Numbers(Property(element, "data", where), where + ".data");
        long expected = shape.Aggregate(1L, (a, b) => a * b);
        if (expected != data.Length)
        {
            throw new CaseFormatException($"{where}: shape [{string.Join(", ", shape)}] holds {expected} values but data has {data.Length}");
        }

        return new CaseTensor(shape, data);
    }

    private static double[] Vector(JsonElement parent, string key, int length, string where)
    {
        double[] values = Numbers(Property(parent, key, where), where);
        if (values.Length != length)
        {
            throw new CaseFormatException($"{where} has {values.Length} values, expected num_features = {length}");
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
        JsonValueKind.Number => element.GetDouble(),
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
        Property(parent, key).TryGetInt32(out int value) ? value : throw new CaseFormatException($"'{key}' must be an integer");

    private static long Long(JsonElement parent, string key, string where = "buffers") =>
        Property(parent, key, where).TryGetInt64(out long value) ? value : throw new CaseFormatException($"{where}.{key} must be an integer");

    private static bool Bool(JsonElement parent, string key, string where = "case") => Property(parent, key, where).ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new CaseFormatException($"{where}.{key} must be true or false"),
    };

    /// <summary>The committed PyTorch cases, copied next to every assembly that references the harness.</summary>
    public static string CommittedCasesDirectory => Path.Combine(AppContext.BaseDirectory, "fixtures", "pytorch");

    /// <summary>Every *.json under the given files and directories, in ordinal order.</summary>
    public static IReadOnlyList<string> ExpandPaths(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (string path in paths)
        {
            if (Directory.Exists(path))
            {
                files.AddRange(Directory.GetFiles(path, "*.json", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal));
            }
            else
            {
                files.Add(path);
            }
        }

        return files;
    }

    internal static string Invariant(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
