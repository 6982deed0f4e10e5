// One source file, compiled twice:
//  - by MSBuild's RoslynCodeTaskFactory (build/TorchSharpNativeFix.targets), where the
//    PatchTorchSharpNativeLibrary task at the bottom runs after every build that copies
//    libLibTorchSharp.so into an output folder;
//  - into BnParity.Harness (with BNPARITY_EXCLUDE_MSBUILD_TASK defined), where the oracle uses
//    the same reader to explain a failed TorchSharp load and the tests check the patch.
//
// Why a patch at all: TorchSharp 0.107's libLibTorchSharp.so was linked with GCC 13, whose
// <iostream> references _ZSt21ios_base_library_initv@GLIBCXX_3.4.32 purely as a link anchor.
// Debian 12 / Ubuntu 22.04 ship libstdc++ up to GLIBCXX_3.4.30, so glibc's loader rejects the
// library although no relocation ever looks the symbol up. Marking that one version requirement
// VER_FLG_WEAK (0x2) in .gnu.version_r tells the loader a missing version is not fatal.
#nullable enable

using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace BnParity.Build
{
    /// <summary>What <see cref="ElfSymbolVersionPatcher.MakeRequirementWeak"/> did to a file.</summary>
    public enum ElfPatchOutcome
    {
        /// <summary>The version requirement was strong and is now weak; the file was rewritten.</summary>
        Patched,
        /// <summary>The requirement was already weak; the file was not touched.</summary>
        AlreadyWeak,
        /// <summary>The file does not require that version; the file was not touched.</summary>
        NotRequired,
        /// <summary>The file is not a little-endian ELF64 object; the file was not touched.</summary>
        NotElf64,
    }

    /// <summary>One Vernaux entry of .gnu.version_r: a version the object needs from a library.</summary>
    public readonly struct ElfVersionRequirement
    {
        public ElfVersionRequirement(string library, string version, ushort flags, long flagsOffset)
        {
            Library = library;
            Version = version;
            Flags = flags;
            FlagsFileOffset = flagsOffset;
        }

        /// <summary>The DT_NEEDED file the version is required from (vn_file), e.g. libstdc++.so.6.</summary>
        public string Library { get; }

        /// <summary>The version name (vna_name), e.g. GLIBCXX_3.4.32.</summary>
        public string Version { get; }

        /// <summary>vna_flags; bit 0x2 is VER_FLG_WEAK.</summary>
        public ushort Flags { get; }

        /// <summary>File offset of vna_flags, the two bytes the patch rewrites.</summary>
        public long FlagsFileOffset { get; }

        public bool IsWeak => (Flags & ElfSymbolVersionPatcher.VerFlagWeak) != 0;

        public override string ToString() => $"{Library}:{Version}{(IsWeak ? " (weak)" : "")}";
    }

    /// <summary>Reads and patches the GNU symbol-version sections of little-endian ELF64 files.</summary>
    public static class ElfSymbolVersionPatcher
    {
        public const ushort VerFlagWeak = 0x2;

        /// <summary>The version TorchSharp 0.107's native library needs and Debian 12 lacks.</summary>
        public const string TorchSharpMissingVersion = "GLIBCXX_3.4.32";

        public const string TorchSharpNativeFileName = "libLibTorchSharp.so";

        private const uint ShtGnuVerdef = 0x6ffffffd;
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const int Elf64SectionHeaderSize = 64;
        private const int VerneedEntrySize = 16;
        private const int VernauxEntrySize = 16;

        /// <summary>All version requirements (.gnu.version_r) of an ELF64 image; empty when none or not ELF64.</summary>
        public static IReadOnlyList<ElfVersionRequirement> ReadRequirements(byte[] image)
        {
            var result = new List<ElfVersionRequirement>();
            if (!IsElf64LittleEndian(image))
            {
                return result;
            }

            var sections = ReadSections(image);
            foreach (var section in sections)
            {
                if (section.Type != ShtGnuVerneed)
                {
                    continue;
                }

                var strings = sections[checked((int)section.Link)];
                long verneed = section.Offset;
                long end = section.Offset + section.Size;
                // sh_info holds the number of Verneed entries; vn_next chains them.
                for (uint i = 0; i < section.Info && verneed + VerneedEntrySize <= end; i++)
                {
                    ushort auxCount = U16(image, verneed + 2);
                    string library = ReadString(image, strings, U32(image, verneed + 4));
                    long aux = verneed + U32(image, verneed + 8);
                    for (int j = 0; j < auxCount && aux + VernauxEntrySize <= image.LongLength; j++)
                    {
                        ushort flags = U16(image, aux + 4);
                        string version = ReadString(image, strings, U32(image, aux + 8));
                        result.Add(new ElfVersionRequirement(library, version, flags, aux + 4));
                        uint nextAux = U32(image, aux + 12);
                        if (nextAux == 0)
                        {
                            break;
                        }

                        aux += nextAux;
                    }

                    uint next = U32(image, verneed + 12);
                    if (next == 0)
                    {
                        break;
                    }

                    verneed += next;
                }
            }

            return result;
        }

        /// <summary>All version names an ELF64 library defines (.gnu.version_d), e.g. every GLIBCXX_x a libstdc++ offers.</summary>
        public static ISet<string> ReadDefinedVersions(byte[] image)
        {
            var result = new HashSet<string>(StringComparer.Ordinal);
            if (!IsElf64LittleEndian(image))
            {
                return result;
            }

            var sections = ReadSections(image);
            foreach (var section in sections)
            {
                if (section.Type != ShtGnuVerdef)
                {
                    continue;
                }

                var strings = sections[checked((int)section.Link)];
                long verdef = section.Offset;
                for (uint i = 0; i < section.Info; i++)
                {
                    // Elf64_Verdef: vd_version u16, vd_flags u16, vd_ndx u16, vd_cnt u16, vd_hash u32, vd_aux u32, vd_next u32.
                    ushort count = U16(image, verdef + 6);
                    if (count > 0)
                    {
                        long aux = verdef + U32(image, verdef + 12);
                        result.Add(ReadString(image, strings, U32(image, aux)));
                    }

                    uint next = U32(image, verdef + 16);
                    if (next == 0)
                    {
                        break;
                    }

                    verdef += next;
                }
            }

            return result;
        }

        /// <summary>
        /// Sets VER_FLG_WEAK on every requirement named <paramref name="version"/> in the file at
        /// <paramref name="path"/>. Idempotent. The new bytes go to a temporary file that then
        /// replaces <paramref name="path"/>, so a hard link to a package cache is never written
        /// through; the original timestamps are kept so incremental copies stay skipped.
        /// </summary>
        public static ElfPatchOutcome MakeRequirementWeak(string path, string version)
        {
            byte[] image = File.ReadAllBytes(path);
            if (!IsElf64LittleEndian(image))
            {
                return ElfPatchOutcome.NotElf64;
            }

            var matching = new List<ElfVersionRequirement>();
            foreach (var requirement in ReadRequirements(image))
            {
                if (requirement.Version == version)
                {
                    matching.Add(requirement);
                }
            }

            if (matching.Count == 0)
            {
                return ElfPatchOutcome.NotRequired;
            }

            bool changed = false;
            foreach (var requirement in matching)
            {
                if (!requirement.IsWeak)
                {
                    WriteU16(image, requirement.FlagsFileOffset, (ushort)(requirement.Flags | VerFlagWeak));
                    changed = true;
                }
            }

            if (!changed)
            {
                return ElfPatchOutcome.AlreadyWeak;
            }

            DateTime lastWrite = File.GetLastWriteTimeUtc(path);
            string temporary = path + ".bnparity-patch.tmp";
            File.WriteAllBytes(temporary, image);
            File.SetLastWriteTimeUtc(temporary, lastWrite);
            // rename(2) over the original: a hard link to the package cache keeps the old bytes.
            File.Replace(temporary, path, destinationBackupFileName: null);
            return ElfPatchOutcome.Patched;
        }

        /// <summary>
        /// The strong requirements of <paramref name="image"/> on <paramref name="library"/> that
        /// <paramref name="definedByHost"/> does not define: exactly what makes the loader refuse the file.
        /// </summary>
        public static IReadOnlyList<ElfVersionRequirement> FindUnsatisfiedRequirements(
            byte[] image, string library, ISet<string> definedByHost)
        {
            var missing = new List<ElfVersionRequirement>();
            foreach (var requirement in ReadRequirements(image))
            {
                if (!requirement.IsWeak && requirement.Library == library && !definedByHost.Contains(requirement.Version))
                {
                    missing.Add(requirement);
                }
            }

            return missing;
        }

        /// <summary>
        /// The host's libstdc++.so.6 as the dynamic loader would find it in the standard system
        /// directories, or null when none is there (then nothing can be said about it).
        /// </summary>
        public static string? FindHostLibStdCxx()
        {
            string machine = RuntimeInformation.OSArchitecture switch
            {
                Architecture.Arm64 => "aarch64-linux-gnu",
                _ => "x86_64-linux-gnu",
            };
            string[] directories =
            {
                "/usr/lib/" + machine, "/lib/" + machine, "/usr/lib64", "/lib64", "/usr/lib", "/lib",
            };
            foreach (string directory in directories)
            {
                string candidate = Path.Combine(directory, "libstdc++.so.6");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }

            return null;
        }

        /// <summary>True when this is Linux and the host libstdc++ lacks <paramref name="version"/> (or cannot be found).</summary>
        public static bool HostLacksLibStdCxxVersion(string version)
        {
            if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
            {
                return false;
            }

            string? host = FindHostLibStdCxx();
            return host is null || !ReadDefinedVersions(File.ReadAllBytes(host)).Contains(version);
        }

        private static bool IsElf64LittleEndian(byte[] image) =>
            image.Length >= 64 && image[0] == 0x7f && image[1] == (byte)'E' && image[2] == (byte)'L' && image[3] == (byte)'F'
            && image[4] == 2 /* ELFCLASS64 */ && image[5] == 1 /* ELFDATA2LSB */;

        private readonly struct Section
        {
            public Section(uint type, long offset, long size, uint link, uint info)
            {
                Type = type;
                Offset = offset;
                Size = size;
                Link = link;
                Info = info;
            }

            public uint Type { get; }
            public long Offset { get; }
            public long Size { get; }
            public uint Link { get; }
            public uint Info { get; }
        }

        private static Section[] ReadSections(byte[] image)
        {
            long sectionHeaders = checked((long)U64(image, 0x28));
            ushort entrySize = U16(image, 0x3A);
            ushort count = U16(image, 0x3C);
            if (entrySize != Elf64SectionHeaderSize || sectionHeaders + (long)count * entrySize > image.LongLength)
            {
                return Array.Empty<Section>();
            }

            var sections = new Section[count];
            for (int i = 0; i < count; i++)
            {
                long header = sectionHeaders + (long)i * entrySize;
                sections[i] = new Section(
                    type: U32(image, header + 4),
                    offset: checked((long)U64(image, header + 24)),
                    size: checked((long)U64(image, header + 32)),
                    link: U32(image, header + 40),
                    info: U32(image, header + 44));
            }

            return sections;
        }

        private static string ReadString(byte[] image, Section strings, uint offset)
        {
            long start = strings.Offset + offset;
            long end = start;
            while (end < image.LongLength && image[end] != 0)
            {
                end++;
            }

            return Encoding.ASCII.GetString(image, checked((int)start), checked((int)(end - start)));
        }

        private static ushort U16(byte[] b, long at) => (ushort)(b[at] | (b[at + 1] << 8));

        private static uint U32(byte[] b, long at) => (uint)(b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24));

        private static ulong U64(byte[] b, long at) => U32(b, at) | ((ulong)U32(b, at + 4) << 32);

        private static void WriteU16(byte[] b, long at, ushort value)
        {
            b[at] = (byte)value;
            b[at + 1] = (byte)(value >> 8);
        }
    }

