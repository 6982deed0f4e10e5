namespace BnParity;

/// <summary>
/// What a reduction set is, for one call: how a layer's input maps onto the engine. The input is
/// <see cref="Samples"/> independent blocks of <see cref="SampleLength"/> elements; in each block, set
/// <c>j</c> (of <see cref="Sets"/>) is the <see cref="Batch"/> runs of <see cref="Spatial"/> contiguous elements at
/// <c>(b·Sets + j)·Spatial</c> — the (N, C, S) view the engine's paths run over. Every set has its own mean and
/// invstd; its affine parameters are those of feature <c>j mod features</c>.
/// </summary>
/// <remarks>
/// The layers describe themselves with it and nothing else:
/// <list type="bullet">
/// <item>BatchNorm, channels-first (N, C, spatial): one sample, (N, C, spatial); channels-last: one sample, the
/// (N·spatial, C, 1) matrix the data is in memory.</item>
/// <item>InstanceNorm, channels-first: one sample, (1, N·C, spatial) — every (n, c) plane a set; channels-last: N
/// samples of (spatial, C, 1), one (spatial, C) matrix per instance.</item>
/// </list>
/// </remarks>
/// <param name="Samples">Independent blocks run one after the other (≥ 1).</param>
/// <param name="Batch">Runs per set in a block.</param>
/// <param name="Sets">Sets per block.</param>
/// <param name="Spatial">Elements per run.</param>
internal readonly record struct ReductionView(int Samples, int Batch, int Sets, int Spatial)
{
    /// <summary>Elements of one sample block: Batch·Sets·Spatial.</summary>
    public long SampleLength => (long)Batch * Sets * Spatial;

    /// <summary>Elements of one set: Batch·Spatial, the n of its mean and variance.</summary>
    public long SetCount => (long)Batch * Spatial;

    /// <summary>Sets of the whole call: Samples·Sets.</summary>
    public int TotalSets => checked(Samples * Sets);
}
