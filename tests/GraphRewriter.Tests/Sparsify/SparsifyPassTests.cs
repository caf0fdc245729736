using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Sparsify;

/// <summary>The sparsify pass as a whole: subgraphs, shared weights, exporter styles, and what it refuses.</summary>
public class SparsifyPassTests
{
    /// <summary>
    /// An If whose branches both project X with the same outer weight through Transpose (as an Optimum
    /// merged decoder shares weights between its with-past and without-past branches).
    /// </summary>
    private static Model IfModel()
    {
        var main = new Graph("if_model");
        var b = new GraphBuilder(main);
        var cond = b.Input("cond", DataType.Bool);
        var x = b.Input("X", DataType.Float, "batch", "seq", 24L);
        var w = b.Initializer(ProjectionModels.Constant("shared.weight", DataType.Float, [16, 24], new Random(4)));
        Graph Branch(string name, float scale)
        {
            var g = new Graph(name);
            var gb = new GraphBuilder(g, hint => $"{name}_{hint}");
            var transposed = gb.Op("Transpose", [w], OnnxAttribute.Ints("perm", [1, 0]));
            var projected = gb.Node("", "MatMul", [x, transposed], 1, $"{name}/proj/MatMul").Outputs[0];
            var scaled = gb.Op("Mul", projected, gb.Initializer($"{name}_scale", [], [scale]));
            gb.Output(scaled, DataType.Float);
            return g;
        }
        var ifNode = new Node("", "If", [cond], ["Y"], "merged",
            [OnnxAttribute.FromGraph("then_branch", Branch("with_past", 1f)), OnnxAttribute.FromGraph("else_branch", Branch("without_past", -2f))]);
        main.Nodes.Add(ifNode);
        b.Output(ifNode.Outputs[0], DataType.Float);
        return ProjectionModels.NewModel(main);
    }

    [Fact]
    public void ProjectionsInIfBranchesAreRewrittenAndASharedWeightIsTransposedOnce()
    {
        using var model = IfModel();
        var report = ProjectionModels.SparsifyAll(model, sparsity: 0.5);

        Assert.Equal(["main/merged/else_branch", "main/merged/then_branch"], report.Rewritten.Select(r => r.GraphPath).Order().ToArray());
        Assert.Null(model.Graph.Initializers.Find("shared.weight"));
        var kn = Assert.Single(model.Graph.Initializers, v => v.Name == "shared.weight.kn");
        Assert.Equal([24L, 16L], kn.ConstValue!.Dims.ToArray());
        Assert.Equal(2, kn.Uses.Count);
        foreach (var branch in model.Graph.Nodes.Single().Subgraphs)
        {
            Assert.DoesNotContain(branch.Nodes, n => n.Is("Transpose") || n.Is("MatMul"));
            var spontaneous = Assert.Single(branch.Initializers, v => v.Name.EndsWith(".spontaneous", StringComparison.Ordinal));
            Assert.Contains(branch.Nodes, n => n.Is("Add") && n.Inputs[1] == spontaneous);
        }
    }

    [Fact]
    public void IfBranchesComputeWhatTheyDidAtFullK()
    {
        using var dir = new TempDirectory();
        using (var model = IfModel()) ModelSaver.Save(model, dir.File("dense.onnx"));
        using (var model = IfModel())
        {
            ProjectionModels.SparsifyAll(model, sparsity: 0);
            ModelSaver.Save(model, dir.File("sparse.onnx"));
        }
        var random = new Random(3);
        var x = Enumerable.Range(0, 2 * 9 * 24).Select(_ => (float)random.NextDouble() * 2 - 1).ToArray();
        foreach (bool cond in new[] { true, false })
        {
            var dense = RunIf(dir.File("dense.onnx"), cond, x);
            var sparse = RunIf(dir.File("sparse.onnx"), cond, x);
            Numerics.AssertRelativelyClose(dense, sparse, 1e-5, $"cond {cond}");
        }
    }

