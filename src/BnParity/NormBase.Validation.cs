using System.Numerics;

namespace BnParity;

/// <content>
/// Validation of every public call's arguments. Each rule throws before anything is written (the module, the
/// destination and the saved context stay exactly as they were) and names the argument and the rule.
/// </content>
public abstract partial class NormBase<T>
{
    /// <summary>Whether this module takes <see cref="MemoryLayout.ChannelsLast"/> (the 2d and 3d layers).</summary>
    private protected virtual bool SupportsChannelsLast => false;

    /// <summary>A defined layout that this module takes.</summary>
    private void ValidateLayout(MemoryLayout layout)
    {
        if (layout is not (MemoryLayout.ChannelsFirst or MemoryLayout.ChannelsLast))
        {
            throw new ArgumentException($"layout {(int)layout} is not a MemoryLayout value.", nameof(layout));
        }

        if (layout == MemoryLayout.ChannelsLast && !SupportsChannelsLast)
        {
            throw new ArgumentException(
                $"{TypeName} does not take MemoryLayout.ChannelsLast: only the 2d and 3d layers' inputs have a channels-last layout.",
                nameof(layout));
        }
    }

    /// <summary>The backward's layout is the last forward's.</summary>
    private void ValidateBackwardLayout(MemoryLayout layout)
    {
        if (layout != _savedLayout)
        {
            throw new ArgumentException($"layout {layout} differs from the last forward's layout {_savedLayout}.", nameof(layout));
        }
    }

    private void ValidateForward(ReadOnlySpan<int> shape, int inputLength, string shapeParam)
    {
        ValidateRank(shape.Length);
        if (shape.Length < MinimumRank)
        {
            throw BatchNormErrors.Argument($"expected at least 2D input (got {shape.Length}D input)", "input");
        }

        long length = DenseTensor<T>.CheckedLength(shape, shapeParam);
        InputDims dims = DimsOf(shape);
        ValidateChannels(shape, dims);
        if (length != inputLength)
        {
            throw new ArgumentException(
                $"shape {DenseTensor<T>.FormatShape(shape)} needs {length} elements; input has {inputLength}.", shapeParam);
        }

        if (UsesBatchStats)
        {
            ValidateSetSize(shape, dims);
        }

        if (_training && TrackRunningStats && _numBatchesTracked == long.MaxValue)
        {
            // libtorch's int64 counter would wrap to a negative count, which no state dict accepts back.
            throw new InvalidOperationException(
                $"num_batches_tracked is {long.MaxValue} and cannot count another training batch; reset it (ResetRunningStats or NumBatchesTracked) first.");
        }
    }

    private void ValidateSpanBackward(ReadOnlySpan<T> gradOutput, ReadOnlySpan<int> shape, Span<T> gradInput, Span<T> gradWeight, Span<T> gradBias)
    {
        ValidateBackward(shape, nameof(shape));
        int length = SavedLength;
        if (gradOutput.Length != length)
        {
            throw new ArgumentException($"gradOutput has {gradOutput.Length} elements; expected {length}.", nameof(gradOutput));
        }

        if (gradInput.Length != length)
        {
            throw new ArgumentException($"gradInput has {gradInput.Length} elements; expected {length}.", nameof(gradInput));
        }

        if (gradOutput.Overlaps(gradInput, out int offset) && offset != 0)
        {
            throw new ArgumentException("gradInput partially overlaps gradOutput; use the same buffer or a disjoint one.", nameof(gradInput));
        }

        if (Affine)
        {
            if (gradWeight.Length != NumFeatures)
            {
                throw new ArgumentException($"gradWeight has {gradWeight.Length} elements; expected {NumFeatures}.", nameof(gradWeight));
            }

            if (_bias is not null && gradBias.Length != NumFeatures)
            {
                throw new ArgumentException($"gradBias has {gradBias.Length} elements; expected {NumFeatures}.", nameof(gradBias));
            }

            // The parameter gradients are written after dx, channel by channel: inside gradInput they would overwrite dx,
            // inside gradOutput the caller's gradient, inside each other one another, and inside the input a tensor
            // forward saved by reference they would change what the next Backward differentiates.
            ValidateParameterGradient(gradWeight, nameof(gradWeight), gradOutput, gradInput, length);
            if (_bias is null)
            {
                // No bias (LayerNorm(bias: false), RMSNorm): gradBias is ignored.
                gradBias = default;
            }

            ValidateParameterGradient(gradBias, nameof(gradBias), gradOutput, gradInput, length);
            if (gradBias.Overlaps(gradWeight))
            {
                throw new ArgumentException("gradBias overlaps gradWeight; write the parameter gradients to buffers of their own.", nameof(gradBias));
            }
        }

        if (length > 0 && gradInput.Overlaps((_savedRef ?? _savedInput).AsSpan(0, length)))
        {
            // Backward reads the saved input while it writes dx, and a later Backward of the same forward would
            // differentiate the overwritten values.
            throw new ArgumentException(
                "gradInput overlaps the input saved by the last Forward; write the gradient to another buffer.", nameof(gradInput));
        }
    }

    /// <summary>A parameter gradient (<paramref name="name"/>) overlaps none of gradOutput, gradInput and the saved input.</summary>
    private void ValidateParameterGradient(Span<T> gradient, string name, ReadOnlySpan<T> gradOutput, Span<T> gradInput, int length)
    {
        string? other = gradient.Overlaps(gradOutput) ? "gradOutput"
            : gradient.Overlaps(gradInput) ? "gradInput"
            : length > 0 && gradient.Overlaps((_savedRef ?? _savedInput).AsSpan(0, length)) ? "the input saved by the last Forward"
            : null;
        if (other is not null)
        {
            throw new ArgumentException($"{name} overlaps {other}; write the parameter gradients to buffers of their own.", name);
        }
    }

    private int SavedLength
    {
        get
        {
            long l = 1;
            foreach (int d in _savedShape!)
            {
                l *= d;
            }

            return (int)l;
        }
    }

    private void ValidateBackward(ReadOnlySpan<int> shape, string paramName)
    {
        if (_savedShape is null)
        {
            throw new InvalidOperationException(
                "Backward requires a preceding successful Forward call with SaveForBackward = true (and no ReleaseBackwardContext since).");
        }

        if (!shape.SequenceEqual(_savedShape))
        {
            throw new ArgumentException(
                $"gradient shape {DenseTensor<T>.FormatShape(shape)} differs from the last forward input shape {DenseTensor<T>.FormatShape(_savedShape)}.",
                paramName);
        }
    }
}
