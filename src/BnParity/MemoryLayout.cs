namespace BnParity;

/// <summary>How a BatchNorm2d/3d input and output lie in memory. The shape a call takes is always the logical
/// (N, C, H, W) or (N, C, D, H, W), as in PyTorch, whatever the layout.</summary>
public enum MemoryLayout
{
    /// <summary>Row-major (N, C, H, W) / (N, C, D, H, W): PyTorch's <c>torch.contiguous_format</c>. The default.</summary>
    ChannelsFirst = 0,

    /// <summary>Channels interleaved, (N, H, W, C) / (N, D, H, W, C) in memory: PyTorch's <c>torch.channels_last</c> /
    /// <c>torch.channels_last_3d</c>. Only BatchNorm2d and BatchNorm3d take it. Statistics are per channel, as in the
    /// default layout; the library normalises the input as the (N·H·W, C) matrix it is in memory, so the summation order
    /// (and therefore the last bits of a float result) differs from the same data in the default layout, within the
    /// same accuracy guarantees.</summary>
    ChannelsLast = 1,
}
