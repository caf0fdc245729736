using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Pruning;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Pruning;

/// <summary>
/// The neuron-pruning rule on every committed model (separate and fused gate_up, MatMul and Gemm with
/// transB 0 and 1, biases, GPT-2's Reshape to a constant width). Removing neuron j must equal the original
/// model with row j of W_down zeroed (h_j contributes nothing), on the golden decoding cases in ONNX Runtime.
/// </summary>
public class MlpNeuronPruneRuleTests
{
    // Zeroed rows still enter the original's sums as exact zeros; only the summation length differs.
    private const double Tolerance = 1e-5;

    // Quantized MLPs are not sliced (their blocks run along down's input channels; the Pruner refuses them, see
    // PrunerTests): the float models only.
    public static TheoryData<string> Models() => new(DecodingRunner.ModelsWithGoldenCases().Where(f => !DecodingRunner.IsQuantized(f)));

    [Theory]
    [MemberData(nameof(Models))]
    public void RemovingNeuronsEqualsZeroingTheirDownRows(string folder)
    {
        using var dir = new TempDirectory();
        string source = Path.Combine(RepositoryPaths.Models, folder, "model.onnx");
        string reference = dir.File("reference.onnx"), pruned = dir.File("pruned.onnx");
        var kept = new Dictionary<int, int[]>();
        long widthBefore, widthAfter;
        using (var model = ModelLoader.Load(source))
        {
            var (blocks, problems) = MlpBlocks.Find(model);
            Assert.Empty(problems);
            Assert.NotEmpty(blocks);
            var random = new Random(11);
            foreach (var block in blocks)
            {
                // Keep about 60%, always dropping the first neuron and keeping the last (edges of the slices).
                kept[block.Layer] = Enumerable.Range(0, (int)block.Width).Where(j => j != 0 && (j == block.Width - 1 || random.NextDouble() < 0.6)).ToArray();
            }
            widthBefore = blocks.Sum(b => b.Width);
            foreach (var block in blocks) ZeroDownRows(model, block, kept[block.Layer]);
            ModelSaver.Save(model, reference);
        }
        using (var model = ModelLoader.Load(source))
        {
            var (blocks, _) = MlpBlocks.Find(model);
            foreach (var block in blocks)
            {
                Assert.Null(MlpNeuronPruneRule.Check(block));
                MlpNeuronPruneRule.Apply(model, block, new NeuronSelection(kept[block.Layer], null, "test"));
            }
            ModelSaver.Save(model, pruned);
        }
        using (var model = ModelLoader.Load(pruned))
        {
            var (blocks, problems) = MlpBlocks.Find(model);
            Assert.Empty(problems);
            Assert.All(blocks, b => Assert.Equal(kept[b.Layer].Length, b.Width));
            widthAfter = blocks.Sum(b => b.Width);
            Assert.All(blocks, b => Assert.Contains(b.Down.Node.MetadataProps, p => p.Key == MlpNeuronPruneRule.MetadataPrefix + "neurons"));
        }
        Assert.True(widthAfter < widthBefore);
        AssertSameOutputs(folder, reference, pruned);
    }

    /// <summary>The compensation vector is added to down's output: the pruned model equals zeroed rows plus that Add.</summary>
    [Theory]
    [InlineData("llama-brown")]
    [InlineData("families/gpt2")]
    [InlineData("families/phi3")]
    public void CompensationIsAddedToDownsOutput(string folder)
    {
        using var dir = new TempDirectory();
        string source = Path.Combine(RepositoryPaths.Models, folder, "model.onnx");
        string reference = dir.File("reference.onnx"), pruned = dir.File("pruned.onnx");
        var random = new Random(5);
        Dictionary<int, (int[] Kept, float[] Vector)> choice = new();
        using (var model = ModelLoader.Load(source))
        {
            foreach (var block in MlpBlocks.Find(model).Blocks)
            {
                var kept = Enumerable.Range(0, (int)block.Width).Where(j => j % 3 != 1).ToArray();
                var vector = Enumerable.Range(0, (int)block.Down.OutFeatures).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
                choice[block.Layer] = (kept, vector);
                ZeroDownRows(model, block, kept);
                var add = Splice.After(model, block.Down.Output, "Add",
                    [model.Graph.Initializers.Add(Tensor.FromElements<float>(model.UniqueName("c"), DataType.Float, [vector.Length], vector))], "c", "uncompensated");
                Assert.NotNull(add);
            }
            ModelSaver.Save(model, reference);
        }
        using (var model = ModelLoader.Load(source))
        {
            foreach (var block in MlpBlocks.Find(model).Blocks)
                MlpNeuronPruneRule.Apply(model, block, new NeuronSelection(choice[block.Layer].Kept, choice[block.Layer].Vector, "test"));
            Assert.Equal(choice.Count, model.Graph.Nodes.Count(n => n.MetadataProps.Any(p => p.Value == MlpNeuronPruneRule.RuleName + " (compensation)")));
            ModelSaver.Save(model, pruned);
        }
        AssertSameOutputs(folder, reference, pruned);
    }

