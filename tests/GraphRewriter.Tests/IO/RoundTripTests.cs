using Google.Protobuf;
using SparseOnnx.GraphRewriter.Protobuf;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.IO;

public class RoundTripTests
{
    private static readonly Dictionary<string, long> Batch3 = new() { ["batch"] = 3 };

    [Fact]
    public void EveryFieldSurvivesLoadAndSave()
    {
        var original = ProtoFixtures.EverythingModel();
        // Unknown fields inside nested messages, as a newer ONNX would write them.
        original.Graph.Node[0] = NodeProto.Parser.ParseFrom(ProtoFixtures.WithUnknownFields(original.Graph.Node[0]));
        original.Graph.Initializer[0] = TensorProto.Parser.ParseFrom(ProtoFixtures.WithUnknownFields(original.Graph.Initializer[0]));
        original.Graph = GraphProto.Parser.ParseFrom(ProtoFixtures.WithUnknownFields(original.Graph));
        byte[] bytes = ProtoFixtures.WithUnknownFields(original);
        var expected = ModelProto.Parser.ParseFrom(bytes);

        using var model = ModelLoader.Load(bytes);
        var actual = ModelProto.Parser.ParseFrom(ModelSaver.ToBytes(model));

        Assert.Equal(expected, actual);
        // Field presence too (an explicitly empty string, a default enum value written out): byte-identical
        // when both are written by the same protobuf library.
        Assert.Equal(expected.ToByteArray(), actual.ToByteArray());
    }

    [Fact]
    public void SecondRoundTripIsIdenticalToTheFirst()
    {
        byte[] bytes = ProtoFixtures.EverythingModel().ToByteArray();
        using var once = ModelLoader.Load(bytes);
        byte[] first = ModelSaver.ToBytes(once);
        using var twice = ModelLoader.Load(first);
        Assert.Equal(first, ModelSaver.ToBytes(twice));
    }

    [Fact]
    public void InlineModelSavedInlineRunsBitwiseIdenticalInOnnxRuntime()
    {
        using var dir = new TempDirectory();
        string input = dir.File("model.onnx");
        ProtoFixtures.WriteModel(ProtoFixtures.RunnableModel(), input);

        using (var model = ModelLoader.Load(input))
        {
            var result = ModelSaver.Save(model, dir.File("out.onnx"));
            Assert.Null(result.DataPath);
        }

        for (int seed = 0; seed < 3; seed++)
            OrtRunner.AssertBitwiseEqual(OrtRunner.Run(input, seed, Batch3), OrtRunner.Run(dir.File("out.onnx"), seed, Batch3));
        Assert.Equal(["model.onnx", "out.onnx"], dir.ListFiles());
    }

    [Fact]
    public void SavingWithExternalDataAlignsOffsetsAndKeepsSmallTensorsInline()
    {
        using var dir = new TempDirectory();
        string input = dir.File("model.onnx");
        ProtoFixtures.WriteModel(ProtoFixtures.RunnableModel(), input);

        SaveResult result;
        using (var model = ModelLoader.Load(input))
            result = ModelSaver.Save(model, dir.File("out.onnx"), new SaveOptions { ExternalData = ExternalDataMode.Always, InlineThresholdBytes = 1024 });

        Assert.Equal(dir.File("out.onnx.data"), result.DataPath);
        var saved = ModelProto.Parser.ParseFrom(File.ReadAllBytes(dir.File("out.onnx")));
        var external = saved.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External).ToList();
        Assert.Equal(["W1", "b1", "W2"], external.Select(t => t.Name));
        foreach (var tensor in external)
        {
            Assert.Equal("out.onnx.data", tensor.ExternalData.Single(e => e.Key == "location").Value);
            Assert.Equal(0, long.Parse(tensor.ExternalData.Single(e => e.Key == "offset").Value) % 65536);
        }
        var small = saved.Graph.Initializer.Single(t => t.Name == "small");
        Assert.True(small.HasRawData);
        Assert.Equal(3, result.ExternalTensors);

