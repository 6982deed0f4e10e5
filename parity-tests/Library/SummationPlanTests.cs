namespace BnParity.ParityTests.Library;

/// <summary>
/// The summation plan at every size, including shapes of 2^31 elements and more that no test could allocate: 64-bit
/// arithmetic end to end (the int formulas it replaced wrapped negative for N or S near int.MaxValue, which left outputs
/// unwritten or looped forever), blocks that tile the input exactly, and a geometry that never depends on the thread
/// count (the determinism guarantee).
/// </summary>
public sealed class SummationPlanTests
{
    public static TheoryData<long, int, long> Shapes() => new()
    {
        { 1, 1, 2 },
        { 3, 5, 37 },
        { 67, 3, 1 },
        { 2, 2, 5000 },
        { 40, 3, 100 },
        { int.MaxValue, 1, 1 },               // [N, 1] with N = 2^31 − 1: the row path's (N + 31)/32 wrapped in int
        { (long)int.MaxValue - 20, 1, 1 },
        { 1, 1, int.MaxValue },               // [1, 1, S] with S > 2^31 − 4096: (S + 4095)/4096 and the block loop wrapped
        { 1, 1, (long)int.MaxValue - 4000 },
        { 4096, 3, 1L << 20 },                // 2^33.6 elements
        { 1L << 40, 7, 3 },
        { 3, 1 << 24, 1 << 20 },
        { 32, 16385, 1 },                     // channels-last one channel past 2^14: two row tiles
        { 2, 5462, 3 },
        { 128, 1 << 24, 1 },
        { 7, 16384, 1 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Blocks_tile_the_input_exactly_in_64_bit_arithmetic(long batch, int channels, long spatial)
    {
        var plan = SummationPlan.Create(batch, channels, spatial, 2, ExecutionOptions.Default);
        string where = $"N={batch} C={channels} S={spatial}: {plan}";
        Assert.True(plan.BlocksPerRun >= 1 && (plan.BlocksPerRun - 1) * SummationPlan.Block < spatial && plan.BlocksPerRun * SummationPlan.Block >= spatial, where);
        Assert.True(plan.RunsPerGroup >= 1 && (spatial >= SummationPlan.Block ? plan.RunsPerGroup == 1 : plan.RunsPerGroup * spatial <= SummationPlan.Block), where);
        Assert.True(plan.Groups >= 1 && (plan.Groups - 1) * plan.RunsPerGroup < batch && plan.Groups * plan.RunsPerGroup >= batch, where);
        Assert.Equal(plan.Groups * channels * plan.BlocksPerRun, plan.SplitUnits);
        Assert.True(plan.SplitUnits > 0, where);
        Assert.True(plan.RowsPerBlock >= SummationPlan.RowBlockMinRows, where);
        Assert.True(plan.RowBlocks is >= 1 and <= SummationPlan.RowBlockMaxBlocks, where);
        Assert.True((plan.RowBlocks - 1) * plan.RowsPerBlock < batch && plan.RowBlocks * plan.RowsPerBlock >= batch, where);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void The_geometry_is_the_same_for_every_thread_count(long batch, int channels, long spatial)
    {
        var one = SummationPlan.Create(batch, channels, spatial, 1, ExecutionOptions.Default);
        foreach (int threads in new[] { 2, 3, 5, 16, 64 })
        {
            var plan = SummationPlan.Create(batch, channels, spatial, threads, ExecutionOptions.Default);
            Assert.True(
                (plan.BlocksPerRun, plan.RunsPerGroup, plan.Groups, plan.SplitUnits, plan.RowsPerBlock, plan.RowBlocks, plan.RowTileChannels)
                == (one.BlocksPerRun, one.RunsPerGroup, one.Groups, one.SplitUnits, one.RowsPerBlock, one.RowBlocks, one.RowTileChannels),
                $"N={batch} C={channels} S={spatial}: {threads} threads plan {plan}, 1 thread {one}");
        }
    }

    /// <summary>The row path takes a wide matrix in tiles of whole channels, at most 2^14 columns each (one channel when
    /// a channel alone is wider), covering every channel once; up to 2^14 columns it is one tile, the geometry the golden
    /// bits pin. Tiles bound the scratch (it grew with C·S, which is why wider inputs took the slow channel path).</summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void Row_tiles_are_whole_channels_of_at_most_2_14_columns_covering_every_channel(long batch, int channels, long spatial)
    {
        var plan = SummationPlan.Create(batch, channels, spatial, 2, ExecutionOptions.Default);
        string where = $"N={batch} C={channels} S={spatial}: {plan.RowTileChannels} channels per tile, {plan.RowTiles} tiles";
        Assert.True(plan.RowTileChannels >= 1 && plan.RowTileChannels <= channels, where);
        Assert.True(plan.RowTileChannels == 1 || plan.RowTileChannels * spatial <= SummationPlan.RowTileMaxColumns, where);
        Assert.True(plan.RowTileChannels == channels || (plan.RowTileChannels + 1) * spatial > SummationPlan.RowTileMaxColumns, where + " (a tile could hold one more channel)");
        Assert.True((plan.RowTiles - 1) * plan.RowTileChannels < channels && plan.RowTiles * plan.RowTileChannels >= channels, where);
        Assert.True(channels * spatial > SummationPlan.RowTileMaxColumns || plan.RowTiles == 1, where + " (C·S ≤ 2^14 must be one tile)");
    }

    [Fact]
    public void Known_geometries()
    {
        var plan = SummationPlan.Create(int.MaxValue, 1, 1, 2, ExecutionOptions.Default);
        Assert.Equal(ExecutionPath.Row, plan.Path);
        Assert.Equal(67_108_864, plan.RowsPerBlock); // ⌈(2^31 − 1)/32⌉
        Assert.Equal(32, plan.RowBlocks);

        plan = SummationPlan.Create(1, 1, int.MaxValue, 1, ExecutionOptions.Default);
        Assert.Equal(524_288, plan.BlocksPerRun); // ⌈(2^31 − 1)/4096⌉
        Assert.Equal(1, plan.Groups);

        // Channels-last past 2^14 channels: the (N·H·W, C) matrix runs on the row path, in tiles of 2^14 channels.
        plan = SummationPlan.Create(8 * 4 * 4, 16385, 1, 2, ExecutionOptions.Default);
        Assert.Equal(ExecutionPath.Row, plan.Path);
        Assert.Equal((16384, 2), (plan.RowTileChannels, plan.RowTiles));
        plan = SummationPlan.Create(128, 1 << 24, 1, 2, ExecutionOptions.Default);
        Assert.Equal(ExecutionPath.Row, plan.Path);
        Assert.Equal((16384, 1024), (plan.RowTileChannels, plan.RowTiles));
        plan = SummationPlan.Create(2, 5462, 3, 2, ExecutionOptions.Default);
        Assert.Equal((5461, 2), (plan.RowTileChannels, plan.RowTiles));
        plan = SummationPlan.Create(256, 256, 1, 2, ExecutionOptions.Default);
        Assert.Equal((256, 1), (plan.RowTileChannels, plan.RowTiles));

        plan = SummationPlan.Create(40, 3, 100, 1, ExecutionOptions.Default);
        Assert.Equal(40, plan.RunsPerGroup);
        Assert.Equal(1, plan.Groups);
        Assert.Equal(3, plan.SplitUnits);
    }

    [Theory]
    [InlineData(0, 1, 1, 1)]
    [InlineData(1, 0, 1, 1)]
    [InlineData(1, 1, 0, 1)]
    [InlineData(1, 1, 1, 0)]
    public void Empty_shapes_are_not_planned(long batch, int channels, long spatial, int threads) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => SummationPlan.Create(batch, channels, spatial, threads, ExecutionOptions.Default));

    [Fact]
    public void The_plan_takes_its_path_from_the_selection_of_the_whole_input() =>
        Assert.Equal(
            PathSelection.Choose(8L * 3 * 65536, 3, 65536, 2, ExecutionOptions.Default),
            (SummationPlan.Create(8, 3, 65536, 2, ExecutionOptions.Default).Path, SummationPlan.Create(8, 3, 65536, 2, ExecutionOptions.Default).Threads));

    [Fact]
    public void Planning_without_options_is_an_argument_error() =>
        Assert.Throws<ArgumentNullException>(() => SummationPlan.Create(1, 1, 1, 1, null!));
}
