using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using FsCheck;
using FsCheck.Fluent;

namespace BnParity.ParityTests.Fuzzing;

/// <summary>
/// One way of damaging a valid file, as a careless tool or a hostile user would: flipped bits, a cut, a splice of the
/// file into itself, random bytes, a number of its JSON replaced by an extreme one, a JSON member repeated, a JSON
/// value replaced by a value of another kind, or the whole JSON replaced by random JSON. <see cref="ToString"/> says
/// exactly what was done, so a failing case can be rebuilt by hand.
/// </summary>
public abstract partial record FileMutation
{
    /// <summary>Applies the mutation to <paramref name="file"/>, whose JSON text is the byte range
    /// [<paramref name="jsonStart"/>, <paramref name="jsonEnd"/>) (the whole file for a case, the header for
    /// safetensors; the header's length prefix is rewritten after a JSON mutation so the damage reaches the parser).</summary>
    public abstract byte[] Apply(byte[] file, int jsonStart, int jsonEnd);

    /// <summary>Extreme numbers: past double, past int64/uint64/int32, negative, fractional, negative zero.</summary>
    public static readonly string[] ExtremeNumbers =
    [
        "1e400", "-1e400", "18446744073709551615", "18446744073709551616", "9223372036854775808", "9223372036854775807",
        "-9223372036854775809", "2147483648", "2147483647", "4294967296", "-1", "-0", "0", "1.5", "1e-400", "2e9", "1e8",
        "16777217", "3.4e38", "NaN",
    ];

    /// <summary>Replacement values of every JSON kind.</summary>
    public static readonly string[] OtherKinds = ["3", "\"x\"", "[]", "{}", "null", "true", "[[1]]", "{\"error\":1}", "\"NaN\"", "\"Infinity\""];

    public static Gen<FileMutation> Any(int fileLength) => Gen.OneOf(
        from count in Gen.Choose(1, 4)
        from flips in Gen.ArrayOf(Gen.Zip(Gen.Choose(0, fileLength - 1), Gen.Choose(0, 7)), count)
        select (FileMutation)new BitFlips(flips.Select(f => (f.Item1, f.Item2)).ToArray()),
        Gen.Choose(0, fileLength - 1).Select(length => (FileMutation)new Truncation(length)),
        from start in Gen.Choose(0, fileLength - 1)
        from length in Gen.Choose(1, 64)
        from target in Gen.Choose(0, fileLength - 1)
        from insert in Gen.Elements(true, false)
        select (FileMutation)new Splice(start, length, target, insert),
        from target in Gen.Choose(0, fileLength)
        from count in Gen.Choose(1, 16)
        from bytes in Gen.ArrayOf(Gen.Choose(0, 255).Select(b => (byte)b), count)
        select (FileMutation)new RandomBytes(target, bytes),
        from which in Gen.Choose(0, 10_000)
        from number in Gen.Elements(ExtremeNumbers)
        select (FileMutation)new ExtremeNumber(which, number),
        Gen.Choose(0, 10_000).Select(which => (FileMutation)new RepeatedMember(which)),
        from which in Gen.Choose(0, 10_000)
        from value in Gen.Elements(OtherKinds)
        select (FileMutation)new OtherKind(which, value),
        RandomJson(3).Select(json => (FileMutation)new WholeJson(json)));

    /// <summary>Random JSON of at most <paramref name="depth"/> levels.</summary>
    public static Gen<string> RandomJson(int depth)
    {
        var leaf = Gen.Elements(OtherKinds.Concat(ExtremeNumbers).Concat(["\"bnparity-case/1\"", "\"F32\"", "\"BatchNorm2d\""]).ToArray());
        if (depth == 0)
        {
            return leaf;
        }

        var key = Gen.Elements("format", "module", "num_features", "steps", "expect", "shape", "data", "dtype", "data_offsets", "weight", "__metadata__");
        return Gen.OneOf(
            leaf,
            from count in Gen.Choose(0, 4)
            from items in Gen.ArrayOf(RandomJson(depth - 1), count)
            select "[" + string.Join(",", items) + "]",
            from count in Gen.Choose(0, 4)
            from members in Gen.ArrayOf(Gen.Zip(key, RandomJson(depth - 1)), count)
            select "{" + string.Join(",", members.Select(m => $"\"{m.Item1}\":{m.Item2}")) + "}");
    }

