using System.Numerics;

namespace BnParity;

/// <content>
/// The orchestration of a call, behind the public surface: entering the concurrency guard, renting the per-call
/// <see cref="NormalizationEngine{T}"/>, running it over pinned buffers, and committing its results (saved backward context,
/// running statistics) only after it succeeded.
/// </content>
public abstract unsafe partial class BatchNorm<T>
{
    private bool UsesBatchStats => _training || !TrackRunningStats;

    /// <summary>Enters a forward call: shared when it writes nothing of the module (eval statistics or batch
    /// statistics without running stats, and nothing saved for backward), else exclusive. The mode is read after
    /// entering, when no setter can change it any more.</summary>
    /// <returns>Whether the call is exclusive.</returns>
    private bool EnterForward()
    {
        _guard.EnterShared();
        if ((_training && TrackRunningStats) || _saveForBackward)
        {
            _guard.UpgradeToExclusive();
            return true;
        }

        return false;
    }

    private void ExitCall(bool exclusive)
    {
        if (exclusive)
        {
            _guard.ExitExclusive();
        }
        else
        {
            _guard.ExitShared();
        }
    }

    /// <summary>The (N, S) the engine runs over: (N, spatial) for channels-first; for channels-last the (N·spatial, C)
    /// matrix the data is in memory, i.e. N·spatial runs of one element per channel (validation has checked that
    /// N·spatial fits an int, as the element count does).</summary>
    private static (int N, int S) EngineRuns(ReadOnlySpan<int> shape, MemoryLayout layout) =>
        layout == MemoryLayout.ChannelsLast ? (shape[0] * SpatialCount(shape), 1) : (shape[0], SpatialCount(shape));

    private NormalizationEngine<T> RentEngine() => Interlocked.Exchange(ref _idleEngine, null) ?? new NormalizationEngine<T>(NumFeatures);

    private void ReturnEngine(NormalizationEngine<T> engine) => Volatile.Write(ref _idleEngine, engine);

    /// <summary>Runs a validated forward and commits its results.</summary>
    /// <param name="input">The input values.</param>
    /// <param name="shape">The input's shape.</param>
    /// <param name="destination">Receives the output (may be the input's own buffer).</param>
    /// <param name="inputArray">The input's own array when it may be saved by reference (DenseTensor overloads,
    /// not in place); null to copy.</param>
    /// <param name="layout">The memory layout of input and destination.</param>
    private void ForwardCore(ReadOnlySpan<T> input, ReadOnlySpan<int> shape, Span<T> destination, T[]? inputArray, MemoryLayout layout = MemoryLayout.ChannelsFirst)
    {
        // Everything is validated. Allocation (the only thing that can fail before the run) happens first; the run
        // writes only the destination and the call's own engine (and the staging copy of the input); the module's
        // saved context and running statistics are written after the run succeeded, so a failure anywhere leaves the
        // module as it was.
        int length = input.Length;
        bool save = _saveForBackward;
        bool copy = save && inputArray is null && length > 0;
        if (copy && _stagingInput.Length < length)
        {
            _stagingInput = new T[length];
        }

        int[]? savedShape = !save ? null
            : _savedShape is not null && _savedShape.AsSpan().SequenceEqual(shape) ? _savedShape
            : shape.ToArray();

        int c = NumFeatures;
        (int n, int s) = EngineRuns(shape, layout);
        long count = (long)n * s;
        bool batch = UsesBatchStats;
        bool updateRunning = _training && TrackRunningStats;
        NormalizationEngine<T> ex = RentEngine();
        try
        {
            ex.Begin(_eps, _maxDegreeOfParallelism, _execution);
            for (int ch = 0; ch < c; ch++)
            {
                ex.Weight[ch] = _weight is null ? 1.0 : Widening<T>.ToDouble(_weight[ch]);
                ex.Bias[ch] = _bias is null ? 0.0 : Widening<T>.ToDouble(_bias[ch]);
            }

            if (!batch)
            {
                for (int ch = 0; ch < c; ch++)
                {
                    ex.Mean[ch] = Widening<T>.ToDouble(_runningMean![ch]);
                    ex.Invstd[ch] = NormalizationEngine<T>.RunningInvstdOf(Widening<T>.ToDouble(_runningVar![ch]), _eps);
                }
            }
            else if (count == 0)
            {
                Array.Fill(ex.Mean, double.NaN);
                Array.Fill(ex.Invstd, double.NaN);
            }

            if (length > 0)
            {
                fixed (T* px = input)
                fixed (T* py = destination)
                fixed (T* ps = _stagingInput)
                {
                    ex.RunForward(px, py, copy ? ps : null, n, s, batch);
                }
            }

            // Commit: nothing below can fail.
            _savedShape = savedShape;
            if (save)
            {
                ex.Mean.CopyTo(_savedMean, 0);
                ex.Invstd.CopyTo(_savedInvstd, 0);
                ex.Weight.CopyTo(_savedWeight, 0);
                _savedBatchStats = batch;
                _savedLayout = layout;
                _savedRef = copy ? null : inputArray;
                if (copy)
                {
                    (_savedInput, _stagingInput) = (_stagingInput, _savedInput);
                }
            }
            else
            {
                _savedRef = null;
            }

            if (updateRunning)
            {
                UpdateRunningStatistics(ex.Mean, ex.VarSum, count);
            }
        }
        finally
        {
            ReturnEngine(ex);
        }
    }