    [Fact]
    public void ExternalDataModelsArePrunedWithoutLoadingWeightsIntoTheModel()
    {
        using var dir = new TempDirectory();
        string external = dir.File("in/model.onnx"), pruned = dir.File("out/model.onnx");
        using (var model = ModelLoader.Load(Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx")))
            ModelSaver.Save(model, external, new SaveOptions { ExternalData = ExternalDataMode.Always, InlineThresholdBytes = 0 });
        using (var model = ModelLoader.Load(external))
        {
            foreach (var block in MlpBlocks.Find(model).Blocks)
                MlpNeuronPruneRule.Apply(model, block, new NeuronSelection(Enumerable.Range(0, (int)block.Width / 2).ToArray(), null, "test"));
            ModelSaver.Save(model, pruned, new SaveOptions { ExternalData = ExternalDataMode.Always, InlineThresholdBytes = 0 });
        }
        File.Delete(external + ".data");
        using var reloaded = ModelLoader.Load(pruned);
        Assert.All(MlpBlocks.Find(reloaded).Blocks, b => Assert.Equal(344, b.Width));
        using var session = Sessions.Open(pruned);
        var outputs = DecodingRunner.Run(session, DecodingRunner.Spec("llama-brown"));
        Assert.All(outputs.SelectMany(o => o.Outputs.Values), t => Assert.All(t.Data, v => Assert.True(float.IsFinite(v))));
    }

    [Fact]
    public void BadSelectionsAreRefusedWithTheReason()
    {
        using var model = ModelLoader.Load(Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx"));
        var block = MlpBlocks.Find(model).Blocks[0];
        Assert.Contains("at least one", Assert.Throws<ArgumentException>(() => MlpNeuronPruneRule.Apply(model, block, new([], null, "t"))).Message);
        Assert.Contains("ascending", Assert.Throws<ArgumentException>(() => MlpNeuronPruneRule.Apply(model, block, new([3, 2], null, "t"))).Message);
        Assert.Contains("ascending", Assert.Throws<ArgumentException>(() => MlpNeuronPruneRule.Apply(model, block, new([0, 688], null, "t"))).Message);
        Assert.Contains("256 values", Assert.Throws<ArgumentException>(() => MlpNeuronPruneRule.Apply(model, block, new([0, 1], new float[3], "t"))).Message);
    }

    [Fact]
    public void AWeightSharedWithAnotherNodeIsNotSliced()
    {
        using var model = ModelLoader.Load(Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx"));
        var block = MlpBlocks.Find(model).Blocks[2];
        var up = block.Feeders.Single(f => f.Kind == ProjectionKind.Up);
        // A second reader of the up weight, as a tied or shared weight would be.
        var reader = new Node("", "Identity", [up.Weight], [model.UniqueName("shared_reader")]);
        model.Graph.Nodes.Add(reader);
        model.Graph.Outputs.Add(reader.Outputs[0]);
        var again = MlpBlocks.Find(model).Blocks[2];
        Assert.Contains("shared with another node", MlpNeuronPruneRule.Check(again));
        Assert.Throws<InvalidOperationException>(() => MlpNeuronPruneRule.Apply(model, again, new([0, 1], null, "t")));
    }

    [Fact]
    public void BlocksAreFoundInEveryCommittedFamilyWithTheirFeeders()
    {
        var expected = new Dictionary<string, string>
        {
            ["llama-brown"] = "gate+up", ["families/qwen2"] = "gate+up", ["families/gemma"] = "gate+up", ["families/linear2d"] = "gate+up",
            ["families/phi3"] = "gate_up", ["families/gpt2"] = "up",
        };
        foreach (var (folder, feeders) in expected)
        {
            using var model = ModelLoader.Load(Path.Combine(RepositoryPaths.Models, folder, "model.onnx"));
            var (blocks, problems) = MlpBlocks.Find(model);
            Assert.Empty(problems);
            Assert.Equal(Enumerable.Range(0, blocks.Count), blocks.Select(b => b.Layer));
            Assert.All(blocks, b => Assert.Equal(feeders, string.Join("+", b.Feeders.Select(f => f.Kind.ToShortName()))));
        }
    }

    private static void AssertSameOutputs(string folder, string reference, string pruned)
    {
        var spec = DecodingRunner.Spec(folder);
        List<StepResult> expected, actual;
        using (var session = Sessions.Open(reference)) expected = DecodingRunner.Run(session, spec);
        using (var session = Sessions.Open(pruned)) actual = DecodingRunner.Run(session, spec);
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            foreach (var (name, tensor) in expected[i].Outputs)
            {
                Assert.Equal(tensor.Shape, actual[i].Outputs[name].Shape);
                Numerics.AssertRelativelyClose(tensor.Data, actual[i].Outputs[name].Data, Tolerance, $"{folder} {expected[i].Case} step {expected[i].Step} {name}");
            }
    }

    /// <summary>Replaces down's weight by a copy whose rows for removed neurons are zero (the reference model).</summary>
    private static void ZeroDownRows(Model model, MlpBlock block, int[] kept)
    {
        var down = block.Down;
        var tensor = down.Weight.ConstValue!;
        var values = FloatElements.Decode(tensor.Data.ToArray(), tensor.DataType);
        var keep = kept.ToHashSet();
        long h = block.Width, n = down.OutFeatures;
        for (long j = 0; j < h; j++)
            if (!keep.Contains((int)j))
                for (long o = 0; o < n; o++) values[down.WeightStoredTransposed ? o * h + j : j * n + o] = 0;
        var zeroed = model.Graph.Initializers.Add(new Tensor(model.UniqueName(tensor.Name + ".zeroed"), tensor.DataType, tensor.Dims,
            new InMemoryTensorData(FloatElements.Encode(values, tensor.DataType))));
        for (int i = 0; i < (down.WeightTranspose ?? down.Node).Inputs.Count; i++)
            if ((down.WeightTranspose ?? down.Node).Inputs[i] == down.Weight) (down.WeightTranspose ?? down.Node).SetInput(i, zeroed);
    }
}