        for (int seed = 0; seed < 3; seed++)
            OrtRunner.AssertBitwiseEqual(OrtRunner.Run(input, seed, Batch3), OrtRunner.Run(dir.File("out.onnx"), seed, Batch3));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ExternalDataModelResavedElsewhereRunsBitwiseIdenticalAndInputIsUntouched(bool twoFiles)
    {
        using var dir = new TempDirectory();
        var proto = ProtoFixtures.RunnableModel();
        ProtoFixtures.Externalize(proto, dir.Path, minBytes: 1000, twoFiles);
        string input = dir.File("model.onnx");
        ProtoFixtures.WriteModel(proto, input);
        var before = Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);
        string outputDir = Path.Combine(dir.Path, "out");

        using (var model = ModelLoader.Load(input))
        {
            Assert.Equal(twoFiles ? 2 : 1, model.ExternalDataPaths.Count);
            var result = ModelSaver.Save(model, Path.Combine(outputDir, "resaved.onnx"));
            Assert.NotNull(result.DataPath); // Auto keeps external data for a model that had it
        }

        foreach (var (path, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(path));
        Assert.Equal(["resaved.onnx", "resaved.onnx.data"], Directory.GetFiles(outputDir).Select(Path.GetFileName).Order());
        for (int seed = 0; seed < 3; seed++)
            OrtRunner.AssertBitwiseEqual(OrtRunner.Run(input, seed, Batch3), OrtRunner.Run(Path.Combine(outputDir, "resaved.onnx"), seed, Batch3));
    }

    [Fact]
    public void ExternalDataCanBeInlinedOnSave()
    {
        using var dir = new TempDirectory();
        var proto = ProtoFixtures.RunnableModel();
        ProtoFixtures.Externalize(proto, dir.Path, minBytes: 1000, twoFiles: true);
        ProtoFixtures.WriteModel(proto, dir.File("model.onnx"));

        using (var model = ModelLoader.Load(dir.File("model.onnx")))
            ModelSaver.Save(model, dir.File("inline.onnx"), new SaveOptions { ExternalData = ExternalDataMode.Never });

        var saved = ModelProto.Parser.ParseFrom(File.ReadAllBytes(dir.File("inline.onnx")));
        Assert.All(saved.Graph.Initializer, t => Assert.NotEqual(TensorProto.Types.DataLocation.External, t.DataLocation));
        OrtRunner.AssertBitwiseEqual(OrtRunner.Run(dir.File("model.onnx"), 5, Batch3), OrtRunner.Run(dir.File("inline.onnx"), 5, Batch3));
    }

    [Fact]
    public void TensorDataOfExternalModelIsReadLazilyThroughTheMapping()
    {
        using var dir = new TempDirectory();
        var proto = ProtoFixtures.RunnableModel();
        var w1 = proto.Graph.Initializer.Single(t => t.Name == "W1").RawData.ToByteArray();
        ProtoFixtures.Externalize(proto, dir.Path, minBytes: 1000, twoFiles: false);
        ProtoFixtures.WriteModel(proto, dir.File("model.onnx"));

        using var model = ModelLoader.Load(dir.File("model.onnx"));
        var tensor = model.Graph.Initializers.Find("W1")!.ConstValue!;
        var data = Assert.IsType<ExternalTensorData>(tensor.Data);
        Assert.Equal(13, data.Offset);
        using (var lease = data.Acquire()) Assert.True(lease.Span.SequenceEqual(w1));
        using (var stream = data.OpenRead())
        {
            var streamed = new byte[w1.Length];
            stream.ReadExactly(streamed);
            Assert.Equal(w1, streamed);
            Assert.Equal(0, stream.Read(new byte[1]));
        }
    }

