using System.Numerics;

namespace BnParity;

/// <summary>
/// The one normalisation engine: normalises the <b>reduction sets</b> of a tensor, forward and backward, on the
/// channel, split or row path, and knows nothing of which layer asked. It works on two levels of an (N, C, S) view:
/// a <b>channel</b> is the <c>N</c> runs of <c>S</c> contiguous elements at <c>(n·C + c)·S</c>, the unit of the affine
/// coefficients (weight, bias: filled in by the caller) and of the parameter gradients; a <b>set</b> is
/// <c>K</c> consecutive channels sharing one mean and invstd (see <see cref="ReductionView"/>). With K = 1 (BatchNorm,
/// InstanceNorm) every path runs the set in one fused pass per phase; with K &gt; 1 (GroupNorm) the statistics run over
/// the (N, C/K, K·S) view of the sets and the output and gradients over the channels, with the same paths, kernels and
/// formulas.
/// </summary>
/// <remarks>
/// <para>Everything one call writes while it runs lives here: per-set statistics, the job description the workers
/// read, the path scratch and the fork/join state. A layer keeps one idle instance (so a call allocates nothing); a
/// concurrent shared call (eval forward) rents a second one, so no two calls ever write the same memory. The layer
/// copies the results it keeps (saved context, running statistics) only after the call succeeded, which is what makes
/// a failure inside a worker atomic.</para>
/// <para>
/// Raw pointers: <see cref="_pX"/>, <see cref="_pOut"/>, <see cref="_pDy"/> and <see cref="_pSave"/> point into
/// buffers the calling thread has pinned with <c>fixed</c> for the whole of <see cref="RunForward"/> /
/// <see cref="RunBackward"/>; workers only dereference them between the fork and the join of a phase, which both
/// happen inside that pinned region, and the pointers are cleared before the call returns.</para>
/// </remarks>
/// <typeparam name="T">float or double.</typeparam>
internal sealed unsafe partial class NormalizationEngine<T> : IChunkOperation
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The channels (or, in a statistics call, the sets) of the view the current call runs over: at most
    /// <see cref="Capacity"/>.</summary>
    private int _c;

    /// <summary>The most channels a call of this instance can run over (the length of the per-channel arrays).</summary>
    public int Capacity { get; }

    /// <summary>Per-channel mean of the call: the batch mean (written by the statistics phase) or, with running
    /// statistics, running_mean (written by the module before the run).</summary>
    public readonly double[] Mean;

    /// <summary>Per-channel 1/sqrt(var + eps), like <see cref="Mean"/>.</summary>
    public readonly double[] Invstd;

    /// <summary>Per-set weight as double (1 when not affine), set by the layer before the run.</summary>
    public readonly double[] Weight;

    /// <summary>Per-set bias as double (0 when not affine), set by the layer before a forward.</summary>
    public readonly double[] Bias;

    /// <summary>Per-channel Σ(x − mean)² of the batch (training forward).</summary>
    public readonly double[] VarSum;

    /// <summary>Per-channel dL/dweight and dL/dbias in double (backward).</summary>
    public readonly double[] GradWeight;

    /// <summary>Per-channel dL/dbias in double (backward).</summary>
    public readonly double[] GradBias;

    /// <summary>Per-channel Σ(x − mean)·dy in double (backward of sets of several channels, which combines them).</summary>
    public readonly double[] SumDot;

    private readonly ForkJoinScheduler _scheduler;

    // Settings snapshot of the call.
    private double _eps;
    private int _maxThreads;
    private ExecutionOptions _options = ExecutionOptions.Default;

    // The job the workers execute (set before dispatch).
    private CallKind _call;
    private Phase _phase;
    private nint _pX;
    /// <summary>The tensor the call writes: y in a forward, dx in a backward.</summary>
    private nint _pOut;
    private nint _pDy;
    private nint _pSave;
    private int _jobN;
    private int _jobS;
    /// <summary>Whether the float output (y or dx) is written with non-temporal stores: from
    /// <see cref="ExecutionOptions.StreamingMinBytes"/> on, where the output cannot stay cached for its consumer
    /// anyway, and ordinary stores would first read each output line from memory and evict the input still to be
    /// read.</summary>
    private bool _streamOutput;

    /// <summary>Bytes the constructor allocates per channel: the thirteen double arrays (<see cref="Mean"/> …
    /// <see cref="_chDyScale"/>), the output coefficients and the refine flags (counted in
    /// <see cref="NormBase{T}.BytesPerChannel"/>).</summary>
    internal static int BytesPerSet => (13 * sizeof(double)) + sizeof(NormalizeCoefficients) + sizeof(bool);

    /// <summary>See <see cref="SummationPlan.Block"/>.</summary>
    private const int Block = SummationPlan.Block;

    /// <param name="capacity">The most channels a call of this instance runs over.</param>
    public NormalizationEngine(int capacity)
    {
        Capacity = _c = capacity;
        Mean = new double[_c];
        Invstd = new double[_c];
        Weight = new double[_c];
        Bias = new double[_c];
        VarSum = new double[_c];
        GradWeight = new double[_c];
        GradBias = new double[_c];
        SumDot = new double[_c];
        _chScale = new double[_c];
        _chShift = new double[_c];
        _chK = new double[_c];
        _chGradMean = new double[_c];
        _chDyScale = new double[_c];
        _chNormalize = new NormalizeCoefficients[_c];
        _refine = new bool[_c];
        _scheduler = new ForkJoinScheduler(this);
    }

    /// <summary>What the caller asked for: set once per call, read by the paths to choose their phases.</summary>
    private enum CallKind
    {
        ForwardBatch,
        ForwardFixed,
        BackwardBatch,
        BackwardFixed,

        /// <summary>The statistics of a forward with batch statistics, no output (the set level of K &gt; 1).</summary>
        Statistics,

        /// <summary>The statistics of a set of K channels and, on the channel path, its output right after, while the
        /// set is in cache (each channel with its own weight and bias, see <see cref="_setChannels"/>).</summary>
        ForwardSets,

        /// <summary>The backward of sets of K channels on the channel path, one set at a time while it is in cache: the
        /// channel sums, <see cref="CombineSet"/>, then dx (one run per set, N = 1).</summary>
        BackwardSets,

        /// <summary>The per-channel sums of a batch backward (GradWeight, GradBias, SumDot), no dx.</summary>
        BackwardSums,

        /// <summary>dx = (a·dy − gradMean − (x − mean)·k)·scale from per-channel coefficients set before.</summary>
        BackwardApply,
    }

    /// <summary>What the workers run now: one phase of a path, dispatched by <see cref="IChunkOperation.RunChunk"/> with an explicit
    /// switch (the member order carries no meaning). <see cref="Phase.Channel"/> is the channel path's one phase (<see cref="Phase.Sweep"/> its eval forward),
    /// which does the whole call per channel.</summary>
    private enum Phase
    {
        Channel,
        Sweep,
        SplitSum,
        SplitSquares,
        SplitNormalize,
        SplitSumDot,
        SplitBackward,
        RowSum,
        RowSquares,
        RowShiftedSquares,
        RowNormalize,
        RowNormalizeFloat,
        RowSumDot,
        RowSumDotFloat,
        RowBackward,
        RowBackwardFloat,

        /// <summary>Whole samples per worker (<see cref="RunForwardSamples"/>, <see cref="RunBackwardSamples"/>).</summary>
        Samples,

        /// <summary>Fixed blocks of sets with element parameters (<see cref="RunElementBackward"/>).</summary>
        ElementBlocks,
    }

    /// <summary>Snapshots the module's settings for this call. The thread budget is the module's
    /// MaxDegreeOfParallelism clamped to <see cref="ExecutionOptions.MaxWorkers"/> (the processors); each path then
    /// uses at most one worker per unit of work.</summary>
    public void Begin(double eps, int maxThreads, ExecutionOptions options)
    {
        _eps = eps;
        _maxThreads = Math.Clamp(maxThreads, 1, Math.Max(1, options.MaxWorkers));
        _options = options;
        _outputElements = 0;
        _element = false;
        _centered = true;
    }

    /// <summary>Elements of the whole output of the call when it runs as several samples (0 otherwise): the streaming
    /// decision is the whole tensor's, since every sample's output goes to memory just the same (a channels-last
    /// InstanceNorm's 32 samples of 800 KB written with ordinary stores read each output line first: +0.5 copy-
    /// equivalents).</summary>
    private long _outputElements;

    /// <summary>Forward over a non-empty (N, C, S) input whose sets are <paramref name="channelsPerSet"/> consecutive
    /// channels. With <paramref name="batch"/> the statistics fill <see cref="Mean"/>, <see cref="Invstd"/> and
    /// <see cref="VarSum"/> (per channel: a set's values repeated over its channels); otherwise they are inputs, per
    /// channel. <paramref name="save"/> (may be null) receives a copy of the input.</summary>
    public void RunForward(T* x, T* y, T* save, int n, int channels, int s, int channelsPerSet, bool batch)
    {
        if (channelsPerSet == 1 || !batch)
        {
            Run(batch ? CallKind.ForwardBatch : CallKind.ForwardFixed, x, y, null, save, n, channels, s);
            return;
        }

        // Sets of K channels: the statistics over the (N, C/K, K·S) view, each set's values repeated over its
        // channels (in place, from the last channel down: channel c reads set c/K ≤ c), then the output over the
        // channels with the same formula as a fused pass. One run per set (N = 1, every channels-first instance view)
        // on the channel path writes each set's output right after its statistics, while the set is still in cache
        // (one read of x from memory instead of two); the output is element-wise, so the bits are the same.
        int k = channelsPerSet;
        int sets = channels / k;
        bool fuse = FusesSets(n, channels, s, k);
        _setChannels = k;
        _channelSpatial = s;
        Run(fuse ? CallKind.ForwardSets : CallKind.Statistics, x, fuse ? y : null, null, save, n, sets, checked(k * s));
        for (int ch = channels - 1; ch >= 0; ch--)
        {
            Mean[ch] = Mean[ch / k];
            Invstd[ch] = Invstd[ch / k];
            VarSum[ch] = VarSum[ch / k];
        }

        if (!fuse)
        {
            Run(CallKind.ForwardFixed, x, y, null, null, n, channels, s);
        }
    }

    /// <summary>Whether sets of K channels run fused, one set at a time (<see cref="CallKind.ForwardSets"/>,
    /// <see cref="CallKind.BackwardSets"/>): one run per set (N = 1), the set view on the channel path, and the channel
    /// view not on the row path — the fused sums then take exactly the order the channel view's channel or split path
    /// takes (one run, blocks of <see cref="Block"/>), so fused and unfused calls give the same bits at every thread
    /// count (the row path sums in another order).</summary>
    private bool FusesSets(int n, int channels, int s, int k) =>
        n == 1
        && SummationPlan.Create(n, channels / k, (long)k * s, _maxThreads, _options).Path == ExecutionPath.Channel
        && SummationPlan.Create(n, channels, s, _maxThreads, _options).Path != ExecutionPath.Row;

    /// <summary>K of a <see cref="CallKind.ForwardSets"/> call: the channels of one set.</summary>
    private int _setChannels = 1;

    /// <summary>S of a <see cref="CallKind.ForwardSets"/> call: the elements of one channel's run.</summary>
    private int _channelSpatial;

    /// <summary>Backward over a non-empty input: fills <see cref="GradWeight"/>, <see cref="GradBias"/> (per channel)
    /// and dx. <see cref="Mean"/>, <see cref="Invstd"/> (per channel) and <see cref="Weight"/> hold the saved forward
    /// context.</summary>
    public void RunBackward(T* x, T* dy, T* dx, int n, int channels, int s, int channelsPerSet, bool batch)
    {
        if (channelsPerSet == 1 || !batch)
        {
            Run(batch ? CallKind.BackwardBatch : CallKind.BackwardFixed, x, dx, dy, null, n, channels, s);
            return;
        }

        int k = channelsPerSet;
        if (FusesSets(n, channels, s, k))
        {
            // The same sums, combination and dx per set as below, in the same order, while the set is in cache.
            _setChannels = k;
            _channelSpatial = s;
            Run(CallKind.BackwardSets, x, dx, dy, null, n, channels / k, checked(k * s));
            return;
        }

        Run(CallKind.BackwardSums, x, null, dy, null, n, channels, s);
        for (int first = 0; first < channels; first += k)
        {
            CombineSet(first, k, (long)k * n * s);
        }

        Run(CallKind.BackwardApply, x, dx, dy, null, n, channels, s);
    }

    /// <summary>
    /// The input gradient of sets of K channels c with weights w_c, sharing mean μ and invstd r over M elements:
    /// dx = (w_c·dy − G − (x − μ)·k)·r with G = Σ_c w_c·Σdy_c / M and k = Σ_c w_c·Σ(x − μ)·dy_c · r² / M, the batch
    /// formula of a single channel (w = 1 there, the weight in its scale) with the mean's and the variance's
    /// dependence on x shared by the set. The channel sums are folded in channel order.
    /// </summary>
    /// <param name="first">The set's first channel.</param>
    /// <param name="k">K, its channels.</param>
    /// <param name="count">M, its elements.</param>
    private void CombineSet(int first, int k, long count)
    {
        double weightedDy = 0, weightedDot = 0;
        for (int ch = first; ch < first + k; ch++)
        {
            weightedDy += Weight[ch] * GradBias[ch];
            weightedDot += Weight[ch] * SumDot[ch];
        }

        double invstd = Invstd[first];
        double gradMean = weightedDy / count;
        double kk = weightedDot * invstd * invstd / count;
        for (int ch = first; ch < first + k; ch++)
        {
            _chK[ch] = kk;
            _chGradMean[ch] = gradMean;
            _chScale[ch] = invstd;
            _chDyScale[ch] = Weight[ch];
        }
    }

    private void Run(CallKind call, T* x, T* output, T* dy, T* save, int n, int channels, int s)
    {
        if ((uint)channels > (uint)Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, $"the engine holds at most {Capacity} channels");
        }

        _c = channels;
        _call = call;
        _phase = Phase.Channel;
        _pX = (nint)x;
        _pOut = (nint)output;
        _pDy = (nint)dy;
        _pSave = (nint)save;
        _jobN = n;
        _jobS = s;
        _streamOutput = Math.Max((long)n * _c * s, _outputElements) * sizeof(T) >= _options.StreamingMinBytes;
        if ((call is CallKind.ForwardBatch or CallKind.Statistics or CallKind.ForwardSets) && IsFloat)
        {
            PrepareShiftSamples(); // the float statistics' shift (ChannelShift); double needs none
        }

        try
        {
            Dispatch();
        }
        finally
        {
            _pX = _pOut = _pDy = _pSave = 0;
        }
    }

    private void Dispatch()
    {
        var plan = SummationPlan.Create(_jobN, _c, _jobS, _maxThreads, _options);

        // Every geometry value fits an int for any input a span can hold (N, S ≤ int.MaxValue); the loops that
        // step through them use 64-bit counters so that they cannot wrap near int.MaxValue.
        _blocksPerRun = checked((int)plan.BlocksPerRun);
        _runsPerGroup = checked((int)plan.RunsPerGroup);
        _groups = checked((int)plan.Groups);
        _rowsPerBlock = checked((int)plan.RowsPerBlock);
        _rowBlocks = checked((int)plan.RowBlocks);
        _rowTileChannels = checked((int)plan.RowTileChannels);

        // Sets with element parameters are contiguous runs and always take the channel path (one run per set).
        switch (_element ? ExecutionPath.Channel : plan.Path)
        {
            case ExecutionPath.Row:
                RunRows(plan.Threads);
                break;
            case ExecutionPath.Split:
                RunSplit(plan.Threads);
                break;
            default:
                RunChannels(plan.Threads);
                break;
        }
    }

    private void WorkItemStarting() => _options.WorkItemHook?.Invoke();

    // ------------------------------------------------------------------ Scheduler

    /// <summary>Runs the current phase with <paramref name="workers"/> threads (on the caller when one). The
    /// pointers the chunks dereference stay pinned: <see cref="ForkJoinScheduler.Run"/> returns only after every
    /// chunk finished, and it is called inside <see cref="RunForward"/>'s / <see cref="RunBackward"/>'s pinned
    /// region.</summary>
    /// <remarks>One chunk per worker, so that a worker tends to take the same units in every phase of a call: a row
    /// block or a channel stays in the L2 of the core that read it in the previous phase (measured with 4 chunks per
    /// worker, which balance late starts better, the 2-thread row path on 256×256 took 2.4× longer).</remarks>
    private void RunPhase(int workers) => _scheduler.Run(workers);

    /// <summary>Chunk <paramref name="chunk"/> of <paramref name="chunks"/>: a contiguous range of the phase's units.</summary>
    void IChunkOperation.RunChunk(int chunk, int chunks)
    {
        switch (_phase)
        {
            case Phase.RowSum:
            case Phase.RowSquares:
            case Phase.RowShiftedSquares:
            case Phase.RowNormalize:
            case Phase.RowNormalizeFloat:
            case Phase.RowSumDot:
            case Phase.RowSumDotFloat:
            case Phase.RowBackward:
            case Phase.RowBackwardFloat:
            {
                // A phase that reads the data the previous phase just reduced takes the chunk's blocks in reverse,
                // so it starts on the blocks still in this core's cache (the last ones the reduction touched); each
                // block writes only its own partials and outputs, so the order changes no result.
                long start = _units * chunk / chunks, end = _units * (chunk + 1) / chunks;
                bool reverse = _phase is Phase.RowSquares or Phase.RowNormalize or Phase.RowNormalizeFloat or Phase.RowBackward or Phase.RowBackwardFloat;
                for (long i = start; i < end; i++)
                {
                    RunRowBlock((int)(reverse ? end - 1 - (i - start) : i));
                }

                break;
            }

            case Phase.SplitSum:
            case Phase.SplitSquares:
            case Phase.SplitNormalize:
            case Phase.SplitSumDot:
            case Phase.SplitBackward:
                for (long u = _units * chunk / chunks, end = _units * (chunk + 1) / chunks; u < end; u++)
                {
                    RunUnit(u);
                }

                break;

            case Phase.Sweep:
                RunSweepRuns(_units * chunk / chunks, _units * (chunk + 1) / chunks);
                break;

            case Phase.Samples:
                RunSampleRange(chunk, chunks);
                break;

            case Phase.ElementBlocks:
                for (long b = _units * chunk / chunks, end = _units * (chunk + 1) / chunks; b < end; b++)
                {
                    RunElementBlock((int)b);
                }

                break;

            case Phase.Channel:
                for (int ch = (int)((long)chunk * _c / chunks), end = (int)((long)(chunk + 1) * _c / chunks); ch < end; ch++)
                {
                    RunChannel(ch);
                }

                break;
        }
    }
}
