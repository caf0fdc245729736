using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Globalization;
using Google.Protobuf;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Protobuf;

namespace SparseOnnx.GraphRewriter.Serialization;

/// <summary>
/// Builds the IR from a freshly parsed <see cref="ModelProto"/>. Reading is destructive: every field the IR
/// models is moved out of the proto, and what remains of each message (fields the IR does not model,
/// unknown fields from newer ONNX versions) is kept as that IR object's residue and written back on save.
/// Nothing large is ever copied: raw tensor bytes stay in the buffers protobuf parsed them into.
/// </summary>
internal sealed class ProtoReader
{
    private readonly ExternalDataResolver? _external;

    /// <param name="external">Resolves external data; null when the model has no folder (then external tensors are an error).</param>
    public ProtoReader(ExternalDataResolver? external) => _external = external;

    public Model ReadModel(ModelProto proto)
    {
        if (!proto.HasIrVersion)
            throw new InvalidModelException("Not an ONNX model: ir_version is missing.");
        if (proto.Graph is null)
            throw new InvalidModelException("Not an ONNX model: it has no graph.");
        if (proto.IrVersion < 1)
            throw new InvalidModelException($"Not an ONNX model: ir_version {proto.IrVersion} is not a valid IR version.");

        var graph = ReadGraph(proto.Graph, new Scope(null), "main graph", out var mainScope);
        var model = new Model(graph)
        {
            IrVersion = proto.IrVersion,
            ProducerName = proto.HasProducerName ? proto.ProducerName : null,
            ProducerVersion = proto.HasProducerVersion ? proto.ProducerVersion : null,
            Domain = proto.HasDomain ? proto.Domain : null,
            ModelVersion = proto.HasModelVersion ? proto.ModelVersion : null,
            DocString = proto.HasDocString ? proto.DocString : null,
        };
        foreach (var opset in proto.OpsetImport) model.OpsetImports.Set(opset.Domain, opset.Version);
        model.MetadataProps.AddRange(ReadProps(proto.MetadataProps));
        foreach (var fp in proto.Functions) model.Functions.Add(ReadFunction(fp));
        foreach (var tp in proto.TrainingInfo) model.TrainingInfo.Add(ReadTrainingInfo(tp, mainScope));

        proto.ClearIrVersion();
        proto.OpsetImport.Clear();
        proto.ClearProducerName();
        proto.ClearProducerVersion();
        proto.ClearDomain();
        proto.ClearModelVersion();
        proto.ClearDocString();
        proto.Graph = null;
        proto.MetadataProps.Clear();
        proto.Functions.Clear();
        proto.TrainingInfo.Clear();
        model.Residue = Residue(proto);
        return model;
    }

    private Graph ReadGraph(GraphProto gp, Scope outer, string context) => ReadGraph(gp, outer, context, out _);

