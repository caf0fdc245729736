using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Models;

/// <summary>
/// Every committed model under models/ runs in ONNX Runtime and reproduces the logits PyTorch computed for the
/// same ids (golden/cases.json, written by the model recipe): multi-step decoding sequences that feed each
/// step's present.N.* back as past_key_values.N.*, with batch, sequence and past lengths that differ from the
/// sizes the exporter traced, including past length 0 and left padding.
/// </summary>
public class GoldenDecodingTests
{
    public static TheoryData<string> ModelsWithGoldenCases()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(RepositoryPaths.Models, "cases.json", SearchOption.AllDirectories).Order())
            if (Path.GetFileName(Path.GetDirectoryName(file)) == "golden")
                data.Add(Path.GetRelativePath(RepositoryPaths.Models, Path.GetDirectoryName(Path.GetDirectoryName(file))!));
        return data;
    }

    [Fact]
    public void EveryCommittedModelHasGoldenCases()
    {
        foreach (string model in Directory.GetFiles(RepositoryPaths.Models, "model.onnx", SearchOption.AllDirectories))
            Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(model)!, "golden", "cases.json")), $"{model} has no golden/cases.json");
    }

    [Theory]
    [MemberData(nameof(ModelsWithGoldenCases))]
    public void OnnxRuntimeMatchesPyTorch(string relativeFolder)
    {
        string golden = Path.Combine(RepositoryPaths.Models, relativeFolder, "golden");
        var spec = JsonNode.Parse(File.ReadAllText(Path.Combine(golden, "cases.json")))!;
        float atol = (float)spec["atol"]!, rtol = (float)spec["rtol"]!;
        int layers = (int)spec["num_layers"]!, kvHeads = (int)spec["num_key_value_heads"]!, headDim = (int)spec["head_dim"]!;
        // The tolerance must stay meaningful: fp32 logits of these models are O(10).
        Assert.True(atol <= 1e-3f && rtol <= 1e-3f, $"Tolerances atol={atol}, rtol={rtol} are too loose to catch a wrong model.");

        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = new InferenceSession(Path.GetFullPath(Path.Combine(golden, (string)spec["model"]!)), options);
        foreach (var testCase in spec["cases"]!.AsArray())
        {
            string name = (string)testCase!["name"]!;
            int batch = (int)testCase["batch"]!;
            var past = new Dictionary<string, (float[] Data, long[] Shape)>();
            for (int i = 0; i < layers; i++)
                foreach (string kv in new[] { "key", "value" })
                    past[$"past_key_values.{i}.{kv}"] = (Array.Empty<float>(), [batch, kvHeads, 0, headDim]);

            float[] logits = [];
            long[] logitsShape = [];
            foreach (var step in testCase["steps"]!.AsArray())
            {
                var inputs = new Dictionary<string, OrtValue>();
                try
                {
                    foreach (string input in new[] { "input_ids", "attention_mask", "position_ids" })
                    {
                        var rows = step![input]!.AsArray().Select(r => r!.AsArray().Select(v => (long)v!).ToArray()).ToArray();
                        inputs[input] = OrtValue.CreateTensorValueFromMemory(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);
                    }
                    foreach (var (inputName, (data, shape)) in past)
                        inputs[inputName] = OrtValue.CreateTensorValueFromMemory(data, shape);
                    var outputNames = session.OutputNames.ToArray();
                    using var runOptions = new RunOptions();
                    using var outputs = session.Run(runOptions, inputs, outputNames);
                    for (int o = 0; o < outputNames.Length; o++)
                    {
                        var info = outputs[o].GetTensorTypeAndShape();
                        var values = outputs[o].GetTensorDataAsSpan<float>().ToArray();
                        if (outputNames[o] == "logits") (logits, logitsShape) = (values, info.Shape);
                        else if (outputNames[o].StartsWith("present.", StringComparison.Ordinal))
                            past["past_key_values." + outputNames[o]["present.".Length..]] = (values, info.Shape);
                    }
                }
                finally
                {
                    foreach (var value in inputs.Values) value.Dispose();
                }
            }

            var expectedShape = testCase["logits_shape"]!.AsArray().Select(d => (long)d!).ToArray();
            Assert.True(expectedShape.SequenceEqual(logitsShape), $"{relativeFolder}/{name}: logits shape [{string.Join(", ", logitsShape)}], expected [{string.Join(", ", expectedShape)}].");
            var expected = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(golden, (string)testCase["logits_file"]!))).ToArray();
            Assert.Equal(expected.Length, logits.Length);
            var bad = Enumerable.Range(0, expected.Length).Where(i => !(MathF.Abs(logits[i] - expected[i]) <= atol + rtol * MathF.Abs(expected[i]))).Take(5).ToList();
            Assert.True(bad.Count == 0, $"{relativeFolder}/{name}: logits differ from PyTorch at " +
                string.Join(", ", bad.Select(i => $"[{i}] ort {logits[i]} vs torch {expected[i]}")));
        }
    }
}
