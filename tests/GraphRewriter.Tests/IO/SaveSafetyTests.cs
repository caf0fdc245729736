using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.IO;

/// <summary>Saving never overwrites the input and never leaves a partial output.</summary>
public class SaveSafetyTests
{
    private static (TempDirectory Dir, string ModelPath) ExternalModel()
    {
        var dir = new TempDirectory();
        var proto = ProtoFixtures.RunnableModel();
        ProtoFixtures.Externalize(proto, dir.Path, minBytes: 1000, twoFiles: true);
        string path = dir.File("model.onnx");
        ProtoFixtures.WriteModel(proto, path);
        return (dir, path);
    }

    [Fact]
    public void RefusesToOverwriteTheInputModel()
    {
        var (dir, path) = ExternalModel();
        using var _ = dir;
        byte[] before = File.ReadAllBytes(path);
        using var model = ModelLoader.Load(path);
        var error = Assert.Throws<ModelSaveException>(() => ModelSaver.Save(model, path));
        Assert.Contains("the input model", error.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Fact]
    public void RefusesToOverwriteTheInputModelThroughASymlink()
    {
        var (dir, path) = ExternalModel();
        using var _ = dir;
        File.CreateSymbolicLink(dir.File("alias.onnx"), path);
        using var model = ModelLoader.Load(path);
        Assert.Throws<ModelSaveException>(() => ModelSaver.Save(model, dir.File("alias.onnx")));
    }

    [Theory]
    [InlineData("first.bin")]
    [InlineData("weights/second.bin")]
    public void RefusesToOverwriteTheInputsExternalData(string dataFile)
    {
        var (dir, path) = ExternalModel();
        using var _ = dir;
        byte[] before = File.ReadAllBytes(dir.File(dataFile));
        using var model = ModelLoader.Load(path);
        string outputDir = Path.GetDirectoryName(dir.File(dataFile))!;
        var error = Assert.Throws<ModelSaveException>(() => ModelSaver.Save(model, Path.Combine(outputDir, "out.onnx"),
            new SaveOptions { DataFileName = Path.GetFileName(dataFile) }));
        Assert.Contains("external data of the input model", error.Message);
        Assert.Equal(before, File.ReadAllBytes(dir.File(dataFile)));
        Assert.False(File.Exists(Path.Combine(outputDir, "out.onnx")));
    }

    [Fact]
    public void FailedSaveLeavesNoOutputAndNoTemporaryFiles()
    {
        var (dir, path) = ExternalModel();
        using var _ = dir;
        var filesBefore = dir.ListFiles();
        using var model = ModelLoader.Load(path);
        model.Graph.Initializers.Add(new Tensor("broken", DataType.Float, [1024], new FailingTensorData(4096)));

        var error = Assert.Throws<ModelSaveException>(() => ModelSaver.Save(model, dir.File("out.onnx")));
        Assert.Contains("disk on fire", error.Message);
        Assert.Equal(filesBefore, dir.ListFiles());
    }

    [Fact]
    public void FailedSaveKeepsAnEarlierOutputIntact()
    {
        var (dir, path) = ExternalModel();
        using var _ = dir;
        using var model = ModelLoader.Load(path);
        ModelSaver.Save(model, dir.File("out.onnx"));
        byte[] earlierModel = File.ReadAllBytes(dir.File("out.onnx"));
        byte[] earlierData = File.ReadAllBytes(dir.File("out.onnx.data"));

        model.Graph.Initializers.Add(new Tensor("broken", DataType.Float, [1024], new FailingTensorData(4096)));
        Assert.Throws<ModelSaveException>(() => ModelSaver.Save(model, dir.File("out.onnx")));

        Assert.Equal(earlierModel, File.ReadAllBytes(dir.File("out.onnx")));
        Assert.Equal(earlierData, File.ReadAllBytes(dir.File("out.onnx.data")));
    }

    [Fact]
    public void RejectsAPathAsDataFileName()
    {
        var (dir, path) = ExternalModel();
        using var _ = dir;
        using var model = ModelLoader.Load(path);
        Assert.Throws<ArgumentException>(() => ModelSaver.Save(model, dir.File("out.onnx"), new SaveOptions { DataFileName = "../escape.bin" }));
    }

    /// <summary>Data whose stream fails halfway, as a full disk or a vanished network share would.</summary>
    private sealed class FailingTensorData(long length) : TensorData
    {
        public override long ByteLength => length;

        public override Stream OpenRead() => new FailingStream(length);

        public override TensorDataLease Acquire() => throw new IOException("disk on fire");

        private sealed class FailingStream(long length) : MemoryStream(new byte[length / 2])
        {
            public override int Read(byte[] buffer, int offset, int count)
            {
                int read = base.Read(buffer, offset, count);
                return read > 0 ? read : throw new IOException("disk on fire");
            }
        }
    }
}
