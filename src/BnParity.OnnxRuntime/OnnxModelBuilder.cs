using BnParity.Harness.Cases;
using BnParity.OnnxRuntime.Onnx;
using Google.Protobuf;

namespace BnParity.OnnxRuntime;

/// <summary>A constant input of a one-node model (an initializer): name, shape and values (converted to the model's
/// element type).</summary>
public sealed record OnnxParameter(string Name, int[] Shape, double[] Values);

/// <summary>A one-node ONNX model: the operator, the opset the model imports, its inputs after X (null for an omitted optional input),
/// its outputs after Y and its attributes. <see cref="Serialize"/> writes the ModelProto bytes.</summary>
public sealed record OnnxNode(string OpType, int Opset, IReadOnlyList<OnnxParameter?> Parameters, IReadOnlyList<string> ExtraOutputs, IReadOnlyList<OnnxAttribute> Attributes)
{
    /// <summary>IR version 10 (ONNX 1.16): every opset used here (15 to 23) is valid in it.</summary>
    public const long IrVersion = 10;

    /// <summary>The model bytes for input X of <paramref name="inputShape"/> in <paramref name="dtype"/>; output Y has
    /// X's shape, extra outputs (e.g. BatchNormalization's running statistics) the shape of the first parameter.</summary>
    public byte[] Serialize(ElementType dtype, int[] inputShape)
    {
        ArgumentNullException.ThrowIfNull(inputShape);
        int elementType = (int)(dtype == ElementType.Float32 ? TensorProto.Types.DataType.Float : TensorProto.Types.DataType.Double);
        var node = new NodeProto { OpType = OpType, Name = OpType };
        node.Input.Add("X");
        var graph = new GraphProto { Name = "bnparity_" + OpType };
        graph.Input.Add(ValueInfo("X", elementType, inputShape));
        int last = Parameters.Count;
        while (last > 0 && Parameters[last - 1] is null)
        {
            last--; // trailing omitted optional inputs are left out, not named ""
        }

        for (int i = 0; i < last; i++)
        {
            if (Parameters[i] is not { } parameter)
            {
                node.Input.Add(string.Empty);
                continue;
            }

            node.Input.Add(parameter.Name);
            graph.Initializer.Add(Tensor(parameter, dtype, elementType));
        }

        node.Output.Add("Y");
        graph.Output.Add(ValueInfo("Y", elementType, inputShape));
        foreach (string output in ExtraOutputs)
        {
            node.Output.Add(output);
            graph.Output.Add(ValueInfo(output, elementType, Parameters.FirstOrDefault(p => p is not null)?.Shape ?? []));
        }

        foreach (var attribute in Attributes)
        {
            node.Attribute.Add(attribute.ToProto());
        }

        graph.Node.Add(node);
        var model = new ModelProto { IrVersion = IrVersion, ProducerName = "BnParity", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = Opset });
        return model.ToByteArray();
    }

    private static ValueInfoProto ValueInfo(string name, int elementType, int[] shape)
    {
        var tensorShape = new TensorShapeProto();
        foreach (int d in shape)
        {
            tensorShape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elementType, Shape = tensorShape } },
        };
    }

    private static TensorProto Tensor(OnnxParameter parameter, ElementType dtype, int elementType)
    {
        byte[] raw;
        if (dtype == ElementType.Float32)
        {
            raw = new byte[parameter.Values.Length * sizeof(float)];
            for (int i = 0; i < parameter.Values.Length; i++)
            {
                BitConverter.TryWriteBytes(raw.AsSpan(i * sizeof(float)), (float)parameter.Values[i]);
            }
        }
        else
        {
            raw = new byte[parameter.Values.Length * sizeof(double)];
            for (int i = 0; i < parameter.Values.Length; i++)
            {
                BitConverter.TryWriteBytes(raw.AsSpan(i * sizeof(double)), parameter.Values[i]);
            }
        }

        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw_data is little-endian; this writer runs on little-endian hosts only.");
        }

        var tensor = new TensorProto { Name = parameter.Name, DataType = elementType, RawData = ByteString.CopyFrom(raw) };
        tensor.Dims.AddRange(parameter.Shape.Select(d => (long)d));
        return tensor;
    }
}

/// <summary>An attribute of a one-node model: a float (ONNX's epsilon and momentum are float32, whatever the
/// model's element type) or an integer.</summary>
public sealed record OnnxAttribute(string Name, double? Float = null, long? Int = null)
{
    internal AttributeProto ToProto() => Float is { } f
        ? new AttributeProto { Name = Name, Type = AttributeProto.Types.AttributeType.Float, F = (float)f }
        : new AttributeProto { Name = Name, Type = AttributeProto.Types.AttributeType.Int, I = Int ?? throw new InvalidOperationException($"attribute {Name} has no value") };
}
