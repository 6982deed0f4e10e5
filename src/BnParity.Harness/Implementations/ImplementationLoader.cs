using System.Reflection;

namespace BnParity.Harness.Implementations;

/// <summary>
/// Chooses the implementation under test: the project's library by default, or the type named by
/// <c>BNPARITY_IMPLEMENTATION=&lt;path to assembly&gt;:&lt;full type name&gt;</c>, which must implement
/// <see cref="IBatchNormUnderTest"/> and have a public parameterless constructor.
/// </summary>
public static class ImplementationLoader
{
    public const string VariableName = "BNPARITY_IMPLEMENTATION";

    /// <summary>The implementation the suites and the CLI test.</summary>
    public static IBatchNormUnderTest UnderTest() => FromSpecification(Environment.GetEnvironmentVariable(VariableName));

    /// <summary>Null or empty: the library. Otherwise "&lt;assembly path&gt;:&lt;type name&gt;" (the last ':' splits).</summary>
    public static IBatchNormUnderTest FromSpecification(string? specification)
    {
        if (string.IsNullOrWhiteSpace(specification))
        {
            return new LibraryImplementation();
        }

        int split = specification.LastIndexOf(':');
        if (split <= 0 || split == specification.Length - 1)
        {
            throw new ArgumentException($"{VariableName} must be '<path to assembly>:<type name>', got '{specification}'.", nameof(specification));
        }

        string path = Path.GetFullPath(specification[..split]);
        string typeName = specification[(split + 1)..];
        if (!File.Exists(path))
        {
            throw new ArgumentException($"{VariableName}: assembly '{path}' does not exist.", nameof(specification));
        }

        Assembly assembly = Assembly.LoadFrom(path);
        Type type = assembly.GetType(typeName, throwOnError: false)
            ?? throw new ArgumentException($"{VariableName}: type '{typeName}' not found in '{path}'.", nameof(specification));
        if (!typeof(IBatchNormUnderTest).IsAssignableFrom(type))
        {
            throw new ArgumentException($"{VariableName}: type '{typeName}' does not implement {nameof(IBatchNormUnderTest)}.", nameof(specification));
        }

        return (IBatchNormUnderTest)(Activator.CreateInstance(type)
            ?? throw new ArgumentException($"{VariableName}: could not create '{typeName}'.", nameof(specification)));
    }
}
