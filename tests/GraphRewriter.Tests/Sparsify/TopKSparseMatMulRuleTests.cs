using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Sparsify;

/// <summary>
/// TopKSparseMatMulRule: MatMul(X, W) -> TopKSparseMatMul(X, W[K, N]) for every way exporters write a
/// projection, checked by structure, by refusal with a reason, and by numerics through ONNX Runtime.
/// </summary>
public class TopKSparseMatMulRuleTests
{
    private static Node SparseNode(Model model) =>
        Assert.Single(model.Graph.Nodes, n => n.Domain == TopKSparseMatMulOp.Domain && n.OpType == TopKSparseMatMulOp.OpType);

    [Theory]
    [InlineData(ProjectionStyle.MatMul)]
    [InlineData(ProjectionStyle.MatMulTransposed)]
    [InlineData(ProjectionStyle.MatMulIdentityBias)]
    [InlineData(ProjectionStyle.Gemm)]
    [InlineData(ProjectionStyle.GemmTransBScaled)]
    public void RewritesTheProjectionInPlaceWithAWeightInKnLayout(ProjectionStyle style)
    {
        using var model = ProjectionModels.Single(style, DataType.Float, k: 48, n: 40);
        var original = model.Graph.Nodes.Single(n => n.Is("MatMul") || n.Is("Gemm"));
        string name = original.Name!;
        var report = ProjectionModels.SparsifyAll(model, sparsity: 0.75);

        var node = SparseNode(model);
        Assert.Same(original, node);
        Assert.Equal(name, node.Name);
        Assert.Equal(12, node.Attributes["k"]!.AsInt());
        Assert.Null(node.Attributes["threshold"]);
        Assert.Equal(2, node.Inputs.Count);
        var weight = node.Inputs[1]!;
        Assert.True(weight.IsInitializer, "The weight input must be an initializer, with no Identity or Transpose before it.");
        Assert.Equal([48L, 40L], weight.ConstValue!.Dims.ToArray());
        Assert.Equal(TopKSparseMatMulOp.OpsetVersion, model.OpsetImports[TopKSparseMatMulOp.Domain]);
        Assert.DoesNotContain(model.Graph.Nodes, n => n.Is("Transpose") || n.Is("Identity") && n.Inputs[0]!.IsInitializer);
        Assert.Equal(["P", "Y"], model.Graph.Outputs.Select(o => o.Name).ToArray());
        var rewritten = Assert.Single(report.Rewritten);
        Assert.Equal(style is ProjectionStyle.Gemm or ProjectionStyle.GemmTransBScaled ? "Gemm" : "MatMul", rewritten.ReplacedOp);
        Assert.Equal(0.25, rewritten.KeptFraction);
    }