    private Graph ReadGraph(GraphProto gp, Scope outer, string context, out Scope scope)
    {
        var graph = new Graph(gp.HasName ? gp.Name : null) { DocString = gp.HasDocString ? gp.DocString : null };
        string where = gp.HasName && gp.Name.Length > 0 ? $"graph '{gp.Name}'" : context;
        scope = new Scope(outer);

        foreach (var vi in gp.Input)
        {
            var value = ReadValueInfo(vi, where, "input");
            scope.Define(value, where, "graph input");
            graph.Inputs.Add(value);
        }
        foreach (var tp in gp.Initializer)
        {
            var tensor = ReadTensor(tp, where);
            if (tensor.Name.Length == 0) throw new InvalidModelException($"{Capitalize(where)} has an initializer without a name.");
            var existing = scope.FindLocal(tensor.Name);
            if (existing is not null && existing.IsGraphInput && !existing.IsInitializer && existing.SparseConstValue is null)
            {
                graph.Initializers.Add(existing, tensor); // an input with a default value
            }
            else
            {
                if (existing is not null)
                    throw new InvalidModelException($"{Capitalize(where)} defines '{tensor.Name}' twice (initializer).");
                var value = new Value(tensor.Name);
                graph.Initializers.Add(value, tensor);
                scope.Define(value, where, "initializer");
            }
        }
        foreach (var sp in gp.SparseInitializer)
        {
            var sparse = ReadSparseTensor(sp, where);
            if (sparse.Name.Length == 0) throw new InvalidModelException($"{Capitalize(where)} has a sparse initializer without a name.");
            var existing = scope.FindLocal(sparse.Name);
            Value value;
            if (existing is not null && existing.IsGraphInput && !existing.IsInitializer && existing.SparseConstValue is null)
            {
                value = existing;
            }
            else
            {
                if (existing is not null)
                    throw new InvalidModelException($"{Capitalize(where)} defines '{sparse.Name}' twice (sparse initializer).");
                value = new Value(sparse.Name) { Graph = graph };
                scope.Define(value, where, "sparse initializer");
            }
            value.SparseConstValue = sparse;
            graph.SparseInitializers.Add(value);
        }

        ReadNodes(graph, gp.Node, scope, where);

        foreach (var vi in gp.Output)
        {
            if (!vi.HasName || vi.Name.Length == 0) throw new InvalidModelException($"{Capitalize(where)} has an output without a name.");
            var value = scope.Find(vi.Name)
                ?? throw new InvalidModelException($"{Capitalize(where)} output '{vi.Name}' is not produced by any node, input or initializer.");
            if (scope.FindLocal(vi.Name) is null)
            {
                // A subgraph passing an outer value through declares it its own way; keep that declaration
                // with this graph rather than overwrite the outer value's.
                var declaration = new Value(vi.Name);
                ApplyValueInfo(declaration, vi);
                graph.OuterOutputDeclarations[value] = declaration;
            }
            else
            {
                ApplyValueInfo(value, vi);
            }
            graph.Outputs.Add(value);
        }
        foreach (var vi in gp.ValueInfo)
        {
            if (!vi.HasName) throw new InvalidModelException($"{Capitalize(where)} has a value_info entry without a name.");
            // value_info may describe a name nothing defines; keep it (detached) so it round-trips.
            var value = scope.Find(vi.Name) ?? new Value(vi.Name) { Graph = graph };
            ApplyValueInfo(value, vi);
            graph.ValueInfo.Add(value);
        }
        foreach (var qa in gp.QuantizationAnnotation)
            graph.QuantizationAnnotations.Add(new QuantizationAnnotation(qa.TensorName, ReadProps(qa.QuantParameterTensorNames)));
        graph.MetadataProps.AddRange(ReadProps(gp.MetadataProps));

        gp.Node.Clear();
        gp.ClearName();
        gp.Initializer.Clear();
        gp.SparseInitializer.Clear();
        gp.ClearDocString();
        gp.Input.Clear();
        gp.Output.Clear();
        gp.ValueInfo.Clear();
        gp.QuantizationAnnotation.Clear();
        gp.MetadataProps.Clear();
        graph.Residue = Residue(gp);
        return graph;
    }

