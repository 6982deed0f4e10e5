using TorchSharp;
using static TorchSharp.torch;

// Without the native fix this throws on Debian 12 (libLibTorchSharp.so needs GLIBCXX_3.4.32).
using var bn = nn.BatchNorm2d(3);
bn.train();
using var x = randn([4, 3, 5, 5]) * 2 + 1;
using var y = bn.forward(x);
Console.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version} loaded; BatchNorm2d output mean {y.mean().item<float>():F4}, "
    + $"running_mean[0] {bn.running_mean![0].item<float>():F4}");
return 0;
