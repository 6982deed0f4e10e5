namespace BnParity;

/// <content>The channel path: threads take whole channels.</content>
internal sealed unsafe partial class NormalizationEngine<T>
{
    /// <summary>Per-channel output coefficients of the sweep (<see cref="RunSweep"/>).</summary>
    private readonly NormalizeCoefficients[] _chNormalize;

    /// <summary>Runs every channel: on the caller, or with threads taking contiguous ranges of whole channels. A
    /// forward with fixed statistics has no per-channel reduction, so it sweeps the input in memory order instead
    /// (<see cref="RunSweep"/>).</summary>
    private void RunChannels(int threads)
    {
        if (_call == CallKind.ForwardFixed)
        {
            RunSweep(threads);
            return;
        }

        if (_element && _call == CallKind.BackwardBatch)
        {
            // Element parameters: fixed blocks of sets, each with its own gradient partials.
            _units = _elementBlocks;
            _phase = Phase.ElementBlocks;
            RunPhase(Math.Min(threads, _elementBlocks));
            return;
        }

        int workers = Math.Min(threads, _c);
        _units = _c;
        if (workers <= 1)
        {
            for (int ch = 0; ch < _c; ch++)
            {
                RunChannel(ch);
            }

            return;
        }

        RunPhase(workers);
    }

