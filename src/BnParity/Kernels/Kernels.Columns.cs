using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>The terms of a column reduction at 4 (or 1) columns of one row: it sums A and, with
/// <see cref="HasSecond"/>, B per column. <see cref="Kernels{T}"/>' column skeleton owns the loop.</summary>
internal interface IColumnTerms
{
    static abstract bool HasSecond { get; }

    (Vector256<double> A, Vector256<double> B) Terms4(long o, int j);

    (double A, double B) TermsScalar(long o, int j);
}

/// <summary>An element-wise column operation at 4 (or 1) columns of one row, in double (rounded once to T by the
/// skeleton).</summary>
internal interface IColumnMap
{
    Vector256<double> Invoke4(long o, int j);

    double InvokeScalar(long o, int j);
}

/// <content>
/// Column kernels in double arithmetic: a block of <c>rows</c> rows of an (N, C·S) matrix, <c>rowStride</c> elements
/// apart, with per-column double parameters, for the row path of double data (and float's second statistics pass and
/// folded outputs; float data otherwise takes <see cref="FloatColumns"/>). One reduction and one element-wise skeleton
/// walk the block row by row (the order the memory is in); an operator struct says what a term or an output is. A
/// reduction gives every column its own left fold over the block's rows from 0, in the column's partial, so vector and
/// scalar columns get the same additions in the same order and every width gives the same bits. Outputs are rounded
/// once to T.
/// </content>
internal static unsafe partial class Kernels<T>
{
    /// <summary>acc[j] = Σ_r x[r, j].</summary>
    public static void SumColumns(T* x, long rowStride, int rows, double* acc, int columns)
    {
        var terms = new SumTerms(x);
        ReduceColumns(ref terms, rowStride, rows, acc, null, columns);
    }

    /// <summary>acc[j] = Σ_r (x[r, j] − mean[j])².</summary>
    public static void SumSquaredDeviationColumns(T* x, long rowStride, int rows, double* mean, double* acc, int columns)
    {
        var terms = new SquaredDeviationTerms(x, mean);
        ReduceColumns(ref terms, rowStride, rows, acc, null, columns);
    }

    /// <summary>accS[j] = Σ_r dy[r, j]; accD[j] = Σ_r (x[r, j] − mean[j])·dy[r, j].</summary>
    public static void SumDotColumns(T* x, T* dy, long rowStride, int rows, double* mean, double* accS, double* accD, int columns)
    {
        var terms = new SumDotTerms(x, dy, mean);
        ReduceColumns(ref terms, rowStride, rows, accS, accD, columns);
    }

    /// <summary>y[r, j] = (x[r, j] − mean[j])·scale[j] + shift[j], rounded once to T.</summary>
    public static void NormalizeColumns(T* x, T* y, long rowStride, int rows, double* mean, double* scale, double* shift, int columns)
    {
        var map = new NormalizeMap(x, mean, scale, shift);
        MapColumns(ref map, y, rowStride, rows, columns);
    }

    /// <summary>dx[r, j] = (a[j]·dy[r, j] − gradMean[j] − (x[r, j] − mean[j])·k[j])·scale[j], rounded once to T
    /// (a = <paramref name="dyScale"/>, 1 for sets of one channel).</summary>
    public static void BackwardBatchColumns(T* x, T* dy, T* dx, long rowStride, int rows, double* mean, double* k, double* gradMean, double* scale, double* dyScale, int columns)
    {
        var map = new BackwardBatchMap(x, dy, mean, k, gradMean, scale, dyScale);
        MapColumns(ref map, dx, rowStride, rows, columns);
    }

    /// <summary>dx[r, j] = dy[r, j]·scale[j], rounded once to T.</summary>
    public static void ScaleColumns(T* dy, T* dx, long rowStride, int rows, double* scale, int columns)
    {
        var map = new ScaleMap(dy, scale);
        MapColumns(ref map, dx, rowStride, rows, columns);
    }

