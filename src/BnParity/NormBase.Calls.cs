using System.Numerics;

namespace BnParity;

/// <content>
/// The orchestration of a call, behind the public surface: entering the concurrency guard, renting the per-call
/// <see cref="NormalizationEngine{T}"/>, running it over pinned buffers, and committing its results (saved backward context,
/// running statistics) only after it succeeded.
/// </content>
public abstract unsafe partial class NormBase<T>
{
    private protected bool UsesBatchStats => _training || !TrackRunningStats;

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

    /// <summary>Takes the idle engine when it holds exactly <paramref name="channels"/> channels (a BatchNorm's always
    /// does), else makes one of that size (an InstanceNorm's channels-first view grows with the batch).</summary>
    private NormalizationEngine<T> RentEngine(int channels)
    {
        NormalizationEngine<T>? idle = Interlocked.Exchange(ref _idleEngine, null);
        return idle is not null && idle.Capacity == channels ? idle : new NormalizationEngine<T>(channels);
    }

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
        // writes only the destination and the call's own engine and scratch (and the staging copy of the input); the
        // module's saved context and running statistics are written after the run succeeded, so a failure anywhere
        // leaves the module as it was.
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

        InputDims dims = DimsOf(shape);
        ReductionView view = ViewOf(dims, layout);
        int channels = view.Channels;
        int total = view.TotalChannels;
        int features = ElementParameters ? NumFeatures : dims.C; // element parameters: D per element, not per set
        long count = view.SetCount;
        bool batch = UsesBatchStats;
        bool updateRunning = TrackRunningStats && UpdatesRunningStatistics(_training, dims);

        // A view of one sample reads its statistics straight from the engine; several samples (channels-last
        // instances) collect theirs per call.
        bool direct = view.Samples == 1;
        if (!direct && _callMean.Length < total)
        {
            _callMean = new double[total];
            _callInvstd = new double[total];
            _callVarSum = new double[total];
        }

        double[]? savedMean = save && _savedMean.Length != total ? new double[total] : null;
        double[]? savedInvstd = savedMean is null ? null : new double[total];
        double[]? savedWeight = save && _savedWeight.Length != channels ? new double[channels] : null;
        T[]? savedElementWeight = save && ElementParameters && _weight is not null ? (_savedElementWeight.Length == _weight.Length ? _savedElementWeight : new T[_weight.Length]) : null;
        NormalizationEngine<T> ex = RentEngine(channels);
        try
        {
            double[] mean = direct ? ex.Mean : _callMean;
            double[] invstd = direct ? ex.Invstd : _callInvstd;
            double[] varSum = direct ? ex.VarSum : _callVarSum;
            ex.Begin(_eps, _maxDegreeOfParallelism, _execution);
            for (int ch = 0; ch < channels && !ElementParameters; ch++)
            {
                // Set j takes feature j mod C's parameters (an InstanceNorm's (n, c) plane takes channel c's).
                int f = ch % features;
                ex.Weight[ch] = _weight is null ? 1.0 : Widening<T>.ToDouble(_weight[f]);
                ex.Bias[ch] = _bias is null ? 0.0 : Widening<T>.ToDouble(_bias[f]);
            }

            if (!batch)
            {
                for (int ch = 0; ch < channels; ch++)
                {
                    int f = ch % features;
                    ex.Mean[ch] = Widening<T>.ToDouble(_runningMean![f]);
                    ex.Invstd[ch] = NormalizationEngine<T>.RunningInvstdOf(Widening<T>.ToDouble(_runningVar![f]), _eps);
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
                fixed (T* pw = _weight)
                fixed (T* pb = _bias)
                {
                    if (ElementParameters)
                    {
                        // Element parameters: the forward-time weights are kept for the backward (below).
                        ex.RunElementForward(px, py, copy ? ps : null, channels, view.Spatial, pw, pb, CenteredSets);
                    }
                    else if (direct)
                    {
                        ex.RunForward(px, py, copy ? ps : null, view.Batch, channels, view.Spatial, view.ChannelsPerSet, batch);
                    }
                    else
                    {
                        ex.RunForwardSamples(px, py, copy ? ps : null, view, batch, mean, invstd, varSum);
                    }
                }
            }

            // Commit: nothing below can fail.
            _savedShape = savedShape;
            if (save)
            {
                _savedMean = savedMean ?? _savedMean;
                _savedInvstd = savedInvstd ?? _savedInvstd;
                _savedWeight = savedWeight ?? _savedWeight;
                Array.Copy(mean, _savedMean, total);
                Array.Copy(invstd, _savedInvstd, total);
                Array.Copy(ex.Weight, _savedWeight, channels);
                if (ElementParameters && _weight is not null)
                {
                    _savedElementWeight = savedElementWeight!;
                    _weight.CopyTo(_savedElementWeight, 0);
                }

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
                UpdateRunningStatistics(mean, varSum, total, features, count);
            }
        }
        finally
        {
            ReturnEngine(ex);
        }
    }