    /// <summary>All work for one channel: its data is N runs of S contiguous elements at (n·C + c)·S.</summary>
    private void RunChannel(int ch)
    {
        WorkItemStarting();
        int nBatch = _jobN;
        int s = _jobS;
        long stride = (long)_c * s;
        long first = (long)ch * s;
        long count = (long)nBatch * s;
        int group = _runsPerGroup;
        T* x = (T*)_pX;
        switch (_call)
        {
            case CallKind.ForwardBatch:
            case CallKind.Statistics:
            case CallKind.ForwardSets:
            {
                T* y = (T*)_pOut;
                (double mean, double varSum) = ChannelStatistics(ch);
                double invstd = _element ? ElementInvstdOf(varSum / count, _eps) : InvstdOf(varSum / count, _eps);
                if (_call == CallKind.ForwardBatch && _element)
                {
                    // One run of D elements: x̂ (the set's own coefficients, weight 1, bias 0, kept in cache for the
                    // element parameters right after), then y = x̂·w + b per element.
                    NormalizeElementSet(x + first, y + first, s, mean, invstd);
                }
                else if (_call == CallKind.ForwardBatch)
                {
                    double scale = invstd * Weight[ch];
                    double bias = Bias[ch];
                    for (int i = 0; i < nBatch; i++)
                    {
                        long o = first + (i * stride);
                        RunNormalize(x + o, y + o, s, mean, scale, bias, _streamOutput);
                    }
                }
                else if (_call == CallKind.ForwardSets)
                {
                    // One run (N = 1): the set's K channels lie one after the other, each with its own parameters
                    // (channel ch·K + j of the per-channel arrays).
                    for (int j = 0; j < _setChannels; j++)
                    {
                        int channel = (ch * _setChannels) + j;
                        long o = first + ((long)j * _channelSpatial);
                        RunNormalize(x + o, y + o, _channelSpatial, mean, invstd * Weight[channel], Bias[channel], _streamOutput);
                    }
                }

                Mean[ch] = mean;
                Invstd[ch] = invstd;
                VarSum[ch] = varSum;
                break;
            }

            case CallKind.BackwardBatch:
            case CallKind.BackwardFixed:
            case CallKind.BackwardSums:
            {
                T* dy = (T*)_pDy;
                T* dx = (T*)_pOut;
                double mean = Mean[ch];
                double invstd = Invstd[ch];
                double scale = invstd * Weight[ch];
                double sumDy = 0, dot = 0;
                for (long g0 = 0; g0 < nBatch; g0 += group)
                {
                    int runs = (int)Math.Min(group, nBatch - g0);
                    long o = first + (g0 * stride);
                    for (long b = 0; b < s; b += Block)
                    {
                        BlockSumDot(x + o + b, dy + o + b, (int)Math.Min(Block, s - b), runs, stride, mean, out double sd, out double dd);
                        sumDy += sd;
                        dot += dd;
                    }
                }

                dot = FinishDot(dot, sumDy, mean);
                var terms = ChannelBackward.From(dot, sumDy, invstd, count);
                if (_call == CallKind.BackwardBatch)
                {
                    for (int i = 0; i < nBatch; i++)
                    {
                        long o = first + (i * stride);
                        RunBackwardBatch(x + o, dy + o, dx + o, s, mean, terms.K, terms.GradMean, scale, 1, _streamOutput);
                    }
                }
                else if (_call == CallKind.BackwardSums)
                {
                    SumDot[ch] = dot;
                }
                else
                {
                    for (int i = 0; i < nBatch; i++)
                    {
                        long o = first + (i * stride);
                        Kernels<T>.Scale(dy + o, dx + o, s, scale);
                    }
                }

                GradWeight[ch] = terms.GradWeight;
                GradBias[ch] = terms.GradBias;
                break;
            }

            case CallKind.BackwardSets:
            {
                // Set ch of a one-run view: channel j of the set is the run of S elements at first + j·S. Its sums are
                // BackwardSums' (one run, the same blocks), then the set's terms, then dx, all in this set's cache.
                T* dy = (T*)_pDy;
                T* dx = (T*)_pOut;
                int k = _setChannels, channelSpatial = _channelSpatial;
                for (int j = 0; j < k; j++)
                {
                    int channel = (ch * k) + j;
                    long o = first + ((long)j * channelSpatial);
                    double mean = Mean[channel];
                    double sumDy = 0, dot = 0;
                    for (long b = 0; b < channelSpatial; b += Block)
                    {
                        BlockSumDot(x + o + b, dy + o + b, (int)Math.Min(Block, channelSpatial - b), 1, stride, mean, out double sd, out double dd);
                        sumDy += sd;
                        dot += dd;
                    }

                    dot = FinishDot(dot, sumDy, mean);
                    var terms = ChannelBackward.From(dot, sumDy, Invstd[channel], channelSpatial);
                    GradWeight[channel] = terms.GradWeight;
                    GradBias[channel] = terms.GradBias;
                    SumDot[channel] = dot;
                }

                CombineSet(ch * k, k, count);
                for (int j = 0; j < k; j++)
                {
                    int channel = (ch * k) + j;
                    long o = first + ((long)j * channelSpatial);
                    RunBackwardBatch(x + o, dy + o, dx + o, channelSpatial, Mean[channel], _chK[channel], _chGradMean[channel], _chScale[channel], _chDyScale[channel], _streamOutput);
                }

                break;
            }

            case CallKind.BackwardApply:
                for (int i = 0; i < nBatch; i++)
                {
                    long o = first + (i * stride);
                    RunBackwardBatch(x + o, (T*)_pDy + o, (T*)_pOut + o, s, Mean[ch], _chK[ch], _chGradMean[ch], _chScale[ch], _chDyScale[ch], _streamOutput);
                }

                break;
        }
    }

