using System.Numerics;

namespace BnParity;

/// <content>
/// Sets whose affine parameters index per <b>element</b> (LayerNorm, RMSNorm): the view is M sets of D contiguous
/// elements, one run each (the (1, M, D) view of the channel path), and element e of every set takes weight[e] and
/// bias[e]. The statistics, the output formula and dx are the channel path's, with the set's own coefficients (weight
/// 1, bias 0) and the element parameters applied around them: y = x̂·w + b after the normalised value x̂, and the
/// backward's sums and dx over g = w·dy. The parameter gradients are per element, summed over the sets: each unit of
/// the backward is a fixed block of consecutive sets (a function of M only) that adds its sets' dy·x̂ and dy into its
/// own partials in set order; the blocks are folded in block order, so the bits do not depend on the thread count.
/// A set may also be uncentred (RMSNorm: mean 0, Σx², no mean term in dx).
/// </content>
internal sealed unsafe partial class NormalizationEngine<T>
{
    /// <summary>Whether the call's sets take element parameters (<see cref="RunElementForward"/>,
    /// <see cref="RunElementBackward"/>); such a call always runs on the channel path.</summary>
    private bool _element;

    /// <summary>Whether the sets are centred (mean subtracted); false for RMSNorm.</summary>
    private bool _centered = true;

    private nint _elementWeight;
    private nint _elementBias;
    private int _elementSetsPerBlock;
    private int _elementBlocks;

    /// <summary>Per block of sets: Σ dy·x̂ and Σ dy per element (2·D doubles).</summary>
    private double[] _elementParts = [];

    /// <summary>Per block of sets: g = w·dy of the set being run (D elements of T).</summary>
    private T[] _elementScratch = [];

    /// <summary>At most this many blocks of sets in an element backward (sets per block grow with M).</summary>
    internal const int ElementMaxBlocks = 32;

    /// <summary>
    /// Forward with batch statistics over <paramref name="sets"/> sets of <paramref name="length"/> contiguous
    /// elements: per-set statistics in <see cref="Mean"/>, <see cref="Invstd"/>, <see cref="VarSum"/>; y = x̂·w + b per
    /// element (w, b may be null: 1 and 0). <paramref name="save"/> (may be null) receives a copy of the input.
    /// </summary>
    public void RunElementForward(T* x, T* y, T* save, int sets, int length, T* weight, T* bias, bool centered)
    {
        BeginElement(sets, weight, bias, centered);
        try
        {
            Run(CallKind.ForwardBatch, x, y, null, save, 1, sets, length);
        }
        finally
        {
            EndElement();
        }
    }

    /// <summary>
    /// Backward of <see cref="RunElementForward"/>: <see cref="Mean"/> and <see cref="Invstd"/> hold the saved per-set
    /// statistics. Writes dx and, per element, dweight = Σ_sets dy·x̂ and dbias = Σ_sets dy into
    /// <paramref name="gradWeight"/> and <paramref name="gradBias"/> (length D).
    /// </summary>
    public void RunElementBackward(T* x, T* dy, T* dx, int sets, int length, T* weight, bool centered, double[] gradWeight, double[] gradBias)
    {
        BeginElement(sets, weight, null, centered);
        try
        {
            _elementSetsPerBlock = (int)Math.Max(1, ((long)sets + ElementMaxBlocks - 1) / ElementMaxBlocks);
            _elementBlocks = (int)(((long)sets + _elementSetsPerBlock - 1) / _elementSetsPerBlock);
            long parts = 2L * _elementBlocks * length;
            if (_elementParts.Length < parts)
            {
                _elementParts = new double[parts];
            }

            // Only the double path stores g = w·dy (the float kernels form it in registers).
            if (!IsFloat && weight != null && _elementScratch.Length < (long)_elementBlocks * length)
            {
                _elementScratch = new T[(long)_elementBlocks * length];
            }

            Run(CallKind.BackwardBatch, x, dx, dy, null, 1, sets, length);

            // The blocks in block order, the first taken as it is (0 + −0 would turn a −0 gradient into +0).
            for (int b = 0; b < _elementBlocks; b++)
            {
                long o = 2L * b * length;
                for (int e = 0; e < length; e++)
                {
                    gradWeight[e] = b == 0 ? _elementParts[o + e] : gradWeight[e] + _elementParts[o + e];
                    gradBias[e] = b == 0 ? _elementParts[o + length + e] : gradBias[e] + _elementParts[o + length + e];
                }
            }
        }
        finally
        {
            EndElement();
        }
    }

