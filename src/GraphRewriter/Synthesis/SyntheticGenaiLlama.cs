using System.Globalization;
using System.Runtime.InteropServices;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;

namespace SparseOnnx.GraphRewriter.Synthesis;

/// <summary>
/// Builds runnable Llama-architecture decoders in the graph the onnxruntime-genai model builder writes for
/// CPU with <c>-p int4</c>: the layout users deploy, so the rewriter and the benchmarks meet it as it is.
/// </summary>
/// <remarks>
/// <para>Per layer: <c>SimplifiedLayerNormalization</c> (layer 0) or <c>SkipSimplifiedLayerNormalization</c>
/// (com.microsoft, which also adds the residual), the packed <c>/model/layers.{i}/attn/qkv_proj/MatMul_Q4</c>,
/// <c>GroupQueryAttention</c> with rotary embedding inside (<c>do_rotary</c>, <c>cos_cache</c> and
/// <c>sin_cache</c>), <c>o_proj</c>, another SkipSimplifiedLayerNormalization, and the SwiGLU MLP
/// (<c>gate_proj</c>, <c>up_proj</c>, <c>act_fn</c> Sigmoid and Mul, <c>down_proj</c>); a final
/// SkipSimplifiedLayerNormalization and an int4 <c>lm_head</c>. Every projection is
/// <c>MatMulNBits</c>: 4 bits, blocks of 32, symmetric round-to-nearest (<see cref="RtnQuantizer"/>), float32
/// scales, accuracy_level 4. Inputs <c>input_ids</c>, <c>attention_mask</c> and
/// <c>past_key_values.{i}.key/value</c> (no position_ids: GroupQueryAttention derives positions from the
/// attention mask's sums, so sequences are right-aligned, without left padding); outputs <c>logits</c> and
/// <c>present.{i}.key/value</c>.</para>
/// <para>The float weights are those of <see cref="SyntheticLlama.Build"/> with the same dimensions and seed
/// (q, k and v concatenated along the output axis), so the two models compute the same function up to
/// float rounding once both are quantized the same way. Quantized tensors are computed while the model is
/// saved, one weight at a time.</para>
/// </remarks>
public static class SyntheticGenaiLlama
{
    /// <summary>Positions the rotary caches cover (the builder sizes them by max_position_embeddings).</summary>
    public const int RotaryPositions = 4096;

    private const int Bits = 4, BlockSize = 32, AccuracyLevel = 4;

    /// <summary>Builds the decoder of <paramref name="dims"/> with weights drawn from <paramref name="seed"/>.</summary>
    /// <exception cref="ArgumentException">The dimensions are invalid (see <see cref="LlamaDimensions.Validate"/>).</exception>
    public static Model Build(LlamaDimensions dims, ulong seed = 1)
    {
        ArgumentNullException.ThrowIfNull(dims);
        dims.Validate();
        var model = new Model(new Graph("main_graph")) { IrVersion = 8, ProducerName = SyntheticLlama.ProducerName };
        model.OpsetImports.Set("", 17);
        model.OpsetImports.Set(MatMulNBitsFormat.Domain, 1);
        model.MetadataProps.Add(new(SyntheticLlama.MetadataKey, string.Create(CultureInfo.InvariantCulture,
            $"llama layout=genai-int4 layers={dims.Layers} hidden={dims.Hidden} heads={dims.Heads} kv_heads={dims.KvHeads} " +
            $"intermediate={dims.Intermediate} vocab={dims.Vocab} rope_theta={dims.RopeTheta} rms_eps={dims.RmsEps} seed={seed}")));
        new Writer(model.Graph, dims, seed).Write();
        return model;
    }

    private sealed class Writer(Graph graph, LlamaDimensions dims, ulong seed)
    {
        private readonly GraphBuilder _builder = new(graph, hint => hint);
        private int HeadDim => dims.HeadDim;
        private float Epsilon => (float)dims.RmsEps;

