namespace BnParity;

/// <content>The row path: short spatial runs.</content>
internal sealed unsafe partial class NormalizationEngine<T>
{
    // Per-column (C·S) parameters of the row path: the channel's value repeated over its S columns. Each array
    // means one thing in every phase.
    private double[] _colMean = [];
    private double[] _colScale = [];
    private double[] _colShift = [];
    private double[] _colK = [];
    private double[] _colGradMean = [];
    private double[] _colDyScale = [];
    // float: the per-column shift of the statistics pass and the output's float terms (FloatColumns).
    private float[] _colShiftF = [];
    private float[] _colM = [];
    private float[] _colHi = [];
    private float[] _colLo = [];
    private float[] _colB = [];
    private float[] _colBackwardK = [];
    private float[] _colBackwardC = [];
    private float[] _colBackwardA = [];
    private double[] _channelStatisticShift = [];
    private double[] _channelSecondSum = [];
    private bool[] _channelNeedsSecondPass = [];
    private bool _rowSecondPass;
    private int _rowsPerBlock;
    private int _rowBlocks;
    private int _rowTileChannels;
    // The tile being run: its first channel, channel count and columns (channels·S). Per-column arrays and block
    // partials are indexed by the tile's own columns; the data by the tile's first column plus row·C·S.
    private int _tileFirst;
    private int _tileChannels;
    private int _tileColumns;

    /// <summary>
    /// Row-major path for short spatial runs: the input is an (N, C·S) matrix cut into blocks of
    /// <see cref="_rowsPerBlock"/> rows (a function of N only). Each phase computes per-block column partials
    /// (a left fold over the block's rows); the caller folds the blocks in order per column, then each channel sums
    /// its S columns left to right. Threads take whole blocks, so the order never depends on the thread count.
    /// A matrix wider than <see cref="SummationPlan.RowTileMaxColumns"/> columns runs as tiles of whole channels
    /// (<see cref="SummationPlan.RowTileChannels"/>), one after the other: every column's operations and order are its
    /// own, so a tile gives each of its columns the bits the whole width would, while the scratch (block partials and
    /// per-column coefficients, 16·blocks + 72 bytes a float column) stays that of one tile instead of growing with C.
    /// </summary>
    private void RunRows(int threads)
    {
        for (int first = 0; first < _c; first += _rowTileChannels)
        {
            RunRowTile(first, Math.Min(_rowTileChannels, _c - first), threads);
        }
    }

    /// <summary>Runs the call on channels [first, first + channels) (see <see cref="RunRows"/>).</summary>
    private void RunRowTile(int first, int channels, int threads)
    {
        int s = _jobS;
        int n = _jobN;
        int columns = channels * s;
        int blocks = _rowBlocks;
        _tileFirst = first;
        _tileChannels = channels;
        _tileColumns = columns;
        _units = blocks;
        long parts = (long)blocks * columns;
        if (_partA.Length < parts)
        {
            _partA = new double[parts];
            _partB = new double[parts];
        }

        if (_colScale.Length < columns + FloatColumns.WrapPadding)
        {
            _colMean = new double[columns];
            _colScale = new double[columns + FloatColumns.WrapPadding];
            _colShift = new double[columns];
            _colK = new double[columns];
            _colGradMean = new double[columns];
            _colDyScale = new double[columns];
        }

        if (IsFloat && _colShiftF.Length < columns)
        {
            // The output coefficients carry FloatColumns.WrapPadding wrapped entries for the streaming stores.
            _colShiftF = new float[columns];
            _colM = new float[columns + FloatColumns.WrapPadding];
            _colHi = new float[columns + FloatColumns.WrapPadding];
            _colLo = new float[columns + FloatColumns.WrapPadding];
            _colB = new float[columns + FloatColumns.WrapPadding];
            _colBackwardK = new float[columns + FloatColumns.WrapPadding];
            _colBackwardC = new float[columns + FloatColumns.WrapPadding];
            _colBackwardA = new float[columns + FloatColumns.WrapPadding];
        }

        int workers = Math.Min(threads, blocks);
        long count = (long)n * s;
        switch (_call)
        {
            case CallKind.ForwardBatch:
            case CallKind.Statistics:
                if (IsFloat)
                {
                    RowFloatStatistics(workers, count);
                }
                else
                {
                    RowDoubleStatistics(workers, count);
                }

                if (_call == CallKind.ForwardBatch)
                {
                    _splitCopy = false;
                    RowNormalize(workers);
                }

                break;

            case CallKind.ForwardFixed:
                _splitCopy = true;
                RowNormalize(workers);
                break;

            default:
                RowBackward(workers, count);
                break;
        }
    }

