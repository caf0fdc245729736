using Google.Protobuf;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Protobuf;

namespace SparseOnnx.GraphRewriter.Serialization;

/// <summary>Where a tensor appears, which decides whether it may move to external data.</summary>
internal enum TensorRole
{
    /// <summary>A graph initializer (dense or part of a sparse initializer).</summary>
    Initializer,

    /// <summary>The value of a node attribute (e.g. a Constant node).</summary>
    OnnxAttribute,
}

/// <summary>Where the bytes of one tensor go in the saved model.</summary>
internal sealed record ExternalPlacement(string Location, long Offset, long Length);

/// <summary>Decides, per tensor, inline or external (and at which offset).</summary>
internal interface ITensorPlacement
{
    /// <summary>Returns null to store the tensor inline.</summary>
    ExternalPlacement? Place(Tensor tensor, TensorRole role);
}

/// <summary>
/// Writes the IR back to a <see cref="ModelProto"/>. Each message starts from the residue its IR object
/// kept at load (so fields the IR does not model survive), then gets the modeled fields written.
/// </summary>
internal sealed class ProtoWriter
{
    private readonly ITensorPlacement _placement;

    public ProtoWriter(ITensorPlacement placement) => _placement = placement;

    public ModelProto WriteModel(Model model)
    {
        var proto = model.Residue?.Clone() ?? new ModelProto();
        if (model.IrVersion is { } ir) proto.IrVersion = ir;
        foreach (var (domain, version) in model.OpsetImports)
            proto.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        if (model.ProducerName is not null) proto.ProducerName = model.ProducerName;
        if (model.ProducerVersion is not null) proto.ProducerVersion = model.ProducerVersion;
        if (model.Domain is not null) proto.Domain = model.Domain;
        if (model.ModelVersion is { } mv) proto.ModelVersion = mv;
        if (model.DocString is not null) proto.DocString = model.DocString;
        proto.Graph = WriteGraph(model.Graph);
        proto.MetadataProps.Add(WriteProps(model.MetadataProps));
        foreach (var function in model.Functions) proto.Functions.Add(WriteFunction(function));
        foreach (var info in model.TrainingInfo) proto.TrainingInfo.Add(WriteTrainingInfo(info));
        return proto;
    }

    private GraphProto WriteGraph(Graph graph)
    {
        var gp = graph.Residue?.Clone() ?? new GraphProto();
        if (graph.Name is not null) gp.Name = graph.Name;
        if (graph.DocString is not null) gp.DocString = graph.DocString;
        foreach (var input in graph.Inputs) gp.Input.Add(WriteValueInfo(input));
        foreach (var value in graph.Initializers)
        {
            var tp = WriteTensor(value.ConstValue!, TensorRole.Initializer);
            tp.Name = value.Name;
            gp.Initializer.Add(tp);
        }
        foreach (var value in graph.SparseInitializers) gp.SparseInitializer.Add(WriteSparseTensor(value.SparseConstValue!, TensorRole.Initializer));
        foreach (var node in graph.Nodes) gp.Node.Add(WriteNode(node));
        foreach (var output in graph.Outputs)
            gp.Output.Add(WriteValueInfo(graph.OuterOutputDeclarations.TryGetValue(output, out var declared) ? declared : output));
        foreach (var value in graph.ValueInfo)
        {
            // A value whose producer a pass removed no longer exists; its declaration goes with it.
            if (value.Producer is not null && value.Producer.Graph is null) continue;
            gp.ValueInfo.Add(WriteValueInfo(value));
        }
        foreach (var qa in graph.QuantizationAnnotations)
        {
            var ta = new TensorAnnotation { TensorName = qa.TensorName };
            ta.QuantParameterTensorNames.Add(WriteProps(qa.Parameters));
            gp.QuantizationAnnotation.Add(ta);
        }
        gp.MetadataProps.Add(WriteProps(graph.MetadataProps));
        return gp;
    }

    private NodeProto WriteNode(Node node)
    {
        var np = node.Residue?.Clone() ?? new NodeProto();
        foreach (var input in node.Inputs)
        {
            if (input is not null && input.Graph is null && input.Producer is not null)
                throw new InvalidOperationException(
                    $"Node {node} reads '{input.Name}', whose producer {input.Producer} was removed from the graph.");
            np.Input.Add(input?.Name ?? "");
        }
        foreach (var output in node.Outputs) np.Output.Add(output.Name);
        if (node.Name is not null) np.Name = node.Name;
        np.OpType = node.OpType;
        if (node.Domain.Length > 0) np.Domain = node.Domain;
        if (node.Overload is not null) np.Overload = node.Overload;
        foreach (var attribute in node.Attributes) np.Attribute.Add(WriteAttribute(attribute));
        if (node.DocString is not null) np.DocString = node.DocString;
        np.MetadataProps.Add(WriteProps(node.MetadataProps));
        return np;
    }