        public void Write()
        {
            var inputIds = _builder.Input("input_ids", DataType.Int64, "batch_size", "sequence_length");
            var attentionMask = _builder.Input("attention_mask", DataType.Int64, "batch_size", "total_sequence_length");
            var past = new (Value Key, Value Value)[dims.Layers];
            for (int i = 0; i < dims.Layers; i++)
                past[i] = (KvInput($"past_key_values.{i}.key"), KvInput($"past_key_values.{i}.value"));

            var embeddings = _builder.Initializer(new Tensor("model.embed_tokens.weight", DataType.Float, [dims.Vocab, dims.Hidden],
                new GeneratedTensorData(DataType.Float, (long)dims.Vocab * dims.Hidden, SyntheticLlama.WeightSeed(seed, "model.embed_tokens.weight"), 1f)));
            var residual = Node("", "Gather", [embeddings, inputIds], "/model/embed_tokens/Gather").Outputs[0];
            var (seqlensK, totalLength) = AttentionMaskSums(attentionMask);
            var (cosCache, sinCache) = RotaryCaches();

            Value? pending = null;  // the previous layer's MLP output, not yet added to the residual stream
            var presents = new List<(Value Key, Value Value)>();
            for (int layer = 0; layer < dims.Layers; layer++)
            {
                string module = $"model.layers.{layer}", path = $"/model/layers.{layer}";
                Value normed;
                if (pending is null)
                {
                    normed = Node("", "SimplifiedLayerNormalization", [residual, Ones($"{module}.input_layernorm.weight")],
                        $"{path}/input_layernorm/LayerNorm", OnnxAttribute.Int("axis", -1), OnnxAttribute.Float("epsilon", Epsilon),
                        OnnxAttribute.Int("stash_type", 1)).Outputs[0];
                }
                else
                {
                    (normed, residual) = SkipNorm(pending, residual, $"{module}.input_layernorm.weight", $"{path}/input_layernorm/SkipLayerNorm");
                }
                var qkv = Projection(normed, $"{path}/attn/qkv_proj/MatMul_Q4", dims.Hidden,
                    [$"{module}.self_attn.q_proj.weight", $"{module}.self_attn.k_proj.weight", $"{module}.self_attn.v_proj.weight"],
                    [dims.Hidden, dims.KvHeads * HeadDim, dims.KvHeads * HeadDim]);
                var attention = Node("com.microsoft", "GroupQueryAttention",
                    [qkv, null, null, past[layer].Key, past[layer].Value, seqlensK, totalLength, cosCache, sinCache],
                    $"{path}/attn/GroupQueryAttention", 3,
                    OnnxAttribute.Int("num_heads", dims.Heads), OnnxAttribute.Int("kv_num_heads", dims.KvHeads),
                    OnnxAttribute.Float("scale", 1f / MathF.Sqrt(HeadDim)), OnnxAttribute.Int("do_rotary", 1),
                    OnnxAttribute.Int("rotary_interleaved", 0), OnnxAttribute.Int("local_window_size", -1));
                presents.Add((attention.Outputs[1], attention.Outputs[2]));
                var output = Projection(attention.Outputs[0], $"{path}/attn/o_proj/MatMul_Q4", dims.Hidden, [$"{module}.self_attn.o_proj.weight"], [dims.Hidden]);

                (normed, residual) = SkipNorm(output, residual, $"{module}.post_attention_layernorm.weight", $"{path}/post_attention_layernorm/SkipLayerNorm");
                var gate = Projection(normed, $"{path}/mlp/gate_proj/MatMul_Q4", dims.Hidden, [$"{module}.mlp.gate_proj.weight"], [dims.Intermediate]);
                var up = Projection(normed, $"{path}/mlp/up_proj/MatMul_Q4", dims.Hidden, [$"{module}.mlp.up_proj.weight"], [dims.Intermediate]);
                var sigmoid = Node("", "Sigmoid", [gate], $"{path}/mlp/act_fn/Sigmoid").Outputs[0];
                var activated = Node("", "Mul", [gate, sigmoid], $"{path}/mlp/act_fn/Mul").Outputs[0];
                var product = Node("", "Mul", [activated, up], $"{path}/mlp/Mul").Outputs[0];
                pending = Projection(product, $"{path}/mlp/down_proj/MatMul_Q4", dims.Intermediate, [$"{module}.mlp.down_proj.weight"], [dims.Hidden]);
            }
            var (final, _) = SkipNorm(pending!, residual, "model.norm.weight", $"/model/layers.{dims.Layers}/final_norm_layernorm/SkipLayerNorm");
            var logits = Projection(final, "/lm_head/MatMul_Q4", dims.Hidden, ["lm_head.weight"], [dims.Vocab]);

            SyntheticLlama.AddDecoderOutputs(_builder, dims, logits, presents);
        }

