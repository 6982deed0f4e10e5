using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace BnParity;

/// <summary>
/// Reads and writes the safetensors format PyTorch users share weights in: an 8-byte little-endian header length N,
/// N bytes of UTF-8 JSON mapping every tensor name to <c>{"dtype", "shape", "data_offsets": [begin, end]}</c> (offsets
/// into the data that follows the header; an optional <c>"__metadata__"</c> object of strings), then the raw
/// little-endian data. The tensors BnParity decodes are <c>F32</c>, <c>F64</c> and <c>I64</c> (a BatchNorm's float,
/// double and <c>num_batches_tracked</c> entries); see <see cref="NormBase{T}.SaveSafetensors"/> and
/// <see cref="NormBase{T}.LoadSafetensors"/> for modules.
/// </summary>
/// <remarks>
/// <para><b>Saving is atomic.</b> Every entry is validated and the header is built before the first byte is written;
/// the file is written to a temporary file in the target's folder, flushed to disk, then renamed over the target. A
/// failure at any point (a bad entry, an I/O error, a full disk, a crash) leaves an existing file byte-identical.</para>
/// <para><b>Loading is bounded and lazy.</b> The 8-byte length and the header (at most <see cref="MaxHeaderBytes"/>,
/// and never more than the file holds) are read and validated first; then only the selected tensors are read, from a
/// stream, so files of 2 GB and more load and a checkpoint's other tensors (of any dtype the format defines) cost
/// nothing. Validation is strict, as the reference implementation's is: a header that is not a JSON object, a key named
/// twice, offsets out of range, overlapping, leaving holes or disagreeing with the shape are
/// <see cref="InvalidDataException"/>s naming the file and the tensor, and nothing is returned.</para>
/// </remarks>
public static class Safetensors
{
    /// <summary>The largest header accepted (the reference implementation's limit).</summary>
    public const int MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    /// <summary>Bytes read or written per step when tensor data is streamed.</summary>
    private const int ChunkBytes = 1 << 16;

    /// <summary>Writes <paramref name="tensors"/> (in their order) to <paramref name="path"/>, atomically: through a
    /// temporary file in the same folder, flushed, then renamed over the target (a symbolic link is followed, so the
    /// file it points to is replaced). On any failure the previous file is untouched and the temporary file is
    /// removed.</summary>
    /// <exception cref="ArgumentException">A tensor has an unsupported element type, a data buffer that is not its
    /// element type's array or does not hold its shape's element count, or a key is empty, reserved or repeated.
    /// Nothing is written.</exception>
    /// <exception cref="IOException">The file cannot be written (the previous file is unchanged).</exception>
    public static void Write(string path, IEnumerable<KeyValuePair<string, IStateTensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors, metadata, wrapForTesting: null);

    /// <summary>The atomic file write; <paramref name="wrapForTesting"/> lets tests put a failing stream between the
    /// writer and the temporary file (a full disk midway).</summary>
    internal static void Write(string path, IEnumerable<KeyValuePair<string, IStateTensor>> tensors, IReadOnlyDictionary<string, string>? metadata, Func<Stream, Stream>? wrapForTesting)
    {
        ArgumentNullException.ThrowIfNull(path);
        var prepared = Prepare(tensors, metadata);
        string target = FinalTarget(path);
        string directory = Path.GetDirectoryName(Path.GetFullPath(target)) ?? ".";
        string temporary = Path.Combine(directory, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, ChunkBytes))
            {
                using (var stream = wrapForTesting is null ? null : wrapForTesting(file))
                {
                    prepared.WriteTo(stream ?? file);
                    stream?.Flush();
                }

                // The data must be on disk before the rename publishes it: otherwise a crash right after the rename
                // could leave the new name pointing at a file whose blocks were never written.
                file.Flush(flushToDisk: true);
            }

            if (!OperatingSystem.IsWindows() && File.Exists(target))
            {
                File.SetUnixFileMode(temporary, File.GetUnixFileMode(target));
            }

