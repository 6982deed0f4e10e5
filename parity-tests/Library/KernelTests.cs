using System.Numerics;
using System.Runtime.Intrinsics;

namespace BnParity.ParityTests.Library;

/// <summary>
/// Each kernel against a plain scalar reference, for every length 0..256 at element offsets 0..3 (so vector loads
/// start unaligned and every tail length occurs), float and double. Element-wise kernels must match the scalar formula
/// bit for bit (vector and tail paths perform the same IEEE operations); reductions are fed small integers, whose sums
/// are exact in any order, so they must match exactly too (a dropped, doubled or misplaced element changes the result),
/// and random data within a bound. The class name says which vector width ran (see .ci/run for the 256-bit and scalar
/// runs on AVX-512 hardware).
/// </summary>
public abstract unsafe class KernelTests<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    protected const int MaxLength = 256;

    protected static readonly int[] Offsets = [0, 1, 2, 3];

    protected static string Where(string kernel, int length, int offset) =>
        $"{kernel}<{typeof(T).Name}> length {length} offset {offset} (width {GoldenBitsTests.Width})";

    /// <summary>Integers in [-8, 8] (exact in T; their sums, squares and products are exact in double).</summary>
    protected static T[] Integers(int seed, int count)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => T.CreateChecked(random.Next(-8, 9))).ToArray();
    }

    protected static T[] Gaussian(int seed, int count, double mean = 0, double std = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            return T.CreateChecked(mean + (std * BnParity.Harness.Cases.SeededNormal.Next(random)));
        }).ToArray();
    }

    protected static double D(T value) => double.CreateChecked(value);

    protected static T R(double value) => T.CreateChecked(value);

    protected static void BitsEqual(T expected, T actual, string where, int index)
    {
        Assert.True(
            expected.Equals(actual) || (T.IsNaN(expected) && T.IsNaN(actual)),
            $"{where} [{index}]: expected {expected}, actual {actual}");
    }

    [Fact]
    public void Sum_SumSquaredDeviations_and_SumAndDot_are_exact_on_integers_for_every_length_and_offset()
    {
        var x = Integers(1, MaxLength + 4);
        var dy = Integers(2, MaxLength + 4);
        fixed (T* px = x)
        fixed (T* pdy = dy)
        {
            foreach (int offset in Offsets)
            {
                for (int length = 0; length <= MaxLength; length++)
                {
                    double sum = 0, squares = 0, sumDy = 0, dot = 0;
                    for (int i = offset; i < offset + length; i++)
                    {
                        sum += D(x[i]);
                        squares += (D(x[i]) - 0.5) * (D(x[i]) - 0.5);
                        sumDy += D(dy[i]);
                        dot += (D(x[i]) - 0.5) * D(dy[i]);
                    }

                    Assert.True(sum == Kernels<T>.Sum(px + offset, length), Where("Sum", length, offset));
                    Assert.True(squares == Kernels<T>.SumSquaredDeviations(px + offset, length, 0.5), Where("SumSquaredDeviations", length, offset));
                    Kernels<T>.SumAndDot(px + offset, pdy + offset, length, 0.5, out double s, out double d);
                    Assert.True(sumDy == s, Where("SumAndDot (sum)", length, offset));
                    Assert.True(dot == d, Where("SumAndDot (dot)", length, offset));
                }
            }
        }
    }

    [Fact]
    public void Sum_is_within_the_reduction_bound_on_random_data()
    {
        var x = Gaussian(3, MaxLength + 4, mean: 10, std: 3);
        fixed (T* px = x)
        {
            foreach (int offset in Offsets)
            {
                for (int length = 0; length <= MaxLength; length++)
                {
                    double exact = 0, magnitude = 0;
                    for (int i = offset; i < offset + length; i++)
                    {
                        exact += D(x[i]);
                        magnitude += Math.Abs(D(x[i]));
                    }

                    double error = Math.Abs(Kernels<T>.Sum(px + offset, length) - exact);
                    Assert.True(error <= 2 * length * 1.2e-16 * magnitude, $"{Where("Sum", length, offset)}: error {error}");
                }
            }
        }
    }

    [Fact]
    public void Element_wise_kernels_match_the_scalar_formula_bit_for_bit()
    {
        var x = Gaussian(4, MaxLength + 4, mean: 2, std: 3);
        var dy = Gaussian(5, MaxLength + 4);
        var y = new T[MaxLength + 4];
        const double mean = 1.75, scale = -0.3125, shift = 0.7, k = 0.45, gradMean = -0.2, dyScale = -1.375;
        fixed (T* px = x)
        fixed (T* pdy = dy)
        fixed (T* py = y)
        {
            foreach (int offset in Offsets)
            {
                for (int length = 0; length <= MaxLength; length++)
                {
                    Kernels<T>.Normalize(px + offset, py + offset, length, mean, scale, shift);
                    for (int i = 0; i < length; i++)
                    {
                        BitsEqual(R(((D(x[offset + i]) - mean) * scale) + shift), y[offset + i], Where("Normalize", length, offset), i);
                    }

                    Kernels<T>.Scale(pdy + offset, py + offset, length, scale);
                    for (int i = 0; i < length; i++)
                    {
                        BitsEqual(R(D(dy[offset + i]) * scale), y[offset + i], Where("Scale", length, offset), i);
                    }

                    Kernels<T>.BackwardBatch(px + offset, pdy + offset, py + offset, length, mean, k, gradMean, scale, 1);
                    for (int i = 0; i < length; i++)
                    {
                        BitsEqual(R((D(dy[offset + i]) - gradMean - ((D(x[offset + i]) - mean) * k)) * scale), y[offset + i], Where("BackwardBatch", length, offset), i);
                    }

                    // A set of several channels (GroupNorm) scales dy by the channel's weight.
                    Kernels<T>.BackwardBatch(px + offset, pdy + offset, py + offset, length, mean, k, gradMean, scale, dyScale);
                    for (int i = 0; i < length; i++)
                    {
                        BitsEqual(R(((D(dy[offset + i]) * dyScale) - gradMean - ((D(x[offset + i]) - mean) * k)) * scale), y[offset + i], Where("BackwardBatch with dy scale", length, offset), i);
                    }
                }
            }
        }
    }

    [Fact]
    public void Column_kernels_match_the_scalar_formula_bit_for_bit()
    {
        // A block of `rows` rows, `stride` elements apart; each column's sum is the left fold over the rows from 0.
        const int stride = MaxLength + 4;
        const int maxRows = 5;
        int n = (stride * maxRows) + 4;
        var x = Gaussian(6, n, mean: -1, std: 2);
        var dy = Gaussian(7, n);
        var y = new T[n];
        double[] mean = Gaussian(8, stride).Select(D).ToArray();
        double[] scale = Gaussian(9, stride).Select(D).ToArray();
        double[] shift = Gaussian(10, stride).Select(D).ToArray();
        double[] k = Gaussian(11, stride).Select(D).ToArray();
        double[] dyScale = Gaussian(12, stride).Select(D).ToArray();
        var acc = new double[stride];
        var acc2 = new double[stride];
        fixed (T* px = x)
        fixed (T* pdy = dy)
        fixed (T* py = y)
        fixed (double* pm = mean)
        fixed (double* ps = scale)
        fixed (double* pb = shift)
        fixed (double* pk = k)
        fixed (double* pd = dyScale)
        fixed (double* pa = acc)
        fixed (double* pa2 = acc2)
        {
            foreach (int rows in new[] { 1, 2, maxRows })
            {
                foreach (int offset in Offsets)
                {
                    for (int length = 0; length <= MaxLength; length++)
                    {
                        int o = offset;
                        string Block(string kernel) => $"{Where(kernel, length, offset)} rows {rows}";
                        double Fold(int j, Func<int, double> term)
                        {
                            double total = 0;
                            for (int r = 0; r < rows; r++)
                            {
                                total += term(o + (r * stride) + j);
                            }

                            return total;
                        }

                        Array.Fill(acc, double.NaN);
                        Kernels<T>.SumColumns(px + o, stride, rows, pa, length);
                        for (int j = 0; j < length; j++)
                        {
                            Assert.True(Fold(j, i => D(x[i])) == acc[j], $"{Block("SumColumns")} [{j}]");
                        }

                        Array.Fill(acc, double.NaN);
                        Kernels<T>.SumSquaredDeviationColumns(px + o, stride, rows, pm, pa, length);
                        for (int j = 0; j < length; j++)
                        {
                            int c = j;
                            Assert.True(Fold(j, i => (D(x[i]) - mean[c]) * (D(x[i]) - mean[c])) == acc[j], $"{Block("SumSquaredDeviationColumns")} [{j}]");
                        }

                        Array.Fill(acc, double.NaN);
                        Array.Fill(acc2, double.NaN);
                        Kernels<T>.SumDotColumns(px + o, pdy + o, stride, rows, pm, pa, pa2, length);
                        for (int j = 0; j < length; j++)
                        {
                            int c = j;
                            Assert.True(Fold(j, i => D(dy[i])) == acc[j], $"{Block("SumDotColumns (sum)")} [{j}]");
                            Assert.True(Fold(j, i => (D(x[i]) - mean[c]) * D(dy[i])) == acc2[j], $"{Block("SumDotColumns (dot)")} [{j}]");
                        }

                        void EachOutput(string kernel, Func<int, int, T> expected)
                        {
                            for (int r = 0; r < rows; r++)
                            {
                                for (int j = 0; j < length; j++)
                                {
                                    int i = o + (r * stride) + j;
                                    BitsEqual(expected(i, j), y[i], $"{Block(kernel)} row {r}", j);
                                }
                            }
                        }

                        Array.Fill(y, T.NaN);
                        Kernels<T>.NormalizeColumns(px + o, py + o, stride, rows, pm, ps, pb, length);
                        EachOutput("NormalizeColumns", (i, j) => R(((D(x[i]) - mean[j]) * scale[j]) + shift[j]));

                        Array.Fill(y, T.NaN);
                        Kernels<T>.BackwardBatchColumns(px + o, pdy + o, py + o, stride, rows, pm, pk, pb, ps, pd, length);
                        EachOutput("BackwardBatchColumns", (i, j) => R(((D(dy[i]) * dyScale[j]) - shift[j] - ((D(x[i]) - mean[j]) * k[j])) * scale[j]));

                        Array.Fill(y, T.NaN);
                        Kernels<T>.ScaleColumns(pdy + o, py + o, stride, rows, ps, length);
                        EachOutput("ScaleColumns", (i, j) => R(D(dy[i]) * scale[j]));
                    }
                }
            }
        }
    }
}