    private AttributeProto WriteAttribute(OnnxAttribute attribute)
    {
        var ap = attribute.Residue?.Clone() ?? new AttributeProto();
        ap.Name = attribute.Name;
        if (attribute.DocString is not null) ap.DocString = attribute.DocString;
        if (attribute.RefAttrName is not null)
        {
            if (attribute.Kind != AttributeKind.Undefined) ap.Type = (AttributeProto.Types.AttributeType)attribute.Kind;
            ap.RefAttrName = attribute.RefAttrName;
            return ap;
        }
        if (attribute.Kind == AttributeKind.Undefined) return ap;
        ap.Type = (AttributeProto.Types.AttributeType)attribute.Kind;
        switch (attribute.Value)
        {
            case float f: ap.F = f; break;
            case long i: ap.I = i; break;
            case byte[] s: ap.S = ByteString.CopyFrom(s); break;
            case Tensor t: ap.T = WriteTensor(t, TensorRole.OnnxAttribute); break;
            case Graph g: ap.G = WriteGraph(g); break;
            case SparseTensor st: ap.SparseTensor = WriteSparseTensor(st, TensorRole.OnnxAttribute); break;
            case OnnxType type: ap.Tp = WriteType(type); break;
            case System.Collections.Immutable.ImmutableArray<float> floats: ap.Floats.Add(floats); break;
            case System.Collections.Immutable.ImmutableArray<long> ints: ap.Ints.Add(ints); break;
            case System.Collections.Immutable.ImmutableArray<byte[]> strings: ap.Strings.Add(strings.Select(ByteString.CopyFrom)); break;
            case System.Collections.Immutable.ImmutableArray<Tensor> tensors: ap.Tensors.Add(tensors.Select(t => WriteTensor(t, TensorRole.OnnxAttribute))); break;
            case System.Collections.Immutable.ImmutableArray<Graph> graphs: ap.Graphs.Add(graphs.Select(WriteGraph)); break;
            case System.Collections.Immutable.ImmutableArray<SparseTensor> sparse: ap.SparseTensors.Add(sparse.Select(s => WriteSparseTensor(s, TensorRole.OnnxAttribute))); break;
            case System.Collections.Immutable.ImmutableArray<OnnxType> types: ap.TypeProtos.Add(types.Select(WriteType)); break;
            default: throw new InvalidOperationException($"OnnxAttribute '{attribute.Name}' of kind {attribute.Kind} holds no value.");
        }
        return ap;
    }

