using Google.Protobuf;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Ir;

/// <summary>
/// Model.Clone: a copy that serializes to the same bytes, shares tensor data, and can be rewritten while the original
/// stays as it was, subgraphs (with their outer-scope reads) included.
/// </summary>
public class ModelCloneTests
{
    [Fact]
    public void TheCopyOfEveryKindOfModelContentSerializesToTheSameBytes()
    {
        // Functions, training info, sparse initializers, nested If branches reading and passing outer values,
        // value_info, metadata and unknown fields: everything the IR keeps.
        var proto = ProtoFixtures.EverythingModel();
        proto.Graph.Node[0] = Protobuf.NodeProto.Parser.ParseFrom(ProtoFixtures.WithUnknownFields(proto.Graph.Node[0]));
        byte[] bytes = ProtoFixtures.WithUnknownFields(proto);
        using var model = ModelLoader.Load(bytes);
        byte[] expected = ModelSaver.ToBytes(model);

        using var copy = model.Clone();

        Assert.Equal(expected, ModelSaver.ToBytes(copy));
        Assert.Equal(expected, ModelSaver.ToBytes(model));
    }

    [Fact]
    public void TheCopyHasItsOwnGraphs_AndItsSubgraphsReadTheCopysValues()
    {
        using var model = ModelLoader.Load(ProtoFixtures.EverythingModel().ToByteArray());
        using var copy = model.Clone();
        var originals = model.AllGraphs().ToList();
        var copies = copy.AllGraphs().ToList();
        Assert.Equal(originals.Count, copies.Count);
        Assert.True(copies.Count > 2, "the fixture has subgraphs");
        foreach (var (original, copied) in originals.Zip(copies))
        {
            Assert.NotSame(original, copied);
            Assert.Equal(original.Nodes.Select(n => n.Name), copied.Nodes.Select(n => n.Name));
            Assert.All(copied.Nodes, n => Assert.Same(copied, n.Graph));
        }
        var copiedValues = copies.SelectMany(g => g.Inputs.Concat(g.Initializers).Concat(g.SparseInitializers).Concat(g.Nodes.SelectMany(n => n.Outputs))).ToHashSet();
        var originalValues = originals.SelectMany(g => g.Inputs.Concat(g.Initializers).Concat(g.SparseInitializers).Concat(g.Nodes.SelectMany(n => n.Outputs))).ToHashSet();
        foreach (var node in copies.SelectMany(g => g.Nodes))
            foreach (var input in node.Inputs.Where(i => i is not null))
            {
                Assert.DoesNotContain(input!, originalValues);
                Assert.Contains(input!, copiedValues);
            }
        foreach (var sub in copy.Graph.Nodes.SelectMany(n => n.Subgraphs)) Assert.Same(copy.Graph, sub.ParentGraph);
    }

    /// <summary>Sparsifying the copy of llama-brown rewrites the copy only; its tensors are the original's (nothing copied).</summary>
    [Fact]
    public void RewritingTheCopyLeavesTheOriginalAsItWas()
    {
        using var model = ModelLoader.Load(Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx"));
        byte[] before = ModelSaver.ToBytes(model);
        using var copy = model.Clone();
        Assert.All(copy.Graph.Initializers, v => Assert.Same(model.Graph.Initializers.Find(v.Name)!.ConstValue!.Data, v.ConstValue!.Data));

        var report = new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 }).Run(copy).Report;

        Assert.Equal(42, report.Rewritten.Count);
        Assert.Equal(before, ModelSaver.ToBytes(model));
        Assert.Equal(0, SparsifyPass.CountSparseNodes(model));
        Assert.Equal(42, SparsifyPass.CountSparseNodes(copy));
    }
}
