using System.Numerics;

namespace BnParity;

/// <content>State dictionary support (PyTorch's <c>state_dict</c> / <c>load_state_dict</c>).</content>
public abstract partial class NormBase<T>
{
    private const string WeightKey = "weight";
    private const string BiasKey = "bias";
    private const string RunningMeanKey = "running_mean";
    private const string RunningVarKey = "running_var";
    private const string NumBatchesTrackedKey = "num_batches_tracked";

    /// <summary>
    /// A copy of the parameters and buffers in PyTorch's key order: weight, bias (when affine), running_mean,
    /// running_var, num_batches_tracked (when tracking). Vectors are <see cref="DenseTensor{T}"/> of shape [C];
    /// num_batches_tracked is a <see cref="DenseTensor{T}"/> of <see cref="long"/> with shape [] (one element).
    /// </summary>
    /// <exception cref="InvalidOperationException">Called while another thread runs an exclusive call (a training
    /// forward, Backward, a state change) on this module.</exception>
    public IReadOnlyDictionary<string, IStateTensor> StateDict()
    {
        _guard.EnterShared();
        try
        {
            return StateDictCore();
        }
        finally
        {
            _guard.ExitShared();
        }
    }

    private OrderedDictionary<string, IStateTensor> StateDictCore()
    {
        var dict = new OrderedDictionary<string, IStateTensor>();
        int c = NumFeatures;
        if (_weight is not null)
        {
            dict.Add(WeightKey, new DenseTensor<T>((T[])_weight.Clone(), ParameterShape));
        }

        if (_bias is not null)
        {
            dict.Add(BiasKey, new DenseTensor<T>((T[])_bias.Clone(), ParameterShape));
        }

        if (_runningMean is not null && _runningVar is not null)
        {
            dict.Add(RunningMeanKey, new DenseTensor<T>((T[])_runningMean.Clone(), c));
            dict.Add(RunningVarKey, new DenseTensor<T>((T[])_runningVar.Clone(), c));
            dict.Add(NumBatchesTrackedKey, DenseTensor<long>.Scalar(_numBatchesTracked));
        }

        return dict;
    }

    /// <summary>
    /// Copies parameters and buffers from <paramref name="state"/>. Every entry is validated before anything is
    /// written, so a failing call changes nothing.
    /// </summary>
    /// <param name="state">Entries keyed like <see cref="StateDict"/>.</param>
    /// <param name="strict">When true the keys must be exactly the expected set, except that
    /// <c>num_batches_tracked</c> may be missing (older checkpoints; the current count is kept, as in PyTorch).
    /// When false unexpected and missing keys are ignored. Present expected keys are always checked.</param>
    /// <exception cref="ArgumentNullException"><paramref name="state"/> is null (a null entry is an ArgumentException).</exception>
    /// <exception cref="ArgumentException">Missing/unexpected keys (strict), a wrong shape (vectors must be [C],
    /// num_batches_tracked [] or, as PyTorch accepts from old checkpoints, [1]), a wrong element type (T for vectors, long for num_batches_tracked), a data
    /// length inconsistent with the shape, or a negative num_batches_tracked.</exception>
    /// <exception cref="InvalidOperationException">Called while another thread is in a call on this module.</exception>
    public void LoadStateDict(IReadOnlyDictionary<string, IStateTensor> state, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(state);
        Mutate(() => LoadStateDictCore(state, strict));
    }

