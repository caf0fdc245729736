using SparseOnnx.Calibration.Data;

namespace SparseOnnx.Pruning.Tests;

public class PrunerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-pruner-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(IcaScore.Maps)]
    [InlineData(IcaScore.Weighted)]
    [InlineData(IcaScore.Output)]
    public void EveryIcaScoreRemovesTheRatio(IcaScore score)
    {
        var options = new PruneOptions { Ratio = 0.3, IcaScore = score, Ica = new() { Components = 16, Restarts = 2 }, Threads = 1 };
        using var result = Pruner.Run(ReferenceModel.ModelPath, ReferenceModel.Windows(length: 64, samples: 8), options, Path.Combine(_dir, "work"));
        Assert.Equal(4128 - (long)Math.Round(0.3 * 4128), result.NeuronsAfter);
        Assert.All(result.Layers, l => Assert.True(l.Networks is { Components: 16 }));
        Assert.False(Directory.Exists(Path.Combine(_dir, "work")));
    }

    /// <summary>A MatMulNBits MLP (the committed onnxruntime-genai int4 model) is refused with the way around,
    /// before any work: slicing down_proj's input channels would break its quantization blocks.</summary>
    [Fact]
    public void AQuantizedMlpIsRefusedWithTheWayAround()
    {
        string model = Path.Combine(RepositoryPaths.Models, "families", "genai-int4", "model.onnx");
        var error = Assert.Throws<PruningModelException>(() =>
            Pruner.Run(model, ReferenceModel.Windows(length: 16, samples: 2), new PruneOptions { Ratio = 0.3, Threads = 1 }, Path.Combine(_dir, "work")));
        Assert.Contains("/model/layers.0/mlp/", error.Message);
        Assert.Contains("is MatMulNBits", error.Message);
        Assert.Contains("prune the float model, then quantize the pruned one", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "work")));
    }
}

public class CompensationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-compensation-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// With only layer 2 pruned, its block sees the dense model's inputs, so compensation must give its output
    /// (the residual stream after the MLP) the dense model's mean over the calibration tokens; without it the
    /// mean moves.
    /// </summary>
    [Fact]
    public void CompensationKeepsTheBlockOutputsMeanOverTheCalibrationTokens()
    {
        var data = ReferenceModel.Windows(length: 64, samples: 6);
        string dense = ReferenceModel.ModelPath;
        var baseline = BlockOutputMeans(dense, data, layer: 2);
        foreach (bool compensation in new[] { true, false })
        {
            var options = new PruneOptions
            {
                Ratio = 0.1, Method = PruneMethod.Activation, Compensation = compensation, KeepLayers = new HashSet<int> { 0, 1, 3, 4, 5 }, Threads = 1,
            };
            string pruned = Path.Combine(_dir, $"pruned-{compensation}.onnx");
            using (var result = Pruner.Run(dense, data, options, Path.Combine(_dir, "work")))
            {
                Assert.Equal(688 - 413, result.Layers[2].Kept);
                GraphRewriter.IO.ModelSaver.Save(result.Model, pruned);
            }
            var means = BlockOutputMeans(pruned, data, layer: 2);
            double worst = baseline.Zip(means, (a, b) => Math.Abs(a - b)).Max();
            if (compensation) Assert.True(worst < 2e-4, $"compensated means differ by up to {worst}");
            else Assert.True(worst > 1e-2, $"uncompensated means differ by only {worst}");
        }
    }

    private static double[] BlockOutputMeans(string modelPath, CalibrationSet data, int layer)
    {
        using var model = GraphRewriter.IO.ModelLoader.Load(modelPath);
        var layout = Calibration.Capture.ProbeModelBuilder.Instrument(model, new Calibration.Capture.ProbeOptions
        {
            Kinds = new HashSet<GraphRewriter.Analysis.Projections.ProjectionKind> { GraphRewriter.Analysis.Projections.ProjectionKind.Down },
        });
        string work = Path.Combine(Path.GetTempPath(), "sparseonnx-compensation-probe-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var session = Calibration.Capture.ProbeSession.Open(model, layout, work, threads: 1);
            var values = session.Capture(data.Calibration, 2, new Calibration.Capture.ProbeSettings(layout), layout.BlockOutputs[layer]);
            const int hidden = 256;
            var means = new double[hidden];
            for (int i = 0; i < values.Length; i++) means[i % hidden] += values[i];
            return means.Select(m => m / (values.Length / hidden)).ToArray();
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}
