using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Synthesis;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Ir;

/// <summary>
/// A decoder block cut out of a model by <see cref="GraphCut"/> (between the residual stream before and after
/// it) runs on its own in ONNX Runtime and computes what the block computes inside the whole model.
/// </summary>
public class GraphCutTests
{
    private static readonly LlamaDimensions Tiny = LlamaDimensions.Tiny;

    // SyntheticLlama's residual Adds: "/model/layers.{l}/Add" after attention, "/model/layers.{l}/Add_1" after the MLP.
    private static string BlockOutput(int layer) => $"/model/layers.{layer}/Add_1_output_0";

    [Fact]
    public void ABlockCutBetweenTwoResidualValuesComputesWhatItComputesInTheModel()
    {
        const int batch = 2, length = 5;
        var random = new Random(5);
        long[] ids = Enumerable.Range(0, batch * length).Select(_ => (long)random.Next(Tiny.Vocab)).ToArray();
        long[] mask = Enumerable.Repeat(1L, batch * length).ToArray();
        long[] positions = Enumerable.Range(0, batch).SelectMany(_ => Enumerable.Range(0, length).Select(p => (long)p)).ToArray();

        // The whole model, with the residual stream before and after block 1 as extra outputs.
        using var whole = SyntheticLlama.Build(Tiny, seed: 3);
        foreach (string name in new[] { BlockOutput(0), BlockOutput(1) })
        {
            var value = whole.Graph.Nodes.SelectMany(n => n.Outputs).Single(v => v.Name == name);
            value.Type ??= OnnxType.Tensor(DataType.Float);
            whole.Graph.Outputs.Add(value);
        }
        using var wholeSession = Sessions.Open(ModelSaver.ToBytes(whole));
        var full = DecoderRun.Step(wholeSession, Tiny, batch, ids, mask, positions, null);

        using var block = SyntheticLlama.Build(Tiny, seed: 3);
        int nodesBefore = block.Graph.Nodes.Count;
        var cut = GraphCut.Keep(block, [BlockOutput(0)], [BlockOutput(1)]);

        Assert.Equal(BlockOutput(0), cut.Inputs[0]);
        Assert.Equal([BlockOutput(0)], cut.Computed);
        // Layer 1's cache, and what the shared mask and rotary tables are built from (the mask reads the past
        // length off layer 0's key cache, so that input stays, for its shape); nothing else of layer 0 or the head.
        Assert.Contains("past_key_values.1.key", cut.Inputs);
        Assert.Contains("past_key_values.1.value", cut.Inputs);
        Assert.DoesNotContain("past_key_values.0.value", cut.Inputs);
        Assert.Equal([BlockOutput(1)], block.Graph.Outputs.Select(o => o.Name));
        Assert.True(block.Graph.Nodes.Count < nodesBefore, $"{block.Graph.Nodes.Count} of {nodesBefore} nodes kept");
        Assert.DoesNotContain(block.Graph.Nodes, n => n.Name!.StartsWith("/model/layers.0/", StringComparison.Ordinal) || n.Name!.StartsWith("/lm_head", StringComparison.Ordinal));
        Assert.Contains(block.Graph.Nodes, n => n.Name == "/model/layers.1/mlp/down_proj/MatMul");
        Assert.All(block.Graph.Initializers, i => Assert.DoesNotContain("layers.0", i.Name));
        Assert.DoesNotContain(block.Graph.Initializers, i => i.Name.StartsWith("lm_head", StringComparison.Ordinal) || i.Name.StartsWith("model.embed", StringComparison.Ordinal));

        using var blockSession = Sessions.Open(ModelSaver.ToBytes(block));
        var feed = new Dictionary<string, OrtValue>();
        try
        {
            foreach (string name in cut.Inputs)
            {
                feed[name] = name switch
                {
                    "input_ids" => OrtValue.CreateTensorValueFromMemory(ids, [batch, length]),
                    "attention_mask" => OrtValue.CreateTensorValueFromMemory(mask, [batch, length]),
                    "position_ids" => OrtValue.CreateTensorValueFromMemory(positions, [batch, length]),
                    _ when name.StartsWith("past_key_values.", StringComparison.Ordinal) =>
                        OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [batch, Tiny.KvHeads, 0, Tiny.HeadDim]),
                    _ => OrtValue.CreateTensorValueFromMemory(full[name].Data, full[name].Shape),
                };
            }
            using var runOptions = new RunOptions();
            using var outputs = blockSession.Run(runOptions, feed, blockSession.OutputNames);
            var actual = outputs[0].GetTensorDataAsSpan<float>().ToArray();
            var expected = full[BlockOutput(1)].Data;
            Assert.Equal(expected.Length, actual.Length);
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i]);  // the same ops on the same inputs
        }
        finally
        {
            foreach (var value in feed.Values) value.Dispose();
        }
    }

    [Fact]
    public void UnknownNamesAndUncomputableOutputsAreRefusedByName()
    {
        using var model = SyntheticLlama.Build(Tiny, seed: 3);
        Assert.Contains("'nope'", Assert.Throws<ArgumentException>(() => GraphCut.Keep(model, ["nope"], [BlockOutput(1)])).Message);
        Assert.Contains("'nope'", Assert.Throws<ArgumentException>(() => GraphCut.Keep(model, [BlockOutput(0)], ["nope"])).Message);
    }
}
