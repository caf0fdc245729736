using SparseOnnx.GraphRewriter.GenAi;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.GenAi.Tests;

/// <summary>genai's decoder contract read off graphs: the committed exports fit, and each misfit is refused with its reason.</summary>
public class GenAiDecoderSignatureTests
{
    /// <summary>
    /// A graph with only the signature of a decoder: the given inputs, each output copied from input_ids. Enough for
    /// the contract, which reads names, types and shapes.
    /// </summary>
    private static Model SignatureOnly(IEnumerable<(string Name, DataType Type, object[] Dims)> inputs, IEnumerable<(string Name, DataType Type, object[] Dims)> outputs)
    {
        var graph = new Graph("signature");
        var builder = new GraphBuilder(graph);
        Value? first = null;
        foreach (var (name, type, dims) in inputs)
        {
            var input = builder.Input(name, type, dims);
            first ??= input;
        }
        foreach (var (name, type, dims) in outputs)
        {
            var node = new Node("", "Identity", [first], [name], $"copy_{name}");
            graph.Nodes.Add(node);
            builder.Output(node.Outputs[0], type, dims);
        }
        var model = new Model(graph) { IrVersion = 8 };
        model.OpsetImports.Set("", 17);
        return model;
    }

    private static List<(string, DataType, object[])> OptimumInputs(int layers, object kvHeads, DataType kvType = DataType.Float)
    {
        var inputs = new List<(string, DataType, object[])>
        {
            ("input_ids", DataType.Int64, ["batch", "sequence"]),
            ("attention_mask", DataType.Int64, ["batch", "total"]),
            ("position_ids", DataType.Int64, ["batch", "sequence"]),
        };
        for (int i = 0; i < layers; i++)
        {
            inputs.Add(($"past_key_values.{i}.key", kvType, ["batch", kvHeads, "past", 16L]));
            inputs.Add(($"past_key_values.{i}.value", kvType, ["batch", kvHeads, "past", 16L]));
        }
        return inputs;
    }

    private static List<(string, DataType, object[])> OptimumOutputs(int layers)
    {
        var outputs = new List<(string, DataType, object[])> { ("logits", DataType.Float, ["batch", "sequence", 512L]) };
        for (int i = 0; i < layers; i++)
        {
            outputs.Add(($"present.{i}.key", DataType.Float, ["batch", 2L, "total", 16L]));
            outputs.Add(($"present.{i}.value", DataType.Float, ["batch", 2L, "total", 16L]));
        }
        return outputs;
    }

    private static IReadOnlyList<string> Problems(Model model)
    {
        var result = GenAiDecoderSignature.Read(model);
        Assert.Null(result.Signature);
        Assert.NotEmpty(result.Problems);
        return result.Problems;
    }

    [Fact]
    public void LlamaBrownFitsWithItsSizesFromTheGraph()
    {
        using var model = ModelLoader.Load(Path.Combine(Fixtures.LlamaBrownFolder, "model.onnx"));
        var read = GenAiDecoderSignature.Read(model);
        Assert.Empty(read.Problems);
        var s = read.Signature!;
        Assert.Equal(("input_ids", "attention_mask", "position_ids", "logits"), (s.InputIds, s.AttentionMask, s.PositionIds, s.Logits));
        // The model card: 6 layers, hidden 256, 8 query heads, 2 key/value heads of 32, vocabulary 4096.
        Assert.Equal((6, 2, 32, 8, 256, 4096), (s.Layers, s.KvHeads, s.HeadSize, s.Heads, s.Hidden, s.Vocabulary));
        Assert.Equal(DataType.Float, s.KvType);
        Assert.False(s.GroupQueryAttention);
        Assert.False(s.UsesSparseOnnxOps);
        Assert.Null(s.RotaryPositions);
    }

    [Fact]
    public void TheGenaiBuilderGraphFitsWithItsGroupQueryAttention()
    {
        using var model = ModelLoader.Load(Fixtures.GenaiInt4Model);
        var s = GenAiDecoderSignature.Read(model).Signature!;
        Assert.Null(s.PositionIds);
        Assert.Equal("attention_mask", s.AttentionMask);
        // The tiny preset: 2 layers, hidden 64, 4 heads, 2 key/value heads of 16, vocabulary 128, rotary caches of 4096 rows.
        Assert.Equal((2, 2, 16, 4, 64, 128), (s.Layers, s.KvHeads, s.HeadSize, s.Heads, s.Hidden, s.Vocabulary));
        Assert.Equal(4096, s.RotaryPositions);
        Assert.True(s.GroupQueryAttention);
    }

