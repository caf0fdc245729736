using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Analysis;

public class ProjectionClassifierTests
{
    private static readonly ClassifierOptions StructureOnly = new() { UseNameHints = false };

    public static TheoryData<string> Families => new(FamilyConfigs.Keys);

    /// <summary>Exporter patterns of the families SparseOnnx supports, as <see cref="TransformerMimic"/> writes them.</summary>
    private static readonly Dictionary<string, MimicConfig> FamilyConfigs = new()
    {
        ["llama"] = new MimicConfig { Layers = 3 },
        ["llama-transposed-weights"] = new MimicConfig { Layers = 3, Linear = LinearStyle.MatMulTransposedWeight },
        ["qwen2-qkv-bias-tied"] = new MimicConfig { Layers = 3, QkvBias = true, TiedHead = true },
        ["gpt2-conv1d"] = new MimicConfig
        {
            Layers = 3, Linear = LinearStyle.GemmConv1D, Qkv = QkvStyle.FusedSplit, Mlp = MlpStyle.GeluMlp, Norm = NormStyle.LayerNormalization,
            AllBias = true, LearnedPositions = true, Rope = false, TiedHead = true, KvHeads = 4,
        },
        ["phi3-fused"] = new MimicConfig { Layers = 3, Qkv = QkvStyle.FusedSlice, Mlp = MlpStyle.FusedGateUpSplit },
        ["phi3-fused-slices"] = new MimicConfig { Layers = 3, Qkv = QkvStyle.FusedSplit, Mlp = MlpStyle.FusedGateUpSlice },
        ["gemma-geglu-tied-softcap"] = new MimicConfig { Layers = 3, Mlp = MlpStyle.GeGlu, TiedHead = true, SoftcapLogits = true },
        ["linear2d-gemm-transb1"] = new MimicConfig { Layers = 3, Linear = LinearStyle.GemmTransB1, AllBias = true },
        ["genai-builder-gqa"] = new MimicConfig { Layers = 3, Attention = AttentionStyle.FusedGqa, Norm = NormStyle.SimplifiedLayerNormalization },
        ["genai-builder-packed-qkv"] = new MimicConfig { Layers = 3, Attention = AttentionStyle.PackedGqa, Mlp = MlpStyle.FusedGateUpSlice, Norm = NormStyle.SimplifiedLayerNormalization },
        ["genai-builder-int4-gqa"] = new MimicConfig { Layers = 3, Attention = AttentionStyle.FusedGqa, Norm = NormStyle.SimplifiedLayerNormalization, Linear = LinearStyle.MatMulNBits },
        ["genai-builder-int4-packed-qkv"] = new MimicConfig
        {
            Layers = 3, Attention = AttentionStyle.PackedGqa, Mlp = MlpStyle.FusedGateUpSlice, Norm = NormStyle.SimplifiedLayerNormalization,
            Linear = LinearStyle.MatMulNBits, QkvBias = true,
        },
        ["gptj-parallel-blocks"] = new MimicConfig { Layers = 3, ParallelBlocks = true, Mlp = MlpStyle.GeluMlp },
        ["relu-mlp-no-cache"] = new MimicConfig { Layers = 3, Mlp = MlpStyle.ReluMlp, KvCache = false },
    };