    /// <summary>
    /// Backward: Σdy and Σ(x − μ)·dy per column (float: about μ_hi in float stretches, then
    /// <see cref="FinishDot"/>'s correction, as the channel path), the per-channel terms
    /// (<see cref="ChannelBackward"/>), then dx per column (float: <see cref="RunBackwardBatch"/>'s formula).
    /// </summary>
    private void RowBackward(int workers, long count)
    {
        int first = _tileFirst, channels = _tileChannels, s = _jobS, blocks = _rowBlocks;
        bool fixedStatistics = _call == CallKind.BackwardFixed;
        bool floatBatch = IsFloat && !fixedStatistics;
        for (int t = 0; t < channels; t++)
        {
            int ch = first + t;
            // The dx scale: the double kernels' and float's eval backward (FloatColumns.Scale) read it.
            FillChannel(_colScale, t, s, Invstd[ch] * Weight[ch]);
            if (IsFloat)
            {
                FillChannel(_colM, t, s, (float)Mean[ch]);
            }
            else
            {
                FillChannel(_colMean, t, s, Mean[ch]);
            }
        }

        if (_call != CallKind.BackwardApply)
        {
            _phase = IsFloat ? Phase.RowSumDotFloat : Phase.RowSumDot;
            RunPhase(workers);
            for (int t = 0; t < channels; t++)
            {
                StoreChannelTerms(first + t, FoldRowParts(_partA, t, blocks), FoldRowParts(_partB, t, blocks), count);
            }

            if (_call == CallKind.BackwardSums)
            {
                return;
            }
        }

        if (!fixedStatistics)
        {
            // dx's per-channel coefficients: this call's terms (a set of one channel) or those CombineSets set.
            for (int t = 0; t < channels; t++)
            {
                int ch = first + t;
                double scale = _chScale[ch];
                if (floatBatch)
                {
                    double lo = Mean[ch] - (float)Mean[ch];
                    FillChannel(_colBackwardK, t, s, (float)(-_chK[ch] * scale));
                    FillChannel(_colBackwardC, t, s, (float)(((lo * _chK[ch]) - _chGradMean[ch]) * scale));
                    FillChannel(_colBackwardA, t, s, (float)(_chDyScale[ch] * scale));
                }
                else
                {
                    FillChannel(_colK, t, s, _chK[ch]);
                    FillChannel(_colGradMean, t, s, _chGradMean[ch]);
                    FillChannel(_colScale, t, s, scale);
                    FillChannel(_colDyScale, t, s, _chDyScale[ch]);
                }
            }
        }

        if (floatBatch)
        {
            FloatColumns.WrapColumns(_tileColumns, _colM, _colBackwardK, _colBackwardC, _colBackwardA);
        }
        else if (IsFloat)
        {
            FloatColumns.WrapColumns(_colScale, _tileColumns);
        }

        _phase = floatBatch ? Phase.RowBackwardFloat : Phase.RowBackward;
        RunPhase(workers);
    }

    /// <summary>double: Σx, then Σ(x − μ)² about the double mean, each in double (two passes).</summary>
    private void RowDoubleStatistics(int workers, long count)
    {
        _rowSecondPass = false;
        int first = _tileFirst, channels = _tileChannels, s = _jobS, blocks = _rowBlocks;
        _phase = Phase.RowSum;
        RunPhase(workers);
        for (int t = 0; t < channels; t++)
        {
            double m = FoldRowParts(_partA, t, blocks) / count;
            Mean[first + t] = m;
            FillChannel(_colMean, t, s, m);
        }

        _phase = Phase.RowSquares;
        RunPhase(workers);
        for (int t = 0; t < channels; t++)
        {
            int ch = first + t;
            double varSum = HeldVarSum(FoldRowParts(_partA, t, blocks));
            VarSum[ch] = varSum;
            Invstd[ch] = InvstdOf(varSum / count, _eps);
        }
    }

