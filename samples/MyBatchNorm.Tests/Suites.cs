using BnParity.Harness.Implementations;
using BnParity.Testing;

namespace MyBatchNorm.Tests;

/// <summary>Every recorded PyTorch case on the sample's own BatchNorm.</summary>
public sealed class RecordedCases : RecordedPyTorchCasesSuite
{
    protected override IBatchNormUnderTest Implementation => new NaiveBatchNorm();
}

/// <summary>The FsCheck parity properties: the sample's BatchNorm against TorchSharp.</summary>
public sealed class TorchSharpParity : TorchSharpParitySuite
{
    protected override IBatchNormUnderTest Implementation => new NaiveBatchNorm();
}
