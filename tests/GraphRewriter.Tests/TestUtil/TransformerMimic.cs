using SparseOnnx.GraphRewriter.Analysis.Projections;

namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

public enum AttentionStyle { Explicit, FusedGqa, PackedGqa }

public enum QkvStyle { Separate, FusedSlice, FusedSplit }

public enum MlpStyle { SwiGlu, GeGlu, FusedGateUpSplit, FusedGateUpSlice, GeluMlp, ReluMlp }

/// <summary>How a linear layer is written: the exporter patterns the classifier must see through.</summary>
public enum LinearStyle
{
    /// <summary>MatMul(x, W[K, N]), the weight pre-transposed (TorchScript constant folding, genai builder).</summary>
    MatMulKn,

    /// <summary>MatMul(x, Transpose(W[N, K])), the Transpose kept.</summary>
    MatMulTransposedWeight,

    /// <summary>Reshape to 2-D, Gemm(x, W[K, N], b) with transB = 0, Reshape back (GPT-2's Conv1D).</summary>
    GemmConv1D,

    /// <summary>Gemm(x2d, W[N, K], b) with transB = 1 (nn.Linear on 2-D input), with Reshapes around.</summary>
    GemmTransB1,

    /// <summary>
    /// com.microsoft.MatMulNBits(x, B, scales[, , , bias]): int4 RTN weights in blocks of 32 along K, as the
    /// onnxruntime-genai builder's <c>-p int4</c> writes them (nodes named .../MatMul_Q4).
    /// </summary>
    MatMulNBits,
}

public enum NormStyle { RmsDecomposed, LayerNormalization, SimplifiedLayerNormalization }

/// <summary>Which structural features a mimicked export has.</summary>
public sealed record MimicConfig
{
    public int Layers { get; init; } = 2;
    public int Hidden { get; init; } = 32;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 2;
    public int Intermediate { get; init; } = 48;
    public int Vocab { get; init; } = 64;
    public AttentionStyle Attention { get; init; } = AttentionStyle.Explicit;
    public QkvStyle Qkv { get; init; } = QkvStyle.Separate;
    public MlpStyle Mlp { get; init; } = MlpStyle.SwiGlu;
    public LinearStyle Linear { get; init; } = LinearStyle.MatMulKn;
    public NormStyle Norm { get; init; } = NormStyle.RmsDecomposed;
    public bool QkvBias { get; init; }
    public bool AllBias { get; init; }
    public bool TiedHead { get; init; }
    public bool LearnedPositions { get; init; }
    public bool Rope { get; init; } = true;
    public bool KvCache { get; init; } = true;
    public bool ParallelBlocks { get; init; }
    public bool SoftcapLogits { get; init; }
    /// <summary>Module-path names (/model/layers.0/self_attn/q_proj/MatMul) instead of opaque ones (MatMul_17).</summary>
    public bool MeaningfulNames { get; init; }
    /// <summary>Makes each weight matrix's data from (key, rows, columns), e.g. streamed random data for large models; default: in-memory random floats.</summary>
    public Func<string, long, long, TensorData>? WeightData { get; init; }
}

/// <summary>One projection the mimic created: its node name and the kind and layer it must be classified as.</summary>
public sealed record ExpectedProjection(string Node, ProjectionKind Kind, int? Layer);

/// <summary>
/// Builds graphs shaped like real LLM exports (Llama, Qwen2, GPT-2, Phi-3, Gemma, nn.Linear on 2-D input,
/// onnxruntime-genai builder, Optimum merged decoders) and records the ground truth for every projection.
/// The graphs are structurally faithful (ops, wiring, which inputs are shapes) but not meant to run.
/// </summary>
public sealed class TransformerMimic
{
    private readonly MimicConfig _c;
    private readonly Graph _weights;
    private readonly Dictionary<string, Value> _weightCache;
    private readonly GraphBuilder _b;
    private readonly Random _random = new(42);
    private int _opaque;

    public List<ExpectedProjection> Expected { get; } = new();