        private Value KvInput(string name) =>
            _builder.Input(name, DataType.Float, "batch_size", (long)dims.KvHeads, "past_sequence_length", (long)HeadDim);

        /// <summary>
        /// The builder's attention-mask subgraph: seqlens_k = sum(attention_mask, 1) − 1 as int32 per sequence,
        /// and the total sequence length (the mask's width) as an int32 scalar.
        /// </summary>
        private (Value SeqlensK, Value TotalLength) AttentionMaskSums(Value attentionMask)
        {
            const string path = "/model/attn_mask_reformat/attn_mask_subgraph";
            var sum = Node("", "ReduceSum", [attentionMask, Constant($"{path}/ReduceSum/axes", [1L], [1])], $"{path}/ReduceSum",
                OnnxAttribute.Int("keepdims", 0)).Outputs[0];
            var lengths = Node("", "Sub", [sum, Constant($"{path}/Sub/one", [], [1L])], $"{path}/Sub").Outputs[0];
            var seqlensK = Node("", "Cast", [lengths], $"{path}/Sub/Cast", OnnxAttribute.Int("to", (long)DataType.Int32)).Outputs[0];
            var shape = Node("", "Shape", [attentionMask], $"{path}/Shape").Outputs[0];
            var width = Node("", "Gather", [shape, Constant($"{path}/Gather/index", [], [1L])], $"{path}/Gather").Outputs[0];
            var total = Node("", "Cast", [width], $"{path}/Gather/Cast", OnnxAttribute.Int("to", (long)DataType.Int32)).Outputs[0];
            return (seqlensK, total);
        }

        /// <summary>cos and sin of position · θ^(−2i/D) for i &lt; D/2, [RotaryPositions, D/2]: GroupQueryAttention's rotate-half caches.</summary>
        private (Value Cos, Value Sin) RotaryCaches()
        {
            int half = HeadDim / 2;
            var cos = new float[RotaryPositions * half];
            var sin = new float[RotaryPositions * half];
            for (int i = 0; i < half; i++)
            {
                // float32 frequencies and angles, as SyntheticLlama's graph computes them at run time.
                float frequency = (float)(1.0 / Math.Pow(dims.RopeTheta, 2.0 * i / HeadDim));
                for (int p = 0; p < RotaryPositions; p++)
                {
                    float angle = p * frequency;
                    cos[p * half + i] = MathF.Cos(angle);
                    sin[p * half + i] = MathF.Sin(angle);
                }
            }
            return (_builder.Initializer("cos_cache", [RotaryPositions, half], cos), _builder.Initializer("sin_cache", [RotaryPositions, half], sin));
        }

        /// <summary>SkipSimplifiedLayerNormalization(x, residual): the normalized sum, and the sum (output 3) as the new residual.</summary>
        private (Value Normed, Value Sum) SkipNorm(Value x, Value residual, string weightName, string name)
        {
            var node = new Node("com.microsoft", "SkipSimplifiedLayerNormalization", [x, residual, Ones(weightName)],
                [$"{name}/output_0", "", "", $"{name}/output_3"], name, [OnnxAttribute.Float("epsilon", Epsilon)]);
            graph.Nodes.Add(node);
            return (node.Outputs[0], node.Outputs[3]);
        }

