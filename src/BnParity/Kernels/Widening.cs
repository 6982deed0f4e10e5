using System.Runtime.CompilerServices;

namespace BnParity;

/// <summary>T ↔ double for T = float or double, free after JIT (the type tests fold away). Every statistic and
/// parameter is carried in double; values meet T only when they are read from or written to a tensor.</summary>
internal static class Widening<T> where T : unmanaged
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double ToDouble(T value)
    {
        if (typeof(T) == typeof(float))
        {
            return Unsafe.As<T, float>(ref value);
        }

        return Unsafe.As<T, double>(ref value);
    }

    /// <summary>Rounds once to T (round to nearest even).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T FromDouble(double value)
    {
        if (typeof(T) == typeof(float))
        {
            float f = (float)value;
            return Unsafe.As<float, T>(ref f);
        }

        return Unsafe.As<double, T>(ref value);
    }
}