    private TransformerMimic(MimicConfig config, Graph compute, Graph weights, Dictionary<string, Value> weightCache)
    {
        _c = config;
        _weights = weights;
        _weightCache = weightCache;
        _b = new GraphBuilder(compute);
    }

    /// <summary>A decoder-only model in one graph.</summary>
    public static (Model Model, List<ExpectedProjection> Expected) Build(MimicConfig config)
    {
        var graph = new Graph("main_graph");
        var mimic = new TransformerMimic(config, graph, graph, new Dictionary<string, Value>());
        mimic.Decoder(inputsFrom: null);
        return (NewModel(graph), mimic.Expected);
    }

    /// <summary>
    /// An Optimum merged decoder: the main graph holds the weights and an If on use_cache_branch whose two
    /// branches are complete decoders (with and without past) reading the shared weights from outer scope.
    /// </summary>
    public static (Model Model, List<ExpectedProjection> Expected) BuildMerged(MimicConfig config)
    {
        var main = new Graph("main_graph");
        var weights = new Dictionary<string, Value>();
        var useCache = new Value("use_cache_branch", new TensorType(DataType.Bool, Shape.Of(1)));
        main.Inputs.Add(useCache);
        var inputs = new Dictionary<string, Value>();
        foreach (var (name, type) in DecoderInputs(config, withPast: true))
        {
            var v = new Value(name, type);
            main.Inputs.Add(v);
            inputs[name] = v;
        }
        var withPast = new Graph("with_past");
        var withoutPast = new Graph("without_past");
        var expected = new List<ExpectedProjection>();
        foreach (var (branch, past) in new[] { (withPast, true), (withoutPast, false) })
        {
            var mimic = new TransformerMimic(config with { KvCache = past }, branch, main, weights);
            mimic.Decoder(inputsFrom: inputs);
            expected.AddRange(mimic.Expected);
        }
        var ifNode = new Node("", "If", [useCache], ["logits", .. Enumerable.Range(0, config.Layers).SelectMany(i => new[] { $"present.{i}.key", $"present.{i}.value" })],
            "optimum::if", [OnnxAttribute.FromGraph("then_branch", withPast), OnnxAttribute.FromGraph("else_branch", withoutPast)]);
        main.Nodes.Add(ifNode);
        foreach (var output in ifNode.Outputs) main.Outputs.Add(output);
        return (NewModel(main), expected);
    }

    private static Model NewModel(Graph graph)
    {
        var model = new Model(graph) { IrVersion = 8, ProducerName = "mimic" };
        model.OpsetImports.Set("", 17);
        model.OpsetImports.Set("com.microsoft", 1);
        return model;
    }

    private static IEnumerable<(string, OnnxType)> DecoderInputs(MimicConfig c, bool withPast)
    {
        yield return ("input_ids", new TensorType(DataType.Int64, GraphBuilder.ShapeOf("batch_size", "sequence_length")));
        yield return ("attention_mask", new TensorType(DataType.Int64, GraphBuilder.ShapeOf("batch_size", "total_sequence_length")));
        yield return ("position_ids", new TensorType(DataType.Int64, GraphBuilder.ShapeOf("batch_size", "sequence_length")));
        if (!withPast) yield break;
        int hd = c.Hidden / c.Heads;
        for (int i = 0; i < c.Layers; i++)
            foreach (var kv in new[] { "key", "value" })
                yield return ($"past_key_values.{i}.{kv}", new TensorType(DataType.Float, GraphBuilder.ShapeOf("batch_size", c.KvHeads, "past_sequence_length", hd)));
    }

    private int HeadDim => _c.Hidden / _c.Heads;

    private string Name(string path, string op) => _c.MeaningfulNames ? $"/{path.Replace('.', '/').Replace("/layers/", "/layers.")}/{op}" : $"{op}_{_opaque++}";

    private string WeightName(string path) => _c.MeaningfulNames ? $"{path}.weight" : $"onnx::MatMul_{1000 + _opaque++}";

