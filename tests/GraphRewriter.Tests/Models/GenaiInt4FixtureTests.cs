using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Synthesis;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Models;

/// <summary>
/// models/families/genai-int4: the tiny synthetic decoder in the onnxruntime-genai builder's int4 graph
/// (<c>sparseonnx synth --preset tiny --layout genai</c>), committed with golden logits from ONNX Runtime on
/// it at accuracy_level 0 (float activations: level 4's int8 rounding differs between instruction sets), so <see cref="GoldenDecodingTests"/> pins what ONNX Runtime's contrib kernels (GroupQueryAttention,
/// SkipSimplifiedLayerNormalization, MatMulNBits) compute on it through the cache, and the rewriter's tests
/// have a genai-shaped file to read. That the graph computes Llama is checked against the Optimum-layout
/// model of the same weights in <see cref="Synthesis.SyntheticGenaiLlamaTests"/>. This test checks that the
/// committed file is what the writer writes today. SPARSEONNX_WRITE_FIXTURES=1 rewrites the folder (model,
/// expected projections, goldens).
/// </summary>
public class GenaiInt4FixtureTests
{
    public static string Folder => Path.Combine(RepositoryPaths.Models, "families", "genai-int4");

    private const ulong Seed = 1;

    [Fact]
    public void TheCommittedModelIsWhatSynthWritesToday()
    {
        using var model = SyntheticGenaiLlama.Build(LlamaDimensions.Tiny, Seed);
        byte[] bytes = ModelSaver.ToBytes(model);
        if (Environment.GetEnvironmentVariable("SPARSEONNX_WRITE_FIXTURES") == "1") Write(model, bytes);
        string committed = Path.Combine(Folder, "model.onnx");
        Assert.True(File.Exists(committed), $"{committed} is missing; SPARSEONNX_WRITE_FIXTURES=1 writes it.");
        Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(committed)),
            $"{committed} differs from what SyntheticGenaiLlama writes today; if the change is intended, rewrite it with SPARSEONNX_WRITE_FIXTURES=1.");
    }

    private static void Write(Model model, byte[] bytes)
    {
        string golden = Path.Combine(Folder, "golden");
        Directory.CreateDirectory(golden);
        File.WriteAllBytes(Path.Combine(Folder, "model.onnx"), bytes);

        var projections = new JsonArray(ProjectionClassifier.Classify(model)
            .Select(p => (JsonNode)new JsonObject { ["node"] = p.DisplayName, ["kind"] = p.Kind.ToShortName(), ["layer"] = p.Layer }).ToArray());
        File.WriteAllText(Path.Combine(Folder, "expected_projections.json"), projections.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

        var dims = LlamaDimensions.Tiny;
        var spec = new JsonObject
        {
            ["model"] = "../model.onnx",
            ["reference"] = $"ONNX Runtime {OrtEnv.Instance().GetVersionString()} (CPU provider, optimizations off) on this model with accuracy_level 0 on every MatMulNBits (float activations)",
            ["atol"] = 1e-4,
            ["rtol"] = 1e-4,
            ["num_layers"] = dims.Layers,
            ["num_key_value_heads"] = dims.KvHeads,
            ["head_dim"] = dims.HeadDim,
            ["vocab_size"] = dims.Vocab,
            // GroupQueryAttention takes positions from the mask's sums (no left padding here), and on the CPU
            // continues a cached sequence with more than one token only at batch size 1.
            ["cases"] = new JsonArray(
                Case("b1_prefill7", 1, [7], 11),
                Case("b2_prefill9_decode1x3", 2, [9, 1, 1, 1], 12),
                Case("b3_prefill4_decode1x2", 3, [4, 1, 1], 13),
                Case("b1_prefill4_chunk6_decode1", 1, [4, 6, 1], 16),
                Case("b1_prefill20_chunk16", 1, [16, 4], 14),
                Case("b1_decode1_from_empty", 1, [1], 15)),
        };
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        DecodingRunner.UseFloatActivations(model);
        using var session = new InferenceSession(ModelSaver.ToBytes(model), options);
        var steps = DecodingRunner.Run(session, spec);
        foreach (var testCase in spec["cases"]!.AsArray())
        {
            string name = (string)testCase!["name"]!;
            var (logits, shape) = steps.Last(s => s.Case == name).Outputs["logits"];
            File.WriteAllBytes(Path.Combine(golden, $"{name}.bin"), MemoryMarshal.AsBytes(logits.AsSpan()).ToArray());
            testCase["logits_file"] = $"{name}.bin";
            testCase["logits_shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray());
        }
        File.WriteAllText(Path.Combine(golden, "cases.json"), spec.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>A decoding case: steps of the given lengths, each feeding the previous step's cache, random ids.</summary>
    private static JsonObject Case(string name, int batch, int[] stepLengths, int seed)
    {
        var random = new Random(seed);
        var steps = new JsonArray();
        int past = 0;
        foreach (int length in stepLengths)
        {
            JsonArray Rows(Func<int, long> value) =>
                new(Enumerable.Range(0, batch).Select(_ => (JsonNode)new JsonArray(Enumerable.Range(0, length).Select(t => (JsonNode)value(t)).ToArray())).ToArray());
            var mask = new JsonArray(Enumerable.Range(0, batch).Select(_ => (JsonNode)new JsonArray(Enumerable.Repeat(1L, past + length).Select(v => (JsonNode)v).ToArray())).ToArray());
            int start = past;
            steps.Add(new JsonObject
            {
                ["input_ids"] = Rows(_ => random.Next(LlamaDimensions.Tiny.Vocab)),
                ["attention_mask"] = mask,
                ["position_ids"] = Rows(t => start + t),
                ["past_length"] = past,
            });
            past += length;
        }
        return new JsonObject { ["name"] = name, ["batch"] = batch, ["steps"] = steps };
    }
}
