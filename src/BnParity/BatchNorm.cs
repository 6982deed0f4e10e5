using System.Numerics;

namespace BnParity;

/// <summary>
/// Batch normalisation with the exact semantics of PyTorch's <c>torch.nn.BatchNorm1d/2d/3d</c> modules,
/// for <see cref="float"/> and <see cref="double"/>.
/// </summary>
/// <remarks>
/// <para><b>Training</b> (or whenever <see cref="TrackRunningStats"/> is false): per channel c, over the batch and
/// all spatial positions (n = N·spatial values), mean and BIASED variance; invstd = 1/sqrt(var + eps);
/// y = (x − mean)·invstd·weight + bias (weight 1, bias 0 when not <see cref="Affine"/>). When tracking,
/// <see cref="NumBatchesTracked"/> is incremented FIRST, then with f = momentum ?? 1/num_batches_tracked:
/// running_mean = f·mean + (1 − f)·running_mean and running_var = f·var·n/(n − 1) + (1 − f)·running_var
/// (unbiased), blended in double and rounded once to T.</para>
/// <para><b>Eval</b> with tracking: normalises with the running statistics and changes nothing.</para>
/// <para><b>Numerics</b>: statistics never use E[x²] − E[x]² about zero, so ill-conditioned data (|mean| ≫ std) keeps
/// full accuracy. double data, and the row path (S &lt; 16 and C·S ≤ 16384), are two-pass (Σx, then Σ(x − mean)²)
/// in double and compute the output per element in double as (x − mean)·(invstd·weight) + bias, rounded once to T.
/// float data on the per-channel path uses <see cref="FloatKernels"/>: float partials of ≤ 8 terms per lane flushed
/// into double, taken about a shift c near the mean (the float mean of 16 evenly sampled elements) so that only
/// deviations are added in float; one pass gives Σ(x − c) and Σ(x − c)², and Σ(x − μ)² = Σ(x − c)² − n·(μ − c)² is
/// used when |μ − c| ≤ √3·σ (cancelling at most 3/4), otherwise a second pass takes Σ(x − μ_hi)² − n·μ_lo². The
/// output is fma(x − μ_hi, α_hi, fma(x − μ_hi, α_lo, b − μ_lo·α)) in float, with μ = μ_hi + μ_lo and α = α_hi + α_lo
/// split from double: error ≤ u·(|x − μ_hi|·|α| (only when x − μ_hi is inexact, i.e. x not within 2× of μ_hi) + |b −
/// μ_lo·α| + |y|), which is no more than libtorch's x·α + β in float; libtorch folds α = invstd·weight,
/// β = bias − mean·α and loses up to |x·α|/|y| ulps when |x·α| ≫ |y| (large mean, small std), while x − μ_hi is
/// exact there.</para>
/// <para><b>Summation order</b> (fixed, a function of the shape only, so results are bit-identical for every
/// <see cref="MaxDegreeOfParallelism"/>): channel c of an (N, C, S) input is N runs of S contiguous elements.
/// When S ≥ 16 (or C·S &gt; 16384) runs shorter than 4096 are taken in groups of G = ⌊4096/S⌋ consecutive runs (G = 1
/// otherwise) and a channel's total is the left fold, over the groups and then over blocks of 4096 elements, of each
/// group-block's kernel sum (<see cref="Kernels{T}"/> / <see cref="FloatKernels"/>: vector accumulators combined in
/// a fixed tree, then scalar tails). Threads take whole channels, or, when channels are too few for the threads,
/// whole group-blocks whose partials the caller folds in that same order. When S &lt; 16 and C·S ≤ 16384 the input is an
/// (N, C·S) matrix swept in blocks of R = max(32, ⌈N/32⌉) rows: each block's column partial is a left fold over its
/// rows, each column folds the block partials in block order, then a channel sums its S columns left to right;
/// threads take whole row blocks. Without AVX hardware acceleration the kernels run scalar, and with AVX-512 the float
/// main loops use 512-bit vectors (same results on a given machine, possibly different last bits across machines).</para>
/// <para><b>Parameters are not range-checked</b>: <see cref="Eps"/> and <see cref="Momentum"/> accept any value
/// (PyTorch's own samples use momentum −1.2), and NaN/Infinity in inputs, weights or buffers propagate
/// through the arithmetic like in PyTorch.</para>
/// <para><b>Failures are atomic</b>: every argument is validated before anything is mutated, so a call that throws
/// leaves weights, buffers, the batch counter and the saved backward context exactly as they were. (PyTorch
/// bumps <c>num_batches_tracked</c> before raising "Expected more than 1 value per channel"; this class does not.)</para>
/// <para><b>Backward</b>: <see cref="Forward(ReadOnlySpan{T}, ReadOnlySpan{int}, Span{T})"/> keeps a private copy of the
/// input (in a reusable buffer: no allocation when the size is unchanged); the <see cref="DenseTensor{T}"/> overloads
/// instead keep a reference to the input tensor's buffer (no copy, like PyTorch's autograd, which also saves the
/// input by reference), except when the forward writes into that same buffer (in place), where they copy. Do not
/// modify that buffer between the forward and <c>Backward</c>. The context also holds per-channel mean, invstd and the
/// weight as they were at forward time; <see cref="Backward(DenseTensor{T})"/> differentiates that last successful
/// forward. Gradients are returned per call, never accumulated (unlike PyTorch's <c>.grad</c>). A forward that
/// throws keeps the previous context.</para>
/// <para>Instances are not thread-safe (like PyTorch modules, calls mutate state); internal parallelism is
/// across channels.</para>
/// </remarks>
/// <typeparam name="T">float or double.</typeparam>
public abstract unsafe partial class BatchNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private const int DefaultParallelThreshold = 32 * 1024;

    private readonly T[]? _weight;
    private readonly T[]? _bias;
    private readonly T[]? _runningMean;
    private readonly T[]? _runningVar;
    private long _numBatchesTracked;
    private int _maxDegreeOfParallelism = Environment.ProcessorCount;
    private readonly ChunkWorker _worker;
    private readonly object _gate = new();
    private long _claimState;
    private int _completedChunks;
    private Exception? _workerError;

    // Saved context of the last successful Forward (used by Backward).
    private T[] _savedInput = [];
    private T[]? _savedRef;
    private int[]? _savedShape;
    private bool _savedBatchStats;
    private readonly double[] _savedMean;
    private readonly double[] _savedInvstd;
    private readonly double[] _savedWeight;

    // Per-call scratch, indexed by channel.
    private readonly double[] _varSum;
    private readonly double[] _gradWeight;
    private readonly double[] _gradBias;

    // The job the channel workers execute (set before dispatch; the module is not re-entrant).
    private JobKind _job;
    private nint _pX;
    private nint _pY;
    private nint _pDy;
    private nint _pSave;
    private int _jobN;
    private int _jobS;
    private int _chunks;
    private int _rowsPerBlock;
    private bool _streamGradInput;

    // Block-split path (few channels, several threads): per-block partial sums folded in canonical order.
    private double[] _partA = [];
    private double[] _partB = [];
    private int _blocksPerRun;
    private int _runsPerGroup;
    private int _groups;
    private long _units;
    private bool _splitCopy;
    private bool _splitBatch;
    private readonly double[] _chScale;
    private readonly double[] _chShift;
    private readonly double[] _chK;
    private readonly double[] _chGradMean;
    private readonly bool[] _refine;

    // Per-column (C·S) parameters for the row-major path used when spatial runs are short.
    private double[] _colMean = [];
    private double[] _colScale = [];
    private double[] _colShift = [];
    private double[] _colExtra = [];

    private enum JobKind
    {
        ForwardBatch,
        ForwardFixed,
        BackwardBatch,
        BackwardFixed,
        SplitSum,
        SplitSquares,
        SplitNormalize,
        SplitSumDot,
        SplitBackward,
        RowSum,
        RowSquares,
        RowNormalize,
        RowSumDot,
        RowBackward,
    }

    /// <summary>Creates the module with PyTorch's defaults: weight 1, bias 0, running_mean 0, running_var 1, count 0.</summary>
    /// <param name="numFeatures">C, the number of channels (dimension 1 of the input); at least 1.</param>
    /// <param name="eps">Added to the variance for stability. Not range-checked.</param>
    /// <param name="momentum">Running-statistics factor, or null for a cumulative moving average
    /// (f = 1/num_batches_tracked). Not range-checked.</param>
    /// <param name="affine">Whether to learn weight and bias.</param>
    /// <param name="trackRunningStats">Whether to keep running statistics; when false batch statistics are used in
    /// both modes and no buffers exist.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="numFeatures"/> is less than 1.</exception>
    /// <exception cref="NotSupportedException">T is neither float nor double.</exception>
    protected BatchNorm(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException($"BatchNorm supports float and double, not {typeof(T).Name}.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(numFeatures, 1);
        NumFeatures = numFeatures;
        Eps = eps;
        Momentum = momentum;
        Affine = affine;
        TrackRunningStats = trackRunningStats;
        if (affine)
        {
            _weight = new T[numFeatures];
            _bias = new T[numFeatures];
        }

        if (trackRunningStats)
        {
            _runningMean = new T[numFeatures];
            _runningVar = new T[numFeatures];
        }

        _savedMean = new double[numFeatures];
        _savedInvstd = new double[numFeatures];
        _savedWeight = new double[numFeatures];
        _varSum = new double[numFeatures];
        _gradWeight = new double[numFeatures];
        _gradBias = new double[numFeatures];
        _chScale = new double[numFeatures];
        _chShift = new double[numFeatures];
        _chK = new double[numFeatures];
        _chGradMean = new double[numFeatures];
        _refine = new bool[numFeatures];
        _worker = new ChunkWorker(this);
        ResetParameters();
    }

    /// <summary>C, the number of channels.</summary>
    public int NumFeatures { get; }

    /// <summary>Added to the variance before the square root. Not range-checked.</summary>
    public double Eps { get; set; }

    /// <summary>The running-statistics factor; null means cumulative average (1/num_batches_tracked). Not range-checked.</summary>
    public double? Momentum { get; set; }

    /// <summary>Whether the module has a learnable weight and bias.</summary>
    public bool Affine { get; }

    /// <summary>Whether the module keeps running statistics.</summary>
    public bool TrackRunningStats { get; }

    /// <summary>Training mode (default true).</summary>
    public bool Training { get; set; } = true;

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
            _numBatchesTracked = v;
        }
    }

    /// <summary>The maximum number of threads a call uses (default <see cref="Environment.ProcessorCount"/>).
    /// Results do not depend on it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set below 1.</exception>
    public int MaxDegreeOfParallelism
    {
        get => _maxDegreeOfParallelism;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _maxDegreeOfParallelism = value;
        }
    }

    /// <summary>
    /// Whether <c>Forward</c> keeps what <c>Backward</c> needs (default true): the input (the span overload copies it
    /// into a reusable buffer as large as the largest input seen, see <see cref="ReleaseBackwardContext"/>; the
    /// <see cref="DenseTensor{T}"/> overloads keep a reference to a non-in-place input's buffer) plus per-channel
    /// statistics. Set false for inference to skip the copy; <c>Backward</c> then throws until a forward with it true.
    /// </summary>
    public bool SaveForBackward { get; set; } = true;

    /// <summary>Drops the saved backward context and frees the saved-input buffer; <c>Backward</c> then throws until
    /// the next <c>Forward</c>.</summary>
    public void ReleaseBackwardContext()
    {
        _savedShape = null;
        _savedInput = [];
        _savedRef = null;
    }

    /// <summary>Element count above which work is split across threads (internal tuning knob).</summary>
    internal int ParallelThreshold { get; set; } = DefaultParallelThreshold;

    /// <summary>Sets <see cref="Training"/> and returns this module.</summary>
    public BatchNorm<T> Train(bool mode = true)
    {
        Training = mode;
        return this;
    }

    /// <summary>Sets <see cref="Training"/> to false and returns this module.</summary>
    public BatchNorm<T> Eval() => Train(false);

    /// <summary>Weight 1, bias 0, and <see cref="ResetRunningStats"/>.</summary>
    public void ResetParameters()
    {
        ResetRunningStats();
        if (_weight is not null && _bias is not null)
        {
            Array.Fill(_weight, T.One);
            Array.Fill(_bias, T.Zero);
        }
    }

    /// <summary>running_mean 0, running_var 1, num_batches_tracked 0 (no-op when not tracking).</summary>
    public void ResetRunningStats()
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

    // ------------------------------------------------------------------ Forward

    /// <summary>Normalises <paramref name="input"/> into a new tensor. See the class remarks for semantics.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="input"/> is null.</exception>
    /// <exception cref="ArgumentException">Wrong rank, wrong channel count, or one value per channel while batch
    /// statistics are used. Nothing is changed.</exception>
    public DenseTensor<T> Forward(DenseTensor<T> input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ValidateForward(input.ShapeSpan, input.Length, "input");
        var output = new DenseTensor<T>(input.ShapeSpan.ToArray());
        ForwardCore(input.Data, input.ShapeSpan, output.Data, input.Data);
        return output;
    }

    /// <summary>Normalises <paramref name="input"/> into <paramref name="destination"/> (same shape; may be the same
    /// tensor for in-place use).</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">As <see cref="Forward(DenseTensor{T})"/>, or the destination shape differs.</exception>
    public void Forward(DenseTensor<T> input, DenseTensor<T> destination)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(destination);
        ValidateForward(input.ShapeSpan, input.Length, "input");
        if (!input.ShapeSpan.SequenceEqual(destination.ShapeSpan))
        {
            throw new ArgumentException(
                $"destination shape {DenseTensor<T>.FormatShape(destination.ShapeSpan)} differs from input shape {DenseTensor<T>.FormatShape(input.ShapeSpan)}.",
                nameof(destination));
        }

        ForwardCore(input.Data, input.ShapeSpan, destination.Data, ReferenceEquals(input.Data, destination.Data) ? null : input.Data);
    }

    /// <summary>Zero-copy forward over a row-major buffer of the given shape. <paramref name="destination"/> must have
    /// the same length and either be exactly <paramref name="input"/> (in place) or not overlap it. No allocation
    /// when the input size equals the previous call's (the input is copied into a reusable internal buffer for
    /// <see cref="Backward(DenseTensor{T})"/>).</summary>
    /// <exception cref="ArgumentException">Invalid shape, length mismatch, partial overlap, or as <see cref="Forward(DenseTensor{T})"/>.</exception>
    public void Forward(ReadOnlySpan<T> input, ReadOnlySpan<int> shape, Span<T> destination)
    {
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

        ForwardCore(input, shape, destination, null);
    }

    private bool UsesBatchStats => Training || !TrackRunningStats;

    private void ValidateForward(ReadOnlySpan<int> shape, int inputLength, string shapeParam)
    {
        ValidateRank(shape.Length);
        if (shape.Length < 2)
        {
            throw BatchNormErrors.Argument($"expected at least 2D input (got {shape.Length}D input)", "input");
        }

        long length = DenseTensor<T>.CheckedLength(shape, shapeParam);
        if (shape[1] != NumFeatures)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.WrongChannels(NumFeatures, shape[1]), "input");
        }

        if (length != inputLength)
        {
            throw new ArgumentException(
                $"shape {DenseTensor<T>.FormatShape(shape)} needs {length} elements; input has {inputLength}.", shapeParam);
        }

        if (UsesBatchStats && SpatialCount(shape) * shape[0] == 1)
        {
            throw BatchNormErrors.Argument(BatchNormErrors.MoreThanOneValuePerChannel(shape), "input");
        }
    }

    /// <summary>Product of the dims after the channel dim (saturated; it only matters when the input is non-empty,
    /// where it cannot overflow).</summary>
    private static int SpatialCount(ReadOnlySpan<int> shape)
    {
        long s = 1;
        for (int i = 2; i < shape.Length; i++)
        {
            s = Math.Min(s * shape[i], int.MaxValue);
        }

        return (int)s;
    }

    /// <param name="inputArray">The input's own array when it may be saved by reference (DenseTensor overloads,
    /// not in place); null to copy.</param>
    private void ForwardCore(ReadOnlySpan<T> input, ReadOnlySpan<int> shape, Span<T> destination, T[]? inputArray)
    {
        // Everything is validated; from here on nothing throws (except OOM growing the saved buffer, which
        // happens before any state is touched).
        int length = input.Length;
        bool save = SaveForBackward;
        bool copy = save && inputArray is null;
        if (copy && _savedInput.Length < length)
        {
            _savedInput = new T[length];
        }

        if (!save)
        {
            _savedShape = null;
        }
        else if (_savedShape is null || !_savedShape.AsSpan().SequenceEqual(shape))
        {
            _savedShape = shape.ToArray();
        }

        int c = NumFeatures;
        int n = shape[0];
        int s = SpatialCount(shape);
        long count = (long)n * s;
        bool batch = UsesBatchStats;
        bool updateRunning = Training && TrackRunningStats;

        for (int ch = 0; ch < c; ch++)
        {
            _savedWeight[ch] = _weight is null ? 1.0 : Kernels<T>.ToDoublePublic(_weight[ch]);
        }

        if (!batch)
        {
            for (int ch = 0; ch < c; ch++)
            {
                _savedMean[ch] = Kernels<T>.ToDoublePublic(_runningMean![ch]);
                _savedInvstd[ch] = 1.0 / Math.Sqrt(Kernels<T>.ToDoublePublic(_runningVar![ch]) + Eps);
            }
        }
        else if (count == 0)
        {
            Array.Fill(_savedMean, double.NaN);
            Array.Fill(_savedInvstd, double.NaN);
        }

        _savedBatchStats = batch;
        _savedRef = save ? inputArray : null;
        if (length > 0)
        {
            fixed (T* px = input)
            fixed (T* py = destination)
            fixed (T* ps = _savedInput)
            {
                _job = batch ? JobKind.ForwardBatch : JobKind.ForwardFixed;
                _pX = (nint)px;
                _pY = (nint)py;
                _pSave = copy ? (nint)ps : 0;
                _jobN = n;
                _jobS = s;
                Dispatch(length);
                _pX = _pY = _pSave = 0;
            }
        }

        if (updateRunning)
        {
            _numBatchesTracked++;
            if (count > 0)
            {
                // Blend in double, round once to T (libtorch's order: f·stat + (1 − f)·running).
                double f = Momentum ?? 1.0 / _numBatchesTracked;
                double g = 1.0 - f;
                double unbias = 1.0 / (count - 1);
                for (int ch = 0; ch < c; ch++)
                {
                    double rm = Kernels<T>.ToDoublePublic(_runningMean![ch]);
                    double rv = Kernels<T>.ToDoublePublic(_runningVar![ch]);
                    _runningMean[ch] = Kernels<T>.FromDoublePublic((f * _savedMean[ch]) + (g * rm));
                    _runningVar[ch] = Kernels<T>.FromDoublePublic((f * (_varSum[ch] * unbias)) + (g * rv));
                }
            }
        }
    }

    // ------------------------------------------------------------------ Backward

    /// <summary>Gradients of the last successful forward with respect to its input, weight and bias, given
    /// dL/doutput. Returned per call (not accumulated).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="gradOutput"/> is null.</exception>
    /// <exception cref="InvalidOperationException">No successful forward preceded this call.</exception>
    /// <exception cref="ArgumentException"><paramref name="gradOutput"/>'s shape differs from the last forward input's.</exception>
    public BatchNormGradients<T> Backward(DenseTensor<T> gradOutput)
    {
        ArgumentNullException.ThrowIfNull(gradOutput);
        ValidateBackward(gradOutput.ShapeSpan, nameof(gradOutput));
        var gradInput = new DenseTensor<T>(gradOutput.ShapeSpan.ToArray());
        T[]? gw = Affine ? new T[NumFeatures] : null;
        T[]? gb = Affine ? new T[NumFeatures] : null;
        BackwardCore(gradOutput.Data, gradInput.Data, gw, gb);
        return new BatchNormGradients<T>(gradInput, gw, gb);
    }

    /// <summary>Span form of <see cref="Backward(DenseTensor{T})"/>. <paramref name="gradInput"/> may be exactly
    /// <paramref name="gradOutput"/> or disjoint from it. When affine, <paramref name="gradWeight"/> and
    /// <paramref name="gradBias"/> must have length C; when not affine they are ignored (may be empty).</summary>
    /// <exception cref="InvalidOperationException">No successful forward preceded this call.</exception>
    /// <exception cref="ArgumentException">A shape or length mismatch (the message names the argument).</exception>
    public void Backward(ReadOnlySpan<T> gradOutput, ReadOnlySpan<int> shape, Span<T> gradInput, Span<T> gradWeight, Span<T> gradBias)
    {
        ValidateBackward(shape, nameof(shape));
        int length = SavedLength;
        if (gradOutput.Length != length)
        {
            throw new ArgumentException($"gradOutput has {gradOutput.Length} elements; expected {length}.", nameof(gradOutput));
        }

        if (gradInput.Length != length)
        {
            throw new ArgumentException($"gradInput has {gradInput.Length} elements; expected {length}.", nameof(gradInput));
        }

        if (gradOutput.Overlaps(gradInput, out int offset) && offset != 0)
        {
            throw new ArgumentException("gradInput partially overlaps gradOutput; use the same buffer or a disjoint one.", nameof(gradInput));
        }

        if (Affine)
        {
            if (gradWeight.Length != NumFeatures)
            {
                throw new ArgumentException($"gradWeight has {gradWeight.Length} elements; expected {NumFeatures}.", nameof(gradWeight));
            }

            if (gradBias.Length != NumFeatures)
            {
                throw new ArgumentException($"gradBias has {gradBias.Length} elements; expected {NumFeatures}.", nameof(gradBias));
            }
        }

        BackwardCore(gradOutput, gradInput, Affine ? gradWeight : default, Affine ? gradBias : default);
    }

    private int SavedLength
    {
        get
        {
            long l = 1;
            foreach (int d in _savedShape!)
            {
                l *= d;
            }

            return (int)l;
        }
    }

    private void ValidateBackward(ReadOnlySpan<int> shape, string paramName)
    {
        if (_savedShape is null)
        {
            throw new InvalidOperationException(
                "Backward requires a preceding successful Forward call with SaveForBackward = true (and no ReleaseBackwardContext since).");
        }

        if (!shape.SequenceEqual(_savedShape))
        {
            throw new ArgumentException(
                $"gradient shape {DenseTensor<T>.FormatShape(shape)} differs from the last forward input shape {DenseTensor<T>.FormatShape(_savedShape)}.",
                paramName);
        }
    }

    private void BackwardCore(ReadOnlySpan<T> gradOutput, Span<T> gradInput, Span<T> gradWeight, Span<T> gradBias)
    {
        int[] shape = _savedShape!;
        int length = gradOutput.Length;
        int c = NumFeatures;
        Array.Clear(_gradWeight);
        Array.Clear(_gradBias);
        if (length > 0)
        {
            fixed (T* pdy = gradOutput)
            fixed (T* pdx = gradInput)
            fixed (T* ps = _savedRef ?? _savedInput)
            {
                _job = _savedBatchStats ? JobKind.BackwardBatch : JobKind.BackwardFixed;
                _pX = (nint)ps;
                _pDy = (nint)pdy;
                _pY = (nint)pdx;
                _jobN = shape[0];
                _jobS = SpatialCount(shape);
                _streamGradInput = (long)length * sizeof(T) >= StreamingMinBytes;
                Dispatch(length);
                _pX = _pY = _pDy = 0;
            }
        }

        if (!gradWeight.IsEmpty)
        {
            for (int ch = 0; ch < c; ch++)
            {
                gradWeight[ch] = Kernels<T>.FromDoublePublic(_gradWeight[ch]);
                gradBias[ch] = Kernels<T>.FromDoublePublic(_gradBias[ch]);
            }
        }
    }

    // ------------------------------------------------------------------ Parallel dispatch

    /// <summary>Few-channel inputs use the multi-phase split path from this multiple of
    /// <see cref="ParallelThreshold"/> elements on (512 Ki by default), else one thread.</summary>
    private const int SplitThresholdFactor = 16;

    /// <summary>From this gradient size on (bytes) the per-channel float backward writes dx with non-temporal stores.
    /// Such a channel's x and dy (2·N·S elements) then typically exceed what the cache keeps between the channel's
    /// reduction pass and its dx pass, so ordinary stores cost an extra read of dx's lines plus evictions of x and dy;
    /// measured (1 thread, 32×64×56×56) the backward drops from ~8 ms to ~5 ms. Smaller tensors keep ordinary stores, whose
    /// dx stays cached for the next consumer. Results are bit-identical either way.</summary>
    private const long StreamingMinBytes = 8L << 20;

    /// <summary>Short spatial runs (S below this) use the row-major column path.</summary>
    private const int RowModeMaxSpatial = 16;

    /// <summary>Upper bound on C·S for the row-major path (its scratch is about (2·blocks + 4)·C·S doubles).</summary>
    private const int RowModeMaxColumns = 1 << 14;

    /// <summary>Row blocks hold at least this many rows.</summary>
    private const int RowBlockMinRows = 32;

    /// <summary>At most this many row blocks (rows per block grow with N).</summary>
    private const int RowBlockMaxBlocks = 32;

    /// <summary>Runs a phase on the caller (one worker) or fork/join.</summary>
    private void RunPhase(int workers)
    {
        if (workers <= 1)
        {
            _chunks = 1;
            RunChunk(0);
            return;
        }

        ForkJoin(workers);
    }

    private void Dispatch(long length)
    {
        int c = NumFeatures;
        _blocksPerRun = (_jobS + Block - 1) / Block;
        _runsPerGroup = _jobS >= Block ? 1 : Block / _jobS;
        _groups = (_jobN + _runsPerGroup - 1) / _runsPerGroup;
        int threads = length < ParallelThreshold ? 1 : _maxDegreeOfParallelism;
        if (_jobS < RowModeMaxSpatial && (long)c * _jobS <= RowModeMaxColumns)
        {
            RunRows(threads);
            return;
        }

        if (threads > 1 && c % threads != 0 && c < 4 * threads)
        {
            if (length >= (long)ParallelThreshold * SplitThresholdFactor)
            {
                // Few channels for the threads: split channels into fixed blocks so all threads get equal work.
                RunSplit(threads);
                return;
            }

            // The split path pays 2–3 fork/joins per call (5–20 µs each on a busy machine); below this size one
            // thread finishes sooner. Same results either way (the split order equals the per-channel order).
            threads = 1;
        }

        int workers = Math.Min(threads, c);

        if (workers <= 1)
        {
            for (int ch = 0; ch < c; ch++)
            {
                RunChannel(ch);
            }

            return;
        }

        ForkJoin(workers);
    }

    private void ForkJoin(int workers)
    {
        // Allocation-free fork/join. The caller and (workers − 1) queued thread-pool items (one cached object)
        // claim chunks by CAS on _claimState = (generation << 32) | next index. A new call first locks the state
        // (index = int.MaxValue), then sets up the job and publishes (generation + 1, 0); a CAS from an older
        // generation therefore fails, so an item that starts late either helps the current call legitimately or
        // finds nothing and returns. The caller never waits for an item that has not started: it claims any
        // unclaimed chunk itself and waits only for chunks in progress. Chunk boundaries vary with the worker
        // count, but the summation order does not (see the class remarks), so results do not either.
        long generation = (Volatile.Read(ref _claimState) >> 32) + 1;
        Interlocked.Exchange(ref _claimState, (generation << 32) | int.MaxValue);
        _chunks = workers;
        _workerError = null;
        _completedChunks = 0;
        Interlocked.Exchange(ref _claimState, generation << 32);
        for (int i = 1; i < workers; i++)
        {
            ThreadPool.UnsafeQueueUserWorkItem(_worker, preferLocal: false);
        }

        ClaimChunks();
        if (Volatile.Read(ref _completedChunks) < workers)
        {
            lock (_gate)
            {
                while (Volatile.Read(ref _completedChunks) < workers)
                {
                    Monitor.Wait(_gate);
                }
            }
        }

        if (_workerError is Exception error)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }

    private void ClaimChunks()
    {
        while (true)
        {
            long state = Volatile.Read(ref _claimState);
            int chunk = (int)(state & int.MaxValue);
            int chunks = Volatile.Read(ref _chunks);
            if (chunk >= chunks)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _claimState, state + 1, state) != state)
            {
                continue;
            }

            try
            {
                RunChunk(chunk);
            }
            catch (Exception e)
            {
                _workerError = e;
            }

            if (Interlocked.Increment(ref _completedChunks) == chunks)
            {
                lock (_gate)
                {
                    Monitor.PulseAll(_gate);
                }
            }
        }
    }

    private sealed class ChunkWorker(BatchNorm<T> owner) : IThreadPoolWorkItem
    {
        public void Execute() => owner.ClaimChunks();
    }

    private void RunChunk(int chunk)
    {
        int c = NumFeatures;
        int start = (int)((long)chunk * c / _chunks);
        int end = (int)((long)(chunk + 1) * c / _chunks);
        if (_job >= JobKind.RowSum)
        {
            long b0 = _units * chunk / _chunks;
            long b1 = _units * (chunk + 1) / _chunks;
            for (long b = b0; b < b1; b++)
            {
                RunRowBlock((int)b);
            }

            return;
        }

        if (_job >= JobKind.SplitSum)
        {
            long u0 = _units * chunk / _chunks;
            long u1 = _units * (chunk + 1) / _chunks;
            for (long u = u0; u < u1; u++)
            {
                RunUnit(u);
            }

            return;
        }

        for (int ch = start; ch < end; ch++)
        {
            RunChannel(ch);
        }
    }

    /// <summary>Block length (elements) of the canonical per-channel summation order. Runs shorter than a block are
    /// taken in groups of G = ⌊Block/S⌋ consecutive runs (G = 1 when S ≥ Block); a channel's total is the left fold,
    /// over the groups in order and then over the blocks [b, b + Block) of the group's runs, of each kernel sum (one
    /// kernel call covers a whole group, see <see cref="FloatKernels"/>; for double it is the left fold of the
    /// group's per-run sums).</summary>
    private const int Block = 4096;

    /// <summary>
    /// Work split for few channels: units are (group, block) pairs; each phase computes per-unit partials that the
    /// caller folds per channel in exactly the canonical order of <see cref="RunChannel"/>, so the result is
    /// bit-identical to the per-channel path.
    /// </summary>
    private void RunSplit(int workers)
    {
        int c = NumFeatures;
        int s = _jobS;
        int n = _jobN;
        int nb = _blocksPerRun;
        _units = (long)_groups * c * nb;
        if (_partA.Length < _units)
        {
            _partA = new double[_units];
            _partB = new double[_units];
        }

        workers = (int)Math.Min(workers, _units);
        long count = (long)n * s;
        switch (_job)
        {
            case JobKind.ForwardBatch:
                _job = JobKind.SplitSum;
                ForkJoin(workers);
                bool anyRefine = false;
                for (int ch = 0; ch < c; ch++)
                {
                    double shift = ChannelShift(ch);
                    double mean = shift + (FoldParts(_partA, ch) / count);
                    _savedMean[ch] = mean;
                    _refine[ch] = !TryShiftedVarSum(FoldParts(_partB, ch), mean, shift, count, out _varSum[ch]);
                    anyRefine |= _refine[ch];
                }

                if (anyRefine)
                {
                    _job = JobKind.SplitSquares;
                    ForkJoin(workers);
                    for (int ch = 0; ch < c; ch++)
                    {
                        if (_refine[ch])
                        {
                            _varSum[ch] = FinishVarSum(FoldParts(_partA, ch), _savedMean[ch], count);
                        }
                    }
                }

                for (int ch = 0; ch < c; ch++)
                {
                    double varSum = _varSum[ch];
                    double invstd = 1.0 / Math.Sqrt((varSum / count) + Eps);
                    _varSum[ch] = varSum;
                    _savedInvstd[ch] = invstd;
                    _chScale[ch] = invstd * _savedWeight[ch];
                    _chShift[ch] = _bias is null ? 0.0 : Kernels<T>.ToDoublePublic(_bias[ch]);
                }

                _splitCopy = false;
                _job = JobKind.SplitNormalize;
                ForkJoin(workers);
                break;

            case JobKind.ForwardFixed:
                for (int ch = 0; ch < c; ch++)
                {
                    _chScale[ch] = _savedInvstd[ch] * _savedWeight[ch];
                    _chShift[ch] = _bias is null ? 0.0 : Kernels<T>.ToDoublePublic(_bias[ch]);
                }

                _splitCopy = true;
                _job = JobKind.SplitNormalize;
                ForkJoin(workers);
                break;

            default:
                _splitBatch = _job == JobKind.BackwardBatch;
                _job = JobKind.SplitSumDot;
                ForkJoin(workers);
                for (int ch = 0; ch < c; ch++)
                {
                    double sumDy = FoldParts(_partA, ch);
                    double dot = FinishDot(FoldParts(_partB, ch), sumDy, _savedMean[ch]);
                    double invstd = _savedInvstd[ch];
                    _gradWeight[ch] = dot * invstd;
                    _gradBias[ch] = sumDy;
                    _chK[ch] = dot * invstd * invstd / count;
                    _chGradMean[ch] = sumDy / count;
                    _chScale[ch] = invstd * _savedWeight[ch];
                }

                _job = JobKind.SplitBackward;
                ForkJoin(workers);
                break;
        }
    }

    private double FoldParts(double[] parts, int ch)
    {
        int c = NumFeatures;
        int nb = _blocksPerRun;
        double total = 0;
        for (long g = 0; g < _groups; g++)
        {
            long baseUnit = ((g * c) + ch) * nb;
            for (int b = 0; b < nb; b++)
            {
                total += parts[baseUnit + b];
            }
        }

        return total;
    }

    private void RunUnit(long u)
    {
        int nb = _blocksPerRun;
        int c = NumFeatures;
        long gc = u / nb;
        int b = (int)(u - (gc * nb)) * Block;
        long g = gc / c;
        int ch = (int)(gc - (g * c));
        int s = _jobS;
        long n0 = g * _runsPerGroup;
        int runs = (int)Math.Min(_runsPerGroup, _jobN - n0);
        long stride = (long)c * s;
        long o = (((n0 * c) + ch) * s) + b;
        int len = Math.Min(Block, s - b);
        T* x = (T*)_pX;
        switch (_job)
        {
            case JobKind.SplitSum:
                if (_pSave != 0)
                {
                    for (int r = 0; r < runs; r++)
                    {
                        long q = o + (r * stride);
                        new ReadOnlySpan<T>(x + q, len).CopyTo(new Span<T>((T*)_pSave + q, len));
                    }
                }

                BlockSumSquares(x + o, len, runs, stride, ChannelShift(ch), out double bs, out double bq);
                _partA[u] = bs;
                _partB[u] = bq;
                break;
            case JobKind.SplitSquares:
                _partA[u] = BlockSquares(x + o, len, runs, stride, _savedMean[ch]);
                break;
            case JobKind.SplitSumDot:
                BlockSumDot(x + o, (T*)_pDy + o, len, runs, stride, _savedMean[ch], out double sd, out double dd);
                _partA[u] = sd;
                _partB[u] = dd;
                break;
            default:
                for (int r = 0; r < runs; r++)
                {
                    long q = o + (r * stride);
                    if (_job == JobKind.SplitNormalize)
                    {
                        if (_splitCopy && _pSave != 0)
                        {
                            new ReadOnlySpan<T>(x + q, len).CopyTo(new Span<T>((T*)_pSave + q, len));
                        }

                        RunNormalize(x + q, (T*)_pY + q, len, _savedMean[ch], _chScale[ch], _chShift[ch]);
                    }
                    else if (_splitBatch)
                    {
                        RunBackwardBatch(x + q, (T*)_pDy + q, (T*)_pY + q, len, _savedMean[ch], _chK[ch], _chGradMean[ch], _chScale[ch]);
                    }
                    else
                    {
                        Kernels<T>.Scale((T*)_pDy + q, (T*)_pY + q, len, _chScale[ch]);
                    }
                }

                break;
        }
    }

    /// <summary>
    /// Row-major path for short spatial runs: the input is an (N, C·S) matrix cut into blocks of
    /// <see cref="_rowsPerBlock"/> rows (a function of N only). Each phase computes per-block column partials
    /// (a left fold over the block's rows); the caller folds the blocks in order per column, then each channel sums
    /// its S columns left to right. Threads take whole blocks, so the order never depends on the thread count.
    /// </summary>
    private void RunRows(int threads)
    {
        int c = NumFeatures;
        int s = _jobS;
        int n = _jobN;
        int columns = c * s;
        _rowsPerBlock = Math.Max(RowBlockMinRows, (n + RowBlockMaxBlocks - 1) / RowBlockMaxBlocks);
        int blocks = (n + _rowsPerBlock - 1) / _rowsPerBlock;
        _units = blocks;
        long parts = (long)blocks * columns;
        if (_partA.Length < parts)
        {
            _partA = new double[parts];
            _partB = new double[parts];
        }

        if (_colMean.Length < columns)
        {
            _colMean = new double[columns];
            _colScale = new double[columns];
            _colShift = new double[columns];
            _colExtra = new double[columns];
        }

        int workers = Math.Min(threads, blocks);
        long count = (long)n * s;
        switch (_job)
        {
            case JobKind.ForwardBatch:
                _job = JobKind.RowSum;
                RunPhase(workers);
                for (int ch = 0; ch < c; ch++)
                {
                    double m = FoldRowParts(_partA, ch, blocks) / count;
                    _savedMean[ch] = m;
                    _colMean.AsSpan(ch * s, s).Fill(m);
                }

                _job = JobKind.RowSquares;
                RunPhase(workers);
                for (int ch = 0; ch < c; ch++)
                {
                    double varSum = FoldRowParts(_partA, ch, blocks);
                    double invstd = 1.0 / Math.Sqrt((varSum / count) + Eps);
                    _varSum[ch] = varSum;
                    _savedInvstd[ch] = invstd;
                    _colScale.AsSpan(ch * s, s).Fill(invstd * _savedWeight[ch]);
                    _colShift.AsSpan(ch * s, s).Fill(_bias is null ? 0.0 : Kernels<T>.ToDoublePublic(_bias[ch]));
                }

                FoldNonFiniteScaleColumns(c, s);
                _splitCopy = false;
                _job = JobKind.RowNormalize;
                RunPhase(workers);
                break;

            case JobKind.ForwardFixed:
                for (int ch = 0; ch < c; ch++)
                {
                    _colMean.AsSpan(ch * s, s).Fill(_savedMean[ch]);
                    _colScale.AsSpan(ch * s, s).Fill(_savedInvstd[ch] * _savedWeight[ch]);
                    _colShift.AsSpan(ch * s, s).Fill(_bias is null ? 0.0 : Kernels<T>.ToDoublePublic(_bias[ch]));
                }

                FoldNonFiniteScaleColumns(c, s);
                _splitCopy = true;
                _job = JobKind.RowNormalize;
                RunPhase(workers);
                break;

            default:
                _splitBatch = _job == JobKind.BackwardBatch;
                for (int ch = 0; ch < c; ch++)
                {
                    _colMean.AsSpan(ch * s, s).Fill(_savedMean[ch]);
                    _colScale.AsSpan(ch * s, s).Fill(_savedInvstd[ch] * _savedWeight[ch]);
                }

                _job = JobKind.RowSumDot;
                RunPhase(workers);
                for (int ch = 0; ch < c; ch++)
                {
                    double sumDy = FoldRowParts(_partA, ch, blocks);
                    double dot = FoldRowParts(_partB, ch, blocks);
                    double invstd = _savedInvstd[ch];
                    _gradWeight[ch] = dot * invstd;
                    _gradBias[ch] = sumDy;
                    _colShift.AsSpan(ch * s, s).Fill(dot * invstd * invstd / count); // k
                    _colExtra.AsSpan(ch * s, s).Fill(sumDy / count);                 // mean of dy
                }

                _job = JobKind.RowBackward;
                RunPhase(workers);
                break;
        }
    }

    /// <summary>Channel total: per column fold the block partials in block order, then the S columns left to right.</summary>
    private double FoldRowParts(double[] parts, int ch, int blocks)
    {
        int s = _jobS;
        int columns = NumFeatures * s;
        double total = 0;
        for (int j = ch * s; j < (ch + 1) * s; j++)
        {
            double column = 0;
            for (int b = 0; b < blocks; b++)
            {
                column += parts[((long)b * columns) + j];
            }

            total += column;
        }

        return total;
    }

    /// <summary>
    /// Columns whose scale α is not finite get libtorch's folded form x·α + (b − μ·α) (mean 0, shift
    /// b − μ·α): see <see cref="RunNormalize"/> for why the evaluation order matters there.
    /// </summary>
    private void FoldNonFiniteScaleColumns(int channels, int spatial)
    {
        for (int ch = 0; ch < channels; ch++)
        {
            int first = ch * spatial;
            double scale = _colScale[first];
            if (!double.IsFinite(scale))
            {
                double shift = _colShift[first] - (_colMean[first] * scale);
                _colMean.AsSpan(first, spatial).Clear();
                _colShift.AsSpan(first, spatial).Fill(shift);
            }
        }
    }

    private void RunRowBlock(int block)
    {
        int columns = NumFeatures * _jobS;
        int r0 = block * _rowsPerBlock;
        int r1 = Math.Min(_jobN, r0 + _rowsPerBlock);
        T* x = (T*)_pX;
        fixed (double* pa = _partA)
        fixed (double* pb = _partB)
        fixed (double* mean = _colMean)
        fixed (double* scale = _colScale)
        fixed (double* shift = _colShift)
        fixed (double* extra = _colExtra)
        {
            double* acc = pa + ((long)block * columns);
            double* acc2 = pb + ((long)block * columns);
            switch (_job)
            {
                case JobKind.RowSum:
                    new Span<double>(acc, columns).Clear();
                    for (int i = r0; i < r1; i++)
                    {
                        long o = (long)i * columns;
                        if (_pSave != 0)
                        {
                            new ReadOnlySpan<T>(x + o, columns).CopyTo(new Span<T>((T*)_pSave + o, columns));
                        }

                        Kernels<T>.AddColumns(x + o, acc, columns);
                    }

                    break;

                case JobKind.RowSquares:
                    new Span<double>(acc, columns).Clear();
                    for (int i = r0; i < r1; i++)
                    {
                        Kernels<T>.AddSquaredDeviationColumns(x + ((long)i * columns), mean, acc, columns);
                    }

                    break;

                case JobKind.RowNormalize:
                    for (int i = r0; i < r1; i++)
                    {
                        long o = (long)i * columns;
                        if (_splitCopy && _pSave != 0)
                        {
                            new ReadOnlySpan<T>(x + o, columns).CopyTo(new Span<T>((T*)_pSave + o, columns));
                        }

                        Kernels<T>.NormalizeColumns(x + o, (T*)_pY + o, mean, scale, shift, columns);
                    }

                    break;

                case JobKind.RowSumDot:
                    new Span<double>(acc, columns).Clear();
                    new Span<double>(acc2, columns).Clear();
                    for (int i = r0; i < r1; i++)
                    {
                        long o = (long)i * columns;
                        Kernels<T>.AddSumDotColumns(x + o, (T*)_pDy + o, mean, acc, acc2, columns);
                    }

                    break;

                default:
                    for (int i = r0; i < r1; i++)
                    {
                        long o = (long)i * columns;
                        if (_splitBatch)
                        {
                            Kernels<T>.BackwardBatchColumns(x + o, (T*)_pDy + o, (T*)_pY + o, mean, shift, extra, scale, columns);
                        }
                        else
                        {
                            Kernels<T>.ScaleColumns((T*)_pDy + o, (T*)_pY + o, scale, columns);
                        }
                    }

                    break;
            }
        }
    }

    // ---- Per-run kernel selection: float uses FloatKernels (float FMA arithmetic with shifted/compensated
    // statistics, see its remarks), double the double kernels. Both are fixed-order functions of the run.

    private static bool IsFloat => typeof(T) == typeof(float);

    /// <summary>The shift c for the float statistics (so float partials add deviations, not magnitudes): the mean of
    /// up to 16 elements sampled evenly over the channel, rounded to float; 0 for double. A function of the data and
    /// shape only.</summary>
    private double ChannelShift(int ch)
    {
        if (!IsFloat)
        {
            return 0.0;
        }

        long s = _jobS;
        long count = _jobN * s;
        int samples = (int)Math.Min(ShiftSamples, count);
        float* x = (float*)_pX;
        double total = 0;
        for (int k = 0; k < samples; k++)
        {
            long p = k * count / samples;
            long n = p / s;
            total += x[(((n * NumFeatures) + ch) * s) + (p - (n * s))];
        }

        return (float)(total / samples);
    }

    private const int ShiftSamples = 16;

    /// <summary>double data: Σx over the group's runs (left fold of the per-run kernel sums).</summary>
    private static double BlockSum(T* x, int length, int runs, long stride)
    {
        double total = 0;
        for (int r = 0; r < runs; r++)
        {
            total += Kernels<T>.Sum(x + (r * stride), length);
        }

        return total;
    }

    /// <summary>First statistics pass: Σ(x − shift) and (float only) Σ(x − shift)², see <see cref="TryShiftedVarSum"/>.</summary>
    private static void BlockSumSquares(T* x, int length, int runs, long stride, double shift, out double sum, out double squares)
    {
        if (IsFloat)
        {
            FloatKernels.SumAndSquaresShifted((float*)x, length, runs, stride, (float)shift, out sum, out squares);
            return;
        }

        sum = BlockSum(x, length, runs, stride);
        squares = double.NaN;
    }

    /// <summary>
    /// float: Σ(x − μ)² = Σ(x − c)² − n·(μ − c)² with c the shift (<see cref="ChannelShift"/>), taken from the
    /// first pass when that cancels at most 3/4 of Σ(x − c)², i.e. |μ − c| ≤ √3·σ (the float partials' relative error,
    /// typically ≪ u, grows by at most 4×). Otherwise (c far from μ in units of σ, or double data) returns
    /// false and the caller runs the second pass Σ(x − μ_hi)². The decision depends only on the folded totals, never on
    /// the thread count.
    /// </summary>
    private static bool TryShiftedVarSum(double shiftedSquares, double mean, double shift, long count, out double varSum)
    {
        double d = mean - shift;
        double correction = count * d * d;
        if (IsFloat && correction <= 0.75 * shiftedSquares)
        {
            varSum = shiftedSquares - correction;
            return true;
        }

        varSum = 0;
        return false;
    }

    private static double BlockSquares(T* x, int length, int runs, long stride, double mean)
    {
        if (IsFloat)
        {
            return FloatKernels.SumSquaresAbout((float*)x, length, runs, stride, (float)mean);
        }

        double total = 0;
        for (int r = 0; r < runs; r++)
        {
            total += Kernels<T>.SumSquaredDeviations(x + (r * stride), length, mean);
        }

        return total;
    }

    /// <summary>float: Σ(x − μ)² = Σ(x − μ_hi)² − n·μ_lo² (exact identity; μ_hi is the float nearest μ, so the
    /// correction is at most about half the raw sum), clamped at 0.</summary>
    private static double FinishVarSum(double raw, double mean, long count)
    {
        if (!IsFloat)
        {
            return raw;
        }

        double lo = mean - (float)mean;
        return Math.Max(raw - (count * lo * lo), 0.0);
    }

    private static void BlockSumDot(T* x, T* dy, int length, int runs, long stride, double mean, out double sumDy, out double dot)
    {
        if (IsFloat)
        {
            FloatKernels.SumAndDotAbout((float*)x, (float*)dy, length, runs, stride, (float)mean, out sumDy, out dot);
            return;
        }

        sumDy = 0;
        dot = 0;
        for (int r = 0; r < runs; r++)
        {
            Kernels<T>.SumAndDot(x + (r * stride), dy + (r * stride), length, mean, out double sd, out double dd);
            sumDy += sd;
            dot += dd;
        }
    }

    /// <summary>float: Σ(x − μ)·dy = Σ(x − μ_hi)·dy − μ_lo·Σdy.</summary>
    private static double FinishDot(double raw, double sumDy, double mean) =>
        IsFloat ? raw - ((mean - (float)mean) * sumDy) : raw;

    /// <summary>y = (x − mean)·scale + shift (double: in double, rounded once; float: see FloatKernels).</summary>
    private static void RunNormalize(T* x, T* y, int length, double mean, double scale, double shift)
    {
        if (!double.IsFinite(scale))
        {
            // α = invstd·weight is ±∞ or NaN (var + eps = 0, e.g. a negative running_var from momentum
            // outside [0, 1], or a non-finite weight). Which non-finite value comes out (NaN or ±∞)
            // depends on the evaluation order, so use libtorch's folded x·α + (b − μ·α) here, as PyTorch does.
            Kernels<T>.Normalize(x, y, length, 0, scale, shift - (mean * scale));
            return;
        }

        if (IsFloat)
        {
            float m = (float)mean;
            double lo = mean - m;
            float hi = (float)scale;
            FloatKernels.Normalize((float*)x, (float*)y, length, m, hi, (float)(scale - hi), (float)(shift - (lo * scale)));
        }
        else
        {
            Kernels<T>.Normalize(x, y, length, mean, scale, shift);
        }
    }

    /// <summary>dx = (dy − gradMean − (x − mean)·k)·scale. float: dx = fma(dy, A, fma(x − μ_hi, K, C)) with
    /// A = scale, K = −k·scale, C = (μ_lo·k − gradMean)·scale, each rounded once from double.</summary>
    private static void RunBackwardBatch(T* x, T* dy, T* dx, int length, double mean, double k, double gradMean, double scale, bool nonTemporal = false)
    {
        if (IsFloat)
        {
            float m = (float)mean;
            double lo = mean - m;
            FloatKernels.Backward((float*)x, (float*)dy, (float*)dx, length, m, (float)(-k * scale), (float)(((lo * k) - gradMean) * scale), (float)scale, nonTemporal);
        }
        else
        {
            Kernels<T>.BackwardBatch(x, dy, dx, length, mean, k, gradMean, scale);
        }
    }

    /// <summary>All work for one channel: its data is N runs of S contiguous elements at (n·C + c)·S.</summary>
    private void RunChannel(int ch)
    {
        int nBatch = _jobN;
        int s = _jobS;
        long stride = (long)NumFeatures * s;
        long first = (long)ch * s;
        long count = (long)nBatch * s;
        int group = _runsPerGroup;
        T* x = (T*)_pX;
        switch (_job)
        {
            case JobKind.ForwardBatch:
            {
                T* y = (T*)_pY;
                T* save = (T*)_pSave;
                double shift = ChannelShift(ch);
                double sum = 0, shiftedSquares = 0;
                for (int g0 = 0; g0 < nBatch; g0 += group)
                {
                    int runs = Math.Min(group, nBatch - g0);
                    long o = first + (g0 * stride);
                    if (save != null)
                    {
                        for (int r = 0; r < runs; r++)
                        {
                            long q = o + (r * stride);
                            new ReadOnlySpan<T>(x + q, s).CopyTo(new Span<T>(save + q, s));
                        }
                    }

                    for (int b = 0; b < s; b += Block)
                    {
                        BlockSumSquares(x + o + b, Math.Min(Block, s - b), runs, stride, shift, out double bs, out double bq);
                        sum += bs;
                        shiftedSquares += bq;
                    }
                }

                double mean = shift + (sum / count);
                if (!TryShiftedVarSum(shiftedSquares, mean, shift, count, out double varSum))
                {
                    varSum = 0;
                    for (int g0 = 0; g0 < nBatch; g0 += group)
                    {
                        int runs = Math.Min(group, nBatch - g0);
                        long o = first + (g0 * stride);
                        for (int b = 0; b < s; b += Block)
                        {
                            varSum += BlockSquares(x + o + b, Math.Min(Block, s - b), runs, stride, mean);
                        }
                    }

                    varSum = FinishVarSum(varSum, mean, count);
                }

                double invstd = 1.0 / Math.Sqrt((varSum / count) + Eps);
                double scale = invstd * _savedWeight[ch];
                double bias = _bias is null ? 0.0 : Kernels<T>.ToDoublePublic(_bias[ch]);
                for (int i = 0; i < nBatch; i++)
                {
                    long o = first + (i * stride);
                    RunNormalize(x + o, y + o, s, mean, scale, bias);
                }

                _savedMean[ch] = mean;
                _savedInvstd[ch] = invstd;
                _varSum[ch] = varSum;
                break;
            }

            case JobKind.ForwardFixed:
            {
                T* y = (T*)_pY;
                T* save = (T*)_pSave;
                double mean = _savedMean[ch];
                double scale = _savedInvstd[ch] * _savedWeight[ch];
                double shift = _bias is null ? 0.0 : Kernels<T>.ToDoublePublic(_bias[ch]);
                for (int i = 0; i < nBatch; i++)
                {
                    long o = first + (i * stride);
                    if (save != null)
                    {
                        new ReadOnlySpan<T>(x + o, s).CopyTo(new Span<T>(save + o, s));
                    }

                    RunNormalize(x + o, y + o, s, mean, scale, shift);
                }

                break;
            }

            case JobKind.BackwardBatch:
            case JobKind.BackwardFixed:
            {
                T* dy = (T*)_pDy;
                T* dx = (T*)_pY;
                double mean = _savedMean[ch];
                double invstd = _savedInvstd[ch];
                double scale = invstd * _savedWeight[ch];
                double sumDy = 0, dot = 0;
                for (int g0 = 0; g0 < nBatch; g0 += group)
                {
                    int runs = Math.Min(group, nBatch - g0);
                    long o = first + (g0 * stride);
                    for (int b = 0; b < s; b += Block)
                    {
                        BlockSumDot(x + o + b, dy + o + b, Math.Min(Block, s - b), runs, stride, mean, out double sd, out double dd);
                        sumDy += sd;
                        dot += dd;
                    }
                }

                dot = FinishDot(dot, sumDy, mean);

                if (_job == JobKind.BackwardBatch)
                {
                    double k = dot * invstd * invstd / count;
                    double gradMean = sumDy / count;
                    for (int i = 0; i < nBatch; i++)
                    {
                        long o = first + (i * stride);
                        RunBackwardBatch(x + o, dy + o, dx + o, s, mean, k, gradMean, scale, _streamGradInput);
                    }
                }
                else
                {
                    for (int i = 0; i < nBatch; i++)
                    {
                        long o = first + (i * stride);
                        Kernels<T>.Scale(dy + o, dx + o, s, scale);
                    }
                }

                _gradWeight[ch] = dot * invstd;
                _gradBias[ch] = sumDy;
                break;
            }
        }
    }
}
