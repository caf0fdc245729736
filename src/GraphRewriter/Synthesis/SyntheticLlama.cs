using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Synthesis;

/// <summary>
/// Builds runnable Llama-architecture decoders with random weights, so decode speed can be measured on a
/// model of a real model's dimensions without downloading one.
/// </summary>
/// <remarks>
/// <para>The graph computes Hugging Face's <c>LlamaForCausalLM</c> in plain opset-17 ops, written the way the
/// PyTorch TorchScript exporter writes them (module-path node names, <c>MatMul(x, W[K, N])</c> projections,
/// decomposed RMSNorm, rotate-half RoPE, grouped-query attention by Expand and Reshape), with Optimum's
/// KV-cache inputs and outputs: <c>input_ids</c>, <c>attention_mask</c>, <c>position_ids</c> and
/// <c>past_key_values.{i}.key/value</c> in; <c>logits</c> and <c>present.{i}.key/value</c> out. Every
/// shape is computed from the inputs, so any batch, sequence and past length runs, past length 0 included.</para>
/// <para>In float16 or bfloat16 (<c>elementType</c>) the graph is what a half-precision export of the same module
/// computes: weights, activations, the KV cache and the logits in that type; RMSNorm, the rotary tables and the
/// attention softmax in float32 between Casts, as LlamaRMSNorm, LlamaRotaryEmbedding and the eager attention upcast
/// them; hidden keys get the type's lowest finite score (torch.finfo(dtype).min), since −1e9 is −∞ in float16.</para>
/// <para>Weight matrices are <see cref="GeneratedTensorData"/>: generated while streamed, never held, so
/// a 5 GB model builds in a few kilobytes and saves through <see cref="IO.ModelSaver"/> with external data.
/// A matrix with fan-in K is uniform in [−√(3/K), √(3/K)), variance 1/K, which keeps activations of order
/// one through any number of layers; norm weights are ones. The same seed gives the same bytes.</para>
/// </remarks>
public static class SyntheticLlama
{
    /// <summary>The producer name written into built models.</summary>
    public const string ProducerName = "sparseonnx-synthetic";

    /// <summary>Model metadata key recording the dimensions and seed a model was built from.</summary>
    public const string MetadataKey = "sparseonnx.synthetic";

    /// <summary>
    /// Builds the decoder of <paramref name="dims"/> with weights drawn from <paramref name="seed"/>, computing in
    /// <paramref name="elementType"/> (float32, float16 or bfloat16; a float16 model's weights are the float32 model's
    /// rounded to float16).
    /// </summary>
    /// <exception cref="ArgumentException">The dimensions are invalid (see <see cref="LlamaDimensions.Validate"/>), or the type is not a float type.</exception>
    public static Model Build(LlamaDimensions dims, ulong seed = 1, DataType elementType = DataType.Float)
    {
        ArgumentNullException.ThrowIfNull(dims);
        dims.Validate();
        if (elementType is not (DataType.Float or DataType.Float16 or DataType.BFloat16))
            throw new ArgumentException($"A synthetic decoder computes in float32, float16 or bfloat16, not {elementType.DisplayName()}.", nameof(elementType));
        var model = new Model(new Graph("main_graph")) { IrVersion = 8, ProducerName = ProducerName };
        model.OpsetImports.Set("", 17);
        model.MetadataProps.Add(new(MetadataKey, string.Create(CultureInfo.InvariantCulture,
            $"llama layers={dims.Layers} hidden={dims.Hidden} heads={dims.Heads} kv_heads={dims.KvHeads} " +
            $"intermediate={dims.Intermediate} vocab={dims.Vocab} rope_theta={dims.RopeTheta} rms_eps={dims.RmsEps} seed={seed}")
            + (elementType == DataType.Float ? "" : $" dtype={elementType.DisplayName()}")));
        new DecoderWriter(model.Graph, dims, seed, elementType).Write();
        return model;
    }