    private void BeginElement(int sets, T* weight, T* bias, bool centered)
    {
        if ((uint)sets > (uint)Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(sets), sets, $"the engine holds at most {Capacity} sets");
        }

        _element = true;
        _centered = centered;
        _elementWeight = (nint)weight;
        _elementBias = (nint)bias;
    }

    private void EndElement()
    {
        _element = false;
        _centered = true;
        _elementWeight = _elementBias = 0;
    }

    /// <summary>Block <paramref name="block"/> of an element backward: its sets in order, in groups of
    /// <see cref="GradientGroupSets"/>: each set's dx, then the group's dy·x̂ and dy added into the block's
    /// parameter-gradient partials.</summary>
    private void RunElementBlock(int block)
    {
        int length = _jobS;
        int first = block * _elementSetsPerBlock;
        int end = Math.Min(_c, first + _elementSetsPerBlock);
        fixed (double* parts = _elementParts)
        fixed (T* scratch = _elementScratch)
        {
            double* gradWeight = parts + (2L * block * length);
            double* gradBias = gradWeight + length;
            new Span<double>(gradWeight, 2 * length).Clear();
            for (int group = first; group < end; group += GradientGroupSets)
            {
                int groupEnd = Math.Min(end, group + GradientGroupSets);
                for (int set = group; set < groupEnd; set++)
                {
                    WorkItemStarting();
                    RunElementBackwardSet(set, scratch + ((long)block * length));
                }

                long o = (long)group * length;
                AccumulateElementGradients((T*)_pX + o, (T*)_pDy + o, length, groupEnd - group, group, gradWeight, gradBias);
            }
        }
    }

    /// <summary>
    /// Sets whose parameter gradients are added in one sweep (<see cref="AccumulateElementGradients"/>): their x and dy
    /// (8 × D elements each, just read for dx) are still in L1/L2, and the per-element partials (2·D doubles, twice the
    /// size of a set's x and dy in float) are loaded and stored once per group instead of once per set — per set they
    /// were most of the backward's time.
    /// </summary>
    private const int GradientGroupSets = 8;

    /// <summary>One set's backward: g = w·dy, its sums Σg and Σ(x − μ)·g, and dx with the channel path's formula over
    /// g.</summary>
    private void RunElementBackwardSet(int set, T* scratch)
    {
        int length = _jobS;
        long o = (long)set * length;
        T* x = (T*)_pX + o;
        T* dy = (T*)_pDy + o;
        T* dx = (T*)_pOut + o;
        T* weight = (T*)_elementWeight;
        double mean = Mean[set];
        double invstd = Invstd[set];
        if (IsFloat && weight != null)
        {
            // g = w·dy formed in registers by each kernel, never stored: the same float products, so the same bits.
            float m = (float)mean;
            double sumGw = 0, dotW = 0;
            for (int b = 0; b < length; b += Block)
            {
                FloatKernels.SumAndDotAboutWeighted((float*)x + b, (float*)dy + b, (float*)weight + b, Math.Min(Block, length - b), m, out double sg, out double dg);
                sumGw += sg;
                dotW += dg;
            }

            dotW = FinishDot(dotW, sumGw, mean);
            var weighted = ChannelBackward.From(dotW, _centered ? sumGw : 0.0, invstd, length);
            double lo = mean - m;
            FloatKernels.BackwardWeighted((float*)x, (float*)dy, (float*)weight, (float*)dx, length, m,
                (float)(-weighted.K * invstd), (float)(((lo * weighted.K) - weighted.GradMean) * invstd), (float)invstd);
            return;
        }

        T* g = dy;
        if (weight != null)
        {
            ElementProduct(dy, weight, scratch, length);
            g = scratch;
        }

        double sumG = 0, dot = 0;
        for (int b = 0; b < length; b += Block)
        {
            BlockSumDot(x + b, g + b, Math.Min(Block, length - b), 1, length, mean, out double sg, out double dg);
            sumG += sg;
            dot += dg;
        }

        dot = FinishDot(dot, sumG, mean);

        // An uncentred set's mean is the constant 0: no Σg term in dx.
        var terms = ChannelBackward.From(dot, _centered ? sumG : 0.0, invstd, length);
        RunBackwardBatch(x, g, dx, length, mean, terms.K, terms.GradMean, invstd, 1, false);
    }

    /// <summary>
    /// invstd of an element set: <see cref="InvstdOf"/> without batch_norm's zero rule. PyTorch's layer_norm computes
    /// rstd = 1/sqrt(var + eps) and the RMSNorm composite rsqrt(mean(x²) + eps), so a set whose variance (held in T) is 0
    /// at eps = 0 — a constant set for LayerNorm, a zero set for RMSNorm — has rstd = +∞, and its outputs and every
    /// gradient it enters are NaN (checked against PyTorch 1.13), where batch_norm's InvStd gives 0.
    /// </summary>
    private static double ElementInvstdOf(double variance, double eps)
    {
        double held = IsFloat ? (float)variance : variance;
        return held == 0 && eps == 0 ? double.PositiveInfinity : InvstdOf(variance, eps);
    }

    /// <summary>One element set's output: x̂ with the set's own coefficients (weight 1, bias 0), then y = x̂·w + b per
    /// element — in one pass for float (<see cref="FloatKernels.NormalizeElementAffine"/>, the same roundings), else
    /// x̂ into y and the parameters applied while y is in cache.</summary>
    private void NormalizeElementSet(T* x, T* y, int length, double mean, double invstd)
    {
        var coefficients = NormalizeCoefficients.Of(mean, invstd, 0.0);
        if (_elementWeight != 0 && coefficients.TryFloatTerms(out float m, out float hi, out float lo, out float b))
        {
            FloatKernels.NormalizeElementAffine((float*)x, (float*)y, length, m, hi, lo, b, (float*)_elementWeight, (float*)_elementBias);
            return;
        }

        coefficients.Apply(x, y, length, false);
        ApplyElementAffine(y, length);
    }

    /// <summary>The element parameters after the set's normalised output (already in y): y = y·w + b in T, one fused
    /// rounding per element (y·w when there is no bias).</summary>
    private void ApplyElementAffine(T* y, int length)
    {
        T* weight = (T*)_elementWeight;
        T* bias = (T*)_elementBias;
        if (weight == null)
        {
            return;
        }

        int i = 0;
        if (Vector.IsHardwareAccelerated && typeof(T) == typeof(float))
        {
            float* yf = (float*)y, wf = (float*)weight, bf = (float*)bias;
            for (; i <= length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var v = Vector.Load(yf + i);
                var w = Vector.Load(wf + i);
                (bf == null ? v * w : Vector.FusedMultiplyAdd(v, w, Vector.Load(bf + i))).Store(yf + i);
            }
        }
        else if (Vector.IsHardwareAccelerated && typeof(T) == typeof(double))
        {
            double* yd = (double*)y, wd = (double*)weight, bd = (double*)bias;
            for (; i <= length - Vector<double>.Count; i += Vector<double>.Count)
            {
                var v = Vector.Load(yd + i);
                var w = Vector.Load(wd + i);
                (bd == null ? v * w : Vector.FusedMultiplyAdd(v, w, Vector.Load(bd + i))).Store(yd + i);
            }
        }

        for (; i < length; i++)
        {
            y[i] = bias == null ? y[i] * weight[i] : T.FusedMultiplyAdd(y[i], weight[i], bias[i]);
        }
    }

    /// <summary>g = dy·w element by element, rounded to T.</summary>
    private static void ElementProduct(T* dy, T* weight, T* g, int length)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= length - Vector<T>.Count; i += Vector<T>.Count)
            {
                (Vector.Load(dy + i) * Vector.Load(weight + i)).Store(g + i);
            }
        }

        for (; i < length; i++)
        {
            g[i] = dy[i] * weight[i];
        }
    }

    /// <summary>
    /// For <paramref name="sets"/> consecutive sets from <paramref name="firstSet"/> (x and dy at stride
    /// <paramref name="length"/>): gradWeight[e] += dy·((x − μ)·invstd) and gradBias[e] += dy, in double, set after set
    /// — per element exactly the additions of one set at a time, in set order (three roundings per term, no fused
    /// multiply-add), so the bits do not depend on the group size or the vector width. A strip of elements keeps its
    /// partials in registers while it walks down the group's sets.
    /// </summary>
    private void AccumulateElementGradients(T* x, T* dy, int length, int sets, int firstSet, double* gradWeight, double* gradBias)
    {
        int e = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int n = Vector<double>.Count;
            if (typeof(T) == typeof(float))
            {
                for (; e <= length - (2 * n); e += 2 * n)
                {
                    var wLow = Vector.Load(gradWeight + e);
                    var wHigh = Vector.Load(gradWeight + e + n);
                    var bLow = Vector.Load(gradBias + e);
                    var bHigh = Vector.Load(gradBias + e + n);
                    for (int j = 0; j < sets; j++)
                    {
                        long o = ((long)j * length) + e;
                        var m = new Vector<double>(Mean[firstSet + j]);
                        var r = new Vector<double>(Invstd[firstSet + j]);
                        Vector.Widen(Vector.Load((float*)dy + o), out Vector<double> dLow, out Vector<double> dHigh);
                        Vector.Widen(Vector.Load((float*)x + o), out Vector<double> xLow, out Vector<double> xHigh);
                        wLow += dLow * ((xLow - m) * r);
                        wHigh += dHigh * ((xHigh - m) * r);
                        bLow += dLow;
                        bHigh += dHigh;
                    }

                    wLow.Store(gradWeight + e);
                    wHigh.Store(gradWeight + e + n);
                    bLow.Store(gradBias + e);
                    bHigh.Store(gradBias + e + n);
                }
            }
            else
            {
                for (; e <= length - n; e += n)
                {
                    var w = Vector.Load(gradWeight + e);
                    var b = Vector.Load(gradBias + e);
                    for (int j = 0; j < sets; j++)
                    {
                        long o = ((long)j * length) + e;
                        var d = Vector.Load((double*)dy + o);
                        w += d * ((Vector.Load((double*)x + o) - new Vector<double>(Mean[firstSet + j])) * new Vector<double>(Invstd[firstSet + j]));
                        b += d;
                    }

                    w.Store(gradWeight + e);
                    b.Store(gradBias + e);
                }
            }
        }

        for (; e < length; e++)
        {
            double w = gradWeight[e], b = gradBias[e];
            for (int j = 0; j < sets; j++)
            {
                long o = ((long)j * length) + e;
                double d = Widening<T>.ToDouble(dy[o]);
                w += d * ((Widening<T>.ToDouble(x[o]) - Mean[firstSet + j]) * Invstd[firstSet + j]);
                b += d;
            }

            gradWeight[e] = w;
            gradBias[e] = b;
        }
    }
}
