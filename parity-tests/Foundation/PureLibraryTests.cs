using System.Reflection;
using System.Xml.Linq;

namespace BnParity.ParityTests.Foundation;

/// <summary>The product is a pure C# BatchNorm: no TorchSharp, no native code, no packages.</summary>
public sealed class PureLibraryTests
{
    private static readonly Assembly Library = typeof(BnParity.BatchNorm2d<float>).Assembly;

    [Fact]
    public void Library_assembly_references_only_the_framework()
    {
        string[] references = Library.GetReferencedAssemblies().Select(a => a.Name!).ToArray();
        Assert.DoesNotContain(references, name => name.Contains("Torch", StringComparison.OrdinalIgnoreCase));
        Assert.All(references, name => Assert.True(
            name.StartsWith("System", StringComparison.Ordinal) || name == "netstandard" || name == "mscorlib" || name.StartsWith("Microsoft.", StringComparison.Ordinal),
            $"BnParity.dll references '{name}', which is not part of the .NET framework."));
    }

    [Fact]
    public void Library_project_has_no_package_or_project_references()
    {
        string project = Path.Combine(RepositoryRoot(), "src", "BnParity", "BnParity.csproj");
        var document = XDocument.Load(project);
        Assert.Empty(document.Descendants("PackageReference"));
        Assert.Empty(document.Descendants("ProjectReference"));
    }

    [Fact]
    public void Library_declares_no_native_imports()
    {
        var imports = Library.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Where(m => m.Attributes.HasFlag(MethodAttributes.PinvokeImpl))
            .Select(m => m.DeclaringType + "." + m.Name);
        Assert.Empty(imports);
    }

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "BnParity.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("BnParity.sln not found above " + AppContext.BaseDirectory);
    }
}
