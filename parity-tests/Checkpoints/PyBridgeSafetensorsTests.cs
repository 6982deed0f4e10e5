using BnParity.Harness.Implementations;
using BnParity.Harness.Oracle;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using TorchBatchNorm = TorchSharp.Modules.BatchNorm;

namespace BnParity.ParityTests.Checkpoints;

/// <summary>
/// TorchSharp.PyBridge 1.4.4 as a second safetensors writer and reader: a trained TorchSharp BatchNorm saved with
/// <c>save_safetensors</c> loads into the library with the same values, and a file the library saved loads into
/// TorchSharp with <c>load_safetensors</c>.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class PyBridgeSafetensorsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("bnparity-pybridge-").FullName;

    public PyBridgeSafetensorsTests()
    {
        TorchSharpOracle.Start(seed: 31);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static TorchBatchNorm Trained(bool threeDimensional)
    {
        TorchBatchNorm module = threeDimensional ? nn.BatchNorm3d(4, momentum: 0.2) : nn.BatchNorm2d(4, momentum: 0.2);
        using var scope = TorchSharpOracle.Scope();
        using (no_grad())
        {
            module.weight!.uniform_(0.5, 1.5);
            module.bias!.uniform_(-0.5, 0.5);
        }

        module.train();
        for (int step = 0; step < 3; step++)
        {
            module.forward(threeDimensional ? (randn([3, 4, 2, 3, 2]) * 2) + 1 : (randn([3, 4, 5, 5]) * 2) + 1);
        }

        return module;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_module_saved_by_PyBridge_loads_into_the_library_with_its_values(bool threeDimensional)
    {
        using var torchModule = Trained(threeDimensional);
        string path = Path.Combine(_directory, "pybridge.safetensors");
        torchModule.save_safetensors(path);

        BatchNorm<float> library = threeDimensional ? new BatchNorm3d<float>(4, momentum: 0.2) : new BatchNorm2d<float>(4, momentum: 0.2);
        library.LoadSafetensors(path);
        Assert.Equal(Floats(torchModule.weight!), library.Weight);
        Assert.Equal(Floats(torchModule.bias!), library.Bias);
        Assert.Equal(Floats(torchModule.running_mean!), library.RunningMean);
        Assert.Equal(Floats(torchModule.running_var!), library.RunningVar);
        Assert.Equal(torchModule.num_batches_tracked!.item<long>(), library.NumBatchesTracked);
        Assert.Equal(3L, library.NumBatchesTracked);
    }

    [Fact]
    public void A_file_the_library_saved_loads_into_TorchSharp_through_PyBridge()
    {
        var library = new BatchNorm2d<float>(4, momentum: 0.2);
        Rules.RuleAssert.RandomAffine(library, 3);
        library.Forward(Rules.RuleAssert.RandomTensor<float>(4, [3, 4, 5, 5], mean: 1, std: 2));
        string path = Path.Combine(_directory, "library.safetensors");
        library.SaveSafetensors(path);

        using var torchModule = nn.BatchNorm2d(4, momentum: 0.2);
        torchModule.load_safetensors(path);
        Assert.Equal(library.Weight, Floats(torchModule.weight!));
        Assert.Equal(library.Bias, Floats(torchModule.bias!));
        Assert.Equal(library.RunningMean, Floats(torchModule.running_mean!));
        Assert.Equal(library.RunningVar, Floats(torchModule.running_var!));
        Assert.Equal(library.NumBatchesTracked, torchModule.num_batches_tracked!.item<long>());
    }

    private static float[] Floats(Tensor tensor) => Array.ConvertAll(TorchSharpImplementation.ToArray(tensor), v => (float)v);
}