    private TensorProto WriteTensor(Tensor tensor, TensorRole role)
    {
        var tp = tensor.Residue?.Clone() ?? new TensorProto();
        tp.Dims.Add(tensor.Dims);
        tp.DataType = (int)tensor.DataType;
        if (tensor.Name.Length > 0) tp.Name = tensor.Name;
        if (tensor.DocString is not null) tp.DocString = tensor.DocString;
        tp.MetadataProps.Add(WriteProps(tensor.MetadataProps));

        var external = tensor.Data is StringTensorData ? null : _placement.Place(tensor, role);
        if (external is not null)
        {
            tp.DataLocation = TensorProto.Types.DataLocation.External;
            tp.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = external.Location });
            tp.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = external.Offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            tp.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = external.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            return tp;
        }
        switch (tensor.Data)
        {
            case StringTensorData strings:
                tp.StringData.Add(strings.Strings.Select(ByteString.CopyFrom));
                break;
            case TypedFieldTensorData typed:
                tp.FloatData.Add(typed.TypedFields.FloatData);
                tp.Int32Data.Add(typed.TypedFields.Int32Data);
                tp.Int64Data.Add(typed.TypedFields.Int64Data);
                tp.DoubleData.Add(typed.TypedFields.DoubleData);
                tp.Uint64Data.Add(typed.TypedFields.Uint64Data);
                break;
            default:
                tp.RawData = RawBytes(tensor);
                break;
        }
        return tp;
    }

    private static ByteString RawBytes(Tensor tensor)
    {
        var data = tensor.Data;
        if (data is InMemoryTensorData)
        {
            // In-memory bytes are immutable once wrapped, so protobuf may share them instead of copying.
            using var lease = data.Acquire();
            return UnsafeByteOperations.UnsafeWrap(lease.Memory);
        }
        if (data.ByteLength > Array.MaxLength)
            throw new ModelSaveException($"Tensor '{tensor.Name}' is {data.ByteLength} bytes, too large to store inline; save with external data.");
        var bytes = new byte[data.ByteLength];
        using (var stream = data.OpenRead()) stream.ReadExactly(bytes);
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    private SparseTensorProto WriteSparseTensor(SparseTensor sparse, TensorRole role)
    {
        var sp = sparse.Residue?.Clone() ?? new SparseTensorProto();
        sp.Values = WriteTensor(sparse.Values, role);
        sp.Indices = WriteTensor(sparse.Indices, role);
        sp.Dims.Add(sparse.Dims);
        return sp;
    }

    private FunctionProto WriteFunction(Function function)
    {
        var fp = function.Residue?.Clone() ?? new FunctionProto();
        fp.Name = function.Name;
        fp.Domain = function.Domain;
        if (function.Overload is not null) fp.Overload = function.Overload;
        fp.Input.Add(function.Body.Inputs.Select(v => v.Name));
        fp.Output.Add(function.Body.Outputs.Select(v => v.Name));
        fp.Attribute.Add(function.AttributeNames);
        foreach (var attribute in function.AttributeDefaults) fp.AttributeProto.Add(WriteAttribute(attribute));
        foreach (var node in function.Body.Nodes) fp.Node.Add(WriteNode(node));
        if (function.DocString is not null) fp.DocString = function.DocString;
        foreach (var (domain, version) in function.OpsetImports)
            fp.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        foreach (var value in function.Body.ValueInfo) fp.ValueInfo.Add(WriteValueInfo(value));
        fp.MetadataProps.Add(WriteProps(function.MetadataProps));
        return fp;
    }

    private TrainingInfoProto WriteTrainingInfo(TrainingInfo info)
    {
        var tp = info.Residue?.Clone() ?? new TrainingInfoProto();
        if (info.Initialization is not null) tp.Initialization = WriteGraph(info.Initialization);
        if (info.Algorithm is not null) tp.Algorithm = WriteGraph(info.Algorithm);
        tp.InitializationBinding.Add(WriteProps(info.InitializationBinding));
        tp.UpdateBinding.Add(WriteProps(info.UpdateBinding));
        return tp;
    }

    private static ValueInfoProto WriteValueInfo(Value value)
    {
        var vi = new ValueInfoProto { Name = value.Name };
        if (value.Type is not null) vi.Type = WriteType(value.Type);
        if (value.DocString is not null) vi.DocString = value.DocString;
        vi.MetadataProps.Add(WriteProps(value.MetadataProps));
        return vi;
    }

    internal static TypeProto WriteType(OnnxType type)
    {
        var tp = new TypeProto();
        switch (type)
        {
            case TensorType t:
                tp.TensorType = new TypeProto.Types.Tensor { ElemType = (int)t.ElementType };
                if (t.Shape is not null) tp.TensorType.Shape = WriteShape(t.Shape);
                break;
            case SparseTensorType s:
                tp.SparseTensorType = new TypeProto.Types.SparseTensor { ElemType = (int)s.ElementType };
                if (s.Shape is not null) tp.SparseTensorType.Shape = WriteShape(s.Shape);
                break;
            case SequenceType s:
                tp.SequenceType = new TypeProto.Types.Sequence();
                if (s.ElementType is not null) tp.SequenceType.ElemType = WriteType(s.ElementType);
                break;
            case OptionalType o:
                tp.OptionalType = new TypeProto.Types.Optional();
                if (o.ElementType is not null) tp.OptionalType.ElemType = WriteType(o.ElementType);
                break;
            case MapType m:
                tp.MapType = new TypeProto.Types.Map { KeyType = (int)m.KeyType };
                if (m.ValueType is not null) tp.MapType.ValueType = WriteType(m.ValueType);
                break;
            case OpaqueType o:
                tp.OpaqueType = new TypeProto.Types.Opaque();
                if (o.Domain is not null) tp.OpaqueType.Domain = o.Domain;
                if (o.Name is not null) tp.OpaqueType.Name = o.Name;
                break;
        }
        if (type.Denotation is not null) tp.Denotation = type.Denotation;
        return tp;
    }

    private static TensorShapeProto WriteShape(Shape shape)
    {
        var sp = new TensorShapeProto();
        foreach (var dim in shape.Dims)
        {
            var d = new TensorShapeProto.Types.Dimension();
            if (dim.Value is { } v) d.DimValue = v;
            else if (dim.Symbol is not null) d.DimParam = dim.Symbol;
            if (dim.Denotation is not null) d.Denotation = dim.Denotation;
            sp.Dim.Add(d);
        }
        return sp;
    }

    private static IEnumerable<StringStringEntryProto> WriteProps(IEnumerable<KeyValuePair<string, string>> props) =>
        props.Select(p => new StringStringEntryProto { Key = p.Key, Value = p.Value });
}
