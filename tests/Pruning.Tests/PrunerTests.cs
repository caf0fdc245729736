using SparseOnnx.Calibration.Data;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Pruning.Tests;

public class PrunerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-pruner-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");

    private static CalibrationSet Windows(int samples) => CalibrationSet.FromTextFile(Path.Combine(Folder, "data", "valid.txt"),
        TextTokenizer.Load(Path.Combine(Folder, "tokenizer.model")), new CalibrationSetOptions { SequenceLength = 64, Samples = samples, ValidationSamples = 1 });

    [Theory]
    [InlineData(IcaScore.Maps)]
    [InlineData(IcaScore.Weighted)]
    [InlineData(IcaScore.Output)]
    public void EveryIcaScoreRemovesTheRatio(IcaScore score)
    {
        var options = new PruneOptions { Ratio = 0.3, IcaScore = score, Ica = new() { Components = 16, Restarts = 2 }, Threads = 1 };
        using var result = Pruner.Run(Path.Combine(Folder, "model.onnx"), Windows(8), options, Path.Combine(_dir, "work"));
        Assert.Equal(4128 - (long)Math.Round(0.3 * 4128), result.NeuronsAfter);
        Assert.All(result.Layers, l => Assert.True(l.Networks is { Components: 16 }));
        Assert.False(Directory.Exists(Path.Combine(_dir, "work")));
    }
}