    /// <summary>num_batches_tracked + 1, then (for a non-empty batch) running = f·stat + (1 − f)·running with
    /// f = momentum ?? 1/num_batches_tracked and the unbiased variance varSum/(n − 1); blended in double and
    /// rounded once to T (libtorch's order).</summary>
    private void UpdateRunningStatistics(double[] mean, double[] varSum, long count)
    {
        _numBatchesTracked++;
        if (count == 0)
        {
            return;
        }

        double f = _momentum ?? 1.0 / _numBatchesTracked;
        for (int ch = 0; ch < NumFeatures; ch++)
        {
            double rm = Widening<T>.ToDouble(_runningMean![ch]);
            double rv = Widening<T>.ToDouble(_runningVar![ch]);
            _runningMean[ch] = Widening<T>.FromDouble(NormalizationEngine<T>.RunningBlend(f, mean[ch], rm));
            _runningVar[ch] = Widening<T>.FromDouble(NormalizationEngine<T>.RunningBlend(f, NormalizationEngine<T>.UnbiasedVariance(varSum[ch], count), rv));
        }
    }

    private void BackwardCore(ReadOnlySpan<T> gradOutput, Span<T> gradInput, Span<T> gradWeight, Span<T> gradBias)
    {
        int[] shape = _savedShape!;
        int length = gradOutput.Length;
        int c = NumFeatures;
        NormalizationEngine<T> ex = RentEngine();
        try
        {
            ex.Begin(_eps, _maxDegreeOfParallelism, _execution);
            _savedMean.CopyTo(ex.Mean, 0);
            _savedInvstd.CopyTo(ex.Invstd, 0);
            _savedWeight.CopyTo(ex.Weight, 0);
            Array.Clear(ex.GradWeight);
            Array.Clear(ex.GradBias);
            if (length > 0)
            {
                fixed (T* pdy = gradOutput)
                fixed (T* pdx = gradInput)
                fixed (T* ps = _savedRef ?? _savedInput)
                {
                    (int n, int s) = EngineRuns(shape, _savedLayout);
                    ex.RunBackward(ps, pdy, pdx, n, s, _savedBatchStats);
                }
            }

            if (!gradWeight.IsEmpty)
            {
                for (int ch = 0; ch < c; ch++)
                {
                    gradWeight[ch] = Widening<T>.FromDouble(ex.GradWeight[ch]);
                    gradBias[ch] = Widening<T>.FromDouble(ex.GradBias[ch]);
                }
            }
        }
        finally
        {
            ReturnEngine(ex);
        }
    }
}