    private static float[] RunIf(string path, bool cond, float[] x)
    {
        using var session = Sessions.Open(path);
        using var condValue = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(new[] { cond }, []);
        using var xValue = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(x, [2, 9, 24]);
        using var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions();
        using var outputs = session.Run(runOptions, new Dictionary<string, Microsoft.ML.OnnxRuntime.OrtValue> { ["cond"] = condValue, ["X"] = xValue }, ["Y"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>A Loop body that applies a projection to its carried state three times.</summary>
    private static Model LoopModel()
    {
        var main = new Graph("loop_model");
        var b = new GraphBuilder(main);
        var x = b.Input("X", DataType.Float, "rows", 32L);
        var w = b.Initializer(ProjectionModels.Constant("loop.weight", DataType.Float, [32, 32], new Random(6), scale: 0.3f));
        var trips = b.Initializer("trips", [], [3L]);
        var body = new Graph("body");
        var bb = new GraphBuilder(body, hint => $"body_{hint}");
        bb.Input("i", DataType.Int64);
        var condIn = bb.Input("cond_in", DataType.Bool);
        var state = bb.Input("state", DataType.Float, "rows", 32L);
        bb.Output(bb.Op("Identity", condIn), DataType.Bool);
        var projected = bb.Node("", "MatMul", [state, w], 1, "body/proj/MatMul").Outputs[0];
        bb.Output(bb.Op("Tanh", projected), DataType.Float, "rows", 32L);
        var loop = new Node("", "Loop", [trips, null, x], ["Y"], "loop", [OnnxAttribute.FromGraph("body", body)]);
        main.Nodes.Add(loop);
        b.Output(loop.Outputs[0], DataType.Float, "rows", 32L);
        return ProjectionModels.NewModel(main);
    }

    [Fact]
    public void ProjectionsInLoopBodiesAreRewrittenAndComputeWhatTheyDidAtFullK()
    {
        using var dir = new TempDirectory();
        using (var model = LoopModel()) ModelSaver.Save(model, dir.File("dense.onnx"));
        using (var model = LoopModel())
        {
            var report = ProjectionModels.SparsifyAll(model, sparsity: 0);
            Assert.Equal("main/loop/body", Assert.Single(report.Rewritten).GraphPath);
            ModelSaver.Save(model, dir.File("sparse.onnx"));
        }
        foreach (long rows in new long[] { 1, 5, 40 })
        {
            var dims = new Dictionary<string, long> { ["rows"] = rows };
            Numerics.AssertRelativelyClose(
                FloatElements.Decode(OrtRunner.Run(dir.File("dense.onnx"), 8, dims)["Y"], DataType.Float),
                FloatElements.Decode(OrtRunner.Run(dir.File("sparse.onnx"), 8, dims)["Y"], DataType.Float), 1e-5, $"{rows} rows");
        }
    }

    public static TheoryData<string> MimicConfigs() => new(Configs.Keys);

    private static readonly Dictionary<string, MimicConfig> Configs = new()
    {
        ["llama"] = new MimicConfig(),
        ["llama-transposed-weights"] = new MimicConfig { Linear = LinearStyle.MatMulTransposedWeight, TiedHead = true },
        ["gpt2-conv1d"] = new MimicConfig { Linear = LinearStyle.GemmConv1D, Qkv = QkvStyle.FusedSplit, Mlp = MlpStyle.GeluMlp, AllBias = true, Norm = NormStyle.LayerNormalization },
        ["linear2d-transB"] = new MimicConfig { Linear = LinearStyle.GemmTransB1, QkvBias = true },
        ["phi3-fused"] = new MimicConfig { Qkv = QkvStyle.FusedSlice, Mlp = MlpStyle.FusedGateUpSlice },
        ["genai-gqa"] = new MimicConfig { Attention = AttentionStyle.FusedGqa, Norm = NormStyle.SimplifiedLayerNormalization },
        ["genai-packed"] = new MimicConfig { Attention = AttentionStyle.PackedGqa, Qkv = QkvStyle.FusedSplit },
        ["genai-int4-gqa"] = new MimicConfig { Attention = AttentionStyle.FusedGqa, Norm = NormStyle.SimplifiedLayerNormalization, Linear = LinearStyle.MatMulNBits },
        ["genai-int4-packed-bias"] = new MimicConfig { Attention = AttentionStyle.PackedGqa, Mlp = MlpStyle.FusedGateUpSlice, Linear = LinearStyle.MatMulNBits, QkvBias = true },
    };

    /// <summary>Every exporter style the classifier knows: every attention and MLP projection is rewritten, the head is not.</summary>
    [Theory]
    [MemberData(nameof(MimicConfigs))]
    public void EveryDefaultKindIsRewrittenInEveryExporterStyle(string name)
    {
        foreach (bool merged in new[] { false, true })
        {
            var (model, expected) = merged ? TransformerMimic.BuildMerged(Configs[name]) : TransformerMimic.Build(Configs[name]);
            using (model)
            {
                var pass = new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 });
                var report = pass.Run(model).Report;
                var expectedRewritten = expected.Where(e => SparsifyOptions.DefaultKinds.Contains(e.Kind)).Select(e => e.Node).Order().ToArray();
                Assert.Equal(expectedRewritten, report.Rewritten.Select(r => r.Node).Order().ToArray());
                Assert.All(report.Skipped, s => Assert.Equal(ProjectionKind.LmHead, s.Kind));
                Assert.DoesNotContain(ProjectionClassifier.Classify(model), p => SparsifyOptions.DefaultKinds.Contains(p.Kind));
                // Nothing dangles: every node input and graph output is still defined somewhere in scope.
                foreach (var graph in model.Graph.SelfAndSubgraphs())
                {
                    foreach (var node in graph.Nodes)
                        foreach (var input in node.Inputs)
                            if (input is not null) Assert.True(graph.IsInScope(input), $"{name}: {node} reads '{input.Name}', which is not in scope.");
                    Assert.All(graph.Initializers, v => Assert.True(v.Uses.Count > 0 || v.IsGraphOutput, $"{name}: initializer '{v.Name}' is left unread."));
                }
                ModelSaver.ToBytes(model); // serializes
            }
        }
    }

    [Fact]
    public void AModelWithoutProjectionsIsLeftUnchanged()
    {
        var graph = new Graph("none");
        var b = new GraphBuilder(graph);
        b.Output(b.Op("Relu", b.Input("X", DataType.Float, 4L, 4L)), DataType.Float);
        using var model = ProjectionModels.NewModel(graph);
        byte[] before = ModelSaver.ToBytes(model);
        var pass = new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 });
        var result = pass.Run(model);
        Assert.False(result.Changed);
        Assert.Empty(result.Report.Rewritten);
        Assert.Empty(result.Report.Skipped);
        Assert.Equal(before, ModelSaver.ToBytes(model));
    }

    [Fact]
    public void ASecondRunFindsNothingLeftToRewrite()
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMulTransposed, DataType.Float);
        ProjectionModels.SparsifyAll(model, sparsity: 0.5);
        var again = ProjectionModels.SparsifyAll(model, sparsity: 0.5);
        Assert.Empty(again.Rewritten);
        Assert.Equal(1, SparsifyPass.CountSparseNodes(model));
    }

    [Fact]
    public void AnIncompatibleSparseOnnxOpsetImportIsRefused()
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMul, DataType.Float);
        model.OpsetImports.Set(TopKSparseMatMulOp.Domain, 2);
        var error = Assert.Throws<InvalidModelException>(() => ProjectionModels.SparsifyAll(model));
        Assert.Contains("imports ai.sparseonnx version 2", error.Message);
    }

    public static TheoryData<SparsifyOptions, string> InvalidOptions() => new()
    {
        { new SparsifyOptions { Sparsity = 1 }, "Sparsity must be in [0, 1)" },
        { new SparsifyOptions { Sparsity = -0.1 }, "Sparsity must be in [0, 1)" },
        { new SparsifyOptions { Sparsity = double.NaN }, "Sparsity must be in [0, 1)" },
        { new SparsifyOptions { Threshold = 0.1f }, "A threshold was given in top-k mode" },
        { new SparsifyOptions { Mode = SparsityMode.Threshold, Sparsity = 0.5 }, "cannot turn a sparsity into thresholds without calibration" },
        { new SparsifyOptions { Mode = SparsityMode.Threshold, Threshold = -1 }, "finite number ≥ 0" },
        { new SparsifyOptions(), "give a sparsity or a plan" },
        { new SparsifyOptions { Mode = SparsityMode.Threshold }, "give a threshold or a plan" },
        { new SparsifyOptions { Sparsity = 0.5, Kinds = new HashSet<ProjectionKind>() }, "No projection kinds selected" },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void InvalidOptionsAreRefusedWithTheReason(SparsifyOptions options, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => new SparsifyPass(options));
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData(0.0, 4096, 4096)]
    [InlineData(0.5, 4096, 2048)]
    [InlineData(0.9, 11008, 1101)]
    [InlineData(0.99999, 64, 1)]
    [InlineData(0.25, 3, 2)]
    public void KeptEntriesRoundsAndStaysInRange(double sparsity, long inFeatures, long expected) =>
        Assert.Equal(expected, SparsifyOptions.KeptEntries(sparsity, inFeatures));
}