    /// <summary>
    /// num_batches_tracked + 1 when the layer counts batches, then (for a non-empty batch) per feature c:
    /// running = mean over c's channels j of T(f·stat_j + (1 − f)·running) with f = <see cref="RunningFactor"/> and the
    /// unbiased variance varSum/(n − 1); each blend in double rounded once to T (libtorch's order), the mean of the
    /// rounded blends in double rounded once more. A BatchNorm channel is one view channel, so that is the blend
    /// itself; an InstanceNorm channel has one per instance, and PyTorch blends each (its batch_norm over (1, N·C, …) with
    /// the running buffers repeated N times) and then averages them over the batch.
    /// </summary>
    private void UpdateRunningStatistics(double[] mean, double[] varSum, int total, int features, long count)
    {
        if (CountsBatches)
        {
            _numBatchesTracked++;
        }

        if (count == 0)
        {
            return;
        }

        // No instances at all (an empty InstanceNorm batch): PyTorch's mean over zero blends is NaN, and so is this.
        double f = RunningFactor(_momentum, _numBatchesTracked);
        int instances = total / features;
        for (int ch = 0; ch < features; ch++)
        {
            double rm = Widening<T>.ToDouble(_runningMean![ch]);
            double rv = Widening<T>.ToDouble(_runningVar![ch]);
            // The rounded blends are summed in T, as libtorch's mean over the batch does (a float sum of huge blends
            // overflows to ±∞ there, and so here); the first is taken as it is (0 + −0 would be +0).
            T sumMean = T.Zero, sumVar = T.Zero;
            for (int j = ch; j < total; j += features)
            {
                T blendMean = Widening<T>.FromDouble(NormalizationEngine<T>.RunningBlend(f, mean[j], rm));
                T blendVar = Widening<T>.FromDouble(NormalizationEngine<T>.RunningBlend(f, NormalizationEngine<T>.UnbiasedVariance(varSum[j], count), rv));
                (sumMean, sumVar) = j == ch ? (blendMean, blendVar) : (sumMean + blendMean, sumVar + blendVar);
            }

            _runningMean[ch] = instances == 1 ? sumMean : Widening<T>.FromDouble(Widening<T>.ToDouble(sumMean) / instances);
            _runningVar[ch] = instances == 1 ? sumVar : Widening<T>.FromDouble(Widening<T>.ToDouble(sumVar) / instances);
        }
    }

    private void BackwardCore(ReadOnlySpan<T> gradOutput, Span<T> gradInput, Span<T> gradWeight, Span<T> gradBias)
    {
        int[] shape = _savedShape!;
        int length = gradOutput.Length;
        InputDims dims = DimsOf(shape);
        ReductionView view = ViewOf(dims, _savedLayout);
        int channels = view.Channels;
        int features = ElementParameters ? NumFeatures : dims.C; // element parameters: D per element, not per set

        // A view channel per feature (BatchNorm) gives its gradients straight from the engine; otherwise each
        // feature's are the sum over its view channels, folded in sample and channel order (the same at every thread
        // count).
        bool direct = view.Samples == 1 && channels == features && !ElementParameters;
        int total = view.TotalChannels;
        if (!direct && _callGradWeight.Length < features)
        {
            _callGradWeight = new double[features];
            _callGradBias = new double[features];
        }

        if (view.Samples > 1 && _callSampleGradWeight.Length < total)
        {
            _callSampleGradWeight = new double[total];
            _callSampleGradBias = new double[total];
        }

        NormalizationEngine<T> ex = RentEngine(channels);
        try
        {
            double[] gw = direct ? ex.GradWeight : _callGradWeight;
            double[] gb = direct ? ex.GradBias : _callGradBias;
            ex.Begin(_eps, _maxDegreeOfParallelism, _execution);
            Array.Copy(_savedWeight, ex.Weight, channels);
            Array.Clear(ex.GradWeight);
            Array.Clear(ex.GradBias);
            Array.Clear(gw, 0, features);
            Array.Clear(gb, 0, features);
            if (length > 0)
            {
                fixed (T* pdy = gradOutput)
                fixed (T* pdx = gradInput)
                fixed (T* ps = _savedRef ?? _savedInput)
                {
                    if (ElementParameters)
                    {
                        Array.Copy(_savedMean, ex.Mean, channels);
                        Array.Copy(_savedInvstd, ex.Invstd, channels);
                        fixed (T* pw = _weight is null ? null : _savedElementWeight)
                        {
                            ex.RunElementBackward(ps, pdy, pdx, channels, view.Spatial, pw, CenteredSets, _callGradWeight, _callGradBias);
                        }
                    }
                    else if (view.Samples == 1)
                    {
                        Array.Copy(_savedMean, ex.Mean, channels);
                        Array.Copy(_savedInvstd, ex.Invstd, channels);
                        ex.RunBackward(ps, pdy, pdx, view.Batch, channels, view.Spatial, view.ChannelsPerSet, _savedBatchStats);
                    }
                    else
                    {
                        ex.RunBackwardSamples(ps, pdy, pdx, view, _savedBatchStats, _savedMean, _savedInvstd, _callSampleGradWeight, _callSampleGradBias);
                    }
                }

                if (!direct && !ElementParameters)
                {
                    double[] channelGradWeight = view.Samples == 1 ? ex.GradWeight : _callSampleGradWeight;
                    double[] channelGradBias = view.Samples == 1 ? ex.GradBias : _callSampleGradBias;
                    for (int j = 0; j < total; j++)
                    {
                        // The first term is taken as it is (0 + −0 would turn a −0 gradient into +0).
                        int f = j % features;
                        bool first = j < features;
                        gw[f] = first ? channelGradWeight[j] : gw[f] + channelGradWeight[j];
                        gb[f] = first ? channelGradBias[j] : gb[f] + channelGradBias[j];
                    }
                }
            }

            if (!gradWeight.IsEmpty)
            {
                for (int ch = 0; ch < features; ch++)
                {
                    gradWeight[ch] = Widening<T>.FromDouble(gw[ch]);
                }
            }

            if (!gradBias.IsEmpty)
            {
                for (int ch = 0; ch < features; ch++)
                {
                    gradBias[ch] = Widening<T>.FromDouble(gb[ch]);
                }
            }
        }
        finally
        {
            ReturnEngine(ex);
        }
    }
}
