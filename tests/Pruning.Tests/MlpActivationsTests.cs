using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.Pruning.Capture;

namespace SparseOnnx.Pruning.Tests;

public class MlpActivationsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-pruning-capture-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>With every token sampled, the sample's column means and norms are the streamed statistics.</summary>
    [Fact]
    public void TheStreamedStatisticsAgreeWithTheFullSample()
    {
        var data = ReferenceModel.Windows(length: 32, samples: 5);
        using var model = ModelLoader.Load(ReferenceModel.ModelPath);
        var layers = MlpActivations.Capture(model, data.Calibration, sampleTokens: 1000, seed: 1, _dir, threads: 1);
        Assert.Equal(Enumerable.Range(0, 6), layers.Select(l => l.Layer));
        foreach (var layer in layers)
        {
            Assert.Equal(160, layer.Tokens);
            Assert.Equal(160, layer.SampledTokens);
            var sample = layer.ReadSample();
            Assert.Equal((160, 688), (sample.Rows, sample.Columns));
            for (int j = 0; j < 688; j += 37)
            {
                double mean = 0, squares = 0;
                for (int t = 0; t < 160; t++) { mean += sample[t, j]; squares += (double)sample[t, j] * sample[t, j]; }
                Assert.Equal(mean / 160, layer.Means[j], 1e-5);
                Assert.Equal(Math.Sqrt(squares), layer.Norms[j], 1e-4);
            }
            Assert.Contains(layer.StandardDeviations, s => s > 0);
        }
    }

    [Fact]
    public void SampledTokensAreDistinctSortedAndSeeded()
    {
        var a = MlpActivations.ChooseTokens(1000, 100, seed: 4);
        Assert.Equal(100, a.Distinct().Count());
        Assert.Equal(a.Order(), a);
        Assert.All(a, t => Assert.InRange(t, 0, 999));
        Assert.Equal(a, MlpActivations.ChooseTokens(1000, 100, seed: 4));
        Assert.NotEqual(a, MlpActivations.ChooseTokens(1000, 100, seed: 5));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), MlpActivations.ChooseTokens(10, 100, seed: 4));
        Assert.Empty(MlpActivations.ChooseTokens(10, 0, seed: 4));
    }
}