public sealed class FloatKernelTests : KernelTests<float>
{
    /// <summary>FloatColumns' streaming element-wise kernels (non-temporal stores over a contiguous block, the column of
    /// element i being i mod columns, parameters padded with wrapped entries) give the ordinary kernels' bits for every
    /// column count 1..40, 1 to 5 rows and offsets 0..3 (so the alignment peel and the tail both vary).</summary>
    [Fact]
    public unsafe void Float_column_kernels_give_the_same_bits_with_streaming_stores()
    {
        for (int columns = 1; columns <= 40; columns++)
        {
            float[] Wrapped(int seed, double std = 1)
            {
                var values = new float[columns + FloatColumns.WrapPadding];
                Gaussian(seed, columns, std: std).CopyTo(values, 0);
                FloatColumns.WrapColumns(values, columns);
                return values;
            }

            float[] m = Wrapped(41), hi = Wrapped(42), lo = Wrapped(43, 1e-8), b = Wrapped(44), k = Wrapped(45), a = Wrapped(46);
            lo[0] = 0;
            FloatColumns.WrapColumns(lo, columns);
            var scale = new double[columns + FloatColumns.WrapPadding];
            Gaussian(47, columns).Select(v => v * (1 + 1e-9)).ToArray().CopyTo(scale, 0);
            FloatColumns.WrapColumns(scale, columns);
            foreach (int rows in new[] { 1, 2, 5 })
            {
                foreach (int offset in Offsets)
                {
                    int n = (rows * columns) + offset;
                    var x = Gaussian(48, n, mean: 2, std: 3);
                    var dy = Gaussian(49, n);
                    var plain = new float[n];
                    var streamed = new float[n];
                    fixed (float* px = x, pdy = dy, pp = plain, ps = streamed, pm = m, phi = hi, plo = lo, pb = b, pk = k, pa = a)
                    fixed (double* pscale = scale)
                    {
                        foreach (string kernel in new[] { "Normalize", "Backward", "Scale" })
                        {
                            Array.Fill(plain, float.NaN);
                            Array.Fill(streamed, float.NaN);
                            for (int pass = 0; pass < 2; pass++)
                            {
                                float* y = (pass == 0 ? pp : ps) + offset;
                                bool streaming = pass == 1;
                                switch (kernel)
                                {
                                    case "Normalize":
                                        FloatColumns.Normalize(px + offset, y, columns, rows, pm, phi, plo, pb, columns, streaming);
                                        break;
                                    case "Backward":
                                        FloatColumns.Backward(px + offset, pdy + offset, y, columns, rows, pm, pk, pb, pa, columns, streaming);
                                        break;
                                    default:
                                        FloatColumns.Scale(pdy + offset, y, columns, rows, pscale, columns, streaming);
                                        break;
                                }
                            }

                            for (int i = 0; i < n; i++)
                            {
                                Assert.True(BitConverter.SingleToUInt32Bits(plain[i]) == BitConverter.SingleToUInt32Bits(streamed[i]),
                                    $"FloatColumns.{kernel} streaming, columns {columns}, rows {rows}, offset {offset} (width {GoldenBitsTests.Width}): [{i}] {streamed[i]:R} vs {plain[i]:R}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>FloatColumns (the float row path, channels-last's layout): the shifted statistics against the float
    /// stretches of at most 8 rows widened into double in row order, and the output against the scalar FMA formula, for
    /// every column count 0..256 at offsets 0..3, 1 to 17 rows (one stretch, a partial one, several), a zero α_lo in every
    /// other column (the single-term form), and poisoned outputs.</summary>
    [Fact]
    public unsafe void Float_column_kernels_match_the_scalar_formula_bit_for_bit()
    {
        const int stride = MaxLength + 4;
        const int maxRows = 17;
        int n = (stride * maxRows) + 4;
        var x = Gaussian(31, n, mean: 3, std: 2);
        float[] c = Gaussian(32, stride, mean: 3, std: 1);
        float[] m = Gaussian(33, stride, mean: 3, std: 1);
        float[] hi = Gaussian(34, stride);
        float[] lo = Gaussian(35, stride, std: 1e-8).Select((v, j) => j % 2 == 0 ? 0f : v).ToArray();
        float[] b = Gaussian(36, stride);
        var dy = Gaussian(37, n);
        float[] k = Gaussian(38, stride);
        float[] scale = Gaussian(39, stride);
        double[] doubleScale = Gaussian(40, stride).Select(v => v * (1 + 1e-9)).Select(v => (double)v).ToArray();
        var sum = new double[stride];
        var squares = new double[stride];
        var y = new float[n];
        fixed (float* px = x, pc = c, pm = m, phi = hi, plo = lo, pb = b, py = y, pdy = dy, pk = k, pscale = scale)
        fixed (double* ps = sum, pq = squares, pdscale = doubleScale)
        {
            foreach (int rows in new[] { 1, 2, 8, 9, maxRows })
            {
                foreach (int offset in Offsets)
                {
                    for (int length = 0; length <= MaxLength; length++)
                    {
                        string where = $"{Where("FloatColumns", length, offset)} rows {rows}";
                        Array.Fill(sum, double.NaN);
                        Array.Fill(squares, double.NaN);
                        FloatColumns.SumAndSquaresShifted(px + offset, stride, rows, pc, ps, pq, length);
                        for (int j = 0; j < length; j++)
                        {
                            double expectedSum = 0, expectedSquares = 0;
                            for (int r0 = 0; r0 < rows; r0 += FloatColumns.FlushRows)
                            {
                                float a = 0, q = 0;
                                for (int r = r0; r < Math.Min(rows, r0 + FloatColumns.FlushRows); r++)
                                {
                                    float d = x[offset + (r * stride) + j] - c[j];
                                    a += d;
                                    q = MathF.FusedMultiplyAdd(d, d, q);
                                }

                                expectedSum += a;
                                expectedSquares += q;
                            }

                            Assert.True(expectedSum == sum[j], $"{where}: sum [{j}] {sum[j]:R} vs {expectedSum:R}");
                            Assert.True(expectedSquares == squares[j], $"{where}: squares [{j}] {squares[j]:R} vs {expectedSquares:R}");
                        }

                        FloatColumns.SumAndDotAbout(px + offset, pdy + offset, stride, rows, pm, ps, pq, length);
                        for (int j = 0; j < length; j++)
                        {
                            double expectedSum = 0, expectedDot = 0;
                            for (int r0 = 0; r0 < rows; r0 += FloatColumns.FlushRows)
                            {
                                float g = 0, dot = 0;
                                for (int r = r0; r < Math.Min(rows, r0 + FloatColumns.FlushRows); r++)
                                {
                                    int i = offset + (r * stride) + j;
                                    g += dy[i];
                                    dot = MathF.FusedMultiplyAdd(x[i] - m[j], dy[i], dot);
                                }

                                expectedSum += g;
                                expectedDot += dot;
                            }

                            Assert.True(expectedSum == sum[j], $"{where}: SumAndDotAbout sum [{j}] {sum[j]:R} vs {expectedSum:R}");
                            Assert.True(expectedDot == squares[j], $"{where}: SumAndDotAbout dot [{j}] {squares[j]:R} vs {expectedDot:R}");
                        }

                        Array.Fill(y, float.NaN);
                        FloatColumns.Normalize(px + offset, py + offset, stride, rows, pm, phi, plo, pb, length);
                        EachOutput("Normalize", (i, j) =>
                        {
                            float d = x[i] - m[j];
                            return MathF.FusedMultiplyAdd(d, hi[j], lo[j] == 0 ? b[j] : MathF.FusedMultiplyAdd(d, lo[j], b[j]));
                        });
                        Array.Fill(y, float.NaN);
                        FloatColumns.Backward(px + offset, pdy + offset, py + offset, stride, rows, pm, pk, pb, pscale, length);
                        EachOutput("Backward", (i, j) => MathF.FusedMultiplyAdd(dy[i], scale[j], MathF.FusedMultiplyAdd(x[i] - m[j], k[j], b[j])));
                        Array.Fill(y, float.NaN);
                        FloatColumns.Scale(pdy + offset, py + offset, stride, rows, pdscale, length);
                        EachOutput("Scale", (i, j) => (float)(dy[i] * doubleScale[j]));

                        void EachOutput(string kernel, Func<int, int, float> formula)
                        {
                            for (int r = 0; r < rows; r++)
                            {
                                for (int j = 0; j < stride; j++)
                                {
                                    int i = offset + (r * stride) + j;
                                    if (j >= length)
                                    {
                                        Assert.True(float.IsNaN(y[i]), $"{where}: {kernel} wrote column {j} of row {r}, past the block");
                                        continue;
                                    }

                                    float expected = formula(i, j);
                                    Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(y[i]), $"{where}: {kernel} y[{r}, {j}] {y[i]:R} vs {expected:R}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public unsafe void Float_reductions_are_exact_on_integers_for_every_length_offset_and_group()
    {
        int n = (3 * (MaxLength + 8)) + 8;
        var x = Integers(21, n);
        var dy = Integers(22, n);
        fixed (float* px = x)
        fixed (float* pdy = dy)
        {
            foreach (int offset in Offsets)
            {
                for (int length = 0; length <= MaxLength; length++)
                {
                    foreach (int runs in new[] { 1, 3 })
                    {
                        long stride = length + 5;
                        double sum = 0, squares = 0, about1 = 0, about = 0, sumDy = 0, dot = 0;
                        for (int r = 0; r < runs; r++)
                        {
                            for (int i = 0; i < length; i++)
                            {
                                long p = offset + (r * stride) + i;
                                double d = x[p] - 2.0;
                                sum += d;
                                squares += d * d;
                                double m = x[p] + 1.0;
                                about1 += m;
                                about += m * m;
                                sumDy += dy[p];
                                dot += m * dy[p];
                            }
                        }

                        string where = $"runs {runs}, stride {stride}";
                        FloatKernels.SumAndSquaresShifted(px + offset, length, runs, stride, 2f, out double s, out double q);
                        Assert.True(sum == s, $"{Where("SumAndSquaresShifted (sum)", length, offset)} {where}: {s} vs {sum}");
                        Assert.True(squares == q, $"{Where("SumAndSquaresShifted (squares)", length, offset)} {where}: {q} vs {squares}");
                        FloatKernels.SumAndSquaresShifted(px + offset, length, runs, stride, -1f, out double aboutSum, out double about2);
                        Assert.True(aboutSum == about1 && about == about2, $"{Where("SumAndSquaresShifted about -1", length, offset)} {where}");
                        FloatKernels.SumAndDotAbout(px + offset, pdy + offset, length, runs, stride, -1f, out double sd, out double dd);
                        Assert.True(sumDy == sd, $"{Where("SumAndDotAbout (sum)", length, offset)} {where}");
                        Assert.True(dot == dd, $"{Where("SumAndDotAbout (dot)", length, offset)} {where}");
                    }
                }
            }
        }
    }

    [Fact]
    public unsafe void Float_element_wise_kernels_match_the_scalar_fused_formula_bit_for_bit()
    {
        var x = Gaussian(23, MaxLength + 68, mean: 1000, std: 2);
        var dy = Gaussian(24, MaxLength + 68);
        var y = new float[MaxLength + 68];
        const float m = 1000.25f, aHi = 0.375f, aLo = 1.5e-8f, shift = -0.125f, k = -0.0625f, c = 0.03125f, a = 1.25f;
        fixed (float* px = x)
        fixed (float* pdy = dy)
        fixed (float* py = y)
        {
            // Offsets up to 63 so the streaming kernel's scalar peel to 64-byte alignment takes every length.
            foreach (int offset in Offsets.Concat([5, 17, 31, 63]))
            {
                for (int length = 0; length <= MaxLength; length++)
                {
                    foreach (float lo in new[] { aLo, 0f })
                    {
                        Array.Fill(y, float.NaN); // a store the kernel skips must not find the previous call's value
                        FloatKernels.Normalize(px + offset, py + offset, length, m, aHi, lo, shift);
                        for (int i = offset; i < offset + length; i++)
                        {
                            float d = x[i] - m;
                            BitsEqual(MathF.FusedMultiplyAdd(d, aHi, MathF.FusedMultiplyAdd(d, lo, shift)), y[i], Where($"FloatKernels.Normalize (α_lo {lo})", length, offset), i - offset);
                        }
                    }

                    foreach (bool streaming in new[] { false, true })
                    {
                        Array.Fill(y, float.NaN);
                        FloatKernels.Backward(px + offset, pdy + offset, py + offset, length, m, k, c, a, streaming);
                        for (int i = offset; i < offset + length; i++)
                        {
                            BitsEqual(MathF.FusedMultiplyAdd(dy[i], a, MathF.FusedMultiplyAdd(x[i] - m, k, c)), y[i], Where(streaming ? "FloatKernels.Backward (streaming)" : "FloatKernels.Backward", length, offset), i - offset);
                        }
                    }
                }
            }
        }
    }
}

public sealed class DoubleKernelTests : KernelTests<double>
{
}

/// <summary>The vector width a run expects is the one in effect (.ci/run sets BNPARITY_EXPECT_WIDTH for its 256-bit and
/// scalar runs; a knob the runtime ignores would otherwise make those runs repeat the AVX-512 path silently).</summary>
public sealed class VectorWidthTests
{
    [Fact]
    public void The_vector_width_in_effect_is_the_one_this_run_expects()
    {
        // Unset: the width the instruction-set flags imply (an independent reading of the same runtime switches).
        string expected = Environment.GetEnvironmentVariable("BNPARITY_EXPECT_WIDTH") is { Length: > 0 } e
            ? e
            : System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "vector512"
            : System.Runtime.Intrinsics.X86.Avx2.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported ? "vector256"
            : "scalar";
        Assert.Equal(expected, GoldenBitsTests.Width);
    }
}
