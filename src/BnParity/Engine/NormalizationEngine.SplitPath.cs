namespace BnParity;

/// <content>The split path: few channels for the threads.</content>
internal sealed unsafe partial class NormalizationEngine<T>
{
    // Per-unit partial sums (also the row path's per-block column partials), folded in canonical order.
    private double[] _partA = [];
    private double[] _partB = [];
    private int _blocksPerRun;
    private int _runsPerGroup;
    private int _groups;
    private long _units;
    private bool _splitCopy;
    private readonly double[] _chScale;
    private readonly double[] _chShift;
    private readonly double[] _chK;
    private readonly double[] _chGradMean;
    /// <summary>Per-channel a of dx = (a·dy − gradMean − (x − mean)·k)·scale: 1 for a set of one channel (its weight is
    /// in the scale), the channel's weight in a set of several (see <see cref="CombineSet"/>).</summary>
    private readonly double[] _chDyScale;
    private readonly bool[] _refine;

    /// <summary>
    /// Work split for few channels: units are (group, block) pairs; each phase computes per-unit partials that the
    /// caller folds per channel in exactly the canonical order of <see cref="RunChannel"/>, so the result is
    /// bit-identical to the per-channel path.
    /// </summary>
    private void RunSplit(int workers)
    {
        int c = _c;
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
        switch (_call)
        {
            case CallKind.ForwardBatch:
            case CallKind.Statistics:
                _phase = Phase.SplitSum;
                RunPhase(workers);
                bool anyRefine = false;
                for (int ch = 0; ch < c; ch++)
                {
                    double shift = ChannelShift(ch);
                    double mean = TrustedMean(ch, shift + (FoldParts(_partA, ch) / count));
                    Mean[ch] = mean;
                    _refine[ch] = !TryShiftedVarSum(FoldParts(_partB, ch), mean, shift, count, out VarSum[ch]);
                    anyRefine |= _refine[ch];
                }

                if (anyRefine)
                {
                    _phase = Phase.SplitSquares;
                    RunPhase(workers);
                    for (int ch = 0; ch < c; ch++)
                    {
                        if (_refine[ch])
                        {
                            (Mean[ch], VarSum[ch]) = FinishSecondPass(FoldParts(_partB, ch), FoldParts(_partA, ch), Mean[ch], count);
                        }
                    }
                }

                for (int ch = 0; ch < c; ch++)
                {
                    double varSum = HeldVarSum(TrustedVarSum(ch, Mean[ch], VarSum[ch], count));
                    double invstd = InvstdOf(varSum / count, _eps);
                    VarSum[ch] = varSum;
                    Invstd[ch] = invstd;
                    _chScale[ch] = invstd * Weight[ch];
                    _chShift[ch] = Bias[ch];
                }

                if (_call == CallKind.Statistics)
                {
                    break;
                }

                _splitCopy = false;
                _phase = Phase.SplitNormalize;
                RunPhase(workers);
                break;

            case CallKind.ForwardFixed:
                for (int ch = 0; ch < c; ch++)
                {
                    _chScale[ch] = Invstd[ch] * Weight[ch];
                    _chShift[ch] = Bias[ch];
                }

                _splitCopy = true;
                _phase = Phase.SplitNormalize;
                RunPhase(workers);
                break;

            default:
                if (_call != CallKind.BackwardApply)
                {
                    _phase = Phase.SplitSumDot;
                    RunPhase(workers);
                    for (int ch = 0; ch < c; ch++)
                    {
                        StoreChannelTerms(ch, FoldParts(_partA, ch), FoldParts(_partB, ch), count);
                    }
                }

                if (_call == CallKind.BackwardSums)
                {
                    break;
                }

                _phase = Phase.SplitBackward;
                RunPhase(workers);
                break;
        }
    }

    private double FoldParts(double[] parts, int ch)
    {
        int c = _c;
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
        WorkItemStarting();
        int nb = _blocksPerRun;
        int c = _c;
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
        switch (_phase)
        {
            case Phase.SplitSum:
                if (_pSave != 0)
                {
                    for (int r = 0; r < runs; r++)
                    {
                        SaveRun(x, (T*)_pSave, o + (r * stride), len);
                    }
                }

                BlockSumSquares(x + o, len, runs, stride, ChannelShift(ch), out double bs, out double bq);
                _partA[u] = bs;
                _partB[u] = bq;
                break;
            case Phase.SplitSquares:
                BlockSecondPass(x + o, len, runs, stride, Mean[ch], out double ss, out double sq);
                _partA[u] = sq;
                _partB[u] = ss;
                break;
            case Phase.SplitSumDot:
                BlockSumDot(x + o, (T*)_pDy + o, len, runs, stride, Mean[ch], out double sd, out double dd);
                _partA[u] = sd;
                _partB[u] = dd;
                break;
            case Phase.SplitNormalize:
            case Phase.SplitBackward:
                for (int r = 0; r < runs; r++)
                {
                    long q = o + (r * stride);
                    if (_phase == Phase.SplitNormalize)
                    {
                        if (_splitCopy && _pSave != 0)
                        {
                            SaveRun(x, (T*)_pSave, q, len);
                        }

                        RunNormalize(x + q, (T*)_pOut + q, len, Mean[ch], _chScale[ch], _chShift[ch], _streamOutput);
                    }
                    else if (_call != CallKind.BackwardFixed)
                    {
                        RunBackwardBatch(x + q, (T*)_pDy + q, (T*)_pOut + q, len, Mean[ch], _chK[ch], _chGradMean[ch], _chScale[ch], _chDyScale[ch], _streamOutput);
                    }
                    else
                    {
                        Kernels<T>.Scale((T*)_pDy + q, (T*)_pOut + q, len, _chScale[ch]);
                    }
                }

                break;
        }
    }
}
