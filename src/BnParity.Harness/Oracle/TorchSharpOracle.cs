using System.Runtime.InteropServices;
using BnParity.Build;
using TorchSharp;

namespace BnParity.Harness.Oracle;

/// <summary>
/// The one place that starts TorchSharp for tests, the CLI and the benchmarks: it checks that the
/// native library can load (and says why not, instead of TorchSharp's misleading message), pins
/// libtorch's thread count to the one the C# side uses, and seeds libtorch's generator.
/// Callers wrap every unit of work in <see cref="Scope"/> so long runs do not leak native tensors.
/// </summary>
public static class TorchSharpOracle
{
    private static readonly object Gate = new();
    private static int s_threads;

    /// <summary>Thread count both sides use unless a caller says otherwise: BNPARITY_THREADS, else the core count.</summary>
    public static int DefaultThreadCount
    {
        get
        {
            string? configured = Environment.GetEnvironmentVariable("BNPARITY_THREADS");
            return int.TryParse(configured, out int threads) && threads > 0 ? threads : Environment.ProcessorCount;
        }
    }

    /// <summary>libtorch's intra-op thread count as last set by <see cref="Start"/>; 0 before the first start.</summary>
    public static int Threads => s_threads;

    /// <summary>TorchSharp's own version string, for failure reports.</summary>
    public static string Version => typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary>
    /// Loads TorchSharp (once), sets libtorch's intra-op thread count to <paramref name="threads"/>
    /// and seeds its generator. Safe to call repeatedly; later calls only change threads and seed.
    /// </summary>
    public static void Start(int threads = 0, long seed = 0)
    {
        if (threads <= 0)
        {
            threads = DefaultThreadCount;
        }

        lock (Gate)
        {
            if (s_threads == 0)
            {
                ThrowIfNativeLibraryCannotLoad();
                torch.InitializeDeviceType(DeviceType.CPU);
                Comparison.ComparisonReport.OracleDescription = "TorchSharp " + Version;
            }

            if (s_threads != threads)
            {
                torch.set_num_threads(threads);
                s_threads = threads;
            }

            torch.manual_seed(seed);
        }
    }

    /// <summary>A dispose scope: every tensor created inside is freed when it is disposed.</summary>
    public static DisposeScope Scope() => torch.NewDisposeScope();

    /// <summary>
    /// Checks, before TorchSharp is touched, that the build-output copy of libLibTorchSharp.so has
    /// no symbol-version requirement the host libstdc++ cannot meet. A failed load would both
    /// report the wrong cause and make TorchSharp copy ~530 MB of native files as a fallback.
    /// </summary>
    public static void ThrowIfNativeLibraryCannotLoad()
    {
        string? problem = DiagnoseNativeLibrary();
        if (problem is not null)
        {
            throw new InvalidOperationException(problem);
        }
    }

    /// <summary>Why TorchSharp's native library would fail to load here, or null when nothing is known to be wrong.</summary>
    public static string? DiagnoseNativeLibrary()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
        {
            return null;
        }

        string? native = FindNativeLibrary();
        if (native is null)
        {
            return null; // TorchSharp resolves it some other way (e.g. a RID-specific publish); let it try.
        }

        string? hostLibrary = ElfSymbolVersionPatcher.FindHostLibStdCxx();
        if (hostLibrary is null)
        {
            return null;
        }

        var hostVersions = ElfSymbolVersionPatcher.ReadDefinedVersions(File.ReadAllBytes(hostLibrary));
        var missing = ElfSymbolVersionPatcher.FindUnsatisfiedRequirements(File.ReadAllBytes(native), "libstdc++.so.6", hostVersions);
        if (missing.Count == 0)
        {
            return null;
        }

        return $"TorchSharp cannot load: {native} requires {string.Join(", ", missing.Select(m => m.Version))} "
            + $"from libstdc++.so.6, which {hostLibrary} does not define (it stops at "
            + $"{hostVersions.Where(v => v.StartsWith("GLIBCXX_3.4.", StringComparison.Ordinal)).OrderBy(v => int.Parse(v["GLIBCXX_3.4.".Length..])).LastOrDefault() ?? "?"}). "
            + "The build normally marks that requirement weak in the output copy (build/TorchSharpNativeFix.targets); "
            + "rebuild the project, and check the build log for 'BnParity:' lines.";
    }

    /// <summary>The libLibTorchSharp.so next to the running application, where the .NET host will load it from.</summary>
    public static string? FindNativeLibrary()
    {
        string baseDirectory = AppContext.BaseDirectory;
        string[] candidates =
        {
            Path.Combine(baseDirectory, "runtimes", "linux-x64", "native", ElfSymbolVersionPatcher.TorchSharpNativeFileName),
            Path.Combine(baseDirectory, ElfSymbolVersionPatcher.TorchSharpNativeFileName),
        };
        return candidates.FirstOrDefault(File.Exists);
    }
}
