using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace BnParity;

/// <summary>
/// The module shared by the normalisations whose statistics may be kept as running buffers — PyTorch's
/// <c>_NormBase</c>, the base of <see cref="BatchNorm{T}"/> and <see cref="InstanceNorm{T}"/>: optional per-channel
/// weight and bias, optional running_mean / running_var / num_batches_tracked, train and eval modes, forward and
/// backward over spans or <see cref="DenseTensor{T}"/>, state dicts and safetensors with PyTorch's names, atomic
/// failures and one concurrency contract. A layer only says which reduction sets its input has
/// (<see cref="ViewOf"/>), how its running statistics move, and its input rules; the one
/// <see cref="NormalizationEngine{T}"/> does the rest.
/// </summary>
/// <remarks>
/// <para><b>Failures are atomic</b>: every argument is validated before anything is mutated, so a call that throws
/// leaves weights, buffers, the batch counter and the saved backward context exactly as they were.</para>
/// <para><b>Backward</b>: <see cref="Forward(ReadOnlySpan{T}, ReadOnlySpan{int}, Span{T})"/> keeps a private copy of the
/// input (in a reusable buffer: no allocation when the size is unchanged); the <see cref="DenseTensor{T}"/> overloads
/// instead keep a reference to the input tensor's buffer (no copy, like PyTorch's autograd, which also saves the
/// input by reference), except when the forward writes into that same buffer (in place), where they copy. Do not
/// modify that buffer between the forward and <c>Backward</c>. The context also holds the statistics and the weight
/// as they were at forward time; <see cref="Backward(DenseTensor{T})"/> differentiates that last successful forward.
/// Gradients are returned per call, never accumulated (unlike PyTorch's <c>.grad</c>). A forward that throws keeps
/// the previous context.</para>
/// <para><b>Threads</b>: eval-mode forwards with <see cref="SaveForBackward"/> = false write nothing of the module and
/// may run concurrently on one instance (an inference server's pattern). Every other call writes the module (a
/// training forward, a saving forward, <c>Backward</c>, setters, resets, loading state) and throws
/// <see cref="InvalidOperationException"/> if it overlaps any other call: use one module per thread for training.
/// Each call may itself use up to <see cref="MaxDegreeOfParallelism"/> threads.</para>
/// <para><b>Determinism</b>: results are bit-identical for every <see cref="MaxDegreeOfParallelism"/> on a given
/// machine; the last bits may differ between machines with different vector hardware (AVX-512, AVX2, none).</para>
/// </remarks>
/// <typeparam name="T">float or double.</typeparam>
public abstract partial class NormBase<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[]? _weight;
    private readonly T[]? _bias;
    private readonly T[]? _runningMean;
    private readonly T[]? _runningVar;
    private long _numBatchesTracked;
    private int _maxDegreeOfParallelism = Environment.ProcessorCount;
    private double _eps;
    private double? _momentum;
    private bool _training = true;
    private bool _saveForBackward = true;
    private ExecutionOptions _execution = ExecutionOptions.Default;
    private readonly CallGuard _guard;

    /// <summary>The idle per-call execution state; a call takes it (or, when a concurrent call holds it, makes a new
    /// one) and puts it back when done.</summary>
    private NormalizationEngine<T>? _idleEngine;

    // Saved context of the last successful Forward (used by Backward). Written only after a forward succeeded.
    private T[] _savedInput = [];
    private T[] _stagingInput = [];
    private T[]? _savedRef;
    private int[]? _savedShape;
    private bool _savedBatchStats;
    private MemoryLayout _savedLayout;
    private double[] _savedMean;
    private double[] _savedInvstd;
    private double[] _savedWeight;

    // Per-call scratch of views with several samples or several sets per feature (InstanceNorm): statistics collected
    // over the samples, each sample's channel gradients, and parameter gradients folded over the sets. Allocated on
    // first use.
    private double[] _callMean = [];
    private double[] _callInvstd = [];
    private double[] _callVarSum = [];
    private double[] _callSampleGradWeight = [];
    private double[] _callSampleGradBias = [];
    private double[] _callGradWeight = [];

    /// <summary>Element parameters (LayerNorm, RMSNorm): the weights of the last saving forward, for its backward.</summary>
    private T[] _savedElementWeight = [];
    private double[] _callGradBias = [];

    /// <summary>Creates the module with PyTorch's defaults: weight 1, bias 0, running_mean 0, running_var 1, count 0.</summary>
    /// <param name="numFeatures">C, the number of channels (dimension 1 of the input); at least 1.</param>
    /// <param name="eps">Added to the variance for stability. Not range-checked.</param>
    /// <param name="momentum">Running-statistics factor, or null for a cumulative moving average
    /// (f = 1/num_batches_tracked). Not range-checked.</param>
    /// <param name="affine">Whether to learn weight and bias.</param>
    /// <param name="trackRunningStats">Whether to keep running statistics; when false batch statistics are used in
    /// both modes and no buffers exist.</param>
    /// <param name="hasBias">Whether an affine module also learns a bias (LayerNorm(bias: false) and RMSNorm do not).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="numFeatures"/> is less than 1.</exception>
    /// <exception cref="NotSupportedException">T is neither float nor double.</exception>
    private protected NormBase(int numFeatures, double eps, double? momentum, bool affine, bool trackRunningStats, bool hasBias = true)
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException($"{TypeName} supports float and double, not {typeof(T).Name}.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(numFeatures, 1);
        if (numFeatures > MaxNumFeatures)
        {
            throw new ArgumentOutOfRangeException(
                nameof(numFeatures), numFeatures,
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"numFeatures must be at most {MaxNumFeatures} (2^24): a module allocates up to {BytesPerChannel} bytes of state and scratch per channel ({(double)BytesPerChannel * MaxNumFeatures / 1e9:0.0} GB at 2^24)."));
        }

        NumFeatures = numFeatures;
        _eps = eps;
        _momentum = momentum;
        Affine = affine;
        TrackRunningStats = trackRunningStats;
        if (affine)
        {
            _weight = new T[numFeatures];
            _bias = hasBias ? new T[numFeatures] : null;
        }

        if (trackRunningStats)
        {
            _runningMean = new T[numFeatures];
            _runningVar = new T[numFeatures];
        }

        _savedMean = new double[numFeatures];
        _savedInvstd = new double[numFeatures];
        _savedWeight = new double[numFeatures];
        _guard = new CallGuard($"{TypeName}<{typeof(T).Name}>({numFeatures})");
        _idleEngine = new NormalizationEngine<T>(NumFeatures);
        ResetParameters();
    }

    /// <summary>The largest accepted <see cref="NumFeatures"/> (2^24 channels, about 3 GB of per-channel state and
    /// scratch, see <see cref="BytesPerChannel"/>); larger values are an argument error rather than an out-of-memory
    /// failure halfway through.</summary>
    public const int MaxNumFeatures = 1 << 24;

    /// <summary>The bytes a module with weights and running statistics allocates per channel (193 for float, 209 for
    /// double): weight, bias and the running buffers (4 T), the saved backward context (3 doubles) and the per-channel
    /// scratch of its idle <see cref="NormalizationEngine{T}"/>. Computed from the element sizes of those arrays, so the numFeatures
    /// limit's message states what a module really allocates; MisuseTests measures the allocation and holds the two
    /// equal, so an array added to either class without counting it here fails a test.</summary>
    internal static int BytesPerChannel => (4 * Unsafe.SizeOf<T>()) + (3 * sizeof(double)) + NormalizationEngine<T>.BytesPerSet;

    /// <summary>C, the number of channels.</summary>
    public int NumFeatures { get; }

    /// <summary>The module's type name for messages, without a generic arity suffix: "BatchNorm2d`1" is "BatchNorm2d",
    /// and a user's subclass keeps its whole name (a blind two-character trim made "AnyRank" "AnyRa").</summary>
    private string TypeName
    {
        get
        {
            string name = GetType().Name;
            int arity = name.IndexOf('`', StringComparison.Ordinal);
            return arity < 0 ? name : name[..arity];
        }
    }

    /// <summary>Added to the variance before the square root. Not range-checked.</summary>
    /// <exception cref="InvalidOperationException">Set while another thread is in a call on this module.</exception>
    public double Eps
    {
        get => _eps;
        set => Mutate(() => _eps = value);
    }

    /// <summary>The running-statistics factor; null means cumulative average (1/num_batches_tracked). Not range-checked.</summary>
    /// <exception cref="InvalidOperationException">Set while another thread is in a call on this module.</exception>
    public double? Momentum
    {
        get => _momentum;
        set => Mutate(() => _momentum = value);
    }

    /// <summary>Whether the module has a learnable weight and bias.</summary>
    public bool Affine { get; }

    /// <summary>Whether the module keeps running statistics.</summary>
    public bool TrackRunningStats { get; }

    /// <summary>Training mode (default true).</summary>
    /// <exception cref="InvalidOperationException">Set while another thread is in a call on this module.</exception>
    public bool Training
    {
        get => _training;
        set => Mutate(() => _training = value);
    }

    /// <summary>The per-channel scale (length C; the live array, callers may write elements), or null when not affine.</summary>
    public T[]? Weight => _weight;

    /// <summary>The per-channel shift (length C; the live array), or null when not affine.</summary>
    public T[]? Bias => _bias;

    /// <summary>The running mean buffer (length C; the live array), or null when not tracking.</summary>
    public T[]? RunningMean => _runningMean;

    /// <summary>The running (unbiased) variance buffer (length C; the live array), or null when not tracking.</summary>
    public T[]? RunningVar => _runningVar;

    /// <summary>The number of training batches seen, or null when not tracking.</summary>
    /// <exception cref="InvalidOperationException">Set while not tracking running statistics (or set to null while tracking).</exception>
    /// <exception cref="ArgumentOutOfRangeException">Set to a negative value.</exception>
    public long? NumBatchesTracked
    {
        get => TrackRunningStats ? _numBatchesTracked : null;
        set
        {
            if (!TrackRunningStats)
            {
                throw new InvalidOperationException("num_batches_tracked does not exist when trackRunningStats is false.");
            }

            if (value is not long v)
            {
                throw new InvalidOperationException("num_batches_tracked cannot be set to null while tracking running statistics.");
            }

            ArgumentOutOfRangeException.ThrowIfNegative(v, nameof(value));
            Mutate(() => _numBatchesTracked = v);
        }
    }

    /// <summary>The maximum number of threads a call uses (default <see cref="Environment.ProcessorCount"/>); a call
    /// never uses more threads than there are processors or units of work, so int.MaxValue means "all processors".
    /// Results do not depend on it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set below 1.</exception>
    public int MaxDegreeOfParallelism
    {
        get => _maxDegreeOfParallelism;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            Mutate(() => _maxDegreeOfParallelism = value);
        }
    }

    /// <summary>
    /// Whether <c>Forward</c> keeps what <c>Backward</c> needs (default true): the input (the span overload copies it
    /// into a reusable buffer as large as the largest input seen, see <see cref="ReleaseBackwardContext"/>; the
    /// <see cref="DenseTensor{T}"/> overloads keep a reference to a non-in-place input's buffer) plus per-channel
    /// statistics. Set false for inference to skip the copy; <c>Backward</c> then throws until a forward with it true.
    /// </summary>
    /// <exception cref="InvalidOperationException">Set while another thread is in a call on this module.</exception>
    public bool SaveForBackward
    {
        get => _saveForBackward;
        set => Mutate(() => _saveForBackward = value);
    }

    /// <summary>Drops the saved backward context and frees the saved-input buffer; <c>Backward</c> then throws until
    /// the next <c>Forward</c>.</summary>
    /// <exception cref="InvalidOperationException">Called while another thread is in a call on this module.</exception>
    public void ReleaseBackwardContext() => Mutate(() =>
    {
        _savedShape = null;
        _savedInput = [];
        _stagingInput = [];
        _savedRef = null;
    });

    /// <summary>Internal execution knobs: forced path and thresholds (tests run every path and thread count with
    /// them). Results never depend on them except that forcing the row path changes the summation order.</summary>
    internal ExecutionOptions ExecutionOptions
    {
        get => _execution;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            Mutate(() => _execution = value);
        }
    }

    /// <summary>Runs a state change as an exclusive call (see <see cref="CallGuard"/>).</summary>
    private protected void Mutate(Action change)
    {
        _guard.EnterExclusive();
        try
        {
            change();
        }
        finally
        {
            _guard.ExitExclusive();
        }
    }

    /// <summary>Sets <see cref="Training"/> and returns this module.</summary>
    public NormBase<T> Train(bool mode = true)
    {
        Training = mode;
        return this;
    }

    /// <summary>Sets <see cref="Training"/> to false and returns this module.</summary>
    public NormBase<T> Eval() => Train(false);

    /// <summary>Weight 1, bias 0, and <see cref="ResetRunningStats"/>.</summary>
    /// <exception cref="InvalidOperationException">Called while another thread is in a call on this module.</exception>
    public void ResetParameters() => Mutate(() =>
    {
        ResetRunningStatsCore();
        if (_weight is not null)
        {
            Array.Fill(_weight, T.One);
        }

        if (_bias is not null)
        {
            Array.Fill(_bias, T.Zero);
        }
    });

    /// <summary>running_mean 0, running_var 1, num_batches_tracked 0 (no-op when not tracking).</summary>
    /// <exception cref="InvalidOperationException">Called while another thread is in a call on this module.</exception>
    public void ResetRunningStats() => Mutate(ResetRunningStatsCore);

    private void ResetRunningStatsCore()
    {
        if (_runningMean is not null && _runningVar is not null)
        {
            Array.Fill(_runningMean, T.Zero);
            Array.Fill(_runningVar, T.One);
            _numBatchesTracked = 0;
        }
    }

    /// <summary>The subclass's accepted ranks; throws <see cref="ArgumentException"/> (paramName "input") with
    /// PyTorch's text otherwise.</summary>
    protected abstract void ValidateRank(int rank);

    // ------------------------------------------------------------------ What a layer describes

    /// <summary>(N, C, spatial) of a validated input shape: (shape[0], shape[1], the product of the rest) unless the
    /// layer takes unbatched input.</summary>
    private protected virtual InputDims DimsOf(ReadOnlySpan<int> shape) => InputDims.Batched(shape);

    /// <summary>The layer's reduction sets over an input of <paramref name="dims"/> in <paramref name="layout"/>.</summary>
    private protected abstract ReductionView ViewOf(InputDims dims, MemoryLayout layout);

    /// <summary>Throws PyTorch's error when the sets of a batch-statistics call are too small to have a variance
    /// (BatchNorm: one value per channel; InstanceNorm: one spatial element).</summary>
    private protected abstract void ValidateSetSize(ReadOnlySpan<int> shape, InputDims dims);

    /// <summary>Throws when the input's channel count cannot be run by this module (checked before the length and
    /// the set size).</summary>
    private protected abstract void ValidateChannels(ReadOnlySpan<int> shape, InputDims dims);

    /// <summary>Whether a call with tracked statistics blends them (BatchNorm: training steps only).</summary>
    private protected virtual bool UpdatesRunningStatistics(bool training, InputDims dims) => training;

    /// <summary>Whether a training step increments num_batches_tracked (BatchNorm does; InstanceNorm never).</summary>
    private protected abstract bool CountsBatches { get; }

    /// <summary>The running-statistics factor f of a training step, given <see cref="Momentum"/> and the (already
    /// incremented) batch count.</summary>
    private protected abstract double RunningFactor(double? momentum, long numBatchesTracked);

    /// <summary>The shape of weight and bias in the state dict: [C] (LayerNorm's and RMSNorm's: normalized_shape).</summary>
    private protected virtual int[] ParameterShape => [NumFeatures];

    /// <summary>Whether the affine parameters index per element of a set (LayerNorm, RMSNorm) rather than per channel;
    /// such a layer's view is (1, 1, M, D): M sets of D contiguous elements.</summary>
    private protected virtual bool ElementParameters => false;

    /// <summary>Whether the sets are centred (mean subtracted); false for RMSNorm.</summary>
    private protected virtual bool CenteredSets => true;

    /// <summary>The fewest input dimensions the generic rules take (LayerNorm and RMSNorm take 1-D input).</summary>
    private protected virtual int MinimumRank => 2;

    // ------------------------------------------------------------------ Forward

    /// <summary>Normalises <paramref name="input"/> into a new tensor. See the class remarks for semantics.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="input"/> is null.</exception>
    /// <exception cref="ArgumentException">Wrong rank, wrong channel count, or one value per channel while batch
    /// statistics are used. Nothing is changed.</exception>
    public DenseTensor<T> Forward(DenseTensor<T> input) => Forward(input, MemoryLayout.ChannelsFirst);

    /// <summary>Normalises <paramref name="input"/>, whose <see cref="DenseTensor{T}.Data"/> lies in
    /// <paramref name="layout"/>, into a new tensor in the same layout. The tensor's shape is the logical (N, C, …) one
    /// in either layout, as a PyTorch tensor's size is. The following <c>Backward</c> must pass the same layout.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="input"/> is null.</exception>
    /// <exception cref="ArgumentException">As <see cref="Forward(DenseTensor{T})"/>, or <paramref name="layout"/> is not a
    /// <see cref="MemoryLayout"/> value or is <see cref="MemoryLayout.ChannelsLast"/> on a BatchNorm1d (the message names
    /// <c>layout</c>). Nothing is changed.</exception>
    public DenseTensor<T> Forward(DenseTensor<T> input, MemoryLayout layout)
    {
        ArgumentNullException.ThrowIfNull(input);
        bool exclusive = EnterForward();
        try
        {
            ValidateLayout(layout);
            ValidateForward(input.ShapeSpan, input.Length, "input");
            var output = new DenseTensor<T>(input.ShapeSpan.ToArray());
            ForwardCore(input.Data, input.ShapeSpan, output.Data, input.Data, layout);
            return output;
        }
        finally
        {
            ExitCall(exclusive);
        }
    }

    /// <summary>Normalises <paramref name="input"/> into <paramref name="destination"/> (same shape; may be the same
    /// tensor for in-place use).</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">As <see cref="Forward(DenseTensor{T})"/>, or the destination shape differs.</exception>
    public void Forward(DenseTensor<T> input, DenseTensor<T> destination) => Forward(input, destination, MemoryLayout.ChannelsFirst);

    /// <summary>As <see cref="Forward(DenseTensor{T}, DenseTensor{T})"/>, with both tensors' data in
    /// <paramref name="layout"/>.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">As <see cref="Forward(DenseTensor{T}, MemoryLayout)"/>, or the destination
    /// shape differs.</exception>
    public void Forward(DenseTensor<T> input, DenseTensor<T> destination, MemoryLayout layout)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(destination);
        bool exclusive = EnterForward();
        try
        {
            ValidateLayout(layout);
            ValidateForward(input.ShapeSpan, input.Length, "input");
            if (!input.ShapeSpan.SequenceEqual(destination.ShapeSpan))
            {
                throw new ArgumentException(
                    $"destination shape {DenseTensor<T>.FormatShape(destination.ShapeSpan)} differs from input shape {DenseTensor<T>.FormatShape(input.ShapeSpan)}.",
                    nameof(destination));
            }

            ForwardCore(input.Data, input.ShapeSpan, destination.Data, ReferenceEquals(input.Data, destination.Data) ? null : input.Data, layout);
        }
        finally
        {
            ExitCall(exclusive);
        }
    }

    /// <summary>Zero-copy forward over a row-major buffer of the given shape. <paramref name="destination"/> must have
    /// the same length and either be exactly <paramref name="input"/> (in place) or not overlap it. No allocation
    /// when the input size equals the previous call's (the input is copied into a reusable internal buffer for
    /// <see cref="Backward(DenseTensor{T})"/>).</summary>
    /// <exception cref="ArgumentException">Invalid shape, length mismatch, partial overlap, or as <see cref="Forward(DenseTensor{T})"/>.</exception>
    public void Forward(ReadOnlySpan<T> input, ReadOnlySpan<int> shape, Span<T> destination) =>
        Forward(input, shape, destination, MemoryLayout.ChannelsFirst);

    /// <summary>Zero-copy forward over a buffer in the given <paramref name="layout"/>: <paramref name="shape"/> is the
    /// logical (N, C, …) shape, <paramref name="destination"/> receives the output in the same layout. Otherwise as
    /// <see cref="Forward(ReadOnlySpan{T}, ReadOnlySpan{int}, Span{T})"/>; the following <c>Backward</c> must pass the
    /// same layout.</summary>
    /// <exception cref="ArgumentException">As <see cref="Forward(ReadOnlySpan{T}, ReadOnlySpan{int}, Span{T})"/>, or
    /// <paramref name="layout"/> is not a <see cref="MemoryLayout"/> value or is <see cref="MemoryLayout.ChannelsLast"/>
    /// on a BatchNorm1d (the message names <c>layout</c>). Nothing is changed.</exception>
    public void Forward(ReadOnlySpan<T> input, ReadOnlySpan<int> shape, Span<T> destination, MemoryLayout layout)
    {
        bool exclusive = EnterForward();
        try
        {
            ValidateLayout(layout);
            ValidateForward(shape, input.Length, nameof(shape));
            if (destination.Length != input.Length)
            {
                throw new ArgumentException(
                    $"destination has {destination.Length} elements; input has {input.Length}.", nameof(destination));
            }

            if (input.Overlaps(destination, out int offset) && offset != 0)
            {
                throw new ArgumentException("destination partially overlaps input; use the same buffer or a disjoint one.", nameof(destination));
            }

            ForwardCore(input, shape, destination, null, layout);
        }
        finally
        {
            ExitCall(exclusive);
        }
    }

    // ------------------------------------------------------------------ Backward

    /// <summary>Gradients of the last successful forward with respect to its input, weight and bias, given
    /// dL/doutput. Returned per call (not accumulated).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="gradOutput"/> is null.</exception>
    /// <exception cref="InvalidOperationException">No successful forward preceded this call.</exception>
    /// <exception cref="ArgumentException"><paramref name="gradOutput"/>'s shape differs from the last forward input's,
    /// or the last forward ran in <see cref="MemoryLayout.ChannelsLast"/>.</exception>
    public BatchNormGradients<T> Backward(DenseTensor<T> gradOutput) => Backward(gradOutput, MemoryLayout.ChannelsFirst);

    /// <summary>As <see cref="Backward(DenseTensor{T})"/>, with dL/doutput and the returned dL/dinput in
    /// <paramref name="layout"/>, which must be the last forward's.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="gradOutput"/> is null.</exception>
    /// <exception cref="InvalidOperationException">No successful forward preceded this call.</exception>
    /// <exception cref="ArgumentException"><paramref name="gradOutput"/>'s shape differs from the last forward input's,
    /// or <paramref name="layout"/> differs from the last forward's (the message names <c>layout</c>).</exception>
    public BatchNormGradients<T> Backward(DenseTensor<T> gradOutput, MemoryLayout layout)
    {
        ArgumentNullException.ThrowIfNull(gradOutput);
        _guard.EnterExclusive();
        try
        {
            ValidateBackward(gradOutput.ShapeSpan, nameof(gradOutput));
            ValidateBackwardLayout(layout);
            var gradInput = new DenseTensor<T>(gradOutput.ShapeSpan.ToArray());
            T[]? gw = Affine ? new T[NumFeatures] : null;
            T[]? gb = _bias is not null ? new T[NumFeatures] : null;
            BackwardCore(gradOutput.Data, gradInput.Data, gw, gb);
            return new BatchNormGradients<T>(gradInput, gw, gb);
        }
        finally
        {
            _guard.ExitExclusive();
        }
    }

    /// <summary>Span form of <see cref="Backward(DenseTensor{T})"/>. <paramref name="gradInput"/> may be exactly
    /// <paramref name="gradOutput"/> or disjoint from it. When affine, <paramref name="gradWeight"/> and
    /// <paramref name="gradBias"/> must have length C; when not affine they are ignored (may be empty).</summary>
    /// <exception cref="InvalidOperationException">No successful forward preceded this call.</exception>
    /// <exception cref="ArgumentException">A shape or length mismatch, <paramref name="gradInput"/> overlaps the
    /// input saved by the forward, or (when affine) <paramref name="gradWeight"/> or <paramref name="gradBias"/> overlaps
    /// gradOutput, gradInput, the saved input or each other (the message names the argument and the rule).</exception>
    public void Backward(ReadOnlySpan<T> gradOutput, ReadOnlySpan<int> shape, Span<T> gradInput, Span<T> gradWeight, Span<T> gradBias) =>
        Backward(gradOutput, shape, gradInput, gradWeight, gradBias, MemoryLayout.ChannelsFirst);

    /// <summary>Span backward in the given <paramref name="layout"/>, which must be the last forward's: dL/doutput
    /// and dL/dinput lie in that layout; <paramref name="shape"/> is the logical shape.</summary>
    /// <exception cref="InvalidOperationException">No successful forward preceded this call.</exception>
    /// <exception cref="ArgumentException">As <see cref="Backward(ReadOnlySpan{T}, ReadOnlySpan{int}, Span{T}, Span{T}, Span{T})"/>,
    /// or <paramref name="layout"/> differs from the last forward's (the message names <c>layout</c>).</exception>
    public void Backward(ReadOnlySpan<T> gradOutput, ReadOnlySpan<int> shape, Span<T> gradInput, Span<T> gradWeight, Span<T> gradBias, MemoryLayout layout)
    {
        _guard.EnterExclusive();
        try
        {
            ValidateSpanBackward(gradOutput, shape, gradInput, gradWeight, gradBias);
            ValidateBackwardLayout(layout);
            BackwardCore(gradOutput, gradInput, Affine ? gradWeight : default, _bias is not null ? gradBias : default);
        }
        finally
        {
            _guard.ExitExclusive();
        }
    }

}
