using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>
/// One element-wise float output: the value at a position, at three widths. <see cref="FloatElementwise"/> owns the
/// loop, the tails and the store kind; an operator only says what the value is. Every width must perform the same IEEE
/// operations per element (fused multiply-adds through <see cref="Vector256.FusedMultiplyAdd(Vector256{float}, Vector256{float}, Vector256{float})"/>,
/// <see cref="Vector512.FusedMultiplyAdd(Vector512{float}, Vector512{float}, Vector512{float})"/> and
/// <see cref="MathF.FusedMultiplyAdd"/>), so the result does not depend on where the loop splits a run.
/// </summary>
internal interface IFloatElementwise
{
    /// <summary>The 8 outputs at element offset <paramref name="i"/>.</summary>
    Vector256<float> Invoke256(int i);

    /// <summary>The 16 outputs at element offset <paramref name="i"/>.</summary>
    Vector512<float> Invoke512(int i);

    /// <summary>The output at element offset <paramref name="i"/>.</summary>
    float InvokeScalar(int i);
}

/// <summary>
/// The one loop skeleton of the float element-wise kernels: out[i] = op(i) for i in [0, length). Temporal stores take
/// 32 elements per step (512-bit where the hardware has it, else 2 × 16 in 256-bit), then one 8-element vector, then
/// scalars. <b>Non-temporal</b> stores (<c>streaming</c>) first peel scalars up to the vector alignment of the output
/// (element-wise, so a peel cannot change a result), then write aligned streaming stores and end with a store fence:
/// the output's lines are neither read from memory first (no read-for-ownership) nor kept in the cache, where they
/// would evict the input the caller reads next. Callers stream only outputs far larger than the cache.
/// </summary>
internal static unsafe class FloatElementwise
{
    /// <summary>Runs shorter than this never stream (the peel and the fence would dominate).</summary>
    private const int MinStreamingLength = 64;

    public static void Run<TOp>(ref TOp op, float* output, int length, bool streaming)
        where TOp : struct, IFloatElementwise
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            if (streaming && length >= MinStreamingLength)
            {
                RunStreaming(ref op, output, length);
                return;
            }

            if (Vector512.IsHardwareAccelerated)
            {
                for (; i <= length - 32; i += 32)
                {
                    op.Invoke512(i).Store(output + i);
                    op.Invoke512(i + 16).Store(output + i + 16);
                }
            }

            for (; i <= length - 16; i += 16)
            {
                op.Invoke256(i).Store(output + i);
                op.Invoke256(i + 8).Store(output + i + 8);
            }

            if (i <= length - 8)
            {
                op.Invoke256(i).Store(output + i);
                i += 8;
            }
        }

        for (; i < length; i++)
        {
            output[i] = op.InvokeScalar(i);
        }
    }

    private static void RunStreaming<TOp>(ref TOp op, float* output, int length)
        where TOp : struct, IFloatElementwise
    {
        bool wide = Vector512.IsHardwareAccelerated;
        int align = wide ? 64 : 32;
        int i = 0;
        for (; i < length && ((nint)(output + i) & (align - 1)) != 0; i++)
        {
            output[i] = op.InvokeScalar(i);
        }

        if (wide)
        {
            for (; i <= length - 32; i += 32)
            {
                op.Invoke512(i).StoreAlignedNonTemporal(output + i);
                op.Invoke512(i + 16).StoreAlignedNonTemporal(output + i + 16);
            }
        }
        else
        {
            for (; i <= length - 16; i += 16)
            {
                op.Invoke256(i).StoreAlignedNonTemporal(output + i);
                op.Invoke256(i + 8).StoreAlignedNonTemporal(output + i + 8);
            }
        }

        for (; i < length; i++)
        {
            output[i] = op.InvokeScalar(i);
        }

        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            // Streaming stores are weakly ordered: the fence makes them visible before the phase's join publishes the
            // output to other threads.
            System.Runtime.Intrinsics.X86.Sse.StoreFence();
        }
    }
}