    private Value Weight(string key, long rows, long cols)
    {
        if (_weightCache.TryGetValue(key, out var cached)) return cached;
        if (_c.WeightData is { } make)
        {
            var generated = new GraphBuilder(_weights).Initializer(new Tensor(WeightName(key), DataType.Float, [rows, cols], make(key, rows, cols)));
            _weightCache[key] = generated;
            return generated;
        }
        var values = new float[rows * cols];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(_random.NextDouble() - 0.5);
        var value = new GraphBuilder(_weights).Initializer(WeightName(key), [rows, cols], values);
        _weightCache[key] = value;
        return value;
    }

    private Value Vector(string key, long n, float fill = 0.1f)
    {
        if (_weightCache.TryGetValue(key, out var cached)) return cached;
        var value = new GraphBuilder(_weights).Initializer(_c.MeaningfulNames ? key : $"onnx::Add_{2000 + _opaque++}", [n], Enumerable.Repeat(fill, (int)n).ToArray());
        _weightCache[key] = value;
        return value;
    }

    private Value Scalar(float v) => _b.Node("", "Constant", [], 1, null, OnnxAttribute.FromTensor("value", Tensor.FromElements<float>("", DataType.Float, [], [v]))).Outputs[0];

    private Value Ints(params long[] v) => _b.Node("", "Constant", [], 1, null, OnnxAttribute.FromTensor("value", Tensor.FromElements<long>("", DataType.Int64, [v.Length], v))).Outputs[0];

    /// <summary>A linear layer in the configured exporter style; records the expected classification.</summary>
    private Value Linear(Value x, string path, long inFeatures, long outFeatures, ProjectionKind kind, int? layer, bool bias, Value? tiedTable = null)
    {
        Node node;
        Value result;
        string nodeName = Name(path, _c.Linear switch { LinearStyle.GemmConv1D or LinearStyle.GemmTransB1 => "Gemm", LinearStyle.MatMulNBits => "MatMul_Q4", _ => "MatMul" });
        switch (_c.Linear)
        {
            case LinearStyle.MatMulNBits when tiedTable is null:
            {
                if (!_weightCache.TryGetValue(path + "#B", out var b) || !_weightCache.TryGetValue(path + "#scales", out var scales))
                {
                    // The same weights for every branch of a merged decoder, as for float weights.
                    var floats = new float[inFeatures * outFeatures];
                    for (int i = 0; i < floats.Length; i++) floats[i] = (float)(_random.NextDouble() - 0.5);
                    var q = SparseOnnx.GraphRewriter.Quantization.RtnQuantizer.Quantize(floats, inFeatures, outFeatures, 4, 32);
                    var weights = new GraphBuilder(_weights);
                    string weightName = WeightName(path);
                    b = weights.Initializer(new Tensor(weightName + ".qweight", DataType.UInt8, [outFeatures, q.BlocksPerColumn, 16],
                        new InMemoryTensorData(SparseOnnx.GraphRewriter.Quantization.MatMulNBitsFormat.PackB(q))));
                    scales = weights.Initializer(Tensor.FromElements<float>(weightName + ".scales", DataType.Float, [outFeatures * q.BlocksPerColumn], q.Scales));
                    _weightCache[path + "#B"] = b;
                    _weightCache[path + "#scales"] = scales;
                }
                Value?[] nbitsInputs = bias ? [x, b, scales, null, null, Vector(path + ".bias", outFeatures)] : [x, b, scales];
                node = _b.Node("com.microsoft", "MatMulNBits", nbitsInputs, 1, nodeName, OnnxAttribute.Int("K", inFeatures), OnnxAttribute.Int("N", outFeatures),
                    OnnxAttribute.Int("bits", 4), OnnxAttribute.Int("block_size", 32), OnnxAttribute.Int("accuracy_level", 4));
                Expected.Add(new ExpectedProjection(nodeName, kind, layer));
                return node.Outputs[0];
            }
            case LinearStyle.MatMulKn when tiedTable is null:
                node = _b.Node("", "MatMul", [x, Weight(path, inFeatures, outFeatures)], 1, nodeName);
                result = node.Outputs[0];
                break;
            case LinearStyle.MatMulKn or LinearStyle.MatMulTransposedWeight or LinearStyle.MatMulNBits:
                var transposed = _b.Op("Transpose", [tiedTable ?? Weight(path, outFeatures, inFeatures)], OnnxAttribute.Ints("perm", [1, 0]));
                node = _b.Node("", "MatMul", [x, transposed], 1, nodeName);
                result = node.Outputs[0];
                break;
            default:
                // Reshape to 2-D, Gemm, Reshape back with a shape computed from the input's own shape.
                var flat = _b.Op("Reshape", x, Ints(-1, inFeatures));
                bool transB = _c.Linear == LinearStyle.GemmTransB1 || tiedTable is not null;
                var w = tiedTable ?? (transB ? Weight(path, outFeatures, inFeatures) : Weight(path, inFeatures, outFeatures));
                var inputs = bias ? new[] { flat, w, Vector(path + ".bias", outFeatures) } : new[] { flat, w };
                node = _b.Node("", "Gemm", inputs, 1, nodeName, OnnxAttribute.Int("transB", transB ? 1 : 0));
                var leading = _b.Op("Slice", [_b.Op("Shape", x), Ints(0), Ints(2)]);
                var shape = _b.Op("Concat", [leading, Ints(outFeatures)], OnnxAttribute.Int("axis", 0));
                Expected.Add(new ExpectedProjection(nodeName, kind, layer));
                return _b.Op("Reshape", node.Outputs[0], shape);
        }
        Expected.Add(new ExpectedProjection(nodeName, kind, layer));
        return bias ? _b.Node("", "Add", [result, Vector(path + ".bias", outFeatures)], 1, Name(path, "Add")).Outputs[0] : result;
    }