    private void LoadStateDictCore(IReadOnlyDictionary<string, IStateTensor> state, bool strict)
    {
        var vectorKeys = VectorKeys();
        if (strict)
        {
            CheckStrictKeys(state.Keys, prefix: "");
        }

        // Validate everything first.
        var vectors = new T[]?[vectorKeys.Count];
        for (int i = 0; i < vectorKeys.Count; i++)
        {
            string key = vectorKeys[i];
            if (!state.TryGetValue(key, out IStateTensor? tensor))
            {
                continue;
            }

            vectors[i] = Validate<T>(key, tensor, key is WeightKey or BiasKey ? ParameterShape : [NumFeatures]);
        }

        long? count = null;
        if (TrackRunningStats && state.TryGetValue(NumBatchesTrackedKey, out IStateTensor? nbt))
        {
            // Shape [1] too: PyTorch's _load_from_state_dict takes a 1-element vector into a 0-dim buffer (checkpoints
            // from PyTorch 0.3, and TorchSharp.PyBridge files, hold num_batches_tracked as [1]).
            long value = Validate<long>(NumBatchesTrackedKey, nbt, nbt?.Shape is [1] ? [1] : [])[0];
            if (value < 0)
            {
                throw new ArgumentException($"num_batches_tracked must be non-negative, got {value}.", nameof(state));
            }

            count = value;
        }

        // Commit.
        for (int i = 0; i < vectorKeys.Count; i++)
        {
            if (vectors[i] is not T[] source)
            {
                continue;
            }

            T[] target = vectorKeys[i] switch
            {
                WeightKey => _weight!,
                BiasKey => _bias!,
                RunningMeanKey => _runningMean!,
                _ => _runningVar!,
            };
            source.AsSpan(0, NumFeatures).CopyTo(target);
        }

        if (count is long n)
        {
            _numBatchesTracked = n;
        }
    }

    /// <summary>The vector entries this module has, in PyTorch's order (weight, bias when affine; running_mean,
    /// running_var when tracking).</summary>
    private List<string> VectorKeys()
    {
        var keys = new List<string>(4);
        if (_weight is not null)
        {
            keys.Add(WeightKey);
        }

        if (_bias is not null)
        {
            keys.Add(BiasKey);
        }

        if (TrackRunningStats)
        {
            keys.Add(RunningMeanKey);
            keys.Add(RunningVarKey);
        }

        return keys;
    }

    /// <summary>Whether <paramref name="key"/> names an entry of this module's state dict.</summary>
    private bool IsStateKey(string key) => VectorKeys().Contains(key) || (TrackRunningStats && key == NumBatchesTrackedKey);

    /// <summary>
    /// PyTorch's strict key rule: every vector entry present (num_batches_tracked may be missing: older checkpoints), no
    /// other key. Keys are reported as <paramref name="prefix"/> + name, so a checkpoint's errors show the names in the
    /// file (an empty name under a prefix shows as the prefix itself, not as nothing).
    /// </summary>
    private void CheckStrictKeys(IEnumerable<string> keys, string prefix)
    {
        var present = keys.ToList();
        var missing = VectorKeys().Where(key => !present.Contains(key)).Select(key => prefix + key).ToList();
        var unexpected = present.Where(key => !IsStateKey(key)).Select(key => prefix + key).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            throw BatchNormErrors.Argument(
                "Error(s) in loading state_dict: missing keys: [" + string.Join(", ", missing)
                + "], unexpected keys: [" + string.Join(", ", unexpected.Select(key => key.Length == 0 ? "''" : key)) + "].",
                "state");
        }
    }

    private static TElem[] Validate<TElem>(string key, IStateTensor? tensor, int[] expectedShape)
    {
        if (tensor is null)
        {
            throw BatchNormErrors.Argument($"state entry '{key}' is null.", "state");
        }

        int[] shape = tensor.Shape ?? throw BatchNormErrors.Argument($"state entry '{key}' has a null shape.", "state");
        if (!shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw BatchNormErrors.Argument(
                $"size mismatch for {key}: expected shape {DenseTensor<T>.FormatShape(expectedShape)}, got {DenseTensor<T>.FormatShape(shape)}.",
                "state");
        }

        if (tensor.ElementType != typeof(TElem) || tensor.Data is not TElem[] data)
        {
            throw BatchNormErrors.Argument(
                $"dtype mismatch for {key}: expected {typeof(TElem).Name}, got {tensor.ElementType?.Name ?? "null"} (data {tensor.Data?.GetType().Name ?? "null"}).",
                "state");
        }

        long length = 1;
        foreach (int d in expectedShape)
        {
            length *= d;
        }

        if (data.Length != length)
        {
            throw BatchNormErrors.Argument(
                $"state entry '{key}' has {data.Length} elements but shape {DenseTensor<T>.FormatShape(shape)}.",
                "state");
        }

        return data;
    }
}
