using Google.Protobuf;
using SparseOnnx.GraphRewriter.Protobuf;

namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

/// <summary>ModelProtos built field by field, for tests that need exact control of what the file holds.</summary>
public static class ProtoFixtures
{
    internal static ValueInfoProto TensorInfo(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    internal static TensorProto FloatTensor(string name, long[] dims, float[] values, bool typedField = false)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.Add(dims);
        if (typedField) t.FloatData.Add(values);
        else t.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        return t;
    }

    internal static NodeProto Node(string op, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = name };
        n.Input.Add(inputs);
        n.Output.Add(outputs);
        n.Attribute.Add(attributes);
        return n;
    }

    internal static StringStringEntryProto Prop(string k, string v) => new() { Key = k, Value = v };

    internal static float[] Floats(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>
    /// A model that exercises every part of the format SparseOnnx must carry through: every attribute kind,
    /// subgraphs reading outer values, functions with attribute references, sparse initializers, typed-field
    /// tensors of several types, every type kind, value_info, doc strings and metadata at every level,
    /// quantization annotations, training info, IR 11 multi-device fields and unknown fields.
    /// Not meant to run; <see cref="RunnableModel"/> is.
    /// </summary>
    internal static ModelProto EverythingModel()
    {
        var g = new GraphProto { Name = "main", DocString = "main graph doc" };
        g.MetadataProps.Add(Prop("graph_key", "graph_value"));
        var x = TensorInfo("x", TensorProto.Types.DataType.Float, "batch", 4);
        x.DocString = "input doc";
        x.MetadataProps.Add(Prop("vi_key", "vi_value"));
        x.Type.TensorType.Shape.Dim[0].Denotation = "DATA_BATCH";
        x.Type.Denotation = "TENSOR";
        g.Input.Add(x);
        g.Input.Add(new ValueInfoProto { Name = "cond", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Bool } } });
        g.Input.Add(new ValueInfoProto { Name = "untyped_input" });

        var w = FloatTensor("W", [4, 3], Floats(12, 1));
        w.DocString = "weight doc";
        w.MetadataProps.Add(Prop("tensor_key", "tensor_value"));
        w.Segment = new TensorProto.Types.Segment { Begin = 0, End = 12 };
        g.Initializer.Add(w);
        g.Initializer.Add(FloatTensor("b", [3], [0.5f, -1f, 2f], typedField: true));
        var shape = new TensorProto { Name = "shape", DataType = (int)TensorProto.Types.DataType.Int64 };
        shape.Dims.Add(2);
        shape.Int64Data.Add([-1, 3]);
        g.Initializer.Add(shape);
        var half = new TensorProto { Name = "half", DataType = (int)TensorProto.Types.DataType.Float16 };
        half.Dims.Add(3);
        half.Int32Data.Add([0x3C00, 0xBC00, 0x0001]);
        g.Initializer.Add(half);
        var strings = new TensorProto { Name = "labels", DataType = (int)TensorProto.Types.DataType.String };
        strings.Dims.Add(2);
        strings.StringData.Add(ByteString.CopyFromUtf8("alpha"));
        strings.StringData.Add(ByteString.CopyFromUtf8("beta"));
        g.Initializer.Add(strings);
        var doubles = new TensorProto { Name = "doubles", DataType = (int)TensorProto.Types.DataType.Double };
        doubles.Dims.Add(2);
        doubles.DoubleData.Add([1.5, -2.25]);
        g.Initializer.Add(doubles);
        var u32 = new TensorProto { Name = "u32", DataType = (int)TensorProto.Types.DataType.Uint32 };
        u32.Dims.Add(2);
        u32.Uint64Data.Add([7, 4000000000]);
        g.Initializer.Add(u32);
        var int4 = new TensorProto { Name = "int4", DataType = (int)TensorProto.Types.DataType.Int4 };
        int4.Dims.Add(3);
        int4.Int32Data.Add([0x21, 0x03]);
        g.Initializer.Add(int4);
        g.Initializer.Add(FloatTensor("cond", [], [1f])); // an input with a default value (same name as input)

        var sparse = new SparseTensorProto { Values = FloatTensor("sparse_bias", [2], [1f, 2f]) };
        sparse.Indices = new TensorProto { Name = "sparse_bias_indices", DataType = (int)TensorProto.Types.DataType.Int64 };
        sparse.Indices.Dims.Add(2);
        sparse.Indices.Int64Data.Add([0, 2]);
        sparse.Dims.Add(3);
        g.SparseInitializer.Add(sparse);

        var matmul = Node("MatMul", "/layer/MatMul", ["x", "W"], ["mm"]);
        matmul.DocString = "node doc";
        matmul.MetadataProps.Add(Prop("namespace", "layer"));
        matmul.DeviceConfigurations.Add(new NodeDeviceConfigurationProto
        {
            ConfigurationId = "cfg",
            PipelineStage = 1,
            ShardingSpec = { new ShardingSpecProto { TensorName = "mm", Device = { 0, 1 }, ShardedDim = { new ShardedDimProto { Axis = 0, SimpleSharding = { new SimpleShardedDimProto { DimValue = 4, NumShards = 2 } } } } } },
        });
        g.Node.Add(matmul);
        g.Node.Add(Node("Add", "/layer/Add", ["mm", "b"], ["biased"]));
        g.Node.Add(Node("Add", "/layer/AddSparse", ["biased", "sparse_bias"], ["h"]));

        var allKinds = Node("Custom", "all_kinds", ["h", "", "cond"], ["custom_out", ""],
            new AttributeProto { Name = "f", Type = AttributeProto.Types.AttributeType.Float, F = 0.25f, DocString = "attr doc" },
            new AttributeProto { Name = "i", Type = AttributeProto.Types.AttributeType.Int, I = -7 },
            new AttributeProto { Name = "s", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFrom(0xff, 0x00, 0x41) },
            new AttributeProto { Name = "t", Type = AttributeProto.Types.AttributeType.Tensor, T = FloatTensor("", [2], [3f, 4f]) },
            new AttributeProto { Name = "sp", Type = AttributeProto.Types.AttributeType.SparseTensor, SparseTensor = sparse.Clone() },
            new AttributeProto { Name = "tp", Type = AttributeProto.Types.AttributeType.TypeProto, Tp = new TypeProto { SequenceType = new TypeProto.Types.Sequence { ElemType = TensorInfo("", TensorProto.Types.DataType.Int32, 2).Type } } },
            new AttributeProto { Name = "fs", Type = AttributeProto.Types.AttributeType.Floats, Floats = { 1f, float.PositiveInfinity, -0f } },
            new AttributeProto { Name = "is", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1, long.MaxValue, long.MinValue } },
            new AttributeProto { Name = "ss", Type = AttributeProto.Types.AttributeType.Strings, Strings = { ByteString.CopyFromUtf8("a"), ByteString.Empty } },
            new AttributeProto { Name = "ts", Type = AttributeProto.Types.AttributeType.Tensors, Tensors = { FloatTensor("t0", [1], [1f]), FloatTensor("t1", [1], [2f], typedField: true) } },
            new AttributeProto { Name = "sps", Type = AttributeProto.Types.AttributeType.SparseTensors, SparseTensors = { sparse.Clone() } },
            new AttributeProto
            {
                Name = "tps", Type = AttributeProto.Types.AttributeType.TypeProtos, TypeProtos =
                {
                    new TypeProto { MapType = new TypeProto.Types.Map { KeyType = (int)TensorProto.Types.DataType.String, ValueType = TensorInfo("", TensorProto.Types.DataType.Float).Type } },
                    new TypeProto { OptionalType = new TypeProto.Types.Optional { ElemType = TensorInfo("", TensorProto.Types.DataType.Float).Type } },
                    new TypeProto { SparseTensorType = new TypeProto.Types.SparseTensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension() } } } },
                    new TypeProto { OpaqueType = new TypeProto.Types.Opaque { Domain = "com.example", Name = "blob" } },
                    new TypeProto { Denotation = "only a denotation" },
                },
            },
            new AttributeProto { Name = "legacy_untyped", F = 1.5f });
        allKinds.Domain = "com.example";
        g.Node.Add(allKinds);

        var thenBranch = new GraphProto { Name = "then" };
        thenBranch.Node.Add(Node("Relu", "then_relu", ["h"], ["then_out"]));
        thenBranch.Output.Add(new ValueInfoProto { Name = "then_out" });
        var elseBranch = new GraphProto { Name = "else" };
        var elseInner = new GraphProto { Name = "else_inner" };
        elseInner.Output.Add(new ValueInfoProto { Name = "h" }); // a subgraph output that is an outer value
        elseBranch.Node.Add(Node("If", "nested_if", ["cond"], ["else_out"],
            new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = elseInner },
            new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = elseInner.Clone() }));
        elseBranch.Output.Add(new ValueInfoProto { Name = "else_out" });
        g.Node.Add(Node("If", "if", ["cond"], ["branch_out"],
            new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = thenBranch },
            new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = elseBranch }));
        var scanBodies = Node("Custom", "graphs_holder", ["h"], ["graphs_out"],
            new AttributeProto { Name = "bodies", Type = AttributeProto.Types.AttributeType.Graphs, Graphs = { thenBranch.Clone(), thenBranch.Clone() } });
        scanBodies.Domain = "com.example";
        scanBodies.Attribute[0].Graphs[1].Name = "second";
        scanBodies.Attribute[0].Graphs[1].Node[0].Output[0] = "then_out_2";
        scanBodies.Attribute[0].Graphs[1].Output[0].Name = "then_out_2";
        g.Node.Add(scanBodies);
        var call = Node("AddMul", "fn_call", ["branch_out", "h"], ["y"], new AttributeProto { Name = "alpha", Type = AttributeProto.Types.AttributeType.Float, F = 2f });
        call.Domain = "local";
        call.Overload = "v1";
        g.Node.Add(call);

        g.Output.Add(TensorInfo("y", TensorProto.Types.DataType.Float, "batch", 3));
        g.Output.Add(TensorInfo("h", TensorProto.Types.DataType.Float, "batch", 3));
        g.ValueInfo.Add(TensorInfo("mm", TensorProto.Types.DataType.Float, "batch", 3));
        g.ValueInfo.Add(TensorInfo("not_in_graph", TensorProto.Types.DataType.Float));
        g.QuantizationAnnotation.Add(new TensorAnnotation { TensorName = "mm", QuantParameterTensorNames = { Prop("SCALE_TENSOR", "b") } });

        var function = new FunctionProto { Name = "AddMul", Domain = "local", Overload = "v1", DocString = "fn doc" };
        function.Input.Add(["a", "b"]);
        function.Output.Add("out");
        function.Attribute.Add("beta");
        function.AttributeProto.Add(new AttributeProto { Name = "alpha", Type = AttributeProto.Types.AttributeType.Float, F = 1f });
        function.Node.Add(Node("Add", "fn_add", ["a", "b"], ["sum"]));
        function.Node.Add(Node("Constant", "fn_alpha", [], ["alpha_value"],
            new AttributeProto { Name = "value_float", Type = AttributeProto.Types.AttributeType.Float, RefAttrName = "alpha" }));
        function.Node.Add(Node("Mul", "fn_mul", ["sum", "alpha_value"], ["out"]));
        function.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        function.ValueInfo.Add(TensorInfo("sum", TensorProto.Types.DataType.Float));
        function.MetadataProps.Add(Prop("fn_key", "fn_value"));

        var init = new GraphProto { Name = "training_init" };
        init.Initializer.Add(FloatTensor("init_value", [3], [0f, 0f, 0f]));
        init.Node.Add(Node("Identity", "init_identity", ["init_value"], ["init_out"]));
        init.Output.Add(new ValueInfoProto { Name = "init_out" });
        var algorithm = new GraphProto { Name = "training_step" };
        algorithm.Node.Add(Node("Identity", "step_identity", ["b"], ["new_b"])); // reads the main graph's initializer
        algorithm.Output.Add(new ValueInfoProto { Name = "new_b" });

        var model = new ModelProto
        {
            IrVersion = 11,
            ProducerName = "sparseonnx-tests",
            ProducerVersion = "1.0",
            Domain = "ai.sparseonnx.tests",
            ModelVersion = 3,
            DocString = "model doc",
            Graph = g,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "local", Version = 1 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.example", Version = 1 });
        model.MetadataProps.Add(Prop("model_key", "model_value"));
        model.MetadataProps.Add(Prop("model_key", "duplicate key, kept"));
        model.Functions.Add(function);
        model.TrainingInfo.Add(new TrainingInfoProto
        {
            Initialization = init,
            Algorithm = algorithm,
            InitializationBinding = { Prop("b", "init_out") },
            UpdateBinding = { Prop("b", "new_b") },
        });
        model.Configuration.Add(new DeviceConfigurationProto { Name = "cfg", NumDevices = 2, Device = { "gpu0", "gpu1" } });
        return model;
    }

    /// <summary>
    /// A small model ONNX Runtime can run that still uses the features a round trip must preserve: raw and
    /// typed-field initializers, a sparse initializer, a Constant node, an If whose branches read an outer
    /// value, and a model-local function whose body refers to its caller's attribute.
    /// Inputs: x float [batch, 64], cond bool []. Outputs: y float [batch, 16], h float [batch, 256].
    /// </summary>
    internal static ModelProto RunnableModel()
    {
        var g = new GraphProto { Name = "runnable" };
        g.Input.Add(TensorInfo("x", TensorProto.Types.DataType.Float, "batch", 64));
        g.Input.Add(TensorInfo("cond", TensorProto.Types.DataType.Bool));
        g.Initializer.Add(FloatTensor("W1", [64, 256], Floats(64 * 256, 11)));
        g.Initializer.Add(FloatTensor("b1", [256], Floats(256, 12), typedField: true));
        g.Initializer.Add(FloatTensor("W2", [256, 16], Floats(256 * 16, 13)));
        g.Initializer.Add(FloatTensor("small", [4], [1f, 2f, 3f, 4f]));
        var sparse = new SparseTensorProto { Values = FloatTensor("sparse_bias", [2], [0.5f, -0.5f]) };
        sparse.Indices = new TensorProto { Name = "sparse_bias_indices", DataType = (int)TensorProto.Types.DataType.Int64 };
        sparse.Indices.Dims.Add(2);
        sparse.Indices.Int64Data.Add([1, 14]);
        sparse.Dims.Add(16);
        g.SparseInitializer.Add(sparse);

        g.Node.Add(Node("MatMul", "/l1/MatMul", ["x", "W1"], ["mm1"]));
        g.Node.Add(Node("Add", "/l1/Add", ["mm1", "b1"], ["h"]));
        var thenBranch = new GraphProto { Name = "then" };
        thenBranch.Node.Add(Node("Relu", "then_relu", ["h"], ["then_out"]));
        thenBranch.Output.Add(TensorInfo("then_out", TensorProto.Types.DataType.Float, "batch", 256));
        var elseBranch = new GraphProto { Name = "else" };
        elseBranch.Node.Add(Node("Neg", "else_neg", ["h"], ["else_out"]));
        elseBranch.Output.Add(TensorInfo("else_out", TensorProto.Types.DataType.Float, "batch", 256));
        g.Node.Add(Node("If", "if", ["cond"], ["act"],
            new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = thenBranch },
            new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = elseBranch }));
        g.Node.Add(Node("MatMul", "/l2/MatMul", ["act", "W2"], ["mm2"]));
        g.Node.Add(Node("Constant", "const", [], ["offset"],
            new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = FloatTensor("", [16], Floats(16, 14)) }));
        g.Node.Add(Node("Add", "/l2/AddConst", ["mm2", "offset"], ["mm2b"]));
        g.Node.Add(Node("Add", "/l2/AddSparse", ["mm2b", "sparse_bias"], ["pre"]));
        var call = Node("Scale", "scale_call", ["pre"], ["y"], new AttributeProto { Name = "alpha", Type = AttributeProto.Types.AttributeType.Float, F = 0.5f });
        call.Domain = "local";
        g.Node.Add(call);
        g.Output.Add(TensorInfo("y", TensorProto.Types.DataType.Float, "batch", 16));
        g.Output.Add(TensorInfo("h", TensorProto.Types.DataType.Float, "batch", 256));
        g.ValueInfo.Add(TensorInfo("mm1", TensorProto.Types.DataType.Float, "batch", 256));

        var function = new FunctionProto { Name = "Scale", Domain = "local" };
        function.Input.Add("a");
        function.Output.Add("out");
        function.Attribute.Add("alpha");
        function.Node.Add(Node("Constant", "fn_alpha", [], ["alpha_value"],
            new AttributeProto { Name = "value_float", Type = AttributeProto.Types.AttributeType.Float, RefAttrName = "alpha" }));
        function.Node.Add(Node("Mul", "fn_mul", ["a", "alpha_value"], ["out"]));
        function.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });

        var model = new ModelProto { IrVersion = 8, ProducerName = "sparseonnx-tests", Graph = g };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "local", Version = 1 });
        model.Functions.Add(function);
        model.MetadataProps.Add(Prop("purpose", "round-trip test"));
        return model;
    }

    /// <summary>
    /// Moves the raw data of every initializer of at least <paramref name="minBytes"/> into external files, the
    /// way other tools lay them out: unaligned offsets, optionally split across two files.
    /// </summary>
    internal static void Externalize(ModelProto model, string directory, long minBytes, bool twoFiles)
    {
        var files = new Dictionary<string, FileStream>();
        try
        {
            int index = 0;
            foreach (var tensor in model.Graph.Initializer)
            {
                if (!tensor.HasRawData || tensor.RawData.Length < minBytes) continue;
                string location = twoFiles && index++ % 2 == 1 ? "weights/second.bin" : "first.bin";
                if (!files.TryGetValue(location, out var stream))
                {
                    string path = Path.Combine(directory, location);
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    stream = new FileStream(path, FileMode.Create);
                    stream.Write(new byte[13]); // unaligned first offset
                    files[location] = stream;
                }
                long offset = stream.Position;
                tensor.RawData.WriteTo(stream);
                stream.Write(new byte[3]);
                tensor.DataLocation = TensorProto.Types.DataLocation.External;
                tensor.ExternalData.Add(Prop("location", location));
                tensor.ExternalData.Add(Prop("offset", offset.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                tensor.ExternalData.Add(Prop("length", tensor.RawData.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                tensor.ClearRawData();
            }
        }
        finally
        {
            foreach (var s in files.Values) s.Dispose();
        }
    }

    internal static void WriteModel(ModelProto model, string path) => File.WriteAllBytes(path, model.ToByteArray());

    /// <summary>Serializes a proto and appends unknown fields (numbers no ONNX version uses) at the top level.</summary>
    internal static byte[] WithUnknownFields(IMessage message)
    {
        using var stream = new MemoryStream();
        message.WriteTo(stream);
        var output = new CodedOutputStream(stream, leaveOpen: true);
        output.WriteTag(999, WireFormat.WireType.Varint);
        output.WriteInt64(12345);
        output.WriteTag(1000, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFromUtf8("from a future ONNX"));
        output.Flush();
        return stream.ToArray();
    }
}