    [Fact]
    public void ReusingExternalDataWritesOnlyWhatChangedAndRunsIdentically()
    {
        using var dir = new TempDirectory();
        var proto = ProtoFixtures.RunnableModel();
        ProtoFixtures.Externalize(proto, dir.Path, minBytes: 1000, twoFiles: true);
        ProtoFixtures.WriteModel(proto, dir.File("model.onnx"));
        var before = Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

        SaveResult result;
        using (var model = ModelLoader.Load(dir.File("model.onnx")))
        {
            // A changed tensor: it must go to the new data file; the untouched weights stay where they are.
            model.Graph.Initializers.Add(Tensor.FromElements<float>("fresh", DataType.Float, [1024], new float[1024]));
            result = ModelSaver.Save(model, dir.File("reuse.onnx"), new SaveOptions { ExternalData = ExternalDataMode.Always, ReuseExternalDataInOutputFolder = true });
        }

        // W1 sits in first.bin, directly in the output folder: reused. W2's file is in a subfolder and b1 was
        // inline (typed fields): both are written to the new file with the changed tensor.
        Assert.Equal(1, result.ReusedTensors);
        Assert.Equal(3, result.ExternalTensors);
        var saved = ModelProto.Parser.ParseFrom(File.ReadAllBytes(dir.File("reuse.onnx")));
        string Location(string name) => saved.Graph.Initializer.Single(t => t.Name == name).ExternalData.Single(e => e.Key == "location").Value;
        Assert.Equal("first.bin", Location("W1"));
        Assert.Equal("reuse.onnx.data", Location("fresh"));
        Assert.Equal("reuse.onnx.data", Location("W2"));
        foreach (var (path, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(path));
        for (int seed = 0; seed < 2; seed++)
            OrtRunner.AssertBitwiseEqual(OrtRunner.Run(dir.File("model.onnx"), seed, Batch3), OrtRunner.Run(dir.File("reuse.onnx"), seed, Batch3));
    }

    /// <summary>
    /// A model saved into another folder, with its data files hard-linked there (ExternalDataLinks): tensors of a
    /// linked file reference the link at their offsets, nothing of theirs is copied, and the model runs identically.
    /// </summary>
    [Fact]
    public void LinkedExternalDataIsReferencedThroughTheLink()
    {
        using var dir = new TempDirectory();
        var proto = ProtoFixtures.RunnableModel();
        ProtoFixtures.Externalize(proto, dir.Path, minBytes: 1000, twoFiles: true);
        ProtoFixtures.WriteModel(proto, dir.File("model.onnx"));
        string other = Directory.CreateDirectory(dir.File("other")).FullName;

        SaveResult result;
        using (var model = ModelLoader.Load(dir.File("model.onnx")))
        {
            var links = new Dictionary<string, string>();
            foreach (string data in model.ExternalDataPaths)
            {
                string name = "linked-" + Path.GetFileName(data);
                Assert.True(FileLinks.TryHardLink(data, Path.Combine(other, name)) || CopyInstead(data, Path.Combine(other, name)));
                links[data] = name;
            }
            result = ModelSaver.Save(model, Path.Combine(other, "model.onnx"), new SaveOptions { ExternalData = ExternalDataMode.Always, ExternalDataLinks = links });
        }

        // W1 (first.bin) and W2 (a subfolder's file) are both linked; b1 was inline and goes to the new file.
        Assert.Equal(2, result.ReusedTensors);
        var saved = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(other, "model.onnx")));
        string Location(string name) => saved.Graph.Initializer.Single(t => t.Name == name).ExternalData.Single(e => e.Key == "location").Value;
        Assert.Equal("linked-first.bin", Location("W1"));
        Assert.StartsWith("linked-", Location("W2"));
        for (int seed = 0; seed < 2; seed++)
            OrtRunner.AssertBitwiseEqual(OrtRunner.Run(dir.File("model.onnx"), seed, Batch3), OrtRunner.Run(Path.Combine(other, "model.onnx"), seed, Batch3));
    }

    // Where hard links are refused (another file system), a copy has the same bytes, which is all the test needs.
    private static bool CopyInstead(string source, string target)
    {
        File.Copy(source, target);
        return true;
    }
}