    private Value Norm(Value x, string path)
    {
        var weight = Vector(path + ".weight", _c.Hidden, 1f);
        switch (_c.Norm)
        {
            case NormStyle.LayerNormalization:
                return _b.Op("LayerNormalization", [x, weight, Vector(path + ".bias", _c.Hidden, 0f)], OnnxAttribute.Int("axis", -1));
            case NormStyle.SimplifiedLayerNormalization:
                return _b.Node("", "SimplifiedLayerNormalization", [x, weight], 1, Name(path, "SimplifiedLayerNormalization"), OnnxAttribute.Float("epsilon", 1e-5f)).Outputs[0];
            default:
                var variance = _b.Op("ReduceMean", [_b.Op("Pow", x, Scalar(2f))], OnnxAttribute.Ints("axes", [-1]));
                var normed = _b.Op("Div", x, _b.Op("Sqrt", _b.Op("Add", variance, Scalar(1e-5f))));
                return _b.Op("Mul", weight, normed);
        }
    }

    private Value RotateHalf(Value x)
    {
        var first = _b.Op("Slice", [x, Ints(0), Ints(HeadDim / 2), Ints(-1)]);
        var second = _b.Op("Slice", [x, Ints(HeadDim / 2), Ints(long.MaxValue), Ints(-1)]);
        return _b.Op("Concat", [_b.Op("Neg", second), first], OnnxAttribute.Int("axis", -1));
    }