    /// <summary>Replaces the JSON range by <paramref name="json"/> and, for safetensors (JSON starting at byte 8),
    /// rewrites the length prefix.</summary>
    protected static byte[] ReplaceJson(byte[] file, int jsonStart, int jsonEnd, string json)
    {
        byte[] text = Encoding.UTF8.GetBytes(json);
        byte[] result = [.. file.AsSpan(0, jsonStart), .. text, .. file.AsSpan(jsonEnd)];
        if (jsonStart == 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)text.Length);
        }

        return result;
    }

    /// <summary>Replaces group <paramref name="group"/> of match number <paramref name="which"/> (modulo the count) of
    /// <paramref name="pattern"/> in the JSON text; a text without matches is returned unchanged.</summary>
    protected static byte[] ReplaceMatch(byte[] file, int jsonStart, int jsonEnd, Regex pattern, int which, int group, Func<string, string> replacement)
    {
        string json = JsonOf(file, jsonStart, jsonEnd);
        var matches = pattern.Matches(json);
        if (matches.Count == 0)
        {
            return file;
        }

        var target = matches[which % matches.Count].Groups[group];
        return ReplaceJson(file, jsonStart, jsonEnd, json[..target.Index] + replacement(target.Value) + json[(target.Index + target.Length)..]);
    }

    protected static string JsonOf(byte[] file, int jsonStart, int jsonEnd) => Encoding.UTF8.GetString(file, jsonStart, jsonEnd - jsonStart);

    public sealed record BitFlips((int Position, int Bit)[] Flips) : FileMutation
    {
        public override byte[] Apply(byte[] file, int jsonStart, int jsonEnd)
        {
            byte[] copy = (byte[])file.Clone();
            foreach (var (position, bit) in Flips)
            {
                copy[position % copy.Length] ^= (byte)(1 << bit);
            }

            return copy;
        }

        public override string ToString() => "flip bits " + string.Join(", ", Flips.Select(f => $"{f.Bit}@{f.Position}"));
    }

    public sealed record Truncation(int Length) : FileMutation
    {
        public override byte[] Apply(byte[] file, int jsonStart, int jsonEnd) => file[..Math.Min(Length, file.Length)];

        public override string ToString() => $"cut to {Length} bytes";
    }

    public sealed record Splice(int Start, int Length, int Target, bool Insert) : FileMutation
    {
        public override byte[] Apply(byte[] file, int jsonStart, int jsonEnd)
        {
            int start = Start % file.Length, length = Math.Min(Length, file.Length - start), target = Target % file.Length;
            byte[] piece = file.AsSpan(start, length).ToArray();
            if (Insert)
            {
                return [.. file.AsSpan(0, target), .. piece, .. file.AsSpan(target)];
            }

            byte[] copy = (byte[])file.Clone();
            piece.AsSpan(0, Math.Min(piece.Length, copy.Length - target)).CopyTo(copy.AsSpan(target));
            return copy;
        }

        public override string ToString() => $"{(Insert ? "insert" : "overwrite")} bytes [{Start}, +{Length}) at {Target}";
    }

    public sealed record RandomBytes(int Target, byte[] Bytes) : FileMutation
    {
        public override byte[] Apply(byte[] file, int jsonStart, int jsonEnd)
        {
            int target = Math.Min(Target, file.Length);
            return [.. file.AsSpan(0, target), .. Bytes, .. file.AsSpan(target)];
        }

        public override string ToString() => $"insert {Convert.ToHexString(Bytes)} at {Target}";
    }

    public sealed partial record ExtremeNumber(int Which, string Number) : FileMutation
    {
        public override byte[] Apply(byte[] file, int jsonStart, int jsonEnd)
            => ReplaceMatch(file, jsonStart, jsonEnd, NumberPattern(), Which, 0, _ => Number);

        public override string ToString() => $"number #{Which} (mod count) := {Number}";

        [GeneratedRegex(@"(?<![""\w.])-?\d+(\.\d+)?([eE][+-]?\d+)?")]
        private static partial Regex NumberPattern();
    }

    public sealed partial record RepeatedMember(int Which) : FileMutation
    {
        public override byte[] Apply(byte[] file, int jsonStart, int jsonEnd)
            // Repeat a "key": scalar-or-short-value member right after itself.
            => ReplaceMatch(file, jsonStart, jsonEnd, MemberPattern(), Which, 0, member => member + "," + member);

        public override string ToString() => $"member #{Which} (mod count) repeated";

        [GeneratedRegex(@"""[^""\\]{1,40}""\s*:\s*(""[^""\\]*""|-?[\d.eE+-]+|true|false|null|\[[^\[\]{}]*\])")]
        private static partial Regex MemberPattern();
    }

    public sealed partial record OtherKind(int Which, string Value) : FileMutation
    {
        public override byte[] Apply(byte[] file, int jsonStart, int jsonEnd)
            => ReplaceMatch(file, jsonStart, jsonEnd, ValuePattern(), Which, 1, _ => Value);

        public override string ToString() => $"value #{Which} (mod count) := {Value}";

        [GeneratedRegex(@""":\s*(""[^""\\]*""|-?[\d.eE+-]+|true|false|null|\[[^\[\]{}]*\]|\{[^\[\]{}]*\})")]
        private static partial Regex ValuePattern();
    }

    public sealed record WholeJson(string Json) : FileMutation
    {
        public override byte[] Apply(byte[] file, int jsonStart, int jsonEnd) => ReplaceJson(file, jsonStart, jsonEnd, Json);

        public override string ToString() => "JSON := " + (Json.Length > 200 ? Json[..200] + "…" : Json);
    }
}