    /// <summary>
    /// float: the channel path's statistics per column. One pass sums x − c and (x − c)² about the channel's sampled
    /// shift c (<see cref="ChannelShift"/>), in float stretches widened into double (<see cref="FloatColumns"/>);
    /// when the shift cancels too much (<see cref="TryShiftedVarSum"/>) a second pass about μ_hi refines the mean and
    /// Σ(x − μ)² (<see cref="FinishSecondPass"/>); squares outside float's range are recomputed in double
    /// (<see cref="TrustedVarSum"/>). Every decision depends on folded totals only, never on the thread count.
    /// </summary>
    private void RowFloatStatistics(int workers, long count)
    {
        int first = _tileFirst, channels = _tileChannels, s = _jobS, blocks = _rowBlocks;
        if (_channelStatisticShift.Length < channels)
        {
            _channelStatisticShift = new double[channels];
            _channelSecondSum = new double[channels];
            _channelNeedsSecondPass = new bool[channels];
        }

        double[] shifts = _channelStatisticShift;
        for (int t = 0; t < channels; t++)
        {
            shifts[t] = ChannelShift(first + t);
            FillChannel(_colShiftF, t, s, (float)shifts[t]);
        }

        _rowSecondPass = false;
        _phase = Phase.RowShiftedSquares;
        RunPhase(workers);
        bool anySecondPass = false;
        for (int t = 0; t < channels; t++)
        {
            int ch = first + t;
            double mean = TrustedMean(ch, shifts[t] + (FoldRowParts(_partA, t, blocks) / count));
            Mean[ch] = mean;
            bool accepted = TryShiftedVarSum(FoldRowParts(_partB, t, blocks), mean, shifts[t], count, out double varSum);
            VarSum[ch] = varSum;
            _channelNeedsSecondPass[t] = !accepted;
            anySecondPass |= !accepted;
        }

        if (anySecondPass)
        {
            // About c = μ_hi, in double arithmetic (Σx − n·c, then Σ(x − c)²): data that needs this pass has deviations
            // of very different sizes (spikes far from the shift), whose squares float partials would round on the
            // spikes' coarse grid.
            _rowSecondPass = true;
            for (int t = 0; t < channels; t++)
            {
                FillChannel(_colMean, t, s, (float)Mean[first + t]);
            }

            _phase = Phase.RowSum;
            RunPhase(workers);
            for (int t = 0; t < channels; t++)
            {
                _channelSecondSum[t] = FoldRowParts(_partA, t, blocks) - (count * (double)(float)Mean[first + t]);
            }

            _phase = Phase.RowSquares;
            RunPhase(workers);
            for (int t = 0; t < channels; t++)
            {
                int ch = first + t;
                if (_channelNeedsSecondPass[t])
                {
                    (Mean[ch], VarSum[ch]) = FinishSecondPass(_channelSecondSum[t], FoldRowParts(_partA, t, blocks), Mean[ch], count);
                }
            }
        }

        for (int t = 0; t < channels; t++)
        {
            int ch = first + t;
            double varSum = HeldVarSum(TrustedVarSum(ch, Mean[ch], VarSum[ch], count));
            VarSum[ch] = varSum;
            Invstd[ch] = InvstdOf(varSum / count, _eps);
        }
    }

    /// <summary>The output pass from <see cref="Mean"/>, <see cref="Invstd"/> and the parameters, with the channel path's
    /// formula (<see cref="NormalizeCoefficients"/>): float columns take its float terms (<see cref="FloatColumns"/>)
    /// unless a channel needs libtorch's folded form, which the double column kernel evaluates.</summary>
    private void RowNormalize(int workers)
    {
        int first = _tileFirst, channels = _tileChannels, s = _jobS;
        bool floatTerms = IsFloat;
        for (int t = 0; t < channels && floatTerms; t++)
        {
            int ch = first + t;
            if (NormalizeCoefficients.Of(Mean[ch], Invstd[ch] * Weight[ch], Bias[ch]).TryFloatTerms(out float m, out float hi, out float lo, out float b))
            {
                FillChannel(_colM, t, s, m);
                FillChannel(_colHi, t, s, hi);
                FillChannel(_colLo, t, s, lo);
                FillChannel(_colB, t, s, b);
            }
            else
            {
                floatTerms = false;
            }
        }

        if (floatTerms)
        {
            FloatColumns.WrapColumns(_tileColumns, _colM, _colHi, _colLo, _colB);
            _phase = Phase.RowNormalizeFloat;
            RunPhase(workers);
            return;
        }

        for (int t = 0; t < channels; t++)
        {
            int ch = first + t;
            FillChannel(_colMean, t, s, Mean[ch]);
            FillChannel(_colScale, t, s, Invstd[ch] * Weight[ch]);
            FillChannel(_colShift, t, s, Bias[ch]);
        }

        FoldNonFiniteScaleColumns(channels, s);
        _phase = Phase.RowNormalize;
        RunPhase(workers);
    }

    /// <summary>Sets channel <paramref name="ch"/>'s <paramref name="s"/> columns (one column for channels-last and
    /// (N, C) input, where a span fill per channel costs more than the store).</summary>
    private static void FillChannel<TValue>(TValue[] columns, int ch, int s, TValue value)
    {
        if (s == 1)
        {
            columns[ch] = value;
        }
        else
        {
            columns.AsSpan(ch * s, s).Fill(value);
        }
    }