        /// <summary>
        /// MatMulNBits of the generated float weights <paramref name="weightNames"/> ([K, widths[j]] each, the
        /// SyntheticLlama matrices) concatenated along N, quantized when the model is saved.
        /// </summary>
        private Value Projection(Value x, string name, int k, string[] weightNames, int[] widths)
        {
            long n = widths.Sum(w => (long)w), blocks = (k + BlockSize - 1) / BlockSize, blob = BlockSize * Bits / 8;
            var quantized = new QuantizedOnce(() => RtnQuantizer.Quantize(ConcatenatedWeight(k, weightNames, widths), k, n, Bits, BlockSize));
            var b = _builder.Initializer(new Tensor($"{name}.qweight", DataType.UInt8, [n, blocks, blob],
                new DeferredTensorData(n * blocks * blob, () => MatMulNBitsFormat.PackB(quantized.Take()))));
            var scales = _builder.Initializer(new Tensor($"{name}.scales", DataType.Float, [n * blocks],
                new DeferredTensorData(n * blocks * sizeof(float), () => MemoryMarshal.AsBytes(quantized.Take().Scales.AsSpan()).ToArray())));
            return Node(MatMulNBitsFormat.Domain, MatMulNBitsFormat.OpType, [x, b, scales], name, 1,
                OnnxAttribute.Int("K", k), OnnxAttribute.Int("N", n), OnnxAttribute.Int("bits", Bits),
                OnnxAttribute.Int("block_size", BlockSize), OnnxAttribute.Int("accuracy_level", AccuracyLevel)).Outputs[0];
        }

        /// <summary>
        /// The [K, sum of widths] float matrix whose columns are each named weight's in turn, read row by row
        /// from the weights' generators (no intermediate copy: the 1B head alone is 1 GB).
        /// </summary>
        private float[] ConcatenatedWeight(int k, string[] weightNames, int[] widths)
        {
            long n = widths.Sum(w => (long)w);
            var result = new float[k * n];
            var streams = weightNames.Select((weightName, j) => new GeneratedTensorData(DataType.Float, (long)k * widths[j],
                SyntheticLlama.WeightSeed(seed, weightName), MathF.Sqrt(3f / k)).OpenRead()).ToArray();
            try
            {
                for (long row = 0; row < k; row++)
                {
                    long offset = row * n;
                    for (int j = 0; j < streams.Length; j++)
                    {
                        streams[j].ReadExactly(MemoryMarshal.AsBytes(result.AsSpan((int)offset, widths[j])));
                        offset += widths[j];
                    }
                }
            }
            finally
            {
                foreach (var stream in streams) stream.Dispose();
            }
            return result;
        }

        private Value Ones(string name)
        {
            var ones = new float[dims.Hidden];
            Array.Fill(ones, 1f);
            return _builder.Initializer(name, [dims.Hidden], ones);
        }

        private Value Constant(string name, long[] dims, long[] values) =>
            Node("", "Constant", [], name, 1, OnnxAttribute.FromTensor("value", Tensor.FromElements<long>("", DataType.Int64, dims, values))).Outputs[0];

        private Node Node(string domain, string opType, Value?[] inputs, string name, params OnnxAttribute[] attributes) =>
            Node(domain, opType, inputs, name, 1, attributes);

        /// <summary>
        /// One projection's quantization, shared by its two tensors (codes and scales), which the saver writes
        /// one after the other: computed on the first request, dropped after the second, so it runs once and
        /// no more than one projection's worth is held. A later read recomputes it.
        /// </summary>
        private sealed class QuantizedOnce(Func<NBitsBlocks> compute)
        {
            private NBitsBlocks? _held;

            public NBitsBlocks Take()
            {
                if (_held is { } held)
                {
                    _held = null;
                    return held;
                }
                _held = compute();
                return _held;
            }
        }

        private Node Node(string domain, string opType, Value?[] inputs, string name, int outputs, params OnnxAttribute[] attributes)
        {
            var node = new Node(domain, opType, inputs, Enumerable.Range(0, outputs).Select(i => $"{name}/output_{i}"), name, attributes);
            graph.Nodes.Add(node);
            return node;
        }
    }
}
