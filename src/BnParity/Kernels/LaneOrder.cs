using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BnParity;

/// <summary>
/// The one fixed order in which the reduction kernels combine their four 4-lane double accumulators:
/// <c>(a0 + a1) + (a2 + a3)</c>, then lanes 0 + 1 + 2 + 3 left to right. Bit-exactness across paths and thread counts
/// depends on every kernel using exactly this order, so it lives here once.
/// </summary>
internal static class LaneOrder
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Combine(Vector256<double> a0, Vector256<double> a1, Vector256<double> a2, Vector256<double> a3)
    {
        Vector256<double> s = (a0 + a1) + (a2 + a3);
        return ((s.GetElement(0) + s.GetElement(1)) + s.GetElement(2)) + s.GetElement(3);
    }
}