    private static void ReduceColumns<TTerms>(ref TTerms terms, long rowStride, int rows, double* accA, double* accB, int columns)
        where TTerms : struct, IColumnTerms
    {
        new Span<double>(accA, columns).Clear();
        if (TTerms.HasSecond)
        {
            new Span<double>(accB, columns).Clear();
        }

        for (long r = 0, row = 0; r < rows; r++, row += rowStride)
        {
            int j = 0;
            if (UseVectors)
            {
                for (; j <= columns - 4; j += 4)
                {
                    var (a, b) = terms.Terms4(row + j, j);
                    (Vector256.Load(accA + j) + a).Store(accA + j);
                    if (TTerms.HasSecond)
                    {
                        (Vector256.Load(accB + j) + b).Store(accB + j);
                    }
                }
            }

            for (; j < columns; j++)
            {
                var (a, b) = terms.TermsScalar(row + j, j);
                accA[j] += a;
                if (TTerms.HasSecond)
                {
                    accB[j] += b;
                }
            }
        }
    }

    private static void MapColumns<TMap>(ref TMap map, T* y, long rowStride, int rows, int columns)
        where TMap : struct, IColumnMap
    {
        for (long r = 0, row = 0; r < rows; r++, row += rowStride)
        {
            int j = 0;
            if (UseVectors)
            {
                for (; j <= columns - 4; j += 4)
                {
                    Store4(y + row + j, map.Invoke4(row + j, j));
                }
            }

            for (; j < columns; j++)
            {
                y[row + j] = FromDouble(map.InvokeScalar(row + j, j));
            }
        }
    }

    /// <summary>Four elements at p widened to doubles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Load4(T* p)
    {
        if (typeof(T) == typeof(float))
        {
            var f = Vector128.Load((float*)p);
            return Vector256.Create(Vector128.WidenLower(f), Vector128.WidenUpper(f));
        }

        return Vector256.Load((double*)p);
    }

    /// <summary>Four doubles stored at p (each rounded once to float when T is float).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4(T* p, Vector256<double> v)
    {
        if (typeof(T) == typeof(float))
        {
            Vector128.Narrow(v.GetLower(), v.GetUpper()).Store((float*)p);
        }
        else
        {
            v.Store((double*)p);
        }
    }

    private readonly struct SumTerms(T* x) : IColumnTerms
    {
        public static bool HasSecond => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector256<double> A, Vector256<double> B) Terms4(long o, int j) => (Load4(x + o), default);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (double A, double B) TermsScalar(long o, int j) => (ToDouble(x[o]), 0);
    }

    private readonly struct SquaredDeviationTerms(T* x, double* mean) : IColumnTerms
    {
        public static bool HasSecond => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector256<double> A, Vector256<double> B) Terms4(long o, int j)
        {
            var d = Load4(x + o) - Vector256.Load(mean + j);
            return (d * d, default);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (double A, double B) TermsScalar(long o, int j)
        {
            double d = ToDouble(x[o]) - mean[j];
            return (d * d, 0);
        }
    }

    private readonly struct SumDotTerms(T* x, T* dy, double* mean) : IColumnTerms
    {
        public static bool HasSecond => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (Vector256<double> A, Vector256<double> B) Terms4(long o, int j)
        {
            var g = Load4(dy + o);
            return (g, (Load4(x + o) - Vector256.Load(mean + j)) * g);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (double A, double B) TermsScalar(long o, int j)
        {
            double g = ToDouble(dy[o]);
            return (g, (ToDouble(x[o]) - mean[j]) * g);
        }
    }

    private readonly struct NormalizeMap(T* x, double* mean, double* scale, double* shift) : IColumnMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<double> Invoke4(long o, int j) =>
            ((Load4(x + o) - Vector256.Load(mean + j)) * Vector256.Load(scale + j)) + Vector256.Load(shift + j);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public double InvokeScalar(long o, int j) => ((ToDouble(x[o]) - mean[j]) * scale[j]) + shift[j];
    }

    private readonly struct BackwardBatchMap(T* x, T* dy, double* mean, double* k, double* gradMean, double* scale, double* dyScale) : IColumnMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<double> Invoke4(long o, int j) =>
            ((Load4(dy + o) * Vector256.Load(dyScale + j)) - Vector256.Load(gradMean + j) - ((Load4(x + o) - Vector256.Load(mean + j)) * Vector256.Load(k + j))) * Vector256.Load(scale + j);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public double InvokeScalar(long o, int j) => ((ToDouble(dy[o]) * dyScale[j]) - gradMean[j] - ((ToDouble(x[o]) - mean[j]) * k[j])) * scale[j];
    }

    private readonly struct ScaleMap(T* dy, double* scale) : IColumnMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<double> Invoke4(long o, int j) => Load4(dy + o) * Vector256.Load(scale + j);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public double InvokeScalar(long o, int j) => ToDouble(dy[o]) * scale[j];
    }
}
