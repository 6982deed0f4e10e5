namespace BnParity.ParityTests;

/// <summary>
/// Every test class that calls TorchSharp joins this collection: xunit then runs them one after
/// another, so libtorch's global thread count and seed are never changed under a running test.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchSharpCollection
{
    public const string Name = "TorchSharp";
}
