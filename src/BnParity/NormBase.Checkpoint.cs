namespace BnParity;

/// <content>Checkpoint files: the state dictionary as safetensors, with PyTorch's key names.</content>
public abstract partial class NormBase<T>
{
    /// <summary>
    /// Writes <see cref="StateDict"/> to a safetensors file, each key under <paramref name="prefix"/> (PyTorch's module
    /// path, e.g. <c>"layer1.0.bn1"</c> gives <c>layer1.0.bn1.running_mean</c>; a trailing dot is optional). Float
    /// modules write F32, double modules F64, and <c>num_batches_tracked</c> is I64 of shape [], as PyTorch saves it.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> or <paramref name="prefix"/> is null.</exception>
    public void SaveSafetensors(string path, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(path);
        string start = NormalizePrefix(prefix);
        Safetensors.Write(path, StateDict().Select(entry => KeyValuePair.Create(start + entry.Key, entry.Value)));
    }

    /// <summary>
    /// Loads this module's entries from a safetensors file: the keys under <paramref name="prefix"/> (see
    /// <see cref="SaveSafetensors"/>), so the BatchNorm layers of a whole model load from one file; keys outside the
    /// prefix belong to other layers and are ignored. Then as <see cref="LoadStateDict"/> with
    /// <paramref name="strict"/>: under the prefix, strict loading rejects unknown keys and missing ones (except
    /// <c>num_batches_tracked</c>, whose absence keeps the current count), and shapes and dtypes must match (F32 for a
    /// float module, F64 for a double one, I64 for <c>num_batches_tracked</c>, of shape [] or the legacy [1]).
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> or <paramref name="prefix"/> is null.</exception>
    /// <exception cref="InvalidDataException">The file is not valid safetensors, or its entries do not fit this module
    /// (the message names the file and the key). The module is unchanged.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public void LoadSafetensors(string path, string prefix = "", bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(path);
        string start = NormalizePrefix(prefix);

        // Only this module's own entries are read: a checkpoint's other tensors (other layers, any dtype, any size)
        // cost a header entry and nothing more.
        IReadOnlyDictionary<string, IStateTensor> file;
        IReadOnlyList<string> names;
        using (var stream = OpenCheckpoint(path))
        {
            try
            {
                file = Safetensors.Read(stream, key => key.StartsWith(start, StringComparison.Ordinal) && IsStateKey(key[start.Length..]), out _, out names);
            }
            catch (InvalidDataException error)
            {
                throw new InvalidDataException($"{path}: {error.Message}", error);
            }
        }

        var underPrefix = names.Where(key => key.StartsWith(start, StringComparison.Ordinal)).Select(key => key[start.Length..]).ToList();
        var mine = file.ToDictionary(entry => entry.Key[start.Length..], entry => entry.Value, StringComparer.Ordinal);
        try
        {
            if (strict)
            {
                if (underPrefix.Count == 0)
                {
                    throw new InvalidDataException($"{path}: no tensor is under the prefix '{start}' (the file holds {string.Join(", ", names.Take(8))}{(names.Count > 8 ? ", …" : "")}).");
                }

                CheckStrictKeys(underPrefix, start);
            }

            LoadStateDict(mine, strict);
        }
        catch (ArgumentException error)
        {
            throw new InvalidDataException($"{path} (prefix '{start}'): {error.Message}", error);
        }
    }

    private static FileStream OpenCheckpoint(string path) => new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);

    private static string NormalizePrefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return prefix.Length == 0 || prefix.EndsWith('.') ? prefix : prefix + ".";
    }
}
