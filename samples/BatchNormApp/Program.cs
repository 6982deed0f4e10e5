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

// A transformer block's normalisations: LayerNorm (pre-attention) and RMSNorm (pre-MLP) over the hidden width of
// (batch, tokens, hidden) activations, forward and backward, and the LayerNorm round trip through safetensors.
int[] tokens = [2, 16, 64];
var hidden = new float[tokens.Aggregate(1, (a, b) => a * b)];
for (int i = 0; i < hidden.Length; i++)
{
    hidden[i] = (float)((random.NextDouble() * 6) - 1);
}

var layerNorm = new LayerNorm<float>(64);
var rmsNorm = new RMSNorm<float>(64);
var normed = new float[hidden.Length];
var rmsNormed = new float[hidden.Length];
layerNorm.Forward(hidden, tokens, normed);
rmsNorm.Forward(hidden, tokens, rmsNormed);
var dHidden = new float[hidden.Length];
var dGamma = new float[64];
var dBeta = new float[64];
layerNorm.Backward(rmsNormed, tokens, dHidden, dGamma, dBeta);
double rowMean = normed.AsSpan(0, 64).ToArray().Average();
double rowRms = Math.Sqrt(rmsNormed.AsSpan(0, 64).ToArray().Average(v => (double)v * v));
if (Math.Abs(rowMean) > 1e-5 || Math.Abs(rowRms - 1) > 1e-3)
{
    Console.Error.WriteLine($"FAIL: LayerNorm row mean {rowMean}, RMSNorm row RMS {rowRms}");
    return 1;
}

string lnPath = Path.Combine(Path.GetTempPath(), $"bnparity-sample-ln-{Environment.ProcessId}.safetensors");
layerNorm.SaveSafetensors(lnPath, "blocks.0.ln_1");
var reloaded = new LayerNorm<float>(64);
reloaded.LoadSafetensors(lnPath, "blocks.0.ln_1");
File.Delete(lnPath);
var again = new float[hidden.Length];
reloaded.Forward(hidden, tokens, again);
if (!again.AsSpan().SequenceEqual(normed))
{
    Console.Error.WriteLine("FAIL: the reloaded LayerNorm differs from the saved one");
    return 1;
}

Console.WriteLine($"LayerNorm/RMSNorm over {string.Join("x", tokens)}: row mean {rowMean:E1}, row RMS {rowRms:F4}, "
    + $"dGamma[0] = {dGamma[0]:F4}; LayerNorm saved and reloaded through safetensors: outputs identical.");
return 0;
