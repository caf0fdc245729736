using System.Diagnostics;
using Google.Protobuf;
using SparseOnnx.GraphRewriter.Protobuf;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.IO;

/// <summary>Malformed files end in a <see cref="SparseOnnxException"/> that says what is wrong; never a crash or a hang.</summary>
public class MalformedInputTests
{
    [Fact]
    public void EmptyFileIsAClearError()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("empty.onnx"), []);
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(dir.File("empty.onnx")));
        Assert.Contains("empty", error.Message);
    }

    [Fact]
    public void MissingFileAndFolderAreClearErrors()
    {
        using var dir = new TempDirectory();
        Assert.Contains("not found", Assert.Throws<InvalidModelException>(() => ModelLoader.Load(dir.File("nope.onnx"))).Message);
        Assert.Contains("is a folder", Assert.Throws<InvalidModelException>(() => ModelLoader.Load(dir.Path)).Message);
    }

    [Fact]
    public void TextFileIsNotAModel()
    {
        var error = Assert.ThrowsAny<InvalidModelException>(() => ModelLoader.Load("this is not an onnx model\n"u8));
        Assert.Contains("not", error.Message);
    }

    [Fact]
    public void EveryTruncationIsAClearErrorOrAValidPrefix()
    {
        byte[] bytes = ProtoFixtures.RunnableModel().ToByteArray();
        var random = new Random(7);
        var lengths = Enumerable.Range(0, 300).Select(_ => random.Next(1, bytes.Length)).Concat([1, 2, 10, bytes.Length - 1]);
        int rejected = 0;
        foreach (int length in lengths)
        {
            if (TryLoad(bytes.AsSpan(0, length).ToArray())) continue;
            rejected++;
        }
        Assert.True(rejected > 250, $"Only {rejected} truncations were rejected.");
    }

    [Fact]
    public void NodeReadingAnUndefinedValueIsAClearError()
    {
        var proto = ProtoFixtures.RunnableModel();
        proto.Graph.Node[0].Input[0] = "nowhere";
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(proto.ToByteArray()));
        Assert.Contains("'nowhere'", error.Message);
        Assert.Contains("/l1/MatMul", error.Message);
    }

    [Fact]
    public void ValueDefinedTwiceIsAClearError()
    {
        var proto = ProtoFixtures.RunnableModel();
        proto.Graph.Node[1].Output[0] = "mm1";
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(proto.ToByteArray()));
        Assert.Contains("'mm1' is defined twice", error.Message);
    }

    [Fact]
    public void RawDataOfTheWrongSizeIsAClearError()
    {
        var proto = ProtoFixtures.RunnableModel();
        proto.Graph.Initializer[0].Dims[0] = 65;
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(proto.ToByteArray()));
        Assert.Contains("'W1'", error.Message);
        Assert.Contains("needs 66560 bytes", error.Message);
    }

    [Fact]
    public void HugeShapeIsAClearError()
    {
        var proto = ProtoFixtures.RunnableModel();
        proto.Graph.Initializer[0].Dims.Clear();
        proto.Graph.Initializer[0].Dims.Add([1L << 40, 1L << 40]);
        var error = Assert.Throws<InvalidModelException>(() => ModelLoader.Load(proto.ToByteArray()));
        Assert.Contains("impossibly large", error.Message);
    }

    [Fact]
    public void GraphCycleIsAClearErrorWhenSorting()
    {
        var proto = ProtoFixtures.RunnableModel();
        proto.Graph.Node[0].Input[0] = "h"; // MatMul now reads the Add that reads it
        using var model = ModelLoader.Load(proto.ToByteArray());
        var error = Assert.Throws<InvalidModelException>(() => model.Graph.SortTopologically());
        Assert.Contains("cycle", error.Message);
    }

    /// <summary>
    /// Seeded random mutations of a valid model with external data: byte flips, random bytes, insertions,
    /// deletions, copied chunks. Each load must succeed or throw a SparseOnnxException, quickly; models that
    /// load are inspected (projection classifier included) and some saved again, to exercise the rest of the
    /// pipeline on whatever survived.
    /// </summary>
    [Fact]
    public void FuzzedModelsNeverCrashOrHang()
    {
        using var dir = new TempDirectory();
        var proto = ProtoFixtures.RunnableModel();
        ProtoFixtures.Externalize(proto, dir.Path, minBytes: 1000, twoFiles: true);
        byte[] original = proto.ToByteArray();
        string path = dir.File("fuzz.onnx");
        var random = new Random(20261123);
        int loaded = 0, rejected = 0;
        var slowest = TimeSpan.Zero;
        var total = Stopwatch.StartNew();
        for (int iteration = 0; iteration < 2500; iteration++)
        {
            byte[] mutated = Mutate(original, random);
            File.WriteAllBytes(path, mutated);
            var watch = Stopwatch.StartNew();
            try
            {
                using var model = ModelLoader.Load(path);
                loaded++;
                SparseOnnx.GraphRewriter.Inspection.ModelInspector.Inspect(model);
                if (iteration % 10 == 0) ModelSaver.Save(model, dir.File("resaved.onnx"));
            }
            catch (SparseOnnxException)
            {
                rejected++;
            }
            catch (Exception e)
            {
                File.WriteAllBytes(Path.Combine(Path.GetTempPath(), $"sparseonnx-fuzz-crash-{iteration}.onnx"), mutated);
                Assert.Fail($"Iteration {iteration}: {e.GetType().Name} escaped: {e}");
            }
            if (watch.Elapsed > slowest) slowest = watch.Elapsed;
        }
        Assert.True(slowest < TimeSpan.FromSeconds(5), $"The slowest iteration took {slowest}.");
        Assert.True(loaded > 100 && rejected > 100, $"Mutations should produce both outcomes: {loaded} loaded, {rejected} rejected.");
    }

    private static byte[] Mutate(byte[] input, Random random)
    {
        var bytes = input.ToList();
        int edits = 1 + random.Next(4);
        for (int e = 0; e < edits && bytes.Count > 0; e++)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(6))
            {
                case 0: bytes[at] ^= (byte)(1 << random.Next(8)); break;
                case 1: bytes[at] = (byte)random.Next(256); break;
                case 2: bytes.Insert(at, (byte)random.Next(256)); break;
                case 3: bytes.RemoveRange(at, Math.Min(bytes.Count - at, 1 + random.Next(16))); break;
                case 4:
                    int from = random.Next(bytes.Count);
                    bytes.InsertRange(at, bytes.GetRange(from, Math.Min(bytes.Count - from, 1 + random.Next(64))));
                    break;
                default: bytes[at] = (byte)(random.Next(2) == 0 ? 0xFF : 0x00); break;
            }
        }
        return bytes.ToArray();
    }

    private static bool TryLoad(byte[] bytes)
    {
        try
        {
            using var model = ModelLoader.Load(bytes);
            ModelSaver.ToBytes(model);
            return true;
        }
        catch (SparseOnnxException)
        {
            return false;
        }
    }
}
