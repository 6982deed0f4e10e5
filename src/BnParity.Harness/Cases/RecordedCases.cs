using System.Reflection;

namespace BnParity.Harness.Cases;

/// <summary>
/// The recorded PyTorch cases (fixtures/pytorch) embedded in the harness assembly, so the test kit package carries
/// them: users run them without a clone and without files next to their test assembly.
/// </summary>
public static class RecordedCases
{
    private const string Prefix = "BnParity.RecordedCases.";
    private static readonly Assembly s_assembly = typeof(RecordedCases).Assembly;

    /// <summary>Every embedded case name (file name without .json), in ordinal order.</summary>
    public static IReadOnlyList<string> Names { get; } = s_assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal) && n.EndsWith(".json", StringComparison.Ordinal))
        .Select(n => n[Prefix.Length..^".json".Length])
        .OrderBy(n => n, StringComparer.Ordinal)
        .ToArray();

    /// <summary>The embedded case names of one module family (BatchNorm, InstanceNorm, GroupNorm, LayerNorm or RMSNorm), in ordinal order.</summary>
    public static IReadOnlyList<string> NamesOf(ModuleFamily family) => Names.Where(n => FamilyOf(Load(n).Config.Module) == family).ToArray();

    /// <summary>The family of a module kind.</summary>
    public static ModuleFamily FamilyOf(ModuleKind module) => module switch
    {
        ModuleKind.BatchNorm1d or ModuleKind.BatchNorm2d or ModuleKind.BatchNorm3d => ModuleFamily.BatchNorm,
        ModuleKind.InstanceNorm1d or ModuleKind.InstanceNorm2d or ModuleKind.InstanceNorm3d => ModuleFamily.InstanceNorm,
        ModuleKind.GroupNorm => ModuleFamily.GroupNorm,
        ModuleKind.LayerNorm => ModuleFamily.LayerNorm,
        ModuleKind.RMSNorm => ModuleFamily.RMSNorm,
        _ => throw new ArgumentOutOfRangeException(nameof(module), module, "unknown module"),
    };

    /// <summary>The embedded case <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No case has that name.</exception>
    public static BatchNormCase Load(string name)
    {
        using var stream = s_assembly.GetManifestResourceStream(Prefix + name + ".json")
            ?? throw new ArgumentException($"no recorded case '{name}' (see RecordedCases.Names).", nameof(name));
        using var reader = new StreamReader(stream);
        return CaseJson.Parse(reader.ReadToEnd(), name);
    }
}

/// <summary>The module families of the recorded cases (each has its own test-kit suite).</summary>
public enum ModuleFamily
{
    BatchNorm,
    InstanceNorm,
    GroupNorm,
    LayerNorm,
    RMSNorm,
}
