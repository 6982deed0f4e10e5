using BnParity;

// Train a BatchNorm2d on channels-last activations, save it as safetensors, load it into a fresh module, and check
// the eval outputs agree: the library, its layouts and its checkpoints through the package alone.
int[] shape = [8, 16, 12, 12];
var random = new Random(7);
var nhwc = new float[shape.Aggregate(1, (a, b) => a * b)];
for (int i = 0; i < nhwc.Length; i++)
{
    nhwc[i] = (float)((random.NextDouble() * 4) - 1 + (i % 16 * 0.1));
}

var bn = new BatchNorm2d<float>(16, momentum: 0.2) { MaxDegreeOfParallelism = 2 };
var output = new float[nhwc.Length];
for (int step = 0; step < 3; step++)
{
    bn.Forward(nhwc, shape, output, MemoryLayout.ChannelsLast);
}

string path = Path.Combine(Path.GetTempPath(), $"bnparity-sample-{Environment.ProcessId}.safetensors");
bn.SaveSafetensors(path, "features.1");
var loaded = new BatchNorm2d<float>(16, momentum: 0.2);
loaded.LoadSafetensors(path, "features.1");
File.Delete(path);

bn.Eval();
loaded.Eval();
var expected = new float[nhwc.Length];
var actual = new float[nhwc.Length];
bn.Forward(nhwc, shape, expected, MemoryLayout.ChannelsLast);
loaded.Forward(nhwc, shape, actual, MemoryLayout.ChannelsLast);
if (!expected.AsSpan().SequenceEqual(actual) || loaded.NumBatchesTracked != 3)
{
    Console.Error.WriteLine("FAIL: the loaded module differs from the saved one");
    return 1;
}

Console.WriteLine($"BnParity {typeof(BatchNorm<>).Assembly.GetName().Version}: trained 3 steps on {string.Join("x", shape)} channels-last, "
    + $"running_mean[0] = {bn.RunningMean![0]:F4}, saved and reloaded through safetensors: eval outputs identical.");
return 0;