    /// <summary>Builds the decoder into the compute graph, reading inputs from <paramref name="inputsFrom"/> (outer scope) or new graph inputs.</summary>
    private void Decoder(Dictionary<string, Value>? inputsFrom)
    {
        var inputs = new Dictionary<string, Value>();
        foreach (var (name, type) in DecoderInputs(_c, _c.KvCache))
        {
            if (inputsFrom is not null) inputs[name] = inputsFrom[name];
            else
            {
                var v = new Value(name, type);
                _b.Graph.Inputs.Add(v);
                inputs[name] = v;
            }
        }
        var embedTable = Weight("model.embed_tokens", _c.Vocab, _c.Hidden);
        var x = _b.Op("Gather", embedTable, inputs["input_ids"]);
        if (_c.LearnedPositions) x = _b.Op("Add", x, _b.Op("Gather", Weight("model.embed_positions", 128, _c.Hidden), inputs["position_ids"]));

        // Rotary tables indexed by position, and an additive mask from attention_mask.
        var cosTable = Weight("rope.cos", 128, HeadDim);
        var sinTable = Weight("rope.sin", 128, HeadDim);
        var cos = _b.Op("Unsqueeze", _b.Op("Gather", cosTable, inputs["position_ids"]), Ints(1));
        var sin = _b.Op("Unsqueeze", _b.Op("Gather", sinTable, inputs["position_ids"]), Ints(1));
        var maskFloat = _b.Op("Cast", [inputs["attention_mask"]], OnnxAttribute.Int("to", (long)DataType.Float));
        var mask = _b.Op("Unsqueeze", _b.Op("Mul", _b.Op("Sub", Scalar(1f), maskFloat), Scalar(-1e9f)), Ints(1, 2));

        var presents = new List<Value>();
        for (int layer = 0; layer < _c.Layers; layer++)
        {
            string prefix = $"model.layers.{layer}";
            var h = Norm(x, prefix + ".input_layernorm");
            var (attention, present) = Attention(h, $"{prefix}.self_attn", layer, inputs, cos, sin, mask);
            presents.AddRange(present);
            if (_c.ParallelBlocks)
            {
                var mlp = Mlp(h, $"{prefix}.mlp", layer);
                x = _b.Op("Add", _b.Op("Add", x, attention), mlp);
            }
            else
            {
                x = _b.Op("Add", x, attention);
                var h2 = Norm(x, prefix + ".post_attention_layernorm");
                x = _b.Op("Add", x, Mlp(h2, $"{prefix}.mlp", layer));
            }
        }
        var final = Norm(x, "model.norm");
        var logits = Linear(final, "lm_head", _c.Hidden, _c.Vocab, ProjectionKind.LmHead, null, bias: false, _c.TiedHead ? embedTable : null);
        if (_c.SoftcapLogits) logits = _b.Op("Mul", _b.Op("Tanh", _b.Op("Div", logits, Scalar(30f))), Scalar(30f));
        var output = _b.Op("Identity", logits);
        output.Name = "logits";
        _b.Graph.Outputs.Add(output);
        foreach (var p in presents) _b.Graph.Outputs.Add(p);
    }