    private static void AssertMatches(IEnumerable<ExpectedProjection> expected, IReadOnlyList<Projection> actual)
    {
        var want = expected.Select(e => $"{e.Node} {e.Kind.ToShortName()} {e.Layer?.ToString() ?? "-"}").Order().ToList();
        var got = actual.Select(p => $"{p.Node.Name} {p.Kind.ToShortName()} {p.Layer?.ToString() ?? "-"}").Order().ToList();
        var missing = want.Except(got).ToList();
        var unexpected = got.Except(want).ToList();
        Assert.True(missing.Count == 0 && unexpected.Count == 0,
            $"Missing: [{string.Join("; ", missing)}]\nUnexpected: [{string.Join("; ", unexpected)}]\n" +
            string.Join("\n", actual.Where(p => p.Reason is not null).Select(p => $"{p.Node.Name}: {p.Reason}")));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ClassifiesEveryFamilyByStructureAlone(string family)
    {
        var (model, expected) = TransformerMimic.Build(FamilyConfigs[family]);
        using var _ = model;
        var projections = ProjectionClassifier.Classify(model, StructureOnly);
        AssertMatches(expected, projections);
        Assert.All(projections, p => Assert.Equal(KindSource.Structure, p.KindSource));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void NameHintsAgreeWithStructureOnModulePathNames(string family)
    {
        var (model, expected) = TransformerMimic.Build(FamilyConfigs[family] with { MeaningfulNames = true });
        using var _ = model;
        AssertMatches(expected, ProjectionClassifier.Classify(model));
    }

    [Fact]
    public void ClassifiesBothBranchesOfAnOptimumMergedDecoder()
    {
        var (model, expected) = TransformerMimic.BuildMerged(new MimicConfig { Layers = 2 });
        using var _ = model;
        var projections = ProjectionClassifier.Classify(model, StructureOnly);
        AssertMatches(expected, projections);
        Assert.Equal(["main/optimum::if/else_branch", "main/optimum::if/then_branch"], projections.Select(p => p.GraphPath).Distinct().Order());
        // The weights live in the main graph; both branches read the same ones.
        var q0 = projections.Where(p => p.Kind == ProjectionKind.Q && p.Layer == 0).ToList();
        Assert.Equal(2, q0.Count);
        Assert.Same(q0[0].Weight, q0[1].Weight);
        Assert.Same(model.Graph, q0[0].Weight.Graph);
    }

    [Fact]
    public void ReportsFeaturesLayoutAndBias()
    {
        var (model, _) = TransformerMimic.Build(new MimicConfig { Layers = 1, QkvBias = true, Linear = LinearStyle.MatMulTransposedWeight });
        using var __ = model;
        var projections = ProjectionClassifier.Classify(model, StructureOnly);
        var k = projections.Single(p => p.Kind == ProjectionKind.K);
        Assert.Equal((32L, 16L), (k.InFeatures, k.OutFeatures));
        Assert.True(k.WeightStoredTransposed);
        Assert.NotNull(k.WeightTranspose);
        Assert.NotNull(k.Bias);
        Assert.Same(k.BiasAdd!.Outputs[0], k.Output);
        Assert.Equal(DataType.Float, k.DataType);
        var down = projections.Single(p => p.Kind == ProjectionKind.Down);
        Assert.Equal((48L, 32L), (down.InFeatures, down.OutFeatures));
        Assert.Null(down.Bias);
    }

    [Fact]
    public void GemmWithTransB1ReportsTheStoredLayout()
    {
        var (model, _) = TransformerMimic.Build(new MimicConfig { Layers = 1, Linear = LinearStyle.GemmTransB1, AllBias = true });
        using var __ = model;
        var up = ProjectionClassifier.Classify(model, StructureOnly).Single(p => p.Kind == ProjectionKind.Up);
        Assert.True(up.WeightStoredTransposed);
        Assert.Equal([48L, 32L], up.Weight.ConstValue!.Dims.ToArray());
        Assert.Equal((32L, 48L), (up.InFeatures, up.OutFeatures));
        Assert.NotNull(up.Bias);
        Assert.Null(up.BiasAdd);
    }

    [Fact]
    public void RefusesAnMlpWhoseIntermediateValueEscapes()
    {
        var (model, _) = TransformerMimic.Build(new MimicConfig { Layers = 1 });
        using var __ = model;
        var gate = ProjectionClassifier.Classify(model, StructureOnly).Single(p => p.Kind == ProjectionKind.Gate);
        model.Graph.Outputs.Add(gate.Output); // e.g. an export that also returns the gate activations

        var projections = ProjectionClassifier.Classify(model, StructureOnly);
        var down = projections.Single(p => p.InFeatures == 48);
        Assert.Equal(ProjectionKind.Unknown, down.Kind);
        Assert.Contains("is also a graph output", down.Reason);
        Assert.DoesNotContain(projections, p => p.Kind is ProjectionKind.Gate or ProjectionKind.Up or ProjectionKind.Down);
        // Attention is unaffected.
        Assert.Equal(4, projections.Count(p => p.Kind is ProjectionKind.Q or ProjectionKind.K or ProjectionKind.V or ProjectionKind.O));
    }

    [Fact]
    public void RefusesAnMlpWhoseIntermediateValueHasAnotherReader()
    {
        var (model, _) = TransformerMimic.Build(new MimicConfig { Layers = 1 });
        using var __ = model;
        var up = ProjectionClassifier.Classify(model, StructureOnly).Single(p => p.Kind == ProjectionKind.Up);
        var b = new GraphBuilder(model.Graph);
        b.Output(b.Op("ReduceMean", up.Output));

        var projections = ProjectionClassifier.Classify(model, StructureOnly);
        var down = projections.Single(p => p.InFeatures == 48);
        Assert.Equal(ProjectionKind.Unknown, down.Kind);
        Assert.Contains("is also read by", down.Reason);
    }

    private static (Graph Graph, GraphBuilder B, Value X) SmallGraph()
    {
        var graph = new Graph("g");
        var b = new GraphBuilder(graph);
        var x = b.Input("x", DataType.Float, "batch", 8);
        return (graph, b, x);
    }

    private static Value W(GraphBuilder b, string name, params long[] dims) =>
        b.Initializer(name, dims, new float[dims.Aggregate(1L, (a, d) => a * d)]);

    [Fact]
    public void RefusesGateAndUpThatReadDifferentValues()
    {
        var (graph, b, x) = SmallGraph();
        var other = b.Op("Neg", x);
        var gate = b.Op("MatMul", x, W(b, "wg", 8, 16));
        var up = b.Op("MatMul", other, W(b, "wu", 8, 16));
        b.Output(b.Op("MatMul", b.Op("Mul", b.Op("Mul", gate, b.Op("Sigmoid", gate)), up), W(b, "wd", 16, 8)));
        using var model = new Model(graph) { IrVersion = 8 };

        var projections = ProjectionClassifier.Classify(model, StructureOnly);
        Assert.All(projections.Where(p => p.OutFeatures == 16), p => Assert.Equal(ProjectionKind.Unknown, p.Kind));
        var down = projections.Single(p => p.OutFeatures == 8);
        Assert.NotEqual(ProjectionKind.Down, down.Kind);
        Assert.Contains(projections, p => p.Reason?.Contains("do not read the same value") == true);
    }

    [Fact]
    public void IgnoresMatMulsThatAreNotProjections()
    {
        var (graph, b, x) = SmallGraph();
        var activations = b.Op("MatMul", x, b.Op("Transpose", x)); // no constant operand
        var batched = b.Op("MatMul", x, W(b, "w3d", 2, 8, 8)); // 3-D weight
        var ints = b.Op("MatMul", b.Op("Cast", [x], OnnxAttribute.Int("to", 7)), b.Initializer("wi", [8, 8], new long[64]));
        var transA = b.Node("", "Gemm", [x, W(b, "wt", 8, 8)], 1, "gemm_transA", OnnxAttribute.Int("transA", 1)).Outputs[0];
        var constantInput = b.Op("MatMul", W(b, "c", 4, 8), W(b, "w2", 8, 8));
        foreach (var v in new[] { activations, batched, ints, transA, constantInput }) b.Output(v);
        using var model = new Model(graph) { IrVersion = 8 };

        Assert.Empty(ProjectionClassifier.Classify(model, StructureOnly));
    }

    [Fact]
    public void FindsProjectionsWithConstantNodeAndIdentityWeights()
    {
        var (graph, b, x) = SmallGraph();
        var tied = W(b, "shared", 16, 8);
        var viaIdentity = b.Op("MatMul", x, b.Op("Transpose", [b.Op("Identity", tied)], OnnxAttribute.Ints("perm", [1, 0])));
        var constant = b.Node("", "Constant", [], 1, null, OnnxAttribute.FromTensor("value", Tensor.FromElements<float>("", DataType.Float, [8, 4], new float[32]))).Outputs[0];
        b.Output(viaIdentity);
        b.Output(b.Op("MatMul", x, constant));
        using var model = new Model(graph) { IrVersion = 8 };

        var projections = ProjectionClassifier.Classify(model, StructureOnly);
        Assert.Equal(2, projections.Count);
        var first = projections[0];
        Assert.Same(tied, first.Weight);
        Assert.True(first.WeightStoredTransposed);
        Assert.Equal((8L, 16L), (first.InFeatures, first.OutFeatures));
        Assert.Equal((8L, 4L), (projections[1].InFeatures, projections[1].OutFeatures));
        // Both feed graph outputs directly: output heads by structure.
        Assert.All(projections, p => Assert.Equal(ProjectionKind.LmHead, p.Kind));
    }

    [Fact]
    public void ProjectionFeedingTwoAttentionRolesIsUnknownWithAReason()
    {
        var (graph, b, x) = SmallGraph();
        var shared = b.Op("MatMul", x, W(b, "w_shared", 8, 8));
        var k = b.Op("MatMul", x, W(b, "w_k", 8, 8));
        var probabilities = b.Op("Softmax", b.Op("MatMul", shared, b.Op("Transpose", k)));
        var context = b.Op("MatMul", probabilities, shared); // the same projection as query and value
        b.Output(b.Op("MatMul", context, W(b, "w_o", 8, 8)));
        using var model = new Model(graph) { IrVersion = 8 };

        var projections = ProjectionClassifier.Classify(model, StructureOnly);
        var sharedProjection = projections.Single(p => p.Weight.Name == "w_shared");
        Assert.Equal(ProjectionKind.Unknown, sharedProjection.Kind);
        Assert.Contains("query value", sharedProjection.Reason);
        Assert.Equal(ProjectionKind.K, projections.Single(p => p.Weight.Name == "w_k").Kind);
        Assert.Equal(ProjectionKind.O, projections.Single(p => p.Weight.Name == "w_o").Kind);
    }

    [Fact]
    public void NameHintsFillOnlyWhatStructureLeftOpen()
    {
        var (graph, b, x) = SmallGraph();
        var lonely = b.Node("", "MatMul", [x, W(b, "model.layers.5.mlp.down_proj.weight", 8, 8)], 1, "/model/layers.5/mlp/down_proj/MatMul").Outputs[0];
        b.Output(b.Op("ReduceSum", lonely));
        using var model = new Model(graph) { IrVersion = 8 };

        var structural = ProjectionClassifier.Classify(model, StructureOnly).Single();
        Assert.Equal(ProjectionKind.Unknown, structural.Kind);
        Assert.Null(structural.Layer);
        Assert.NotNull(structural.Reason);

        var hinted = ProjectionClassifier.Classify(model).Single();
        Assert.Equal(ProjectionKind.Down, hinted.Kind);
        Assert.Equal(KindSource.NameHint, hinted.KindSource);
        Assert.Equal(5, hinted.Layer);
    }

    [Theory]
    [InlineData("/model/layers.3/self_attn/q_proj/MatMul", ProjectionKind.Q, 3)]
    [InlineData("transformer.h.11.attn.c_attn.weight", ProjectionKind.Qkv, 11)]
    [InlineData("transformer.h.2.attn.c_proj.weight", ProjectionKind.O, 2)]
    [InlineData("transformer.h.2.mlp.c_proj.weight", ProjectionKind.Down, 2)]
    [InlineData("transformer.h.0.mlp.c_fc.weight", ProjectionKind.Up, 0)]
    [InlineData("model.layers.7.mlp.gate_up_proj.weight", ProjectionKind.GateUp, 7)]
    [InlineData("/model/layers.31/attn/qkv_proj/MatMul", ProjectionKind.Qkv, 31)]
    [InlineData("model.layers.4.self_attn.o_proj.weight", ProjectionKind.O, 4)]
    [InlineData("lm_head.weight", ProjectionKind.LmHead, null)]
    public void NameHintPatterns(string name, ProjectionKind kind, int? layer)
    {
        var (graph, b, x) = SmallGraph();
        var y = b.Node("", "MatMul", [x, W(b, name, 8, 8)], 1, "opaque").Outputs[0];
        b.Output(b.Op("ReduceSum", y));
        using var model = new Model(graph) { IrVersion = 8 };
        var projection = ProjectionClassifier.Classify(model).Single();
        Assert.Equal(kind, projection.Kind);
        Assert.Equal(layer, projection.Layer);
    }
}