    /// <summary>
    /// The generator seed of the weight called <paramref name="weightName"/>: FNV-1a over the model seed's
    /// eight little-endian bytes, then the name's UTF-8 bytes. Stable across processes and platforms
    /// (string.GetHashCode is randomized per process), and different for every weight.
    /// </summary>
    internal static ulong WeightSeed(ulong seed, string weightName)
    {
        const ulong offsetBasis = 14695981039346656037UL, prime = 1099511628211UL;
        Span<byte> seedBytes = stackalloc byte[sizeof(ulong)];
        BinaryPrimitives.WriteUInt64LittleEndian(seedBytes, seed);
        ulong hash = offsetBasis;
        foreach (byte b in seedBytes) hash = (hash ^ b) * prime;
        foreach (byte b in Encoding.UTF8.GetBytes(weightName)) hash = (hash ^ b) * prime;
        return hash;
    }

    /// <summary>
    /// Names and declares the KV-cache decoder's outputs, as Optimum and the onnxruntime-genai builder both name them:
    /// <c>logits</c> [batch, sequence, vocab] and <c>present.{i}.key/value</c> [batch, kv heads, total sequence, head dim].
    /// </summary>
    internal static void AddDecoderOutputs(GraphBuilder builder, LlamaDimensions dims, Value logits, IReadOnlyList<(Value Key, Value Value)> presents,
        DataType elementType = DataType.Float)
    {
        logits.Name = "logits";
        builder.Output(logits, elementType, "batch_size", "sequence_length", (long)dims.Vocab);
        for (int i = 0; i < presents.Count; i++)
        {
            presents[i].Key.Name = $"present.{i}.key";
            presents[i].Value.Name = $"present.{i}.value";
            builder.Output(presents[i].Key, elementType, "batch_size", (long)dims.KvHeads, "total_sequence_length", (long)dims.HeadDim);
            builder.Output(presents[i].Value, elementType, "batch_size", (long)dims.KvHeads, "total_sequence_length", (long)dims.HeadDim);
        }
    }

    /// <summary>Writes the decoder into a model's main graph.</summary>
    private sealed class DecoderWriter
    {
        // Added to the scores of hidden keys. Finite, so a query that sees no key at all (a left-padding
        // position) gets a uniform softmax instead of NaN, and large enough that exp() of it is exactly 0.
        private const float HiddenKeyScore = -1e9f;

        private readonly GraphBuilder _builder;
        private readonly LlamaDimensions _dims;
        private readonly ulong _seed;
        private readonly DataType _type;
        // Not Model.UniqueName: it collects the taken names once and then learns only those it hands out,
        // so building through it would leave out the initializers and the outputs renamed below, and a
        // later pass could be handed one of those names.
        private readonly HashSet<string> _usedNames = new(StringComparer.Ordinal);

        public DecoderWriter(Graph graph, LlamaDimensions dims, ulong seed, DataType elementType)
        {
            _dims = dims;
            _seed = seed;
            _type = elementType;
            _builder = new GraphBuilder(graph, UniqueName);
        }

        /// <summary>
        /// <paramref name="hint"/>, or hint_1, hint_2, ... when taken: TorchScript's numbering of repeated
        /// ops in one module (/model/layers.0/self_attn/Reshape, then Reshape_1).
        /// </summary>
        private string UniqueName(string hint)
        {
            if (_usedNames.Add(hint)) return hint;
            for (int i = 1; ; i++)
                if (_usedNames.Add($"{hint}_{i}")) return $"{hint}_{i}";
        }

        private int HeadDim => _dims.HeadDim;

        public void Write()
        {
            var inputIds = _builder.Input("input_ids", DataType.Int64, "batch_size", "sequence_length");
            var attentionMask = _builder.Input("attention_mask", DataType.Int64, "batch_size", "total_sequence_length");
            var positionIds = _builder.Input("position_ids", DataType.Int64, "batch_size", "sequence_length");
            var past = new (Value Key, Value Value)[_dims.Layers];
            for (int i = 0; i < _dims.Layers; i++)
                past[i] = (KvInput($"past_key_values.{i}.key"), KvInput($"past_key_values.{i}.value"));

            var embeddings = Matrix("model.embed_tokens.weight", _dims.Vocab, _dims.Hidden, bound: 1f);
            var hidden = Scope("model.embed_tokens").Op("Gather", embeddings, inputIds);
            var (cos, sin) = RotaryTables(positionIds);
            var scoreBias = ScoreBias(inputIds, attentionMask, past[0].Key);

            var presents = new List<(Value Key, Value Value)>();
            for (int layer = 0; layer < _dims.Layers; layer++)
            {
                hidden = DecoderLayer(layer, hidden, cos, sin, scoreBias, past[layer], out var present);
                presents.Add(present);
            }
            hidden = RmsNorm(hidden, "model.norm");
            var logits = Linear(hidden, "lm_head", _dims.Hidden, _dims.Vocab);

            AddDecoderOutputs(_builder, _dims, logits, presents, _type);
        }

