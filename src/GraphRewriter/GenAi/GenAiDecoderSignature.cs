using System.Globalization;
using System.Text.RegularExpressions;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.GraphRewriter.GenAi;

/// <summary>
/// A decoder as onnxruntime-genai's decoder-only models drive it, read off the graph: the input and output
/// names its <c>genai_config.json</c> gives (<c>model.decoder.inputs</c>, <c>outputs</c>) and the sizes it states
/// (<c>num_hidden_layers</c>, <c>num_key_value_heads</c>, <c>head_size</c>, ...).
/// </summary>
/// <remarks>
/// genai feeds <c>input_ids</c>, the optional <c>attention_mask</c> and <c>position_ids</c>, and one past key and
/// value per layer shaped [batch, kv_heads, past_length, head_size] that it allocates itself from the
/// config's sizes; it reads <c>logits</c> and the <c>present</c> keys and values back. Those are the names
/// Optimum, torch.onnx recipes and the genai builder all write, so the config names them as they are.
/// </remarks>
public sealed partial record GenAiDecoderSignature
{
    /// <summary>genai's name pattern for the past keys (its default, as Optimum names them).</summary>
    public const string PastKeyNames = "past_key_values.%d.key";

    /// <summary>genai's name pattern for the past values.</summary>
    public const string PastValueNames = "past_key_values.%d.value";

    /// <summary>genai's name pattern for the present keys.</summary>
    public const string PresentKeyNames = "present.%d.key";

    /// <summary>genai's name pattern for the present values.</summary>
    public const string PresentValueNames = "present.%d.value";

    /// <summary>The token-id input.</summary>
    public required string InputIds { get; init; }

    /// <summary>The attention-mask input, when the graph has one.</summary>
    public string? AttentionMask { get; init; }

    /// <summary>The position-id input, when the graph has one (GroupQueryAttention graphs derive positions from the mask).</summary>
    public string? PositionIds { get; init; }

    /// <summary>The logits output.</summary>
    public required string Logits { get; init; }

    /// <summary>Decoder layers: past/present pairs.</summary>
    public required int Layers { get; init; }

    /// <summary>Key/value heads per layer (dimension 1 of every past tensor).</summary>
    public required int KvHeads { get; init; }

    /// <summary>Size of one head (dimension 3 of every past tensor).</summary>
    public required int HeadSize { get; init; }

    /// <summary>Element type of the KV cache.</summary>
    public required DataType KvType { get; init; }

    /// <summary>Query heads, when the graph says: GroupQueryAttention's <c>num_heads</c>, or the q (or packed qkv) projection's width.</summary>
    public int? Heads { get; init; }

    /// <summary>Hidden size, when the graph says: the width of the token embedding table, or the q projection's input.</summary>
    public int? Hidden { get; init; }

    /// <summary>Vocabulary size: the logits' last dimension, or the rows of the token embedding table.</summary>
    public int? Vocabulary { get; init; }

    /// <summary>Positions GroupQueryAttention's rotary caches cover (rows of <c>cos_cache</c>): the longest context the graph can run.</summary>
    public int? RotaryPositions { get; init; }

    /// <summary>
    /// The attention is ONNX Runtime's GroupQueryAttention, which takes a past buffer longer than the past (the
    /// genai builder's graphs): genai then shares one buffer, sized to the maximum length, between past and present.
    /// Graphs that concatenate past and new keys themselves (Optimum, torch.onnx) need a past exactly as long as the past.
    /// </summary>
    public required bool GroupQueryAttention { get; init; }

    /// <summary>The graph holds SparseOnnx ops (domain <c>ai.sparseonnx</c>): a genai host must load the op library.</summary>
    public required bool UsesSparseOnnxOps { get; init; }

    /// <summary>Where <see cref="Heads"/> and <see cref="Hidden"/> were read, for the user.</summary>
    public IReadOnlyList<string> Sources { get; init; } = [];

    [GeneratedRegex(@"^past_key_values\.(\d+)\.(key|value)$", RegexOptions.CultureInvariant)]
    private static partial Regex PastName();