    private (Value Output, List<Value> Presents) Attention(Value h, string path, int layer, Dictionary<string, Value> inputs, Value cos, Value sin, Value mask)
    {
        int qSize = _c.Hidden, kvSize = _c.KvHeads * HeadDim;
        bool bias = _c.QkvBias || _c.AllBias;
        Value q, k, v;
        Value? packed = null;
        if (_c.Qkv == QkvStyle.Separate && _c.Attention != AttentionStyle.PackedGqa)
        {
            q = Linear(h, path + ".q_proj", _c.Hidden, qSize, ProjectionKind.Q, layer, bias);
            k = Linear(h, path + ".k_proj", _c.Hidden, kvSize, ProjectionKind.K, layer, bias);
            v = Linear(h, path + ".v_proj", _c.Hidden, kvSize, ProjectionKind.V, layer, bias);
        }
        else
        {
            packed = Linear(h, path + ".qkv_proj", _c.Hidden, qSize + 2 * kvSize, ProjectionKind.Qkv, layer, bias);
            if (_c.Qkv == QkvStyle.FusedSplit)
            {
                var split = _b.Node("", "Split", [packed, Ints(qSize, kvSize, kvSize)], 3, null, OnnxAttribute.Int("axis", -1));
                (q, k, v) = (split.Outputs[0], split.Outputs[1], split.Outputs[2]);
            }
            else
            {
                q = _b.Op("Slice", [packed, Ints(0), Ints(qSize), Ints(-1)]);
                k = _b.Op("Slice", [packed, Ints(qSize), Ints(qSize + kvSize), Ints(-1)]);
                v = _b.Op("Slice", [packed, Ints(qSize + kvSize), Ints(qSize + 2 * kvSize), Ints(-1)]);
            }
        }

        var presents = new List<Value>();
        Value context;
        if (_c.Attention is AttentionStyle.FusedGqa or AttentionStyle.PackedGqa)
        {
            var seqlens = _b.Op("Cast", [_b.Op("ReduceSum", [inputs["attention_mask"], Ints(1)])], OnnxAttribute.Int("to", (long)DataType.Int32));
            var total = _b.Op("Cast", [_b.Op("Gather", _b.Op("Shape", inputs["attention_mask"]), Ints(1))], OnnxAttribute.Int("to", (long)DataType.Int32));
            var pastK = _c.KvCache ? inputs[$"past_key_values.{layer}.key"] : null;
            var pastV = _c.KvCache ? inputs[$"past_key_values.{layer}.value"] : null;
            Value?[] gqaInputs = _c.Attention == AttentionStyle.PackedGqa
                ? [packed!, null, null, pastK, pastV, seqlens, total]
                : [Rotary(q, inputs["position_ids"]), Rotary(k, inputs["position_ids"]), v, pastK, pastV, seqlens, total];
            var gqa = _b.Node("com.microsoft", "GroupQueryAttention", gqaInputs, 3, Name(path, "GroupQueryAttention"),
                OnnxAttribute.Int("num_heads", _c.Heads), OnnxAttribute.Int("kv_num_heads", _c.KvHeads), OnnxAttribute.Int("do_rotary", _c.Attention == AttentionStyle.PackedGqa ? 1 : 0));
            context = gqa.Outputs[0];
            presents.Add(Rename(gqa.Outputs[1], $"present.{layer}.key"));
            presents.Add(Rename(gqa.Outputs[2], $"present.{layer}.value"));
        }
        else
        {
            var qh = _b.Op("Transpose", [_b.Op("Reshape", q, Ints(0, 0, _c.Heads, HeadDim))], OnnxAttribute.Ints("perm", [0, 2, 1, 3]));
            var kh = _b.Op("Transpose", [_b.Op("Reshape", k, Ints(0, 0, _c.KvHeads, HeadDim))], OnnxAttribute.Ints("perm", [0, 2, 1, 3]));
            var vh = _b.Op("Transpose", [_b.Op("Reshape", v, Ints(0, 0, _c.KvHeads, HeadDim))], OnnxAttribute.Ints("perm", [0, 2, 1, 3]));
            if (_c.Rope)
            {
                qh = _b.Op("Add", _b.Op("Mul", qh, cos), _b.Op("Mul", RotateHalf(qh), sin));
                kh = _b.Op("Add", _b.Op("Mul", kh, cos), _b.Op("Mul", RotateHalf(kh), sin));
            }
            if (_c.KvCache)
            {
                kh = _b.Op("Concat", [inputs[$"past_key_values.{layer}.key"], kh], OnnxAttribute.Int("axis", 2));
                vh = _b.Op("Concat", [inputs[$"past_key_values.{layer}.value"], vh], OnnxAttribute.Int("axis", 2));
                presents.Add(kh);
                presents.Add(vh);
            }
            // Grouped-query attention as expand + reshape, with shapes computed from the tensors.
            int repeat = _c.Heads / _c.KvHeads;
            Value Expand(Value t)
            {
                var shape = _b.Op("Shape", t);
                var expanded = _b.Op("Expand", _b.Op("Unsqueeze", t, Ints(2)),
                    _b.Op("Concat", [_b.Op("Slice", [shape, Ints(0), Ints(2)]), Ints(repeat), _b.Op("Slice", [shape, Ints(2), Ints(4)])], OnnxAttribute.Int("axis", 0)));
                return _b.Op("Reshape", expanded, Ints(0, _c.Heads, -1, HeadDim));
            }
            kh = Expand(kh);
            vh = Expand(vh);
            var scores = _b.Op("Div", _b.Op("MatMul", qh, _b.Op("Transpose", [kh], OnnxAttribute.Ints("perm", [0, 1, 3, 2]))), Scalar(MathF.Sqrt(HeadDim)));
            var probabilities = _b.Op("Softmax", [_b.Op("Add", scores, mask)], OnnxAttribute.Int("axis", -1));
            var attended = _b.Op("MatMul", probabilities, vh);
            context = _b.Op("Reshape", _b.Op("Transpose", [attended], OnnxAttribute.Ints("perm", [0, 2, 1, 3])), Ints(0, 0, _c.Hidden));
            if (presents.Count > 0)
            {
                presents[0] = Rename(presents[0], $"present.{layer}.key");
                presents[1] = Rename(presents[1], $"present.{layer}.value");
            }
        }
        var output = Linear(context, path + ".o_proj", _c.Hidden, _c.Hidden, ProjectionKind.O, layer, _c.AllBias);
        return (output, presents);
    }

