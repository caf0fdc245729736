using SparseOnnx.GraphRewriter.Tests.TestUtil;
using Google.Protobuf;

namespace SparseOnnx.GraphRewriter.Tests.Ir;

public class GraphTests
{
    private static (Graph Graph, Value X, Value W, Value Mm, Value Y) Chain()
    {
        var graph = new Graph("g");
        var b = new GraphBuilder(graph);
        var x = b.Input("x", DataType.Float, "batch", 4);
        var w = b.Initializer("W", [4, 4], new float[16]);
        var mm = b.Op("MatMul", x, w);
        var y = b.Op("Relu", mm);
        b.Output(y);
        return (graph, x, w, mm, y);
    }

    [Fact]
    public void ValuesKnowTheirProducerAndConsumers()
    {
        var (graph, x, w, mm, y) = Chain();
        var matmul = mm.Producer!;
        Assert.Equal("MatMul", matmul.OpType);
        Assert.Same(graph, matmul.Graph);
        Assert.Equal([new Use(matmul, 0)], x.Uses);
        Assert.Equal([new Use(matmul, 1)], w.Uses);
        Assert.Equal([new Use(y.Producer!, 0)], mm.Uses);
        Assert.True(y.IsGraphOutput);
        Assert.True(w.IsConstant);
        Assert.True(x.IsGraphInput);
        Assert.False(mm.IsGraphOutput);
    }

    [Fact]
    public void SetInputMovesTheUse()
    {
        var (graph, x, w, mm, _) = Chain();
        var b = new GraphBuilder(graph);
        var w2 = b.Initializer("W2", [4, 4], new float[16]);
        mm.Producer!.SetInput(1, w2);
        Assert.Empty(w.Uses);
        Assert.Equal([new Use(mm.Producer, 1)], w2.Uses);
    }

    [Fact]
    public void ReplaceAllUsesWithRewiresNodesAndGraphOutputs()
    {
        var (graph, x, _, mm, y) = Chain();
        var b = new GraphBuilder(graph);
        var neg = b.Op("Neg", x);
        y.ReplaceAllUsesWith(neg);
        Assert.Same(neg, graph.Outputs[0]);
        Assert.False(y.IsGraphOutput);
        Assert.True(neg.IsGraphOutput);

        mm.ReplaceAllUsesWith(x);
        Assert.Empty(mm.Uses);
        Assert.Contains(x.Uses, u => u.Node.OpType == "Relu");
    }

    [Fact]
    public void RemovingANodeStillReadIsRefusedAndRemovingAnUnusedOneDropsItsUses()
    {
        var (graph, x, w, mm, y) = Chain();
        var error = Assert.Throws<InvalidOperationException>(() => graph.Nodes.Remove(mm.Producer!));
        Assert.Contains("still read", error.Message);

        var relu = y.Producer!;
        graph.Outputs.RemoveAt(0);
        graph.Nodes.Remove(relu);
        Assert.Empty(mm.Uses);
        graph.Nodes.Remove(mm.Producer!);
        Assert.Empty(x.Uses);
        Assert.Empty(w.Uses);
        graph.Initializers.Remove(w);
        Assert.Empty(graph.Initializers);
    }

    [Fact]
    public void SubgraphReadsOfOuterValuesAreUsesAndOrderDependencies()
    {
        var graph = new Graph("main");
        var b = new GraphBuilder(graph);
        var cond = b.Input("cond", DataType.Bool);
        var x = b.Input("x", DataType.Float, 4);
        var branch = new Graph("then");
        var ifNode = b.Node("", "If", [cond], 1, "if", OnnxAttribute.FromGraph("then_branch", branch));
        // The value the branch reads is produced after the If in list order: sorting must move it first.
        var late = b.Op("Relu", x);
        var inner = new GraphBuilder(branch).Op("Neg", late);
        branch.Outputs.Add(inner);
        b.Output(ifNode.Outputs[0]);

        Assert.Contains(late.Uses, u => u.Node.Graph == branch);
        Assert.Same(graph, branch.ParentGraph);
        Assert.Equal([late], ifNode.ImplicitInputs());
        graph.SortTopologically();
        Assert.Equal(["Relu", "If"], graph.Nodes.Select(n => n.OpType));
        Assert.Equal(2, graph.AllNodes().Count(n => n.OpType is "Neg" or "Relu"));
    }

    [Fact]
    public void TopologicalSortKeepsTheOrderOfAlreadySortedNodes()
    {
        var graph = new Graph("g");
        var b = new GraphBuilder(graph);
        var x = b.Input("x", DataType.Float, 4);
        var names = Enumerable.Range(0, 20).Select(i => b.Op(i % 2 == 0 ? "Relu" : "Neg", x).Producer!.Name).ToList();
        graph.SortTopologically();
        Assert.Equal(names, graph.Nodes.Select(n => n.Name));
    }

    [Fact]
    public void UniqueNamesAvoidEveryNameInEveryGraph()
    {
        var proto = ProtoFixtures.EverythingModel();
        using var model = ModelLoader.Load(proto.ToByteArray());
        Assert.Equal("fresh", model.UniqueName("fresh"));
        Assert.Equal("fresh_1", model.UniqueName("fresh"));
        Assert.Equal("then_out_1", model.UniqueName("then_out")); // defined only inside a subgraph
        Assert.Equal("sum_1", model.UniqueName("sum")); // defined only inside a function body
        Assert.Equal("W_1", model.UniqueName("W"));
    }

    [Fact]
    public void TensorRejectsDataOfTheWrongSize()
    {
        var error = Assert.Throws<ArgumentException>(() => new Tensor("t", DataType.Float, [2, 3], new InMemoryTensorData(new byte[20])));
        Assert.Contains("needs 24 bytes", error.Message);
        Assert.Equal(2, new Tensor("q", DataType.Int4, [3], new InMemoryTensorData(new byte[2])).ExpectedByteLength);
    }

    [Fact]
    public void TypedFieldTensorsReadAsRawLittleEndian()
    {
        using var model = ModelLoader.Load(ProtoFixtures.EverythingModel().ToByteArray());
        float[] b = model.Graph.Initializers.Find("b")!.ConstValue!.Data.ToArray().Chunk(4).Select(c => BitConverter.ToSingle(c)).ToArray();
        Assert.Equal([0.5f, -1f, 2f], b);
        Assert.Equal(new byte[] { 0x00, 0x3C, 0x00, 0xBC, 0x01, 0x00 }, model.Graph.Initializers.Find("half")!.ConstValue!.Data.ToArray());
        Assert.Equal(new byte[] { 7, 0, 0, 0, 0x00, 0x28, 0x6B, 0xEE }, model.Graph.Initializers.Find("u32")!.ConstValue!.Data.ToArray());
        Assert.Equal(new byte[] { 0x21, 0x03 }, model.Graph.Initializers.Find("int4")!.ConstValue!.Data.ToArray());
    }
}
