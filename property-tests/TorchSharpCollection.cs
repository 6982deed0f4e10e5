namespace BnParity.PropertyTests;

/// <summary>
/// Every property class that calls TorchSharp joins this collection: xunit runs them one after
/// another, so libtorch's global thread count and seed never change under a running property.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchSharpCollection
{
    public const string Name = "TorchSharp";
}
