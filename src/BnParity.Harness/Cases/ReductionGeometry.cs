namespace BnParity.Harness.Cases;

/// <summary>
/// Which elements of a logical (N, C, …) input share statistics, for a module configuration — the harness's own
/// statement of each layer's reduction sets (it shares no code with the library's): BatchNorm, a set per channel
/// over (N, spatial); InstanceNorm, a set per (n, c) plane; GroupNorm, a set per (n, group) block of C/G channels.
/// A <b>segment</b> is the part of a set in one channel (a BatchNorm channel, an (n, c) plane): the unit of the
/// parameter gradients' sums. An unbatched InstanceNorm input (C, …) is a batch of one.
/// LayerNorm and RMSNorm: a set per leading index over the D = prod(normalized_shape) trailing elements, with a
/// parameter per element — the geometry of a one-group GroupNorm over the (M, D) view (N = M sets, C = D "channels" of
/// one element each, spatial 1), so every segment is one element. RMSNorm's sets are uncentred (<see cref="Centered"/>).
/// </summary>
public sealed class ReductionGeometry
{
    private ReductionGeometry(ModuleConfig config, int batch, int channels, int spatial)
    {
        Config = config;
        Batch = batch;
        Channels = channels;
        Spatial = spatial;
        ChannelsPerSet = config.Module == ModuleKind.GroupNorm ? Math.Max(1, channels / config.NumGroups)
            : config.IsElementNorm ? Math.Max(1, channels)
            : 1;
        PerInstance = config.Module == ModuleKind.GroupNorm || config.IsInstanceNorm || config.IsElementNorm;
        Centered = config.Module != ModuleKind.RMSNorm;
    }

    /// <summary>Whether sets are normalised about their mean (false for RMSNorm: mean 0, the "variance" is mean(x²), and
    /// the gradient has no mean term).</summary>
    public bool Centered { get; }

    public ModuleConfig Config { get; }

    /// <summary>N (1 for an unbatched input).</summary>
    public int Batch { get; }

    /// <summary>C of the input (the affine parameters' index range).</summary>
    public int Channels { get; }

    /// <summary>The product of the spatial dimensions.</summary>
    public int Spatial { get; }

    /// <summary>K: the channels of one set (C/G for GroupNorm, else 1).</summary>
    public int ChannelsPerSet { get; }

    /// <summary>Whether sets are per instance (InstanceNorm, GroupNorm) rather than over the batch (BatchNorm).</summary>
    public bool PerInstance { get; }

    /// <summary>Whether a set holds several channels with their own weights (GroupNorm with C/G &gt; 1): their weights
    /// then enter the set's gradient terms.</summary>
    public bool WeightsInsideSets => ChannelsPerSet > 1;

    /// <summary>The number of sets.</summary>
    public int SetCount => PerInstance ? Batch * (Channels / ChannelsPerSet) : Channels;

    /// <summary>The number of segments (set ∩ channel).</summary>
    public int SegmentCount => PerInstance ? Batch * Channels : Channels;

    /// <summary>Elements per set: K·spatial per instance, N·spatial for BatchNorm.</summary>
    public long ValuesPerSet => PerInstance ? (long)ChannelsPerSet * Spatial : (long)Batch * Spatial;

    /// <summary>The geometry of <paramref name="shape"/> under <paramref name="config"/>.</summary>
    public static ReductionGeometry Of(ModuleConfig config, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(shape);
        if (config.IsElementNorm)
        {
            // (M, D): the leading dimensions are the sets, the trailing normalized_shape the elements of one set.
            int leading = Math.Max(shape.Length - (config.NormalizedShape?.Length ?? 1), 0);
            int sets = shape.Take(leading).Aggregate(1, (a, b) => a * b);
            return new ReductionGeometry(config, sets, config.NumFeatures, 1);
        }

        bool unbatched = config.IsInstanceNorm && shape.Length == BatchedRank(config.Module) - 1;
        int batch = unbatched ? 1 : shape[0];
        int channels = unbatched ? shape[0] : shape[1];
        int spatial = shape.Skip(unbatched ? 1 : 2).Aggregate(1, (a, b) => a * b);
        return new ReductionGeometry(config, batch, channels, spatial);
    }

    /// <summary>The batched rank of a module with a fixed rank (2d: 4, 3d: 5); 3 for the 1d modules and GroupNorm.</summary>
    public static int BatchedRank(ModuleKind module) => module switch
    {
        ModuleKind.BatchNorm2d or ModuleKind.InstanceNorm2d => 4,
        ModuleKind.BatchNorm3d or ModuleKind.InstanceNorm3d => 5,
        _ => 3,
    };

    /// <summary>(n, c) of a flat logical index.</summary>
    public (int N, int C) Locate(int index) => (index / Spatial / Channels, index / Spatial % Channels);

    /// <summary>The channel (affine index) of a flat logical index.</summary>
    public int ChannelOf(int index) => index / Spatial % Channels;

    /// <summary>The segment of a flat logical index.</summary>
    public int SegmentOf(int index) => PerInstance ? index / Spatial : index / Spatial % Channels;

    /// <summary>The set of a segment.</summary>
    public int SetOfSegment(int segment) => PerInstance ? segment / ChannelsPerSet : segment;

    /// <summary>The channel of a segment.</summary>
    public int ChannelOfSegment(int segment) => segment % Channels;

    /// <summary>The set of a flat logical index.</summary>
    public int SetOf(int index) => SetOfSegment(SegmentOf(index));

    /// <summary>The channel each set's running statistics belong to (InstanceNorm: c of the (n, c) plane).</summary>
    public int ChannelOfSet(int set) => PerInstance ? set * ChannelsPerSet % Channels : set;
}
