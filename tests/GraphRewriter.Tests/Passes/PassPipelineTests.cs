using SparseOnnx.GraphRewriter.Passes;

namespace SparseOnnx.GraphRewriter.Tests.Passes;

public class PassPipelineTests
{
    private sealed class RenameGraph(string name) : IPass
    {
        public string Name => "rename-graph";

        public PassResult Run(Model model)
        {
            if (model.Graph.Name == name) return PassResult.Unchanged("already named");
            model.Graph.Name = name;
            return PassResult.Modified($"renamed to {name}");
        }
    }

    private sealed class Failing : IPass
    {
        public string Name => "failing";

        public PassResult Run(Model model) => throw new InvalidOperationException("boom");
    }

    /// <summary>A pass with a typed report: the graph's node count before it ran.</summary>
    private sealed class CountNodes : IPass<int>
    {
        public string Name => "count-nodes";

        public PassResult<int> Run(Model model) => new(false, [], model.Graph.Nodes.Count);
    }

    private static Model EmptyModel() => new(new Graph("g")) { IrVersion = 8 };

    [Fact]
    public void ATypedReportReachesTheCallerDirectlyAndThroughThePipeline()
    {
        using var model = EmptyModel();
        var pass = new CountNodes();
        Assert.Equal(0, pass.Run(model).Report);
        var reports = new PassPipeline(new RenameGraph("a"), pass).Run(model);
        Assert.Equal(0, Assert.IsType<PassResult<int>>(reports[1].Result).Report);
        Assert.False(reports[1].Result.Changed);
    }

    [Fact]
    public void RunsPassesInOrderAndReportsWhetherEachChangedTheModel()
    {
        using var model = EmptyModel();
        var reports = new PassPipeline(new RenameGraph("a"), new RenameGraph("a")).Run(model);
        Assert.Equal(2, reports.Count);
        Assert.True(reports[0].Result.Changed);
        Assert.Equal(["renamed to a"], reports[0].Result.Messages);
        Assert.False(reports[1].Result.Changed);
        Assert.Equal("a", model.Graph.Name);
    }

    [Fact]
    public void FailureNamesThePassAndThoseThatRanBefore()
    {
        using var model = EmptyModel();
        var error = Assert.Throws<PassFailedException>(() => new PassPipeline(new RenameGraph("a"), new Failing(), new RenameGraph("b")).Run(model));
        Assert.Equal("failing", error.FailedPass);
        Assert.Equal(["rename-graph"], error.Completed.Select(r => r.PassName));
        Assert.Contains("boom", error.Message);
        Assert.Equal("a", model.Graph.Name);
    }
}