    [Fact]
    public void TransposedWeightIsStoredTransposedAndTheOriginalRemoved()
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMulTransposed, DataType.Float, k: 5, n: 3);
        var source = model.Graph.Initializers.Find("proj.weight")!.ConstValue!;
        var nk = source.Data.ToArray().AsSpan().ToFloats();
        ProjectionModels.SparsifyAll(model);

        Assert.Null(model.Graph.Initializers.Find("proj.weight"));
        var kn = SparseNode(model).Inputs[1]!.ConstValue!;
        Assert.Equal("proj.weight.kn", kn.Name);
        var values = kn.Data.ToArray().AsSpan().ToFloats();
        for (int k = 0; k < 5; k++)
            for (int n = 0; n < 3; n++)
                Assert.Equal(nk[n * 5 + k], values[k * 3 + n]);
    }

    [Fact]
    public void GemmAlphaAndBetaBecomeAMulAndAScaledBias()
    {
        using var model = ProjectionModels.Single(ProjectionStyle.GemmTransBScaled, DataType.Float);
        ProjectionModels.SparsifyAll(model, spontaneous: false);
        var node = SparseNode(model);
        var mul = Assert.Single(node.Outputs[0].Uses).Node;
        Assert.True(mul.Is("Mul"));
        Assert.Equal(0.5f, FloatElements.Decode(mul.Inputs[1]!.ConstValue!.Data.ToArray(), DataType.Float).Single());
        var add = Assert.Single(mul.Outputs[0].Uses).Node;
        Assert.True(add.Is("Add"));
        Assert.Equal("P", add.Outputs[0].Name);
        var bias = FloatElements.Decode(model.Graph.Initializers.Find("proj.bias")?.ConstValue?.Data.ToArray() ?? [], DataType.Float);
        var scaled = FloatElements.Decode(add.Inputs[1]!.ConstValue!.Data.ToArray(), DataType.Float);
        Assert.Empty(bias); // C was only read by the Gemm; its scaled copy replaced it
        Assert.Equal(40, scaled.Length);
    }

    [Fact]
    public void NewValuesAreDeclaredAndProvenanceIsRecorded()
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMulIdentityBias, DataType.Float);
        ProjectionModels.SparsifyAll(model, sparsity: 0.5);
        var node = SparseNode(model);
        var declared = model.Graph.ValueInfo.Select(v => v.Name).ToHashSet();
        Assert.Contains(node.Outputs[0].Name, declared);
        Assert.Equal(new TensorType(DataType.Float, GraphBuilder.ShapeOf("batch", "seq", 40L)), node.Outputs[0].Type);
        var meta = node.MetadataProps.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal("TopKSparseMatMul", meta["sparseonnx.rule"]);
        Assert.Equal("MatMul", meta["sparseonnx.replaced"]);
        Assert.Equal("lm_head", meta["sparseonnx.kind"]); // a lone projection feeding a graph output looks like an output head
        Assert.Equal("proj.weight", meta["sparseonnx.weight"]);
        Assert.Equal("24", meta["sparseonnx.k"]);
        Assert.Equal("0.5", meta["sparseonnx.sparsity"]);
        Assert.Equal("uniform sparsity 0.5", meta["sparseonnx.source"]);
        Assert.Contains(model.MetadataProps, kv => kv.Key == SparsifyPass.ModelMetadataKey && kv.Value.Contains("sparsity=0.5"));
        // The bias Add stays, between the op and the spontaneous Add (which takes over the output's name).
        var biasAdd = Assert.Single(node.Outputs[0].Uses).Node;
        Assert.Equal("proj/Add", biasAdd.Name);
        var spontaneousAdd = Assert.Single(biasAdd.Outputs[0].Uses).Node;
        Assert.Equal("proj/MatMul/spontaneous", spontaneousAdd.Name);
        Assert.Equal("P", spontaneousAdd.Outputs[0].Name);
    }

    [Theory]
    [InlineData(DataType.Double, "the weight is float64")]
    public void RefusesUnsupportedElementTypes(DataType type, string reason)
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMul, type);
        var report = ProjectionModels.SparsifyAll(model);
        Assert.Empty(report.Rewritten);
        Assert.StartsWith(reason, Assert.Single(report.Skipped).Reason);
        Assert.True(model.Graph.Nodes.Single(n => n.OpType == "MatMul").Is("MatMul"));
        Assert.Null(model.OpsetImports[TopKSparseMatMulOp.Domain]);
    }

    [Fact]
    public void RefusesAVectorInput()
    {
        var graph = new Graph("vector");
        var b = new GraphBuilder(graph);
        var x = b.Input("x", DataType.Float, 8L);
        var y = b.Op("MatMul", x, b.Initializer(ProjectionModels.Constant("w", DataType.Float, [8, 4], new Random(1))));
        b.Output(y, DataType.Float, 4L);
        using var model = ProjectionModels.NewModel(graph);
        var report = ProjectionModels.SparsifyAll(model);
        Assert.Contains("rank 1", Assert.Single(report.Skipped).Reason);
    }

    [Fact]
    public void KindsNotAskedForAreSkippedWithTheReason()
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMul, DataType.Float);
        var pass = new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 });
        var result = pass.Run(model);
        Assert.False(result.Changed);
        Assert.Equal("kind lm_head is not among the kinds to rewrite", Assert.Single(result.Report.Skipped).Reason);
    }

    public static TheoryData<ProjectionStyle, DataType> StylesAndTypes()
    {
        var data = new TheoryData<ProjectionStyle, DataType>();
        foreach (var style in Enum.GetValues<ProjectionStyle>())
        {
            data.Add(style, DataType.Float);
            if (style is ProjectionStyle.MatMul or ProjectionStyle.MatMulTransposed) data.Add(style, DataType.Float16);
        }
        return data;
    }

    /// <summary>At k = K the rewritten model computes what the original computes (float32 rounding apart).</summary>
    [Theory]
    [MemberData(nameof(StylesAndTypes))]
    public void AtFullKTheRewrittenModelMatchesTheOriginalInOnnxRuntime(ProjectionStyle style, DataType type)
    {
        using var dir = new TempDirectory();
        using (var model = ProjectionModels.Single(style, type)) ModelSaver.Save(model, dir.File("dense.onnx"));
        using (var model = ProjectionModels.Single(style, type))
        {
            ProjectionModels.SparsifyAll(model, sparsity: 0);
            ModelSaver.Save(model, dir.File("sparse.onnx"));
        }
        var dims = new Dictionary<string, long> { ["batch"] = 2, ["seq"] = 5, ["rows"] = 7 };
        var expected = OrtRunner.Run(dir.File("dense.onnx"), seed: 3, dims);
        var actual = OrtRunner.Run(dir.File("sparse.onnx"), seed: 3, dims);
        // float16 outputs round to 11 bits, and ORT's float16 MatMul may round partial sums differently.
        double tolerance = type == DataType.Float ? 1e-5 : 2e-3;
        foreach (string output in new[] { "P", "Y" })
            Numerics.AssertRelativelyClose(FloatElements.Decode(expected[output], type), FloatElements.Decode(actual[output], type), tolerance, $"{style} {type} {output}");
    }

    /// <summary>ORT's CPU provider has no bfloat16 Add, so the CPU run is without the spontaneous Add (GPU providers have one).</summary>
    [Fact]
    public void Bfloat16ModelsAreRewrittenAndRun()
    {
        using var dir = new TempDirectory();
        using (var model = ProjectionModels.Single(ProjectionStyle.MatMulTransposed, DataType.BFloat16))
        {
            ProjectionModels.SparsifyAll(model, sparsity: 0.5, spontaneous: false);
            Assert.Equal(DataType.BFloat16, SparseNode(model).Inputs[1]!.ConstValue!.DataType);
            ModelSaver.Save(model, dir.File("sparse.onnx"));
        }
        var outputs = OrtRunner.Run(dir.File("sparse.onnx"), seed: 3, new Dictionary<string, long> { ["batch"] = 1, ["seq"] = 3 });
        Assert.Equal(3 * 40 * 2, outputs["Y"].Length);
    }
}
