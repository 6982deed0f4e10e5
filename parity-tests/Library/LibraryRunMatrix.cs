using BnParity.Harness.Implementations;

namespace BnParity.ParityTests.Library;

/// <summary>The (path, threads) matrix the library tests run a case on: the default selection and each forced path,
/// on 1, 2 and 3 threads.</summary>
public static class LibraryRunMatrix
{
    public static TheoryData<LibraryPath, int> PathsAndThreads()
    {
        var data = new TheoryData<LibraryPath, int>();
        foreach (var path in new[] { LibraryPath.Default, LibraryPath.Channel, LibraryPath.Split, LibraryPath.Row })
        {
            foreach (int threads in new[] { 1, 2, 3 })
            {
                data.Add(path, threads);
            }
        }

        return data;
    }
}
