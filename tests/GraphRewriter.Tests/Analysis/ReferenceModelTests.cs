using System.Text.Json.Nodes;
using SparseOnnx.GraphRewriter.Analysis.Projections;

using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Analysis;

/// <summary>
/// The classifier on every real export committed under models/, against the ground truth the export recipe
/// wrote from the PyTorch module tree (expected_projections.json), by structure alone and with name hints.
/// </summary>
public class ReferenceModelTests
{
    public static TheoryData<string> ModelsWithGroundTruth()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(RepositoryPaths.Models, "expected_projections.json", SearchOption.AllDirectories).Order())
            data.Add(Path.GetRelativePath(RepositoryPaths.Models, Path.GetDirectoryName(file)!));
        return data;
    }

    [Fact]
    public void EveryCommittedExportHasGroundTruth()
    {
        var models = Directory.GetFiles(RepositoryPaths.Models, "model.onnx", SearchOption.AllDirectories);
        Assert.NotEmpty(models);
        foreach (string model in models)
            Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(model)!, "expected_projections.json")), $"{model} has no expected_projections.json");
    }

    [Theory]
    [MemberData(nameof(ModelsWithGroundTruth))]
    public void ClassifierMatchesGroundTruth(string relativeFolder)
    {
        string folder = Path.Combine(RepositoryPaths.Models, relativeFolder);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "expected_projections.json")))!;
        var rows = (expected is JsonArray array ? array : expected["projections"]!.AsArray())
            .Select(e => $"{(string)e!["node"]!} {(string)e["kind"]!} {(e["layer"] is null ? "-" : ((int)e["layer"]!).ToString())}")
            .Order().ToList();

        using var model = ModelLoader.Load(Path.Combine(folder, "model.onnx"));
        foreach (bool names in new[] { false, true })
        {
            var actual = ProjectionClassifier.Classify(model, new ClassifierOptions { UseNameHints = names })
                .Select(p => $"{p.DisplayName} {p.Kind.ToShortName()} {p.Layer?.ToString() ?? "-"}").Order().ToList();
            Assert.Equal(rows, actual);
        }
    }
}