    /// <summary>
    /// Two phases: first every node and the values it produces (so a node may read a value produced later
    /// in the list: some exporters do not sort), then inputs and attributes (subgraphs see every value of
    /// the enclosing graph).
    /// </summary>
    private void ReadNodes(Graph graph, IList<NodeProto> nodeProtos, Scope scope, string where)
    {
        var nodes = new List<(Node Node, NodeProto Proto)>(nodeProtos.Count);
        foreach (var np in nodeProtos)
        {
            if (!np.HasOpType || np.OpType.Length == 0)
                throw new InvalidModelException($"{Capitalize(where)} has a node without an op_type (node '{np.Name}').");
            var node = new Node(np.Domain, np.OpType, Array.Empty<Value?>(), np.Output, np.HasName ? np.Name : null)
            {
                Overload = np.HasOverload ? np.Overload : null,
                DocString = np.HasDocString ? np.DocString : null,
            };
            graph.Nodes.Add(node);
            foreach (var output in node.Outputs)
                if (output.Name.Length > 0) scope.Define(output, where, $"output of node {node}");
            nodes.Add((node, np));
        }
        foreach (var (node, np) in nodes)
        {
            foreach (var inputName in np.Input)
            {
                if (inputName.Length == 0)
                {
                    node.AppendInput(null);
                    continue;
                }
                var value = scope.Find(inputName)
                    ?? throw new InvalidModelException(
                        $"Node {node} in {where} reads '{inputName}', which no node, graph input or initializer defines.");
                node.AppendInput(value);
            }
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var ap in np.Attribute)
            {
                var attribute = ReadAttribute(ap, scope, $"node {node}");
                if (!names.Add(attribute.Name))
                    throw new InvalidModelException($"Node {node} in {where} has two attributes named '{attribute.Name}'.");
                node.Attributes.Set(attribute);
            }
            node.MetadataProps.AddRange(ReadProps(np.MetadataProps));

            np.Input.Clear();
            np.Output.Clear();
            np.ClearName();
            np.ClearOpType();
            if (np.Domain.Length > 0) np.ClearDomain(); // an explicitly empty domain stays in the residue

            np.ClearOverload();
            np.Attribute.Clear();
            np.ClearDocString();
            np.MetadataProps.Clear();
            node.Residue = Residue(np);
        }
    }

    private OnnxAttribute ReadAttribute(AttributeProto ap, Scope scope, string where)
    {
        if (!ap.HasName || ap.Name.Length == 0)
            throw new InvalidModelException($"{Capitalize(where)} has an attribute without a name.");
        string name = ap.Name;
        string context = $"attribute '{name}' of {where}";
        var kind = (AttributeKind)ap.Type;
        string? doc = ap.HasDocString ? ap.DocString : null;

        if (ap.HasRefAttrName)
        {
            string reference = ap.RefAttrName;
            ap.ClearName();
            ap.ClearRefAttrName();
            ap.ClearDocString();
            ap.ClearType();
            var referenceAttribute = OnnxAttribute.Reference(name, kind, reference);
            referenceAttribute.Residue = Residue(ap);
            referenceAttribute.DocString = doc;
            return referenceAttribute;
        }

        object? value;
        switch (kind)
        {
            case AttributeKind.Float: value = ap.F; ap.ClearF(); break;
            case AttributeKind.Int: value = ap.I; ap.ClearI(); break;
            case AttributeKind.String: value = ap.S.ToByteArray(); ap.ClearS(); break;
            case AttributeKind.Tensor:
                value = ReadTensor(ap.T ?? throw Missing(context, "t"), context);
                ap.T = null;
                break;
            case AttributeKind.Graph:
                value = ReadGraph(ap.G ?? throw Missing(context, "g"), scope, $"subgraph '{name}' of {where}");
                ap.G = null;
                break;
            case AttributeKind.SparseTensor:
                value = ReadSparseTensor(ap.SparseTensor ?? throw Missing(context, "sparse_tensor"), context);
                ap.SparseTensor = null;
                break;
            case AttributeKind.TypeProto:
                value = ReadType(ap.Tp ?? throw Missing(context, "tp"));
                ap.Tp = null;
                break;
            case AttributeKind.Floats: value = ap.Floats.ToImmutableArray(); ap.Floats.Clear(); break;
            case AttributeKind.Ints: value = ap.Ints.ToImmutableArray(); ap.Ints.Clear(); break;
            case AttributeKind.Strings: value = ap.Strings.Select(s => s.ToByteArray()).ToImmutableArray(); ap.Strings.Clear(); break;
            case AttributeKind.Tensors: value = ap.Tensors.Select(t => ReadTensor(t, context)).ToImmutableArray(); ap.Tensors.Clear(); break;
            case AttributeKind.Graphs:
                value = ap.Graphs.Select((g, i) => ReadGraph(g, scope, $"subgraph '{name}'[{i}] of {where}")).ToImmutableArray();
                ap.Graphs.Clear();
                break;
            case AttributeKind.SparseTensors: value = ap.SparseTensors.Select(s => ReadSparseTensor(s, context)).ToImmutableArray(); ap.SparseTensors.Clear(); break;
            case AttributeKind.TypeProtos: value = ap.TypeProtos.Select(ReadType).ToImmutableArray(); ap.TypeProtos.Clear(); break;
            default:
                // IR version 1 had no type field, and a newer ONNX may add kinds: keep such attributes as read.
                ap.ClearName();
                return OnnxAttribute.Undefined(name, ap);
        }
        ap.ClearName();
        ap.ClearType();
        ap.ClearDocString();
        var attribute = OnnxAttribute.Create(name, kind, value);
        attribute.Residue = Residue(ap);
        attribute.DocString = doc;
        return attribute;
    }

    private Tensor ReadTensor(TensorProto tp, string where)
    {
        string name = tp.HasName ? tp.Name : "";
        string what = name.Length > 0 ? $"tensor '{name}'" : $"unnamed tensor in {where}";
        var dataType = (DataType)tp.DataType;
        foreach (long d in tp.Dims)
            if (d < 0) throw new InvalidModelException($"The {what} has a negative dimension: [{string.Join(", ", tp.Dims)}].");
        long elements;
        long? expectedBytes;
        try
        {
            elements = tp.Dims.Aggregate(1L, (acc, d) => checked(acc * d));
            expectedBytes = dataType.RawByteLength(elements);
        }
        catch (OverflowException)
        {
            throw new InvalidModelException($"The {what} has an impossibly large shape: [{string.Join(", ", tp.Dims)}].");
        }
        string typeAndShape = $"{dataType.DisplayName()} [{string.Join(", ", tp.Dims)}]";

        TensorData data;
        if (tp.HasDataLocation && tp.DataLocation == TensorProto.Types.DataLocation.External)
        {
            if (dataType == DataType.String)
                throw new InvalidModelException($"The {what} is a string tensor stored externally, which ONNX does not allow.");
            if (_external is null)
                throw new InvalidModelException($"The {what} is stored in external data, but the model was not loaded from a file, so there is no folder to find it in.");
            data = _external.Resolve(tp.ExternalData, what, expectedBytes, typeAndShape);
        }
        else if (tp.HasRawData)
        {
            if (dataType == DataType.String)
                throw new InvalidModelException($"The {what} is a string tensor with raw_data, which ONNX does not allow.");
            if (expectedBytes is not null && tp.RawData.Length != expectedBytes)
                throw new InvalidModelException(
                    $"The {what} of {typeAndShape} needs {expectedBytes} bytes, but its raw_data holds {tp.RawData.Length}.");
            data = new InMemoryTensorData(tp.RawData.Memory);
        }
        else if (dataType == DataType.String)
        {
            if (tp.StringData.Count != elements)
                throw new InvalidModelException($"The {what} of {typeAndShape} has {tp.StringData.Count} strings, expected {elements}.");
            data = new StringTensorData(tp.StringData.Select(s => s.ToByteArray()).ToList());
        }
        else
        {
            data = ReadTypedFields(tp, dataType, elements, what, typeAndShape);
        }

        var tensor = new Tensor(name, dataType, tp.Dims, data) { DocString = tp.HasDocString ? tp.DocString : null };
        tensor.MetadataProps.AddRange(ReadProps(tp.MetadataProps));

        tp.Dims.Clear();
        tp.ClearDataType();
        if (name.Length > 0) tp.ClearName(); // an explicitly empty name stays in the residue, so it round-trips
        tp.ClearDocString();
        tp.ClearRawData();
        tp.ExternalData.Clear();
        tp.ClearDataLocation();
        tp.FloatData.Clear();
        tp.Int32Data.Clear();
        tp.StringData.Clear();
        tp.Int64Data.Clear();
        tp.DoubleData.Clear();
        tp.Uint64Data.Clear();
        tp.MetadataProps.Clear();
        tensor.Residue = Residue(tp);
        return tensor;
    }

    /// <summary>Elements stored in the typed fields: validate the count, keep the fields, convert lazily.</summary>
    private static TensorData ReadTypedFields(TensorProto tp, DataType dataType, long elements, string what, string typeAndShape)
    {
        var fields = new TensorProto();
        long count;
        Func<byte[]> toRaw;
        switch (dataType)
        {
            case DataType.Float or DataType.Complex64:
                fields.FloatData.Add(tp.FloatData);
                count = dataType == DataType.Complex64 ? elements * 2 : elements;
                toRaw = () => ToRaw(fields.FloatData, 4, (span, v) => BinaryPrimitives.WriteSingleLittleEndian(span, v));
                break;
            case DataType.Double or DataType.Complex128:
                fields.DoubleData.Add(tp.DoubleData);
                count = dataType == DataType.Complex128 ? elements * 2 : elements;
                toRaw = () => ToRaw(fields.DoubleData, 8, (span, v) => BinaryPrimitives.WriteDoubleLittleEndian(span, v));
                break;
            case DataType.Int64:
                fields.Int64Data.Add(tp.Int64Data);
                count = elements;
                toRaw = () => ToRaw(fields.Int64Data, 8, (span, v) => BinaryPrimitives.WriteInt64LittleEndian(span, v));
                break;
            case DataType.UInt32 or DataType.UInt64:
                fields.Uint64Data.Add(tp.Uint64Data);
                count = elements;
                toRaw = dataType == DataType.UInt32
                    ? () => ToRaw(fields.Uint64Data, 4, (span, v) => BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)v))
                    : () => ToRaw(fields.Uint64Data, 8, (span, v) => BinaryPrimitives.WriteUInt64LittleEndian(span, v));
                break;
            case DataType.Int32:
                fields.Int32Data.Add(tp.Int32Data);
                count = elements;
                toRaw = () => ToRaw(fields.Int32Data, 4, (span, v) => BinaryPrimitives.WriteInt32LittleEndian(span, v));
                break;
            case DataType.Int16 or DataType.UInt16 or DataType.Float16 or DataType.BFloat16:
                fields.Int32Data.Add(tp.Int32Data);
                count = elements;
                toRaw = () => ToRaw(fields.Int32Data, 2, (span, v) => BinaryPrimitives.WriteUInt16LittleEndian(span, unchecked((ushort)v)));
                break;
            case DataType.Int8 or DataType.UInt8 or DataType.Bool or DataType.Float8E4M3FN or DataType.Float8E4M3FNUZ
                or DataType.Float8E5M2 or DataType.Float8E5M2FNUZ or DataType.Float8E8M0:
                fields.Int32Data.Add(tp.Int32Data);
                count = elements;
                toRaw = () => ToRaw(fields.Int32Data, 1, (span, v) => span[0] = unchecked((byte)v));
                break;
            case DataType.Int4 or DataType.UInt4 or DataType.Float4E2M1:
                // Two 4-bit elements per int32 entry, already packed (first element in the low nibble).
                fields.Int32Data.Add(tp.Int32Data);
                count = (elements + 1) / 2;
                toRaw = () => ToRaw(fields.Int32Data, 1, (span, v) => span[0] = unchecked((byte)v));
                break;
            default:
                if (elements == 0 || tp.CalculateSize() == 0)
                    return new InMemoryTensorData(ReadOnlyMemory<byte>.Empty);
                throw new InvalidModelException($"The {what} has data type {(int)dataType}, which this version of SparseOnnx does not know.");
        }
        long stored = fields.FloatData.Count + fields.DoubleData.Count + fields.Int64Data.Count + fields.Uint64Data.Count + fields.Int32Data.Count;
        if (stored != count)
            throw new InvalidModelException($"The {what} of {typeAndShape} stores {stored} values in its typed data field, expected {count}.");
        return new TypedFieldTensorData(fields, toRaw);
    }

    private static byte[] ToRaw<T>(IReadOnlyList<T> values, int width, SpanWriter<T> write)
    {
        var bytes = new byte[checked(values.Count * width)];
        for (int i = 0; i < values.Count; i++) write(bytes.AsSpan(i * width, width), values[i]);
        return bytes;
    }

    private delegate void SpanWriter<in T>(Span<byte> destination, T value);

    private SparseTensor ReadSparseTensor(SparseTensorProto sp, string where)
    {
        var values = ReadTensor(sp.Values ?? throw Missing(where, "sparse tensor values"), where);
        var indices = ReadTensor(sp.Indices ?? throw Missing(where, "sparse tensor indices"), where);
        var dims = sp.Dims.ToImmutableArray();
        sp.Values = null;
        sp.Indices = null;
        sp.Dims.Clear();
        return new SparseTensor(values, indices, dims) { Residue = Residue(sp) };
    }

    private Function ReadFunction(FunctionProto fp)
    {
        string where = $"function '{fp.Domain}::{fp.Name}'";
        if (!fp.HasName || fp.Name.Length == 0) throw new InvalidModelException("A model-local function has no name.");
        var body = new Graph(fp.Name);
        var scope = new Scope(null);
        foreach (string inputName in fp.Input)
        {
            var value = new Value(inputName);
            scope.Define(value, where, "function input");
            body.Inputs.Add(value);
        }
        ReadNodes(body, fp.Node, scope, where);
        foreach (string outputName in fp.Output)
            body.Outputs.Add(scope.Find(outputName)
                ?? throw new InvalidModelException($"{Capitalize(where)} output '{outputName}' is not produced by any node or input."));
        foreach (var vi in fp.ValueInfo)
        {
            var value = scope.Find(vi.Name) ?? new Value(vi.Name) { Graph = body };
            ApplyValueInfo(value, vi);
            body.ValueInfo.Add(value);
        }

        var function = new Function(fp.Domain, fp.Name, body)
        {
            Overload = fp.HasOverload ? fp.Overload : null,
            DocString = fp.HasDocString ? fp.DocString : null,
        };
        function.AttributeNames.AddRange(fp.Attribute);
        foreach (var ap in fp.AttributeProto) function.AttributeDefaults.Add(ReadAttribute(ap, scope, where));
        foreach (var opset in fp.OpsetImport) function.OpsetImports.Set(opset.Domain, opset.Version);
        function.MetadataProps.AddRange(ReadProps(fp.MetadataProps));

        fp.ClearName();
        fp.Input.Clear();
        fp.Output.Clear();
        fp.Attribute.Clear();
        fp.AttributeProto.Clear();
        fp.Node.Clear();
        fp.ClearDocString();
        fp.OpsetImport.Clear();
        fp.ClearDomain();
        fp.ClearOverload();
        fp.ValueInfo.Clear();
        fp.MetadataProps.Clear();
        function.Residue = Residue(fp);
        return function;
    }

    private TrainingInfo ReadTrainingInfo(TrainingInfoProto tp, Scope mainScope)
    {
        var info = new TrainingInfo
        {
            // The initialization graph stands alone; the algorithm graph may read the main graph's values.
            Initialization = tp.Initialization is null ? null : ReadGraph(tp.Initialization, new Scope(null), "training initialization graph"),
            Algorithm = tp.Algorithm is null ? null : ReadGraph(tp.Algorithm, mainScope, "training algorithm graph"),
        };
        info.InitializationBinding.AddRange(ReadProps(tp.InitializationBinding));
        info.UpdateBinding.AddRange(ReadProps(tp.UpdateBinding));
        tp.Initialization = null;
        tp.Algorithm = null;
        tp.InitializationBinding.Clear();
        tp.UpdateBinding.Clear();
        info.Residue = Residue(tp);
        return info;
    }

    private static Value ReadValueInfo(ValueInfoProto vi, string where, string role)
    {
        if (!vi.HasName || vi.Name.Length == 0)
            throw new InvalidModelException($"{Capitalize(where)} has an {role} without a name.");
        var value = new Value(vi.Name);
        ApplyValueInfo(value, vi);
        return value;
    }

    private static void ApplyValueInfo(Value value, ValueInfoProto vi)
    {
        if (vi.Type is not null) value.Type = ReadType(vi.Type);
        if (vi.HasDocString) value.DocString = vi.DocString;
        if (vi.MetadataProps.Count > 0 && value.MetadataProps.Count == 0) value.MetadataProps.AddRange(ReadProps(vi.MetadataProps));
    }

    internal static OnnxType ReadType(TypeProto tp)
    {
        string? denotation = tp.HasDenotation ? tp.Denotation : null;
        return tp.ValueCase switch
        {
            TypeProto.ValueOneofCase.TensorType => new TensorType(
                (DataType)tp.TensorType.ElemType, tp.TensorType.Shape is null ? null : ReadShape(tp.TensorType.Shape), denotation),
            TypeProto.ValueOneofCase.SparseTensorType => new SparseTensorType(
                (DataType)tp.SparseTensorType.ElemType, tp.SparseTensorType.Shape is null ? null : ReadShape(tp.SparseTensorType.Shape), denotation),
            TypeProto.ValueOneofCase.SequenceType => new SequenceType(
                tp.SequenceType.ElemType is null ? null : ReadType(tp.SequenceType.ElemType), denotation),
            TypeProto.ValueOneofCase.OptionalType => new OptionalType(
                tp.OptionalType.ElemType is null ? null : ReadType(tp.OptionalType.ElemType), denotation),
            TypeProto.ValueOneofCase.MapType => new MapType(
                (DataType)tp.MapType.KeyType, tp.MapType.ValueType is null ? null : ReadType(tp.MapType.ValueType), denotation),
            TypeProto.ValueOneofCase.OpaqueType => new OpaqueType(
                tp.OpaqueType.HasDomain ? tp.OpaqueType.Domain : null, tp.OpaqueType.HasName ? tp.OpaqueType.Name : null, denotation),
            _ => new UnspecifiedType(denotation),
        };
    }

    private static Shape ReadShape(TensorShapeProto sp) => new(sp.Dim.Select(d => new Dim(
        d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : null,
        d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : null,
        d.HasDenotation ? d.Denotation : null)));

    private static List<KeyValuePair<string, string>> ReadProps(IEnumerable<StringStringEntryProto> props) =>
        props.Select(p => new KeyValuePair<string, string>(p.Key, p.Value)).ToList();

    /// <summary>What is left of a message after the IR took its fields; null when nothing is.</summary>
    private static T? Residue<T>(T message) where T : class, IMessage<T> => message.CalculateSize() == 0 ? null : message;

    private static InvalidModelException Missing(string where, string field) =>
        new($"The {where} declares a value it does not carry (field '{field}' is missing).");

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    /// <summary>Names visible in one graph: its own values, then those of enclosing graphs.</summary>
    private sealed class Scope
    {
        private readonly Dictionary<string, Value> _values = new(StringComparer.Ordinal);
        private readonly Scope? _parent;

        public Scope(Scope? parent) => _parent = parent;

        public void Define(Value value, string where, string role)
        {
            if (!_values.TryAdd(value.Name, value))
                throw new InvalidModelException(
                    $"'{value.Name}' is defined twice in {where} (the second time as {role}); ONNX values must have unique names.");
        }

        public Value? FindLocal(string name) => _values.GetValueOrDefault(name);

        public Value? Find(string name) => _values.GetValueOrDefault(name) ?? _parent?.Find(name);
    }
}