    private Value Rotary(Value x, Value positions) =>
        _b.Node("com.microsoft", "RotaryEmbedding", [x, positions, Weight("rope.cos_cache", 128, HeadDim / 2), Weight("rope.sin_cache", 128, HeadDim / 2)], 1, null).Outputs[0];

    private static Value Rename(Value v, string name)
    {
        v.Name = name;
        return v;
    }

    private Value GeluTanh(Value x)
    {
        var cube = _b.Op("Mul", Scalar(0.044715f), _b.Op("Pow", x, Scalar(3f)));
        var inner = _b.Op("Mul", Scalar(0.7978845608f), _b.Op("Add", x, cube));
        return _b.Op("Mul", _b.Op("Mul", Scalar(0.5f), x), _b.Op("Add", Scalar(1f), _b.Op("Tanh", inner)));
    }

    private Value Silu(Value x) => _b.Op("Mul", x, _b.Op("Sigmoid", x));

    private Value Mlp(Value h, string path, int layer)
    {
        bool bias = _c.AllBias;
        int inter = _c.Intermediate;
        Value product;
        switch (_c.Mlp)
        {
            case MlpStyle.SwiGlu or MlpStyle.GeGlu:
                var gate = Linear(h, path + ".gate_proj", _c.Hidden, inter, ProjectionKind.Gate, layer, bias);
                var up = Linear(h, path + ".up_proj", _c.Hidden, inter, ProjectionKind.Up, layer, bias);
                product = _b.Op("Mul", _c.Mlp == MlpStyle.SwiGlu ? Silu(gate) : GeluTanh(gate), up);
                break;
            case MlpStyle.FusedGateUpSplit or MlpStyle.FusedGateUpSlice:
                var fused = Linear(h, path + ".gate_up_proj", _c.Hidden, 2 * inter, ProjectionKind.GateUp, layer, bias);
                Value g, u;
                if (_c.Mlp == MlpStyle.FusedGateUpSplit)
                {
                    var split = _b.Node("", "Split", [fused, Ints(inter, inter)], 2, null, OnnxAttribute.Int("axis", -1));
                    (g, u) = (split.Outputs[0], split.Outputs[1]);
                }
                else
                {
                    g = _b.Op("Slice", [fused, Ints(0), Ints(inter), Ints(-1)]);
                    u = _b.Op("Slice", [fused, Ints(inter), Ints(2 * inter), Ints(-1)]);
                }
                product = _b.Op("Mul", u, Silu(g));
                break;
            default:
                var fc = Linear(h, path + ".up_proj", _c.Hidden, inter, ProjectionKind.Up, layer, bias);
                product = _c.Mlp == MlpStyle.GeluMlp ? GeluTanh(fc) : _b.Op("Relu", fc);
                break;
        }
        return Linear(product, path + ".down_proj", inter, _c.Hidden, ProjectionKind.Down, layer, bias);
    }
}
