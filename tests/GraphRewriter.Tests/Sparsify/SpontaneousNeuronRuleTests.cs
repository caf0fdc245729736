using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Sparsify;

/// <summary>SpontaneousNeuronRule: Y -> Add(Y, s) after every sparsified projection, s named after the projection.</summary>
public class SpontaneousNeuronRuleTests
{
    [Theory]
    [InlineData(DataType.Float)]
    [InlineData(DataType.Float16)]
    [InlineData(DataType.BFloat16)]
    public void InsertsAZeroVectorNamedAfterTheProjectionThatTakesOverTheOutputName(DataType type)
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMul, type, n: 40);
        ProjectionModels.SparsifyAll(model, sparsity: 0.5);

        var s = model.Graph.Initializers.Find("proj/MatMul.spontaneous");
        Assert.NotNull(s);
        Assert.Equal(type, s.ConstValue!.DataType);
        Assert.Equal([40L], s.ConstValue.Dims.ToArray());
        Assert.All(FloatElements.Decode(s.ConstValue.Data.ToArray(), type), v => Assert.Equal(0f, v));
        var add = Assert.Single(s.Uses).Node;
        Assert.True(add.Is("Add"));
        Assert.Equal("P", add.Outputs[0].Name);
        Assert.Same(add.Outputs[0], model.Graph.Outputs[0]);
        Assert.Equal(TopKSparseMatMulOp.OpType, add.Inputs[0]!.Producer!.OpType);
        var meta = add.MetadataProps.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal("SpontaneousNeurons", meta["sparseonnx.rule"]);
        Assert.Equal("none: zeros until calibrated", meta["sparseonnx.calibration"]);
        Assert.Equal("proj/MatMul", meta["sparseonnx.projection"]);
    }

    [Fact]
    public void NoSpontaneousLeavesTheAddOut()
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMul, DataType.Float);
        var report = ProjectionModels.SparsifyAll(model, sparsity: 0.5, spontaneous: false);
        Assert.False(Assert.Single(report.Rewritten).Spontaneous);
        Assert.DoesNotContain(model.Graph.Nodes, n => n.Is("Add"));
        Assert.DoesNotContain(model.Graph.Initializers, v => v.Name.EndsWith(".spontaneous", StringComparison.Ordinal));
        Assert.Equal("P", model.Graph.Outputs[0].Name);
        Assert.Equal(TopKSparseMatMulOp.OpType, model.Graph.Outputs[0].Producer!.OpType);
    }

    /// <summary>With a plan's values, the rewritten model at k = K computes the original output plus s.</summary>
    [Theory]
    [InlineData(ProjectionStyle.MatMulIdentityBias)]
    [InlineData(ProjectionStyle.GemmTransBScaled)]
    public void CalibratedValuesAreAddedAfterTheProjectionAndItsBias(ProjectionStyle style)
    {
        using var dir = new TempDirectory();
        var random = new Random(5);
        var spontaneous = Enumerable.Range(0, 40).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        string node = style == ProjectionStyle.GemmTransBScaled ? "proj/Gemm" : "proj/MatMul";
        var plan = new SparsityPlan([new PlanEntry { Node = node, K = 48, OutFeatures = 40, Spontaneous = spontaneous }], "unit test vectors");
        plan.Save(dir.File("plan.json"));
        var loaded = SparsityPlan.Load(dir.File("plan.json"));

        using (var model = ProjectionModels.Single(style, DataType.Float)) ModelSaver.Save(model, dir.File("dense.onnx"));
        using (var model = ProjectionModels.Single(style, DataType.Float))
        {
            var report = ProjectionModels.SparsifyAll(model, plan: loaded);
            Assert.True(Assert.Single(report.Rewritten).SpontaneousCalibrated);
            var s = model.Graph.Initializers.Find(node + ".spontaneous")!;
            Assert.Contains("calibrated on unit test vectors", s.ConstValue!.MetadataProps.Single().Value);
            ModelSaver.Save(model, dir.File("sparse.onnx"));
        }
        var dims = new Dictionary<string, long> { ["batch"] = 2, ["seq"] = 3, ["rows"] = 6 };
        var dense = FloatElements.Decode(OrtRunner.Run(dir.File("dense.onnx"), 9, dims)["P"], DataType.Float);
        var sparse = FloatElements.Decode(OrtRunner.Run(dir.File("sparse.onnx"), 9, dims)["P"], DataType.Float);
        var expected = dense.Select((v, i) => v + spontaneous[i % 40]).ToArray();
        Numerics.AssertRelativelyClose(expected, sparse, 1e-5, $"{style} P");
    }
}