            File.Move(temporary, target, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>Writes <paramref name="tensors"/> (in their order) to <paramref name="stream"/>. Everything is validated
    /// before the first byte is written.</summary>
    /// <exception cref="ArgumentException">A tensor has an unsupported element type, a data buffer that is not its
    /// element type's array or does not hold its shape's element count, or a key is empty, reserved or repeated.</exception>
    public static void Write(Stream stream, IEnumerable<KeyValuePair<string, IStateTensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Prepare(tensors, metadata).WriteTo(stream);
    }

    /// <summary>Reads every tensor of the file at <paramref name="path"/>, in header order.</summary>
    /// <exception cref="InvalidDataException">The file is not valid safetensors, or holds a tensor of a dtype other than
    /// F32, F64 and I64 (the message names the file and the tensor).</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static IReadOnlyDictionary<string, IStateTensor> Read(string path) => Read(path, _ => true, out _);

    /// <summary>Reads every tensor of the file at <paramref name="path"/>, in header order, and its metadata.</summary>
    /// <exception cref="InvalidDataException">The file is not valid safetensors, or holds a tensor of a dtype other than
    /// F32, F64 and I64.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static IReadOnlyDictionary<string, IStateTensor> Read(string path, out IReadOnlyDictionary<string, string> metadata) =>
        Read(path, _ => true, out metadata);

    /// <summary>
    /// Validates the whole header of the file at <paramref name="path"/>, then reads only the tensors whose names
    /// <paramref name="include"/> accepts (in header order); the others are never read, and may have any dtype of the
    /// format (F16, BF16, BOOL, I32, …). Files over 2 GB work.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not valid safetensors, or an included tensor has a dtype other
    /// than F32, F64 and I64 or more elements than an array holds (the message names the file and the tensor).</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static IReadOnlyDictionary<string, IStateTensor> Read(string path, Func<string, bool> include, out IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(include);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, ChunkBytes);
            return Read(stream, include, out metadata, out _);
        }
        catch (InvalidDataException error)
        {
            throw new InvalidDataException($"{path}: {error.Message}", error);
        }
    }

    /// <summary>The header of the file at <paramref name="path"/>, validated: every tensor's name, in header order.</summary>
    /// <exception cref="InvalidDataException">The file is not valid safetensors.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static IReadOnlyList<string> ReadNames(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, ChunkBytes);
            return ReadHeader(stream).Entries.Select(e => e.Key).ToList();
        }
        catch (InvalidDataException error)
        {
            throw new InvalidDataException($"{path}: {error.Message}", error);
        }
    }

    /// <summary>Reads the selected tensors of a safetensors stream (positioned at the file's first byte). A seekable
    /// stream skips what is not selected and its length bounds the header; otherwise the unselected bytes are read
    /// and dropped.</summary>
    /// <exception cref="InvalidDataException">The stream is not valid safetensors, or an included tensor cannot be
    /// decoded.</exception>
    public static IReadOnlyDictionary<string, IStateTensor> Read(Stream stream, Func<string, bool> include, out IReadOnlyDictionary<string, string> metadata) =>
        Read(stream, include, out metadata, out _);

    /// <summary>As the public stream overload, and every tensor name of the header in <paramref name="names"/>.</summary>
    internal static OrderedDictionary<string, IStateTensor> Read(Stream stream, Func<string, bool> include, out IReadOnlyDictionary<string, string> metadata, out IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(include);
        var header = ReadHeader(stream);
        var selected = header.Entries.Where(e => include(e.Key)).ToList();
        foreach (var entry in selected)
        {
            CheckDecodable(entry);
        }

        var decoded = new Dictionary<string, IStateTensor>(StringComparer.Ordinal);
        long position = 0; // relative to the start of the data
        foreach (var entry in selected.OrderBy(e => e.Begin))
        {
            Skip(stream, header.DataStart, position, entry.Begin);
            decoded[entry.Key] = Decode(stream, entry);
            position = entry.End;
        }

        var result = new OrderedDictionary<string, IStateTensor>(StringComparer.Ordinal);
        foreach (var entry in selected)
        {
            result.Add(entry.Key, decoded[entry.Key]);
        }

        metadata = header.Metadata;
        names = header.Entries.Select(e => e.Key).ToList();
        return result;
    }

    /// <summary>Parses a whole safetensors file held in memory.</summary>
    /// <exception cref="InvalidDataException">The bytes are not valid safetensors, or hold a tensor of a dtype other
    /// than F32, F64 and I64.</exception>
    public static IReadOnlyDictionary<string, IStateTensor> Parse(ReadOnlySpan<byte> file, out IReadOnlyDictionary<string, string> metadata)
    {
        using var stream = new MemoryStream(file.ToArray(), writable: false);
        return Read(stream, _ => true, out metadata);
    }

    // ---------------------------------------------------------------- reading

    /// <summary>One tensor of the header: name, dtype string, shape and byte range within the data.</summary>
    private sealed record Entry(string Key, string DType, long[] Shape, long Begin, long End);

    private sealed record Header(List<Entry> Entries, IReadOnlyDictionary<string, string> Metadata, long DataStart);

    private static Header ReadHeader(Stream stream)
    {
        Span<byte> prefix = stackalloc byte[8];
        int got = stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false);
        if (got < 8)
        {
            throw new InvalidDataException($"safetensors: the file has {got} bytes, fewer than the 8-byte header length.");
        }

        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        long? length = KnownLength(stream);
        if (declared > MaxHeaderBytes || (length is { } total && declared > (ulong)(total - 8)))
        {
            throw new InvalidDataException(
                $"safetensors: the header length {declared} runs past the end of the file ({(length is { } t ? (t - 8).ToString(System.Globalization.CultureInfo.InvariantCulture) : "unknown")} bytes follow it) or exceeds {MaxHeaderBytes}.");
        }

        // Bounded by MaxHeaderBytes and, for a file, by what the file holds: never an allocation the input did not pay for.
        byte[] json = new byte[(int)declared];
        got = stream.ReadAtLeast(json, json.Length, throwOnEndOfStream: false);
        if (got < json.Length)
        {
            throw new InvalidDataException($"safetensors: the header length is {declared} but only {got} bytes follow it.");
        }

        long dataStart = 8 + (long)declared;
        var (entries, metadata) = ParseHeader(json);
        CheckCoverage(entries, length is { } size ? size - dataStart : null);
        return new Header(entries, metadata, dataStart);
    }

    private static long? KnownLength(Stream stream)
    {
        if (!stream.CanSeek)
        {
            return null;
        }

        // Character devices (/dev/zero, /dev/urandom) seek but report length 0 after giving 8 bytes: their length is
        // unknown, so the header is bounded by MaxHeaderBytes alone and the data by the reads.
        long length = stream.Length;
        return length >= 8 ? length : null;
    }

    private static (List<Entry> Entries, IReadOnlyDictionary<string, string> Metadata) ParseHeader(byte[] json)
    {
        var entries = new List<Entry>();
        var meta = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException("safetensors: the header is not a JSON object.");
            }

            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                {
                    throw new InvalidDataException($"safetensors: the header names '{property.Name}' twice.");
                }

                if (property.Name == MetadataKey)
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw new InvalidDataException("safetensors: \"__metadata__\" is not an object of strings.");
                    }

                    foreach (var item in property.Value.EnumerateObject())
                    {
                        if (item.Value.ValueKind != JsonValueKind.String)
                        {
                            throw new InvalidDataException($"safetensors: metadata '{item.Name}' is not a string.");
                        }

                        if (!meta.TryAdd(item.Name, item.Value.GetString()!))
                        {
                            throw new InvalidDataException($"safetensors: metadata '{item.Name}' is named twice.");
                        }
                    }

                    continue;
                }

                entries.Add(ParseEntry(property));
            }
        }
        catch (JsonException error)
        {
            throw new InvalidDataException($"safetensors: the header is not valid JSON: {error.Message}", error);
        }
        catch (ArgumentException error)
        {
            // Invalid UTF-8 inside a string surfaces from GetString as an ArgumentException (or its subclasses).
            throw new InvalidDataException($"safetensors: the header is not valid UTF-8 JSON: {error.Message}", error);
        }
        catch (InvalidOperationException error)
        {
            throw new InvalidDataException($"safetensors: the header has a value of the wrong kind: {error.Message}", error);
        }

        return (entries, meta);
    }

    private static Entry ParseEntry(JsonProperty property)
    {
        string key = property.Name;
        var value = property.Value;
        if (value.ValueKind != JsonValueKind.Object
            || !value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !value.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
        {
            throw new InvalidDataException($"safetensors: tensor '{key}' needs \"dtype\" (a string), \"shape\" (an array) and \"data_offsets\" ([begin, end]).");
        }

        string dtype = dtypeElement.GetString()!;
        long[] shape = shapeElement.EnumerateArray().Select(d => d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out long v) && v >= 0
            ? v
            : throw new InvalidDataException($"safetensors: tensor '{key}' has shape entry {d}, not a non-negative integer.")).ToArray();
        long[] offsets = offsetsElement.EnumerateArray().Select(o => o.ValueKind == JsonValueKind.Number && o.TryGetInt64(out long v) && v >= 0
            ? v
            : throw new InvalidDataException($"safetensors: tensor '{key}' has data offset {o}, not a non-negative integer.")).ToArray();
        if (offsets[1] < offsets[0])
        {
            throw new InvalidDataException($"safetensors: tensor '{key}' ends (byte {offsets[1]}) before it begins (byte {offsets[0]}).");
        }

        // A dtype this reader does not know (a newer format's sub-byte floats) is only another layer's business: its
        // extent is still checked for holes and overlaps, and it can never be selected (CheckDecodable).
        if (ElementBytes(dtype) is not { } elementBytes)
        {
            return new Entry(key, dtype, shape, offsets[0], offsets[1]);
        }

        // The byte count of the shape, exact in 128 bits whatever the order of the dimensions: a zero anywhere makes it
        // zero, and a product past any file size is a mismatch, never a wrapped number.
        Int128 bytes = elementBytes;
        foreach (long d in shape)
        {
            if (d == 0)
            {
                bytes = 0;
                break;
            }
        }

        if (bytes != 0)
        {
            foreach (long d in shape)
            {
                bytes *= d;
                if (bytes > long.MaxValue)
                {
                    break;
                }
            }
        }

        if (bytes != offsets[1] - offsets[0])
        {
            throw new InvalidDataException(
                $"safetensors: tensor '{key}' ({dtype}, shape [{string.Join(", ", shape)}]) needs {(bytes > long.MaxValue ? "more than " + long.MaxValue : bytes.ToString())} bytes but its data_offsets span {offsets[1] - offsets[0]}.");
        }

        return new Entry(key, dtype, shape, offsets[0], offsets[1]);
    }

    /// <summary>The data must be indexed entirely, without holes or overlaps (the reference implementation's rule);
    /// when the data length is unknown (a pipe) only the holes and overlaps are checked here and truncation shows when
    /// the data is read.</summary>
    private static void CheckCoverage(List<Entry> entries, long? dataLength)
    {
        long expectedBegin = 0;
        foreach (var entry in entries.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (entry.Begin != expectedBegin)
            {
                throw new InvalidDataException(entry.Begin < expectedBegin
                    ? $"safetensors: tensor '{entry.Key}' at bytes [{entry.Begin}, {entry.End}) overlaps the tensor before it (which ends at {expectedBegin})."
                    : $"safetensors: bytes [{expectedBegin}, {entry.Begin}) before tensor '{entry.Key}' belong to no tensor.");
            }

            expectedBegin = entry.End;
        }

        if (dataLength is { } length && expectedBegin != length)
        {
            throw new InvalidDataException(expectedBegin > length
                ? $"safetensors: the tensors need {expectedBegin} data bytes but the file has {length} after its header (truncated?)."
                : $"safetensors: the last {length - expectedBegin} data bytes belong to no tensor.");
        }
    }

    /// <summary>Bytes per element of the whole-byte dtypes the safetensors format defines; null for others.</summary>
    private static int? ElementBytes(string dtype) => dtype switch
    {
        "BOOL" or "U8" or "I8" or "F8_E5M2" or "F8_E4M3" or "F8_E8M0" => 1,
        "I16" or "U16" or "F16" or "BF16" => 2,
        "I32" or "U32" or "F32" => 4,
        "I64" or "U64" or "F64" or "C64" => 8,
        _ => null,
    };

    private static void CheckDecodable(Entry entry)
    {
        if (entry.DType is not ("F32" or "F64" or "I64"))
        {
            throw new InvalidDataException($"safetensors: tensor '{entry.Key}' has dtype {entry.DType}; BnParity reads F32, F64 and I64.");
        }

        long count = (entry.End - entry.Begin) / ElementBytes(entry.DType)!.Value;
        if (count > Array.MaxLength || entry.Shape.Any(d => d > int.MaxValue))
        {
            throw new InvalidDataException(
                $"safetensors: tensor '{entry.Key}' (shape [{string.Join(", ", entry.Shape)}]) has {count} elements or a dimension past int32; a .NET array holds at most {Array.MaxLength}.");
        }
    }

    private static void Skip(Stream stream, long dataStart, long from, long to)
    {
        if (stream.CanSeek)
        {
            stream.Seek(dataStart + to, SeekOrigin.Begin);
            return;
        }

        byte[] scratch = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            for (long left = to - from; left > 0;)
            {
                int read = stream.Read(scratch, 0, (int)Math.Min(left, ChunkBytes));
                if (read == 0)
                {
                    throw new InvalidDataException($"safetensors: the data ends at byte {to - left} of the data, before the tensors do (truncated?).");
                }

                left -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private static IStateTensor Decode(Stream stream, Entry entry)
    {
        int[] shape = entry.Shape.Select(d => (int)d).ToArray();
        int count = (int)((entry.End - entry.Begin) / ElementBytes(entry.DType)!.Value);
        return entry.DType switch
        {
            "F32" => new DenseTensor<float>(ReadValues<float>(stream, entry, count), shape),
            "F64" => new DenseTensor<double>(ReadValues<double>(stream, entry, count), shape),
            _ => new DenseTensor<long>(ReadValues<long>(stream, entry, count), shape),
        };
    }

    /// <summary>Reads <paramref name="count"/> little-endian values straight into their array, a chunk at a time (a
    /// tensor's bytes can exceed what one span addresses).</summary>
    private static TValue[] ReadValues<TValue>(Stream stream, Entry entry, int count) where TValue : unmanaged
    {
        var values = new TValue[count];
        int perChunk = ChunkBytes / Marshal.SizeOf<TValue>();
        for (int start = 0; start < count; start += perChunk)
        {
            var bytes = MemoryMarshal.AsBytes(values.AsSpan(start, Math.Min(perChunk, count - start)));
            int got = stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            if (got < bytes.Length)
            {
                throw new InvalidDataException($"safetensors: tensor '{entry.Key}' is cut short: the data ends inside it (truncated?).");
            }

            if (!BitConverter.IsLittleEndian)
            {
                ReverseEndianness(bytes, Marshal.SizeOf<TValue>());
            }
        }

        return values;
    }

    private static void ReverseEndianness(Span<byte> bytes, int size)
    {
        for (int i = 0; i < bytes.Length; i += size)
        {
            bytes.Slice(i, size).Reverse();
        }
    }

    // ---------------------------------------------------------------- writing

    private sealed class PreparedFile(byte[] header, List<Array> data)
    {
        public void WriteTo(Stream stream)
        {
            stream.Write(header);
            byte[] scratch = ArrayPool<byte>.Shared.Rent(ChunkBytes);
            try
            {
                foreach (var array in data)
                {
                    switch (array)
                    {
                        case float[] values:
                            WriteValues<float>(stream, values, scratch);
                            break;
                        case double[] values:
                            WriteValues<double>(stream, values, scratch);
                            break;
                        case long[] values:
                            WriteValues<long>(stream, values, scratch);
                            break;
                    }
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }

        private static void WriteValues<TValue>(Stream stream, TValue[] values, byte[] scratch) where TValue : unmanaged
        {
            int size = Marshal.SizeOf<TValue>();
            int perChunk = ChunkBytes / size;
            for (int start = 0; start < values.Length; start += perChunk)
            {
                var bytes = MemoryMarshal.AsBytes(values.AsSpan(start, Math.Min(perChunk, values.Length - start)));
                var output = scratch.AsSpan(0, bytes.Length);
                bytes.CopyTo(output);
                if (!BitConverter.IsLittleEndian)
                {
                    ReverseEndianness(output, size);
                }

                stream.Write(output);
            }
        }
    }

    /// <summary>Validates every entry and builds the header (the whole file but the data), so that a writer never
    /// starts what it cannot finish.</summary>
    private static PreparedFile Prepare(IEnumerable<KeyValuePair<string, IStateTensor>> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var data = new List<Array>();
        using var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata)
                {
                    ArgumentNullException.ThrowIfNull(value, nameof(metadata));
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
            }

            long offset = 0;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (key, tensor) in tensors)
            {
                if (string.IsNullOrEmpty(key) || key == MetadataKey || !seen.Add(key))
                {
                    throw new ArgumentException($"tensor name '{key}' is empty, reserved or repeated.", nameof(tensors));
                }

                ArgumentNullException.ThrowIfNull(tensor, nameof(tensors));

                // Read each property once: what is validated is exactly what is written.
                int[] shape = tensor.Shape;
                Type elementType = tensor.ElementType;
                Array values = tensor.Data;
                (string dtype, int size) = DTypeOf(elementType) is { } known
                    ? known
                    : throw new ArgumentException($"tensor '{key}' has element type {elementType.Name}; safetensors output supports float, double and long.", nameof(tensors));
                if (values?.GetType() is not { IsSZArray: true } arrayType || arrayType.GetElementType() != elementType)
                {
                    throw new ArgumentException($"tensor '{key}' says its element type is {elementType.Name} but its data is {values?.GetType().Name ?? "null"}.", nameof(tensors));
                }

                long count = 1;
                foreach (int d in shape)
                {
                    count = d < 0 ? -1 : count * d;
                    if (count < 0 || count > values.Length)
                    {
                        break;
                    }
                }

                if (shape.Any(d => d == 0))
                {
                    count = 0;
                }

                if (count != values.Length)
                {
                    throw new ArgumentException($"tensor '{key}' has shape {DenseTensor<byte>.FormatShape(shape)} but {values.Length} values.", nameof(tensors));
                }

                long bytes = (long)values.Length * size;
                json.WriteStartObject(key);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (int d in shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
                data.Add(values);
            }

            json.WriteEndObject();
        }

        // Pad the header with spaces to a multiple of 8 bytes, as the reference writer does, so the data is aligned.
        int headerLength = (int)header.Length;
        int padded = (headerLength + 7) / 8 * 8;
        var file = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)padded);
        header.GetBuffer().AsSpan(0, headerLength).CopyTo(file.AsSpan(8));
        file.AsSpan(8 + headerLength).Fill((byte)' ');
        return new PreparedFile(file, data);
    }

    private static (string DType, int Size)? DTypeOf(Type type) =>
        type == typeof(float) ? ("F32", 4)
        : type == typeof(double) ? ("F64", 8)
        : type == typeof(long) ? ("I64", 8)
        : null;

    /// <summary>The file a write replaces: a symbolic link is followed (to its final target), so a link to a checkpoint
    /// keeps pointing at the new contents instead of being replaced by a regular file.</summary>
    private static string FinalTarget(string path)
    {
        var info = new FileInfo(path);
        return info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } resolved ? resolved.FullName : path;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            // The write already failed; its exception is the one to report.
        }
    }
}
