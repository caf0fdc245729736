using Google.Protobuf;
using SparseOnnx.GraphRewriter.Protobuf;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.IO;

/// <summary>External data locations and ranges are untrusted: every bad one is a clear error at load.</summary>
public class ExternalDataSafetyTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly string _modelDir;

    public ExternalDataSafetyTests()
    {
        _modelDir = Path.Combine(_dir.Path, "model");
        Directory.CreateDirectory(_modelDir);
        File.WriteAllBytes(Path.Combine(_modelDir, "weights.bin"), new byte[4096]);
        File.WriteAllBytes(Path.Combine(_dir.Path, "secret.bin"), new byte[4096]);
    }

    public void Dispose() => _dir.Dispose();

    /// <summary>A model whose one initializer W (float [4, 4] = 64 bytes) lives at the given external_data.</summary>
    private string WriteModel(params (string Key, string Value)[] externalData)
    {
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(ProtoFixtures.TensorInfo("x", TensorProto.Types.DataType.Float, 1, 4));
        var w = new TensorProto { Name = "W", DataType = (int)TensorProto.Types.DataType.Float, DataLocation = TensorProto.Types.DataLocation.External };
        w.Dims.Add([4, 4]);
        foreach (var (key, value) in externalData) w.ExternalData.Add(ProtoFixtures.Prop(key, value));
        graph.Initializer.Add(w);
        graph.Node.Add(ProtoFixtures.Node("MatMul", "mm", ["x", "W"], ["y"]));
        graph.Output.Add(ProtoFixtures.TensorInfo("y", TensorProto.Types.DataType.Float, 1, 4));
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Version = 17 });
        string path = Path.Combine(_modelDir, "model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    [Fact]
    public void ValidLocationLoads()
    {
        using var model = ModelLoader.Load(WriteModel(("location", "weights.bin"), ("offset", "128"), ("length", "64")));
        var data = Assert.IsType<ExternalTensorData>(model.Graph.Initializers.Find("W")!.ConstValue!.Data);
        Assert.Equal(128, data.Offset);
    }

    [Theory]
    [InlineData("/etc/passwd", "absolute path")]
    [InlineData("\\\\server\\share\\w.bin", "absolute path")]
    [InlineData("C:\\weights.bin", "absolute path")]
    [InlineData("c:weights.bin", "absolute path")]
    [InlineData("../secret.bin", "contains '..'")]
    [InlineData("sub/../../secret.bin", "contains '..'")]
    [InlineData("..\\secret.bin", "contains '..'")]
    [InlineData("./..", "contains '..'")]
    [InlineData("weights.bin\0.txt", "NUL")]
    public void HostileLocationIsRefused(string location, string expected)
    {
        string path = WriteModel(("location", location), ("length", "64"));
        var error = Assert.Throws<UnsafeExternalDataException>(() => ModelLoader.Load(path));
        Assert.Contains(expected, error.Message);
        Assert.Contains("'W'", error.Message);
    }

    [Fact]
    public void SymlinkToAFileOutsideIsRefused()
    {
        File.CreateSymbolicLink(Path.Combine(_modelDir, "link.bin"), Path.Combine(_dir.Path, "secret.bin"));
        var error = Assert.Throws<UnsafeExternalDataException>(() => ModelLoader.Load(WriteModel(("location", "link.bin"), ("length", "64"))));
        Assert.Contains("symbolic link", error.Message);
    }

    [Fact]
    public void RelativeSymlinkedFolderLeadingOutsideIsRefused()
    {
        Directory.CreateSymbolicLink(Path.Combine(_modelDir, "shared"), "..");
        var error = Assert.Throws<UnsafeExternalDataException>(() => ModelLoader.Load(WriteModel(("location", "shared/secret.bin"), ("length", "64"))));
        Assert.Contains("outside", error.Message);
    }

    [Fact]
    public void SymlinkThatStaysInsideIsAccepted()
    {
        Directory.CreateDirectory(Path.Combine(_modelDir, "data"));
        File.Copy(Path.Combine(_modelDir, "weights.bin"), Path.Combine(_modelDir, "data", "real.bin"));
        File.CreateSymbolicLink(Path.Combine(_modelDir, "alias.bin"), "data/real.bin");
        using var model = ModelLoader.Load(WriteModel(("location", "alias.bin"), ("length", "64")));
        Assert.EndsWith(Path.Combine("data", "real.bin"), model.ExternalDataPaths.Single());
    }

    [Fact]
    public void ModelFolderReachedThroughASymlinkStillWorks()
    {
        string path = WriteModel(("location", "weights.bin"), ("length", "64"));
        string linkedFolder = Path.Combine(_dir.Path, "linked");
        Directory.CreateSymbolicLink(linkedFolder, _modelDir);
        using var model = ModelLoader.Load(Path.Combine(linkedFolder, Path.GetFileName(path)));
        Assert.Single(model.ExternalDataPaths);
    }

    [Theory]
    [InlineData("missing.bin", null, "64", "not found")]
    [InlineData("", null, "64", "no 'location'")]
    [InlineData("weights.bin", "4090", "64", "only 4096 bytes")]
    [InlineData("weights.bin", "5000", null, "past the end")]
    [InlineData("weights.bin", "0", "60", "needs 64 bytes")]
    [InlineData("weights.bin", "0", "4096", "needs 64 bytes")]
    [InlineData("weights.bin", null, null, "needs 64 bytes")] // length defaults to the rest of the file
    [InlineData("weights.bin", "-1", "64", "not a non-negative integer")]
    [InlineData("weights.bin", "12abc", "64", "not a non-negative integer")]
    [InlineData("weights.bin", "0", "99999999999999999999", "not a non-negative integer")]
    [InlineData("weights.bin", "9223372036854775807", "64", "past the end")]
    public void BadRangeIsAClearError(string location, string? offset, string? length, string expected)
    {
        var entries = new List<(string, string)> { ("location", location) };
        if (offset is not null) entries.Add(("offset", offset));
        if (length is not null) entries.Add(("length", length));
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(WriteModel(entries.ToArray())));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void LocationThatIsAFolderIsAClearError()
    {
        Directory.CreateDirectory(Path.Combine(_modelDir, "folder"));
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(WriteModel(("location", "folder"), ("length", "64"))));
        Assert.Contains("is a folder", error.Message);
    }

    [Fact]
    public void DuplicateKeyIsAClearError()
    {
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(WriteModel(("location", "weights.bin"), ("location", "other.bin"))));
        Assert.Contains("twice", error.Message);
    }

    [Fact]
    public void ExternalDataWithoutAFolderIsAClearError()
    {
        byte[] bytes = File.ReadAllBytes(WriteModel(("location", "weights.bin"), ("length", "64")));
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(bytes));
        Assert.Contains("not loaded from a file", error.Message);
    }
}
