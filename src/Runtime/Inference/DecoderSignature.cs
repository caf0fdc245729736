using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace SparseOnnx.Runtime.Inference;

/// <summary>One decoder layer's KV-cache inputs and outputs.</summary>
public sealed record KvCacheLayer(int Index, string PastKey, string PastValue, string PresentKey, string PresentValue);

/// <summary>
/// The inputs and outputs of a causal-LM decoder exported with Optimum's names (also what torch.onnx
/// recipes and the onnxruntime-genai builder write): <c>input_ids</c>, optional <c>attention_mask</c>,
/// <c>position_ids</c> and <c>use_cache_branch</c> (merged decoders), <c>past_key_values.N.key|value</c>
/// → <c>logits</c>, <c>present.N.key|value</c>. Key/value tensors are [batch, kv_heads, length, head_dim].
/// </summary>
public sealed partial class DecoderSignature
{
    private DecoderSignature(string inputIds, string? attentionMask, string? positionIds, string? useCacheBranch, string logits,
        TensorElementType logitsType, long vocabulary, IReadOnlyList<KvCacheLayer> layers, TensorElementType kvType, long kvHeads, long headDim)
    {
        InputIds = inputIds;
        AttentionMask = attentionMask;
        PositionIds = positionIds;
        UseCacheBranch = useCacheBranch;
        Logits = logits;
        LogitsType = logitsType;
        Vocabulary = vocabulary;
        Layers = layers;
        KvType = kvType;
        KvHeads = kvHeads;
        HeadDim = headDim;
    }

    /// <summary>The token-id input (int64 [batch, sequence]).</summary>
    public string InputIds { get; }
    /// <summary>The attention-mask input (int64 [batch, past + sequence]), when the model has one.</summary>
    public string? AttentionMask { get; }
    /// <summary>The position-id input (int64 [batch, sequence]), when the model has one.</summary>
    public string? PositionIds { get; }
    /// <summary>The boolean input of an Optimum merged decoder that selects the with-past branch.</summary>
    public string? UseCacheBranch { get; }
    /// <summary>The logits output ([batch, sequence, vocabulary]).</summary>
    public string Logits { get; }
    /// <summary>Element type of the logits (float32 or float16).</summary>
    public TensorElementType LogitsType { get; }
    /// <summary>Vocabulary size from the logits' declared shape, or -1 when the model leaves it symbolic.</summary>
    public long Vocabulary { get; }
    /// <summary>The KV-cache inputs and outputs of each layer, in layer order.</summary>
    public IReadOnlyList<KvCacheLayer> Layers { get; }
    /// <summary>Element type of the KV cache.</summary>
    public TensorElementType KvType { get; }
    /// <summary>Key/value heads per layer.</summary>
    public long KvHeads { get; }
    /// <summary>Size of one head.</summary>
    public long HeadDim { get; }

    [GeneratedRegex(@"^past_key_values\.(\d+)\.(key|value)$")]
    private static partial Regex PastName();

    /// <summary>Reads the signature off a session; throws <see cref="UnsupportedModelException"/> naming what is missing.</summary>
    public static DecoderSignature Discover(InferenceSession session, string modelPath)
    {
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;
        string Require(IReadOnlyDictionary<string, NodeMetadata> metadata, string name, string what) =>
            metadata.ContainsKey(name) ? name : throw new UnsupportedModelException(modelPath,
                $"it has no {what} named '{name}' (inputs: {string.Join(", ", inputs.Keys)}; outputs: {string.Join(", ", outputs.Keys)})");

        string inputIds = Require(inputs, "input_ids", "input");
        string logits = Require(outputs, "logits", "output");
        var layers = new List<KvCacheLayer>();
        foreach (var name in inputs.Keys)
        {
            var match = PastName().Match(name);
            if (!match.Success || match.Groups[2].Value != "key") continue;
            int index = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            layers.Add(new KvCacheLayer(index, name,
                Require(inputs, $"past_key_values.{index}.value", "input"),
                Require(outputs, $"present.{index}.key", "output"),
                Require(outputs, $"present.{index}.value", "output")));
        }
        layers.Sort((a, b) => a.Index.CompareTo(b.Index));
        for (int i = 0; i < layers.Count; i++)
            if (layers[i].Index != i) throw new UnsupportedModelException(modelPath, $"its past_key_values inputs skip layer {i}");
        if (layers.Count == 0)
            throw new UnsupportedModelException(modelPath, "it has no past_key_values.N.key/value inputs; export it with a KV cache (Optimum: --task text-generation-with-past)");

        var past = inputs[layers[0].PastKey];
        if (past.Dimensions.Length != 4)
            throw new UnsupportedModelException(modelPath, $"'{layers[0].PastKey}' has rank {past.Dimensions.Length}; expected [batch, kv_heads, past_length, head_dim]");
        long kvHeads = past.Dimensions[1], headDim = past.Dimensions[3];
        if (kvHeads <= 0 || headDim <= 0)
            throw new UnsupportedModelException(modelPath, $"'{layers[0].PastKey}' leaves kv_heads or head_dim symbolic; they must be fixed numbers");
        var kvType = past.ElementDataType;
        if (kvType is not (TensorElementType.Float or TensorElementType.Float16 or TensorElementType.BFloat16))
            throw new UnsupportedModelException(modelPath, $"its KV cache is {kvType}; float32, float16 and bfloat16 are supported");
        var logitsMeta = outputs[logits];
        if (logitsMeta.ElementDataType is not (TensorElementType.Float or TensorElementType.Float16))
            throw new UnsupportedModelException(modelPath, $"its logits are {logitsMeta.ElementDataType}; float32 and float16 are supported");
        long vocabulary = logitsMeta.Dimensions.Length == 3 ? logitsMeta.Dimensions[2] : -1;

        return new DecoderSignature(inputIds,
            inputs.ContainsKey("attention_mask") ? "attention_mask" : null,
            inputs.ContainsKey("position_ids") ? "position_ids" : null,
            inputs.ContainsKey("use_cache_branch") ? "use_cache_branch" : null,
            logits, logitsMeta.ElementDataType, vocabulary > 0 ? vocabulary : -1, layers, kvType, kvHeads, headDim);
    }
}

/// <summary>The model is not a causal-LM decoder this runtime can drive; the message says why.</summary>
public sealed class UnsupportedModelException(string modelPath, string problem)
    : Exception($"Cannot run '{modelPath}' as a causal language model: {problem}.")
{
    /// <summary>The model file.</summary>
    public string ModelPath { get; } = modelPath;
}