    /// <summary>Channel <paramref name="ch"/>'s batch statistics (mean, Σ(x − mean)²) over its N runs, in the canonical
    /// block order, saving each group of runs just before reading it when the call saves the input: the shifted first pass, the second pass when
    /// the shift cancels too much, the held and trusted variance. A set that is not <see cref="_centered"/> (RMSNorm)
    /// has mean 0 and Σx² from one pass about 0.</summary>
    private (double Mean, double VarSum) ChannelStatistics(int ch)
    {
        int nBatch = _jobN;
        int s = _jobS;
        long stride = (long)_c * s;
        long first = (long)ch * s;
        long count = (long)nBatch * s;
        int group = _runsPerGroup;
        T* x = (T*)_pX;
        T* save = (T*)_pSave;
        double mean, varSum;
        if (!_centered)
        {
            double squares = 0;
            for (long g0 = 0; g0 < nBatch; g0 += group)
            {
                int runs = (int)Math.Min(group, nBatch - g0);
                long o = first + (g0 * stride);
                SaveRuns(x, save, o, runs, stride, s);
                for (long b = 0; b < s; b += Block)
                {
                    BlockSecondPass(x + o + b, (int)Math.Min(Block, s - b), runs, stride, 0.0, out _, out double bq);
                    squares += bq;
                }
            }

            return (0.0, HeldVarSum(TrustedVarSum(ch, 0.0, squares, count)));
        }

        double shift = ChannelShift(ch);
        double sum = 0, shiftedSquares = 0;
        for (long g0 = 0; g0 < nBatch; g0 += group)
        {
            int runs = (int)Math.Min(group, nBatch - g0);
            long o = first + (g0 * stride);
            SaveRuns(x, save, o, runs, stride, s);
            for (long b = 0; b < s; b += Block)
            {
                BlockSumSquares(x + o + b, (int)Math.Min(Block, s - b), runs, stride, shift, out double bs, out double bq);
                sum += bs;
                shiftedSquares += bq;
            }
        }

        mean = TrustedMean(ch, shift + (sum / count));
        if (!TryShiftedVarSum(shiftedSquares, mean, shift, count, out varSum))
        {
            double sum2 = 0, squares2 = 0;
            for (long g0 = 0; g0 < nBatch; g0 += group)
            {
                int runs = (int)Math.Min(group, nBatch - g0);
                long o = first + (g0 * stride);
                for (long b = 0; b < s; b += Block)
                {
                    BlockSecondPass(x + o + b, (int)Math.Min(Block, s - b), runs, stride, mean, out double bs, out double bq);
                    sum2 += bs;
                    squares2 += bq;
                }
            }

            (mean, varSum) = FinishSecondPass(sum2, squares2, mean, count);
        }

        return (mean, HeldVarSum(TrustedVarSum(ch, mean, varSum, count)));
    }

    /// <summary>Copies a group's runs into the saved input (none when <paramref name="save"/> is null), just before
    /// the statistics read them.</summary>
    private static void SaveRuns(T* x, T* save, long offset, int runs, long stride, int length)
    {
        if (save != null)
        {
            for (int r = 0; r < runs; r++)
            {
                SaveRun(x, save, offset + (r * stride), length);
            }
        }
    }

    /// <summary>
    /// Eval forward (fixed statistics) in memory order: the N·C runs of S elements are taken in the order they lie
    /// in memory, threads taking contiguous ranges of runs. Every output depends only on its own input and its
    /// channel's coefficients, so the result is the per-channel result bit for bit; one forward stream is what the
    /// hardware prefetchers follow best (a channel-major sweep jumps C·S elements after every run of S).
    /// </summary>
    private void RunSweep(int threads)
    {
        for (int ch = 0; ch < _c; ch++)
        {
            _chNormalize[ch] = NormalizeCoefficients.Of(Mean[ch], Invstd[ch] * Weight[ch], Bias[ch]);
        }

        _units = (long)_jobN * _c;
        _phase = Phase.Sweep;
        RunPhase((int)Math.Min(threads, _units));
    }

    /// <summary>Runs [<paramref name="first"/>, <paramref name="end"/>) of the sweep (run r is channel r mod C).</summary>
    private void RunSweepRuns(long first, long end)
    {
        int s = _jobS;
        T* x = (T*)_pX;
        T* y = (T*)_pOut;
        T* save = (T*)_pSave;
        int ch = (int)(first % _c);
        for (long r = first; r < end; r++)
        {
            WorkItemStarting();
            long o = r * s;
            if (save != null)
            {
                SaveRun(x, save, o, s);
            }

            _chNormalize[ch].Apply(x + o, y + o, s, _streamOutput);
            if (++ch == _c)
            {
                ch = 0;
            }
        }
    }
}