        private Value KvInput(string name) =>
            _builder.Input(name, _type, "batch_size", (long)_dims.KvHeads, "past_sequence_length", (long)HeadDim);

        /// <summary>
        /// cos and sin of the rotary angles, [B, 1, S, D], as LlamaRotaryEmbedding computes them:
        /// angle[b, s, d] = position_ids[b, s] · inv_freq[d mod D/2], inv_freq[i] = θ^(−2i/D).
        /// </summary>
        private (Value Cos, Value Sin) RotaryTables(Value positionIds)
        {
            var s = Scope("model.rotary_emb");
            var inverseFrequencies = new float[HeadDim / 2];
            for (int i = 0; i < inverseFrequencies.Length; i++)
                inverseFrequencies[i] = (float)(1.0 / Math.Pow(_dims.RopeTheta, 2.0 * i / HeadDim));
            var positions = s.Op("Cast", [positionIds], OnnxAttribute.Int("to", (long)DataType.Float));
            // [B, S, 1] · [D/2]: the outer product HF writes as a batched matmul, as a broadcast Mul.
            var frequencies = s.Op("Mul", s.Op("Unsqueeze", positions, s.Int64s(-1)), s.Floats(inverseFrequencies));
            var angles = s.Op("Concat", [frequencies, frequencies], OnnxAttribute.Int("axis", -1));
            // Computed in float32 and handed to the attention in the model's type, as LlamaRotaryEmbedding does.
            return (s.Op("Unsqueeze", s.To(_type, s.Op("Cos", angles)), s.Int64s(1)), s.Op("Unsqueeze", s.To(_type, s.Op("Sin", angles)), s.Int64s(1)));
        }

        /// <summary>
        /// The additive attention mask, [B, 1, S, T]: 0 where query i may see key j, that is j ≤ past + i
        /// (causal, with the past length read from the cache's shape) and attention_mask[b, j] is set;
        /// <see cref="HiddenKeyScore"/> elsewhere. Built once and shared by every layer.
        /// </summary>
        private Value ScoreBias(Value inputIds, Value attentionMask, Value pastKey)
        {
            var s = Scope("model");
            var pastLength = s.Op("Gather", s.Op("Shape", pastKey), s.Int64Scalar(2));
            var queryLength = s.Op("Gather", s.Op("Shape", inputIds), s.Int64Scalar(1));
            var totalLength = s.Op("Gather", s.Op("Shape", attentionMask), s.Int64Scalar(1));
            var step = s.Int64Scalar(1);
            var queryPositions = s.Op("Range", pastLength, s.Op("Add", pastLength, queryLength), step);
            var keyPositions = s.Op("Range", s.Int64Scalar(0), totalLength, step);
            var causal = s.Op("LessOrEqual", s.Op("Unsqueeze", keyPositions, s.Int64s(0)), s.Op("Unsqueeze", queryPositions, s.Int64s(1)));
            var attended = s.Op("Cast", [s.Op("Unsqueeze", attentionMask, s.Int64s(1, 2))], OnnxAttribute.Int("to", (long)DataType.Bool));
            var visible = s.Op("And", causal, attended);
            // float16 cannot hold −1e9 (it would be −∞, and a row with no visible key NaN): its lowest finite value instead.
            float hidden = _type == DataType.Float16 ? (float)Half.MinValue : HiddenKeyScore;
            return s.To(_type, s.Op("Where", visible, s.FloatScalar(0f), s.FloatScalar(hidden)));
        }

        private Value DecoderLayer(int layer, Value hidden, Value cos, Value sin, Value scoreBias, (Value Key, Value Value) past,
            out (Value Key, Value Value) present)
        {
            string module = $"model.layers.{layer}";
            var attention = SelfAttention(RmsNorm(hidden, $"{module}.input_layernorm"), $"{module}.self_attn", cos, sin, scoreBias, past, out present);
            hidden = Scope(module).Op("Add", hidden, attention);
            var mlp = Mlp(RmsNorm(hidden, $"{module}.post_attention_layernorm"), $"{module}.mlp");
            return Scope(module).Op("Add", hidden, mlp);
        }