    /// <summary>After sparsify the classifier no longer sees the q projection; its width is read from the node's provenance.</summary>
    [Fact]
    public void ASparsifiedModelKeepsItsSizesAndNeedsTheOpLibrary()
    {
        using var model = ModelLoader.Load(Path.Combine(Fixtures.LlamaBrownFolder, "model.onnx"));
        new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 }).Run(model);
        var s = GenAiDecoderSignature.Read(model).Signature!;
        Assert.True(s.UsesSparseOnnxOps);
        Assert.Equal((8, 256), (s.Heads, s.Hidden));
        Assert.Contains(s.Sources, source => source.Contains("recorded by sparsify", StringComparison.Ordinal));

        using var int4 = ModelLoader.Load(Fixtures.GenaiInt4Model);
        new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 }).Run(int4);
        var q = GenAiDecoderSignature.Read(int4).Signature!;
        Assert.True(q.UsesSparseOnnxOps);
        Assert.Equal(4, q.Heads);
    }

    [Fact]
    public void AModelWithoutAKvCacheIsRefused()
    {
        var problems = Problems(SignatureOnly(OptimumInputs(0, 2L), [("logits", DataType.Float, ["batch", "sequence", 512L])]));
        var problem = Assert.Single(problems);
        Assert.Contains("no KV-cache inputs (past_key_values.%d.key, past_key_values.%d.value)", problem);
        Assert.Contains("text-generation-with-past", problem);
    }

    [Fact]
    public void InputsGenaiDoesNotFeedAreNamed()
    {
        var inputs = OptimumInputs(2, 2L);
        inputs.Add(("use_cache_branch", DataType.Bool, [1L]));
        inputs.Add(("token_type_ids", DataType.Int64, ["batch", "sequence"]));
        var problems = Problems(SignatureOnly(inputs, OptimumOutputs(2)));
        Assert.Equal(2, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("input 'use_cache_branch' is not one genai feeds", StringComparison.Ordinal) && p.Contains("--no-post-process"));
        Assert.Contains(problems, p => p.StartsWith("input 'token_type_ids' is not one genai feeds", StringComparison.Ordinal));
    }

    [Fact]
    public void ACacheThatSkipsALayerOrLacksItsPresentIsRefused()
    {
        var inputs = OptimumInputs(3, 2L).Where(i => !i.Item1.StartsWith("past_key_values.1.", StringComparison.Ordinal)).ToList();
        var outputs = OptimumOutputs(3).Where(o => o.Item1 != "present.2.value").ToList();
        var problems = Problems(SignatureOnly(inputs, outputs));
        Assert.Contains("its past_key_values inputs skip layer 1 (the next is 2)", problems);
        Assert.Contains("it has no output 'present.2.value' for layer 2's cache", problems);

        var keyOnly = OptimumInputs(1, 2L).Where(i => i.Item1 != "past_key_values.0.value").ToList();
        Assert.Contains("it has past_key_values.0.key but no past_key_values.0.value", Problems(SignatureOnly(keyOnly, OptimumOutputs(1))));
    }

    [Fact]
    public void ACacheGenaiCannotAllocateIsRefused()
    {
        var symbolic = Problems(SignatureOnly(OptimumInputs(1, "kv_heads"), OptimumOutputs(1)));
        Assert.Contains(symbolic, p => p.StartsWith("'past_key_values.0.key' is float32[batch, kv_heads, past, 16]: kv_heads and head_size must be fixed", StringComparison.Ordinal));

        var bfloat = Problems(SignatureOnly(OptimumInputs(1, 2L, DataType.BFloat16), OptimumOutputs(1)));
        Assert.Contains(bfloat, p => p.Contains("genai's cache is float32 or float16", StringComparison.Ordinal));

        var inputs = OptimumInputs(2, 2L);
        inputs[^1] = ("past_key_values.1.value", DataType.Float, ["batch", 4L, "past", 16L]);
        Assert.Contains(Problems(SignatureOnly(inputs, OptimumOutputs(2))),
            p => p.Contains("genai gives every layer one cache shape and type", StringComparison.Ordinal) && p.StartsWith("'past_key_values.1.value'", StringComparison.Ordinal));
    }

    [Fact]
    public void IdsLogitsAndTheirTypesAreChecked()
    {
        var inputs = OptimumInputs(1, 2L);
        inputs[0] = ("input_ids", DataType.Float, ["batch", "sequence"]);
        var outputs = OptimumOutputs(1).Where(o => o.Item1 != "logits").ToList();
        var problems = Problems(SignatureOnly(inputs, outputs));
        Assert.Contains("'input_ids' is float32[batch, sequence]; genai feeds int64 or int32 [batch, length]", problems);
        Assert.Contains(problems, p => p.StartsWith("it has no output named 'logits' (outputs: present.0.key, present.0.value)", StringComparison.Ordinal));

        var noIds = OptimumInputs(1, 2L).Skip(1).ToList();
        var badLogits = OptimumOutputs(1);
        badLogits[0] = ("logits", DataType.Float, ["batch", 512L]);
        var more = Problems(SignatureOnly(noIds, badLogits));
        Assert.Contains(more, p => p.StartsWith("it has no input named 'input_ids'", StringComparison.Ordinal));
        Assert.Contains("'logits' is float32[batch, 512]; genai reads float32 or float16 [batch, sequence, vocabulary]", more);
    }
}
