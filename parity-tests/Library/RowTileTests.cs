using System.Numerics;
using BnParity.Harness.Implementations;
using static BnParity.ParityTests.Rules.RuleAssert;

namespace BnParity.ParityTests.Library;

/// <summary>
/// The row path runs a matrix wider than 2^14 columns as tiles of whole channels (SummationPlan.RowTileChannels), one
/// after the other. A column's operations and order never depend on the other columns, so every channel of a tiled run
/// must have, bit for bit, the results of a one-tile run of that channel's data alone: outputs, gradients and running
/// statistics, in training and eval, on 1 and 3 threads. The channels compared straddle the tile boundary, so a tile
/// offset off by one column (or a partial of the wrong tile) shows up here, which no golden-bits shape (all one tile)
/// would catch.
/// </summary>
public sealed class RowTileTests
{
    public static TheoryData<string, int, int> Cases()
    {
        var data = new TheoryData<string, int, int>();
        foreach (string type in new[] { "float", "double" })
        {
            foreach (int threads in new[] { 1, 3 })
            {
                data.Add(type, threads, 1); // (N, C): tiles of 16384 channels, the boundary at 16384
                data.Add(type, threads, 3); // (N, C, 3): tiles of 5461 channels, boundaries at 5461 and 10922
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_channel_of_a_tiled_row_run_has_the_bits_of_a_one_tile_run_of_its_own_data(string type, int threads, int spatial)
    {
        if (type == "float")
        {
            Check<float>(threads, spatial);
        }
        else
        {
            Check<double>(threads, spatial);
        }
    }

    private static void Check<T>(int threads, int spatial)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int batch = 40; // two row blocks of 32 rows
        int tile = SummationPlan.RowTileMaxColumns / spatial;
        int channels = (spatial == 1 ? tile : 2 * tile) + 7;
        const int width = 10;
        int first = (spatial == 1 ? tile : 2 * tile) - 4; // channels [first, first + 10) straddle the last tile boundary
        var execution = new LibraryExecution(LibraryPath.Row, threads);
        string where = $"{typeof(T).Name} {execution} [{batch}, {channels}{(spatial > 1 ? ", " + spatial : "")}] channels {first}..{first + width - 1}";
        int[] wideShape = spatial == 1 ? [batch, channels] : [batch, channels, spatial];
        int[] narrowShape = spatial == 1 ? [batch, width] : [batch, width, spatial];

        var x = RandomTensor<T>(31, wideShape, mean: 2, std: 3);
        var dy = RandomTensor<T>(32, wideShape);
        var wide = new BatchNorm1d<T>(channels, momentum: 0.3);
        var narrow = new BatchNorm1d<T>(width, momentum: 0.3);
        RandomAffine(wide, 33);
        execution.ApplyTo(wide);
        execution.ApplyTo(narrow);
        for (int c = 0; c < width; c++)
        {
            narrow.Weight![c] = wide.Weight![first + c];
            narrow.Bias![c] = wide.Bias![first + c];
        }

        foreach (bool training in new[] { true, false })
        {
            wide.Training = training;
            narrow.Training = training;
            string step = $"{where}, {(training ? "training" : "eval")}";
            var wideY = wide.Forward(x);
            var narrowY = narrow.Forward(Slice(x, first, width, wideShape, narrowShape));
            var wideGradients = wide.Backward(dy);
            var narrowGradients = narrow.Backward(Slice(dy, first, width, wideShape, narrowShape));
            BitEqual(narrowY.Data, Slice(wideY, first, width, wideShape, narrowShape).Data, step + " output");
            BitEqual(narrowGradients.Input.Data, Slice(wideGradients.Input, first, width, wideShape, narrowShape).Data, step + " grad_input");
            BitEqual(narrowGradients.Weight, wideGradients.Weight![first..(first + width)], step + " grad_weight");
            BitEqual(narrowGradients.Bias, wideGradients.Bias![first..(first + width)], step + " grad_bias");
            BitEqual(narrow.RunningMean, wide.RunningMean![first..(first + width)], step + " running_mean");
            BitEqual(narrow.RunningVar, wide.RunningVar![first..(first + width)], step + " running_var");
        }
    }

    /// <summary>Channels [first, first + width) of an (N, C, S) tensor.</summary>
    private static DenseTensor<T> Slice<T>(DenseTensor<T> tensor, int first, int width, int[] shape, int[] narrowShape)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int spatial = shape.Length > 2 ? shape[2] : 1;
        var result = new DenseTensor<T>(narrowShape);
        for (int n = 0; n < shape[0]; n++)
        {
            Array.Copy(tensor.Data, ((n * shape[1]) + first) * spatial, result.Data, n * width * spatial, width * spatial);
        }

        return result;
    }
}
