namespace BnParity;

/// <summary>
/// What a reduction set is, for one call: how a layer's input maps onto the engine. The input is
/// <see cref="Samples"/> independent blocks of <see cref="SampleLength"/> elements; each block is an (N, C, S) view
/// of <see cref="Batch"/> × <see cref="Channels"/> runs of <see cref="Spatial"/> contiguous elements, channel
/// <c>j</c> being the runs at <c>(b·Channels + j)·Spatial</c>. A <b>set</b> — the elements that share one mean and
/// invstd — is <see cref="ChannelsPerSet"/> consecutive channels. A channel takes the affine parameters of feature
/// <c>j mod features</c>.
/// </summary>
/// <remarks>
/// The layers describe themselves with it and nothing else:
/// <list type="bullet">
/// <item>BatchNorm, channels-first (N, C, spatial): one sample, (N, C, spatial), K = 1; channels-last: one sample, the
/// (N·spatial, C, 1) matrix the data is in memory.</item>
/// <item>InstanceNorm, channels-first: one sample, (1, N·C, spatial), K = 1 — every (n, c) plane a set;
/// channels-last: N samples of (spatial, C, 1), one (spatial, C) matrix per instance.</item>
/// <item>GroupNorm: as InstanceNorm with K = C/G channels per set — a set is one (n, group) block, contiguous
/// channels-first and K adjacent columns of the instance's (spatial, C) matrix channels-last.</item>
/// </list>
/// </remarks>
/// <param name="Samples">Independent blocks (≥ 0): one after the other with every worker, or whole blocks per worker
/// (<see cref="PathSelection.SampleWorkers"/>), with the same bits.</param>
/// <param name="Batch">Runs per channel in a block.</param>
/// <param name="Channels">Channels per block (a multiple of <paramref name="ChannelsPerSet"/>).</param>
/// <param name="Spatial">Elements per run.</param>
/// <param name="ChannelsPerSet">K, the consecutive channels of one set (≥ 1).</param>
internal readonly record struct ReductionView(int Samples, int Batch, int Channels, int Spatial, int ChannelsPerSet = 1)
{
    /// <summary>Elements of one sample block: Batch·Channels·Spatial.</summary>
    public long SampleLength => (long)Batch * Channels * Spatial;

    /// <summary>Elements of one set: K·Batch·Spatial, the n of its mean and variance.</summary>
    public long SetCount => (long)ChannelsPerSet * Batch * Spatial;

    /// <summary>Channels of the whole call: Samples·Channels.</summary>
    public int TotalChannels => checked(Samples * Channels);
}
