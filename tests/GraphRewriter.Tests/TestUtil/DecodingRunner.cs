using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;

namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

/// <summary>A float tensor read back from ONNX Runtime.</summary>
public sealed record FloatTensor(float[] Data, long[] Shape);

/// <summary>Every output of one decoding step.</summary>
public sealed record StepResult(string Case, int Step, IReadOnlyDictionary<string, FloatTensor> Outputs);

/// <summary>
/// Runs the golden decoding cases of a committed model (golden/cases.json, written by the model recipe):
/// multi-step sequences whose steps feed each step's present.N.* back as past_key_values.N.*, with batch,
/// sequence and past lengths that differ from the traced ones, including past length 0 and left padding.
/// </summary>
public static class DecodingRunner
{
    /// <summary>The model folders under models/ that have golden cases, relative to models/.</summary>
    public static IEnumerable<string> ModelsWithGoldenCases() =>
        Directory.GetFiles(RepositoryPaths.Models, "cases.json", SearchOption.AllDirectories).Order()
            .Where(f => Path.GetFileName(Path.GetDirectoryName(f)) == "golden")
            .Select(f => Path.GetRelativePath(RepositoryPaths.Models, Path.GetDirectoryName(Path.GetDirectoryName(f))!));

    /// <summary>Whether the committed model in <paramref name="relativeFolder"/> has MatMulNBits (quantized) projections.</summary>
    public static bool IsQuantized(string relativeFolder)
    {
        using var model = ModelLoader.Load(Path.Combine(RepositoryPaths.Models, relativeFolder, "model.onnx"));
        return model.Graph.Nodes.Any(SparseOnnx.GraphRewriter.Quantization.MatMulNBitsFormat.IsMatMulNBits);
    }

    /// <summary>
    /// Sets accuracy_level 0 (float32 activations) on every MatMulNBits node. At level 4 both ONNX Runtime and
    /// the sparse op round each block of activations to int8, and float rounding differences of 1e-7 in a
    /// projection's input now and then tip an entry across an int8 rounding boundary, which moves that position's
    /// logits by ~1e-2: exactness is checked at level 0, the level-4 agreement per position.
    /// </summary>
    public static void UseFloatActivations(Model model)
    {
        foreach (var node in model.Graph.Nodes.Where(SparseOnnx.GraphRewriter.Quantization.MatMulNBitsFormat.IsMatMulNBits))
            node.Attributes.Set(OnnxAttribute.Int("accuracy_level", 0));
    }

    /// <summary>The parsed cases.json of a model folder (relative to models/).</summary>
    public static JsonNode Spec(string relativeFolder) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.Models, relativeFolder, "golden", "cases.json")))!;

    /// <summary>Runs every case of <paramref name="spec"/> on <paramref name="session"/>; returns every step's outputs.</summary>
    public static List<StepResult> Run(InferenceSession session, JsonNode spec)
    {
        int layers = (int)spec["num_layers"]!, kvHeads = (int)spec["num_key_value_heads"]!, headDim = (int)spec["head_dim"]!;
        var results = new List<StepResult>();
        foreach (var testCase in spec["cases"]!.AsArray())
        {
            string name = (string)testCase!["name"]!;
            int batch = (int)testCase["batch"]!;
            var past = new Dictionary<string, FloatTensor>();
            for (int i = 0; i < layers; i++)
                foreach (string kv in new[] { "key", "value" })
                    past[$"past_key_values.{i}.{kv}"] = new FloatTensor([], [batch, kvHeads, 0, headDim]);

            int stepIndex = 0;
            foreach (var step in testCase["steps"]!.AsArray())
            {
                var inputs = new Dictionary<string, OrtValue>();
                try
                {
                    // onnxruntime-genai's graphs have no position_ids (GroupQueryAttention derives them).
                    foreach (string input in new[] { "input_ids", "attention_mask", "position_ids" }.Where(session.InputNames.Contains))
                    {
                        var rows = step![input]!.AsArray().Select(r => r!.AsArray().Select(v => (long)v!).ToArray()).ToArray();
                        inputs[input] = OrtValue.CreateTensorValueFromMemory(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);
                    }
                    foreach (var (inputName, tensor) in past)
                        inputs[inputName] = OrtValue.CreateTensorValueFromMemory(tensor.Data, tensor.Shape);
                    var outputNames = session.OutputNames.ToArray();
                    using var runOptions = new RunOptions();
                    using var outputs = session.Run(runOptions, inputs, outputNames);
                    var stepOutputs = new Dictionary<string, FloatTensor>();
                    for (int o = 0; o < outputNames.Length; o++)
                    {
                        var tensor = new FloatTensor(outputs[o].GetTensorDataAsSpan<float>().ToArray(), outputs[o].GetTensorTypeAndShape().Shape);
                        stepOutputs[outputNames[o]] = tensor;
                        if (outputNames[o].StartsWith("present.", StringComparison.Ordinal))
                            past["past_key_values." + outputNames[o]["present.".Length..]] = tensor;
                    }
                    results.Add(new StepResult(name, stepIndex++, stepOutputs));
                }
                finally
                {
                    foreach (var value in inputs.Values) value.Dispose();
                }
            }
        }
        return results;
    }
}