    /// <summary>
    /// Reads the signature of <paramref name="model"/>'s main graph. When it does not fit genai's decoder contract,
    /// <see cref="GenAiSignatureResult.Problems"/> lists every reason, and <see cref="GenAiSignatureResult.Signature"/> is null.
    /// </summary>
    public static GenAiSignatureResult Read(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var problems = new List<string>();
        var graph = model.Graph;
        // Initializers listed as inputs (old exporters) have defaults: genai need not feed them.
        var inputs = graph.Inputs.Where(v => v.ConstValue is null).ToDictionary(v => v.Name, StringComparer.Ordinal);
        var outputs = graph.Outputs.GroupBy(v => v.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);

        var inputIds = CheckIds(inputs, "input_ids", required: true, problems);
        var attentionMask = CheckIds(inputs, "attention_mask", required: false, problems);
        var positionIds = CheckIds(inputs, "position_ids", required: false, problems);

        var pastLayers = new SortedDictionary<int, (Value? Key, Value? Value)>();
        foreach (var (name, value) in inputs)
        {
            var match = PastName().Match(name);
            if (!match.Success) continue;
            if (!int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            {
                problems.Add($"input '{name}' names a layer beyond any model's");
                continue;
            }
            var pair = pastLayers.GetValueOrDefault(index);
            pastLayers[index] = match.Groups[2].Value == "key" ? (value, pair.Value) : (pair.Key, value);
        }

        var unknown = inputs.Keys.Where(n => n is not ("input_ids" or "attention_mask" or "position_ids") && !PastName().IsMatch(n)).ToList();
        foreach (string name in unknown)
            problems.Add($"input '{name}' is not one genai feeds (it feeds input_ids, attention_mask, position_ids, {PastKeyNames} and {PastValueNames})" +
                (name == "use_cache_branch" ? "; export the decoder with past unmerged (Optimum: --no-post-process)" : ""));

        if (!outputs.TryGetValue("logits", out var logits))
            problems.Add($"it has no output named 'logits' (outputs: {string.Join(", ", outputs.Keys)})");
        else if (logits.ElementType is not (DataType.Float or DataType.Float16) || logits.Shape is { Rank: not 3 })
            problems.Add($"'logits' is {Describe(logits)}; genai reads float32 or float16 [batch, sequence, vocabulary]");

        int kvHeads = 0, headSize = 0;
        DataType kvType = DataType.Undefined;
        if (pastLayers.Count == 0)
            problems.Add($"it has no KV-cache inputs ({PastKeyNames}, {PastValueNames}); genai decodes with a cache: " +
                "export the model with past key values (Optimum: --task text-generation-with-past)");
        else
        {
            int expected = 0;
            foreach (int index in pastLayers.Keys)
            {
                if (index != expected)
                {
                    problems.Add($"its past_key_values inputs skip layer {expected} (the next is {index})");
                    break;
                }
                expected++;
            }
            foreach (var (index, pair) in pastLayers)
            {
                if (pair.Key is null) problems.Add($"it has past_key_values.{index}.value but no past_key_values.{index}.key");
                if (pair.Value is null) problems.Add($"it has past_key_values.{index}.key but no past_key_values.{index}.value");
                foreach (string present in new[] { $"present.{index}.key", $"present.{index}.value" })
                    if (!outputs.ContainsKey(present)) problems.Add($"it has no output '{present}' for layer {index}'s cache");
                foreach (var past in new[] { pair.Key, pair.Value })
                {
                    if (past is null) continue;
                    var shape = past.Shape;
                    if (shape is null || shape.Rank != 4)
                    {
                        problems.Add($"'{past.Name}' is {Describe(past)}; genai allocates [batch, kv_heads, past_length, head_size]");
                        continue;
                    }
                    if (shape.Dims[1].Value is not { } layerKvHeads || shape.Dims[3].Value is not { } size || layerKvHeads <= 0 || size <= 0)
                    {
                        problems.Add($"'{past.Name}' is {Describe(past)}: kv_heads and head_size must be fixed numbers for genai to allocate the cache");
                        continue;
                    }
                    if (past.ElementType is not (DataType.Float or DataType.Float16))
                        problems.Add($"'{past.Name}' is {Describe(past)}; genai's cache is float32 or float16");
                    if (kvHeads == 0)
                    {
                        (kvHeads, headSize, kvType) = ((int)layerKvHeads, (int)size, past.ElementType ?? DataType.Undefined);
                    }
                    else if (layerKvHeads != kvHeads || size != headSize || past.ElementType != kvType)
                        problems.Add($"'{past.Name}' is {Describe(past)}, unlike '{pastLayers.First().Value.Key?.Name}': genai gives every layer one cache shape and type");
                }
            }
        }
        if (problems.Count > 0) return new GenAiSignatureResult(null, problems);

        var sources = new List<string>();
        var embedding = TokenEmbedding(inputIds!);
        var gqa = model.Graph.Nodes.FirstOrDefault(n => n.Domain == "com.microsoft" && n.OpType == "GroupQueryAttention");
        int? heads = null, hidden = null, rotary = null;
        if (gqa is not null)
        {
            heads = (int)gqa.Attributes.GetInt("num_heads", 0) is > 0 and var h ? h : null;
            if (heads is not null) sources.Add($"num_attention_heads from GroupQueryAttention '{gqa.Name}'");
            if (gqa.InputOrNull(7) is { } cos && ProjectionFinder.ConstantTensor(cos) is { Dims.Length: 2 } cache)
                rotary = (int)cache.Dims[0];
        }
        var (query, querySource) = QueryProjection(model);
        if (heads is null && query is { } q)
        {
            long width = q.Packed ? q.OutFeatures - 2L * kvHeads * headSize : q.OutFeatures;
            if (width > 0 && width % headSize == 0)
            {
                heads = (int)(width / headSize);
                sources.Add($"num_attention_heads from the {(q.Packed ? "packed qkv" : "q")} projection's width ({querySource})");
            }
        }
        if (embedding is { } table)
        {
            hidden = (int)table.Dims[1];
            sources.Add($"hidden_size from the token embedding table '{table.Name}'");
        }
        else if (query is { } q2)
        {
            hidden = (int)q2.InFeatures;
            sources.Add($"hidden_size from the q projection's input ({querySource})");
        }
        int? vocabulary = logits!.Shape?.Dims[2].Value is { } v && v > 0 ? (int)v : embedding is { } e ? (int)e.Dims[0] : null;

        return new GenAiSignatureResult(new GenAiDecoderSignature
        {
            InputIds = inputIds!.Name,
            AttentionMask = attentionMask?.Name,
            PositionIds = positionIds?.Name,
            Logits = logits.Name,
            Layers = pastLayers.Count,
            KvHeads = kvHeads,
            HeadSize = headSize,
            KvType = kvType,
            Heads = heads,
            Hidden = hidden,
            Vocabulary = vocabulary,
            RotaryPositions = rotary,
            GroupQueryAttention = gqa is not null,
            UsesSparseOnnxOps = model.AllGraphs().SelectMany(g => g.Nodes).Any(n => n.Domain == TopKSparseMatMulOp.Domain),
            Sources = sources,
        }, []);
    }

    private static Value? CheckIds(Dictionary<string, Value> inputs, string name, bool required, List<string> problems)
    {
        if (!inputs.TryGetValue(name, out var value))
        {
            if (required) problems.Add($"it has no input named '{name}' (inputs: {string.Join(", ", inputs.Keys)})");
            return null;
        }
        if (value.ElementType is not (DataType.Int64 or DataType.Int32) || value.Shape is { Rank: not 2 })
            problems.Add($"'{name}' is {Describe(value)}; genai feeds int64 or int32 [batch, length]");
        return value;
    }

    private static string Describe(Value value) => value.Type?.ToString() ?? "of unknown type";

    /// <summary>The constant [vocabulary, hidden] table a Gather reads with the token ids, when there is one.</summary>
    private static Tensor? TokenEmbedding(Value inputIds)
    {
        foreach (var use in inputIds.Uses)
        {
            var node = use.Node;
            if (!node.Is("Gather") || use.InputIndex != 1 || node.Attributes.GetInt("axis", 0) != 0 || node.InputOrNull(0) is not { } data) continue;
            var source = data;
            for (int guard = 0; guard < 16 && source.Producer is { } p && p.Is("Identity") && p.InputOrNull(0) is { } next; guard++) source = next;
            if (ProjectionFinder.ConstantTensor(source) is { Dims.Length: 2 } table && table.Dims[0] > 0 && table.Dims[1] > 0) return table;
        }
        return null;
    }

    private readonly record struct QueryWidth(long InFeatures, long OutFeatures, bool Packed);

    /// <summary>
    /// A q (or packed qkv) projection's features: from the classifier on a dense graph, or from a SparseOnnx node's
    /// provenance (<c>sparseonnx.kind</c>) on a sparsified one, where the classifier no longer sees a projection.
    /// </summary>
    private static (QueryWidth? Query, string Source) QueryProjection(Model model)
    {
        var classified = ProjectionClassifier.Classify(model)
            .Where(p => p.GraphPath == "main" && p.Kind is ProjectionKind.Q or ProjectionKind.Qkv)
            .OrderBy(p => p.Layer ?? int.MaxValue)
            .FirstOrDefault();
        if (classified is not null)
            return (new QueryWidth(classified.InFeatures, classified.OutFeatures, classified.Kind == ProjectionKind.Qkv), $"'{classified.Node.Name}'");
        foreach (var node in model.Graph.Nodes)
        {
            if (node.Domain != TopKSparseMatMulOp.Domain) continue;
            string? kind = node.MetadataProps.FirstOrDefault(p => p.Key == TopKSparseMatMulOp.MetadataPrefix + "kind").Value;
            if (kind is not ("q" or "qkv")) continue;
            long k = node.Attributes.GetInt("K", 0), n = node.Attributes.GetInt("N", 0);
            if ((k <= 0 || n <= 0) && node.InputOrNull(1) is { } weight && ProjectionFinder.ConstantTensor(weight) is { Dims.Length: 2 } w)
                (k, n) = (w.Dims[0], w.Dims[1]);
            if (k > 0 && n > 0) return (new QueryWidth(k, n, kind == "qkv"), $"'{node.Name}', recorded by sparsify");
        }
        return (null, "");
    }
}

/// <summary>What <see cref="GenAiDecoderSignature.Read"/> found: the signature, or every reason the graph does not fit.</summary>
/// <param name="Signature">The signature, or null when the graph does not fit.</param>
/// <param name="Problems">Why it does not fit; empty when it does.</param>
public sealed record GenAiSignatureResult(GenAiDecoderSignature? Signature, IReadOnlyList<string> Problems);
