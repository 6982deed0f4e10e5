namespace BnParity;

/// <content>The channel path: threads take whole channels.</content>
public abstract partial class BatchNorm<T>
{
    private sealed unsafe partial class Execution
    {
        /// <summary>Runs every channel: on the caller, or with threads taking contiguous ranges of whole channels.</summary>
        private void RunChannels(int threads)
        {
            int workers = Math.Min(threads, _c);
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
                {
                    T* y = (T*)_pOut;
                    T* save = (T*)_pSave;
                    double shift = ChannelShift(ch);
                    double sum = 0, shiftedSquares = 0;
                    for (long g0 = 0; g0 < nBatch; g0 += group)
                    {
                        int runs = (int)Math.Min(group, nBatch - g0);
                        long o = first + (g0 * stride);
                        if (save != null)
                        {
                            for (int r = 0; r < runs; r++)
                            {
                                SaveRun(x, save, o + (r * stride), s);
                            }
                        }

                        for (long b = 0; b < s; b += Block)
                        {
                            BlockSumSquares(x + o + b, (int)Math.Min(Block, s - b), runs, stride, shift, out double bs, out double bq);
                            sum += bs;
                            shiftedSquares += bq;
                        }
                    }

                    double mean = TrustedMean(ch, shift + (sum / count));
                    if (!TryShiftedVarSum(shiftedSquares, mean, shift, count, out double varSum))
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

                    varSum = HeldVarSum(TrustedVarSum(ch, mean, varSum, count));
                    double invstd = InvstdOf(varSum / count, _eps);
                    double scale = invstd * Weight[ch];
                    double bias = Bias(ch);
                    for (int i = 0; i < nBatch; i++)
                    {
                        long o = first + (i * stride);
                        RunNormalize(x + o, y + o, s, mean, scale, bias);
                    }

                    Mean[ch] = mean;
                    Invstd[ch] = invstd;
                    VarSum[ch] = varSum;
                    break;
                }

                case CallKind.ForwardFixed:
                {
                    T* y = (T*)_pOut;
                    T* save = (T*)_pSave;
                    double mean = Mean[ch];
                    double scale = Invstd[ch] * Weight[ch];
                    double shift = Bias(ch);
                    for (int i = 0; i < nBatch; i++)
                    {
                        long o = first + (i * stride);
                        if (save != null)
                        {
                            SaveRun(x, save, o, s);
                        }

                        RunNormalize(x + o, y + o, s, mean, scale, shift);
                    }

                    break;
                }

                case CallKind.BackwardBatch:
                case CallKind.BackwardFixed:
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

                    var terms = ChannelBackward.From(FinishDot(dot, sumDy, mean), sumDy, invstd, count);
                    if (_call == CallKind.BackwardBatch)
                    {
                        for (int i = 0; i < nBatch; i++)
                        {
                            long o = first + (i * stride);
                            RunBackwardBatch(x + o, dy + o, dx + o, s, mean, terms.K, terms.GradMean, scale, _streamGradInput);
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

                    GradWeight[ch] = terms.GradWeight;
                    GradBias[ch] = terms.GradBias;
                    break;
                }
            }
        }
    }
}
