using System.Text.Json.Nodes;
using BnParity.Harness.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace BnParity.ParityTests.Ledger;

/// <summary>
/// The two state-dict rows of the ledger where BnParity follows current PyTorch, not the PyTorch 1.13 that records the
/// fixtures: PyTorch's side is what tools/record_state_dict_rules.py recorded (fixtures/ledger/state-dict-rules.json),
/// TorchSharp's is asserted live, the library's next to both.
/// </summary>
[Collection(TorchSharpCollection.Name)]
public sealed class StateDictLoadingLedgerTests
{
    private static readonly JsonObject s_recorded =
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "ledger", "state-dict-rules.json")))!.AsObject();

    public StateDictLoadingLedgerTests()
    {
        TorchSharpOracle.Start(seed: 7);
    }

    [Fact]
    public void A_state_dict_without_num_batches_tracked_keeps_the_count_where_PyTorch_1_13_reset_it_to_0()
    {
        // PyTorch <= 2.1 (the recorded 1.13) resets the count (pytorch/pytorch#110361); 2.2 keeps it (PR #110850).
        Assert.StartsWith("1.13", (string)s_recorded["torch"]!, StringComparison.Ordinal);
        Assert.Equal(0, (int)s_recorded["count_after_strict_load_without_num_batches_tracked"]!);
        Assert.Equal(0, (int)s_recorded["count_after_non_strict_load_without_num_batches_tracked"]!);

        // TorchSharp 0.107: strict loading throws (the ledger's strict row); non-strict loading keeps the count.
        using (var scope = TorchSharpOracle.Scope())
        {
            using var torchModule = nn.BatchNorm2d(3);
            torchModule.num_batches_tracked!.fill_(5);
            var state = new Dictionary<string, Tensor> { ["weight"] = ones(3), ["bias"] = zeros(3), ["running_mean"] = zeros(3), ["running_var"] = ones(3) };
            torchModule.load_state_dict(state, strict: false);
            Assert.Equal(5L, torchModule.num_batches_tracked!.item<long>());
        }

        foreach (bool strict in new[] { true, false })
        {
            var library = new BatchNorm2d<float>(3) { NumBatchesTracked = 5 };
            var entries = library.StateDict().Where(e => e.Key != "num_batches_tracked").ToDictionary(e => e.Key, e => e.Value);
            library.LoadStateDict(entries, strict);
            Assert.Equal(5L, library.NumBatchesTracked);
        }
    }

    [Fact]
    public void StateDict_returns_copies_where_PyTorchs_and_TorchSharps_entries_alias_the_module()
    {
        Assert.True((bool)s_recorded["state_dict_aliases_module_storage"]!);

        using (var scope = TorchSharpOracle.Scope())
        {
            using var torchModule = nn.BatchNorm2d(3);
            torchModule.state_dict()["running_mean"].fill_(7.0f);
            Assert.Equal(7.0f, torchModule.running_mean![0].item<float>());
        }

        var library = new BatchNorm2d<float>(3);
        var entry = (DenseTensor<float>)library.StateDict()["running_mean"];
        entry.Data[0] = 7;
        Assert.Equal(0f, library.RunningMean![0]);
    }
}