        /// <summary>LlamaRMSNorm: weight · x / sqrt(mean(x², last axis) + eps), in float32 and back to the model's type before the weight.</summary>
        private Value RmsNorm(Value x, string module)
        {
            var s = Scope(module);
            var weight = Ones($"{module}.weight", _dims.Hidden);
            x = s.To(DataType.Float, x);
            var variance = s.Op("ReduceMean", [s.Op("Pow", x, s.FloatScalar(2f))], OnnxAttribute.Ints("axes", [-1]), OnnxAttribute.Int("keepdims", 1));
            var normalized = s.Op("Div", x, s.Op("Sqrt", s.Op("Add", variance, s.FloatScalar((float)_dims.RmsEps))));
            return s.Op("Mul", weight, s.To(_type, normalized));
        }

        private Value SelfAttention(Value x, string module, Value cos, Value sin, Value scoreBias, (Value Key, Value Value) past,
            out (Value Key, Value Value) present)
        {
            int heads = _dims.Heads, kvHeads = _dims.KvHeads;
            var query = Linear(x, $"{module}.q_proj", _dims.Hidden, heads * HeadDim);
            var key = Linear(x, $"{module}.k_proj", _dims.Hidden, kvHeads * HeadDim);
            var value = Linear(x, $"{module}.v_proj", _dims.Hidden, kvHeads * HeadDim);

            var s = Scope(module);
            // [B, S, H·D] -> [B, H, S, D]; Reshape's 0 copies batch and sequence from the input.
            Value SplitHeads(Value t, int count) =>
                s.Op("Transpose", [s.Op("Reshape", t, s.Int64s(0, 0, count, HeadDim))], OnnxAttribute.Ints("perm", [0, 2, 1, 3]));
            Value RotateHalf(Value t) => s.Op("Concat",
                [s.Op("Neg", s.Op("Slice", t, s.Int64s(HeadDim / 2), s.Int64s(long.MaxValue), s.Int64s(-1))),
                 s.Op("Slice", t, s.Int64s(0), s.Int64s(HeadDim / 2), s.Int64s(-1))],
                OnnxAttribute.Int("axis", -1));
            Value Rotate(Value t) => s.Op("Add", s.Op("Mul", t, cos), s.Op("Mul", RotateHalf(t), sin));

            var q = Rotate(SplitHeads(query, heads));
            var k = s.Op("Concat", [past.Key, Rotate(SplitHeads(key, kvHeads))], OnnxAttribute.Int("axis", 2));
            var v = s.Op("Concat", [past.Value, SplitHeads(value, kvHeads)], OnnxAttribute.Int("axis", 2));
            present = (k, v);

            // HF repeat_kv: each key/value head repeated heads/kvHeads times in a row, [B, KV, T, D] ->
            // [B, KV, r, T, D] -> [B, H, T, D]. Expand broadcasts against [1, 1, r, 1, 1], so no size is baked in.
            int repeats = heads / kvHeads;
            Value RepeatKv(Value t) => repeats == 1 ? t
                : s.Op("Reshape", s.Op("Expand", s.Op("Unsqueeze", t, s.Int64s(2)), s.Int64s(1, 1, repeats, 1, 1)), s.Int64s(0, heads, -1, HeadDim));

            var scores = s.Op("Div", s.Op("MatMul", q, s.Op("Transpose", [RepeatKv(k)], OnnxAttribute.Ints("perm", [0, 1, 3, 2]))),
                s.To(_type, s.FloatScalar(MathF.Sqrt(HeadDim))));
            // The softmax in float32, as the eager attention computes it, then back to the model's type.
            var probabilities = s.To(_type, s.Op("Softmax", [s.To(DataType.Float, s.Op("Add", scores, scoreBias))], OnnxAttribute.Int("axis", -1)));
            var context = s.Op("MatMul", probabilities, RepeatKv(v));
            var merged = s.Op("Reshape", s.Op("Transpose", [context], OnnxAttribute.Ints("perm", [0, 2, 1, 3])), s.Int64s(0, 0, _dims.Hidden));
            return Linear(merged, $"{module}.o_proj", _dims.Hidden, _dims.Hidden);
        }

