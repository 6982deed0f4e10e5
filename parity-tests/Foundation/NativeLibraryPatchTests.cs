using System.IO.Compression;
using BnParity.Build;
using BnParity.Harness.Oracle;

namespace BnParity.ParityTests.Foundation;

/// <summary>
/// The build marks GLIBCXX_3.4.32 weak in the output copy of libLibTorchSharp.so. These tests
/// run the same patcher on scratch copies of the package's file and check the package cache.
/// </summary>
public sealed class NativeLibraryPatchTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("bnparity-elf-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string PackageNativeLibrary =>
        Path.Combine(NuGetPackageRoot(), "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", ElfSymbolVersionPatcher.TorchSharpNativeFileName);

    private static string NuGetPackageRoot()
    {
        string? configured = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        return !string.IsNullOrEmpty(configured)
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
    }

    private string CopyOfPackageLibrary()
    {
        string copy = Path.Combine(_scratch, ElfSymbolVersionPatcher.TorchSharpNativeFileName);
        File.Copy(PackageNativeLibrary, copy);
        return copy;
    }

    [Fact]
    public void Package_library_requires_GLIBCXX_3_4_32_strongly()
    {
        var requirement = Assert.Single(
            ElfSymbolVersionPatcher.ReadRequirements(File.ReadAllBytes(PackageNativeLibrary)),
            r => r.Version == ElfSymbolVersionPatcher.TorchSharpMissingVersion);
        Assert.Equal("libstdc++.so.6", requirement.Library);
        Assert.False(requirement.IsWeak);
    }

    [Fact]
    public void Patch_sets_only_the_weak_bit_of_that_one_requirement()
    {
        string copy = CopyOfPackageLibrary();
        byte[] before = File.ReadAllBytes(copy);

        Assert.Equal(ElfPatchOutcome.Patched, ElfSymbolVersionPatcher.MakeRequirementWeak(copy, ElfSymbolVersionPatcher.TorchSharpMissingVersion));

        byte[] after = File.ReadAllBytes(copy);
        Assert.Equal(before.Length, after.Length);
        int[] changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToArray();
        var requirement = ElfSymbolVersionPatcher.ReadRequirements(after).Single(r => r.Version == ElfSymbolVersionPatcher.TorchSharpMissingVersion);
        Assert.True(requirement.IsWeak);
        Assert.Equal(new[] { (int)requirement.FlagsFileOffset }, changed);
        Assert.Equal(ElfSymbolVersionPatcher.VerFlagWeak, after[requirement.FlagsFileOffset] ^ before[requirement.FlagsFileOffset]);
        // Every other requirement is exactly as it was.
        Assert.Equal(
            ElfSymbolVersionPatcher.ReadRequirements(before).Where(r => r.Version != requirement.Version).Select(r => (r.Library, r.Version, r.Flags)),
            ElfSymbolVersionPatcher.ReadRequirements(after).Where(r => r.Version != requirement.Version).Select(r => (r.Library, r.Version, r.Flags)));
    }

    [Fact]
    public void Patch_is_idempotent_and_leaves_an_already_patched_file_untouched()
    {
        string copy = CopyOfPackageLibrary();
        ElfSymbolVersionPatcher.MakeRequirementWeak(copy, ElfSymbolVersionPatcher.TorchSharpMissingVersion);
        byte[] once = File.ReadAllBytes(copy);
        var stamp = new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(copy, stamp);

        Assert.Equal(ElfPatchOutcome.AlreadyWeak, ElfSymbolVersionPatcher.MakeRequirementWeak(copy, ElfSymbolVersionPatcher.TorchSharpMissingVersion));

        Assert.Equal(once, File.ReadAllBytes(copy));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(copy));
    }

    [Fact]
    public void Patch_leaves_a_library_without_the_requirement_untouched()
    {
        string? host = ElfSymbolVersionPatcher.FindHostLibStdCxx();
        Assert.NotNull(host);
        string copy = Path.Combine(_scratch, "libstdc++.so.6");
        File.Copy(host, copy);
        byte[] before = File.ReadAllBytes(copy);

        Assert.Equal(ElfPatchOutcome.NotRequired, ElfSymbolVersionPatcher.MakeRequirementWeak(copy, ElfSymbolVersionPatcher.TorchSharpMissingVersion));
        Assert.Equal(before, File.ReadAllBytes(copy));
    }

    [Fact]
    public void Patch_leaves_a_file_that_is_not_ELF64_untouched()
    {
        string text = Path.Combine(_scratch, "not-elf.so");
        File.WriteAllText(text, "GLIBCXX_3.4.32 is only text here");
        Assert.Equal(ElfPatchOutcome.NotElf64, ElfSymbolVersionPatcher.MakeRequirementWeak(text, ElfSymbolVersionPatcher.TorchSharpMissingVersion));
        Assert.Equal("GLIBCXX_3.4.32 is only text here", File.ReadAllText(text));
    }

    [Fact]
    public void Patch_replaces_a_hard_linked_copy_without_writing_through_the_link()
    {
        string original = CopyOfPackageLibrary();
        string link = Path.Combine(_scratch, "linked.so");
        using (var ln = System.Diagnostics.Process.Start("ln", new[] { original, link }))
        {
            ln.WaitForExit();
            Assert.Equal(0, ln.ExitCode);
        }

        byte[] before = File.ReadAllBytes(original);

        ElfSymbolVersionPatcher.MakeRequirementWeak(link, ElfSymbolVersionPatcher.TorchSharpMissingVersion);

        Assert.Equal(before, File.ReadAllBytes(original));
        Assert.NotEqual(before, File.ReadAllBytes(link));
    }

    [Fact]
    public void Package_cache_copy_is_byte_identical_to_the_nupkg_entry()
    {
        string package = Path.Combine(NuGetPackageRoot(), "torchsharp", "0.107.0", "torchsharp.0.107.0.nupkg");
        using var archive = ZipFile.OpenRead(package);
        var entry = archive.GetEntry("runtimes/linux-x64/native/" + ElfSymbolVersionPatcher.TorchSharpNativeFileName);
        Assert.NotNull(entry);
        using var stream = entry.Open();
        using var packaged = new MemoryStream();
        stream.CopyTo(packaged);

        Assert.Equal(packaged.ToArray(), File.ReadAllBytes(PackageNativeLibrary));
    }

    [Fact]
    public void Build_output_copy_is_patched_when_the_host_lacks_the_version()
    {
        string? output = TorchSharpOracle.FindNativeLibrary();
        Assert.NotNull(output);
        var requirement = ElfSymbolVersionPatcher.ReadRequirements(File.ReadAllBytes(output))
            .Single(r => r.Version == ElfSymbolVersionPatcher.TorchSharpMissingVersion);
        Assert.Equal(ElfSymbolVersionPatcher.HostLacksLibStdCxxVersion(ElfSymbolVersionPatcher.TorchSharpMissingVersion), requirement.IsWeak);
    }
}