    /// <summary>Total of the tile's channel <paramref name="ch"/>: per column fold the block partials in block order,
    /// then the S columns left to right.</summary>
    private double FoldRowParts(double[] parts, int ch, int blocks)
    {
        int s = _jobS;
        int columns = _tileColumns;
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
            if (ScaleNotFiniteInT(scale))
            {
                scale = ScaleInT(scale);
                _colScale.AsSpan(first, spatial).Fill(scale);
                double shift = _colShift[first] - (_colMean[first] * scale);
                _colMean.AsSpan(first, spatial).Clear();
                _colShift.AsSpan(first, spatial).Fill(shift);
            }
        }
    }

    /// <summary>Copies <paramref name="columns"/> columns of <paramref name="rows"/> rows from offset
    /// <paramref name="offset"/>, <paramref name="rowStride"/> apart, into the saved input (row by row: a block can
    /// hold more than int.MaxValue elements).</summary>
    private void SaveRows(T* x, long offset, int rows, int columns, long rowStride)
    {
        for (int r = 0; r < rows; r++)
        {
            SaveRun(x, (T*)_pSave, offset + (r * rowStride), columns);
        }
    }

    private void RunRowBlock(int block)
    {
        WorkItemStarting();
        int columns = _tileColumns;
        long rowStride = (long)_c * _jobS;
        long r0 = (long)block * _rowsPerBlock;
        long r1 = Math.Min(_jobN, r0 + _rowsPerBlock);
        T* x = (T*)_pX;
        fixed (double* pa = _partA)
        fixed (double* pb = _partB)
        fixed (double* mean = _colMean)
        fixed (double* scale = _colScale)
        fixed (double* shift = _colShift)
        fixed (double* k = _colK)
        fixed (double* gradMean = _colGradMean)
        fixed (double* dyScale = _colDyScale)
        {
            double* acc = pa + ((long)block * columns);
            double* acc2 = pb + ((long)block * columns);
            int rows = (int)(r1 - r0);
            long o = (r0 * rowStride) + ((long)_tileFirst * _jobS);
            T* xb = x + o;
            switch (_phase)
            {
                case Phase.RowSum:
                    if (_pSave != 0 && !_rowSecondPass)
                    {
                        SaveRows(x, o, rows, columns, rowStride);
                    }

                    Kernels<T>.SumColumns(xb, rowStride, rows, acc, columns);
                    break;

                case Phase.RowSquares:
                    Kernels<T>.SumSquaredDeviationColumns(xb, rowStride, rows, mean, acc, columns);
                    break;

                case Phase.RowShiftedSquares:
                    if (_pSave != 0 && !_rowSecondPass)
                    {
                        SaveRows(x, o, rows, columns, rowStride);
                    }

                    fixed (float* c = _colShiftF)
                    {
                        FloatColumns.SumAndSquaresShifted((float*)xb, rowStride, rows, c, acc, acc2, columns);
                    }

                    break;

                case Phase.RowNormalize:
                    if (_splitCopy && _pSave != 0)
                    {
                        SaveRows(x, o, rows, columns, rowStride);
                    }

                    Kernels<T>.NormalizeColumns(xb, (T*)_pOut + o, rowStride, rows, mean, scale, shift, columns);
                    break;

                case Phase.RowNormalizeFloat:
                    if (_splitCopy && _pSave != 0)
                    {
                        SaveRows(x, o, rows, columns, rowStride);
                    }

                    fixed (float* m = _colM, hi = _colHi, lo = _colLo, b = _colB)
                    {
                        FloatColumns.Normalize((float*)xb, (float*)_pOut + o, rowStride, rows, m, hi, lo, b, columns, _streamOutput);
                    }

                    break;

                case Phase.RowSumDot:
                    Kernels<T>.SumDotColumns(xb, (T*)_pDy + o, rowStride, rows, mean, acc, acc2, columns);
                    break;

                case Phase.RowSumDotFloat:
                    fixed (float* m = _colM)
                    {
                        FloatColumns.SumAndDotAbout((float*)xb, (float*)_pDy + o, rowStride, rows, m, acc, acc2, columns);
                    }

                    break;

                case Phase.RowBackwardFloat:
                    fixed (float* m = _colM, bk = _colBackwardK, bc = _colBackwardC, ba = _colBackwardA)
                    {
                        FloatColumns.Backward((float*)xb, (float*)_pDy + o, (float*)_pOut + o, rowStride, rows, m, bk, bc, ba, columns, _streamOutput);
                    }

                    break;

                case Phase.RowBackward:
                    if (_call != CallKind.BackwardFixed)
                    {
                        Kernels<T>.BackwardBatchColumns(xb, (T*)_pDy + o, (T*)_pOut + o, rowStride, rows, mean, k, gradMean, scale, dyScale, columns);
                    }
                    else if (IsFloat)
                    {
                        FloatColumns.Scale((float*)_pDy + o, (float*)_pOut + o, rowStride, rows, scale, columns, _streamOutput);
                    }
                    else
                    {
                        Kernels<T>.ScaleColumns((T*)_pDy + o, (T*)_pOut + o, rowStride, rows, scale, columns);
                    }

                    break;
            }
        }
    }
}