        /// <summary>LlamaMLP: down(silu(gate(x)) · up(x)), SiLU written as x · Sigmoid(x) as opset 17 exports it.</summary>
        private Value Mlp(Value x, string module)
        {
            var gate = Linear(x, $"{module}.gate_proj", _dims.Hidden, _dims.Intermediate);
            var up = Linear(x, $"{module}.up_proj", _dims.Hidden, _dims.Intermediate);
            var activation = Scope($"{module}.act_fn");
            var activated = activation.Op("Mul", gate, activation.Op("Sigmoid", gate));
            var product = Scope(module).Op("Mul", activated, up);
            return Linear(product, $"{module}.down_proj", _dims.Intermediate, _dims.Hidden);
        }

        /// <summary>
        /// nn.Linear without bias as TorchScript exports it after folding the weight's transpose:
        /// MatMul(x, W[in, out]), node /module/path/MatMul, weight module.path.weight.
        /// </summary>
        private Value Linear(Value x, string module, int inFeatures, int outFeatures)
        {
            var weight = Matrix($"{module}.weight", inFeatures, outFeatures, bound: MathF.Sqrt(3f / inFeatures));
            return _builder.Node("", "MatMul", [x, weight], 1, UniqueName($"{NodePath(module)}/MatMul")).Outputs[0];
        }

        /// <summary>A matrix of the model's type uniform in [−bound, bound), generated while streamed, seeded by its name.</summary>
        private Value Matrix(string name, long rows, long columns, float bound) =>
            _builder.Initializer(new Tensor(name, _type, [rows, columns],
                new GeneratedTensorData(_type, rows * columns, WeightSeed(_seed, name), bound)));

        private Value Ones(string name, int length) => _type switch
        {
            DataType.Float => _builder.Initializer(name, [length], Enumerable.Repeat(1f, length).ToArray()),
            // 1.0 is 0x3C00 in float16 and 0x3F80 in bfloat16.
            _ => _builder.Initializer(Tensor.FromElements<ushort>(name, _type, [length],
                Enumerable.Repeat(_type == DataType.Float16 ? (ushort)0x3C00 : (ushort)0x3F80, length).ToArray())),
        };

        private NodeScope Scope(string module) => new(_builder, UniqueName, NodePath(module), _type);

        /// <summary>
        /// The node-name prefix TorchScript gives a module's ops: model.layers.0.self_attn becomes
        /// /model/layers.0/self_attn (a list index stays attached to its list).
        /// </summary>
        private static string NodePath(string module)
        {
            var path = new StringBuilder();
            foreach (string part in module.Split('.'))
                path.Append(part.All(char.IsAsciiDigit) ? '.' : '/').Append(part);
            return path.ToString();
        }
    }

    /// <summary>Appends standard-domain nodes named after one module, with their constants as Constant nodes.</summary>
    private sealed class NodeScope(GraphBuilder builder, Func<string, string> uniqueName, string path, DataType modelType)
    {
        public Value Op(string opType, params Value[] inputs) => Op(opType, inputs, []);

        public Value Op(string opType, Value[] inputs, params OnnxAttribute[] attributes) =>
            builder.Node("", opType, inputs, 1, uniqueName($"{path}/{opType}"), attributes).Outputs[0];

        public Value Int64s(params long[] values) => Constant(Tensor.FromElements<long>("", DataType.Int64, [values.Length], values));

        public Value Int64Scalar(long value) => Constant(Tensor.FromElements<long>("", DataType.Int64, [], [value]));

        public Value Floats(float[] values) => Constant(Tensor.FromElements<float>("", DataType.Float, [values.Length], values));

        public Value FloatScalar(float value) => Constant(Tensor.FromElements<float>("", DataType.Float, [], [value]));

        /// <summary>
        /// <paramref name="value"/> cast to <paramref name="type"/>, where the model mixes types: a float32 model
        /// computes everything in float32, so it gets no Cast.
        /// </summary>
        public Value To(DataType type, Value value) => modelType == DataType.Float
            ? value
            : Op("Cast", [value], OnnxAttribute.Int("to", (long)type));

        private Value Constant(Tensor value) =>
            builder.Node("", "Constant", [], 1, uniqueName($"{path}/Constant"), OnnxAttribute.FromTensor("value", value)).Outputs[0];
    }
}