#if !BNPARITY_EXCLUDE_MSBUILD_TASK
    /// <summary>MSBuild task: weakens GLIBCXX_3.4.32 in build-output copies of libLibTorchSharp.so when the host needs it.</summary>
    public sealed class PatchTorchSharpNativeLibrary : Microsoft.Build.Utilities.Task
    {
        /// <summary>Candidate files; those that do not exist are ignored.</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        public override bool Execute()
        {
            if (!ElfSymbolVersionPatcher.HostLacksLibStdCxxVersion(ElfSymbolVersionPatcher.TorchSharpMissingVersion))
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low,
                    "BnParity: host libstdc++ provides {0} (or this is not Linux); libLibTorchSharp.so left as is.",
                    ElfSymbolVersionPatcher.TorchSharpMissingVersion);
                return true;
            }

            string packageRoot = NuGetPackageRoot();
            foreach (var item in Files)
            {
                string path = Path.GetFullPath(item.ItemSpec);
                if (!File.Exists(path))
                {
                    continue;
                }

                if (packageRoot.Length > 0 && path.StartsWith(packageRoot, StringComparison.Ordinal))
                {
                    Log.LogError("BnParity: refusing to patch {0}: it is inside the NuGet package cache.", path);
                    return false;
                }

                var outcome = ElfSymbolVersionPatcher.MakeRequirementWeak(path, ElfSymbolVersionPatcher.TorchSharpMissingVersion);
                Log.LogMessage(
                    outcome == ElfPatchOutcome.Patched ? Microsoft.Build.Framework.MessageImportance.High : Microsoft.Build.Framework.MessageImportance.Low,
                    "BnParity: {0}: {1} requirement {2}.", path, outcome, ElfSymbolVersionPatcher.TorchSharpMissingVersion);
            }

            return true;
        }

        private static string NuGetPackageRoot()
        {
            string? configured = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
            string root = !string.IsNullOrEmpty(configured)
                ? configured!
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            return Path.GetFullPath(root).TrimEnd('/') + "/";
        }
    }
#endif
}
