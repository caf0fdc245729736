using System.Buffers.Binary;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Protobuf;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.IO;

[CollectionDefinition(nameof(MemoryMeasuringCollection), DisableParallelization = true)]
public class MemoryMeasuringCollection;

/// <summary>
/// A model larger than 2 GiB (weights in external data, built from a repeated pattern) loads, saves and runs
/// in ONNX Runtime with bitwise-identical outputs, while this process's memory stays far below the file size.
/// </summary>
[Collection(nameof(MemoryMeasuringCollection))]
[Trait("Category", "Large")]
public class LargeModelTests
{
    private const int Tables = 9;
    private const int Rows = 65536;
    private const int Columns = 1024; // 4 KiB rows, 256 MiB tables, 2.25 GiB in all

    [Fact]
    public void ModelLargerThan2GiBRoundTripsWithBoundedMemory()
    {
        using var dir = new TempDirectory();
        string input = Path.Combine(dir.Path, "in", "big.onnx");
        Directory.CreateDirectory(Path.GetDirectoryName(input)!);
        long dataBytes = WriteBigModel(input);
        Assert.True(dataBytes > (2L << 30), "The fixture must exceed 2 GiB.");
        string output = Path.Combine(dir.Path, "out", "big.onnx");

        SaveResult? result = null;
        long growth = PeakMemory.MeasureGrowthBytes(() =>
        {
            using var model = ModelLoader.Load(input);
            result = ModelSaver.Save(model, output);
        });

        Assert.Equal(Tables, result!.ExternalTensors);
        Assert.True(new FileInfo(result.DataPath!).Length > (2L << 30));
        if (PeakMemory.IsSupported)
            Assert.True(growth < 256L << 20, $"Load and save of a {dataBytes >> 20} MiB model grew resident memory by {growth >> 20} MiB.");

        var saved = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output));
        Assert.All(saved.Graph.Initializer.Where(t => t.Name.StartsWith("table")),
            t => Assert.Equal(0, long.Parse(t.ExternalData.Single(e => e.Key == "offset").Value) % 65536));

        long[] indices = [0, 1, 4097, 32768, Rows - 1];
        var expected = RunGather(input, indices);
        var actual = RunGather(output, indices);
        Assert.Equal(expected, actual);
        // The rows are the ones asked for: the first column of row r of table t holds t * Rows + r.
        for (int t = 0; t < Tables; t++)
            for (int i = 0; i < indices.Length; i++)
                Assert.Equal(t * Rows + indices[i], actual[(t * indices.Length + i) * Columns]);
    }

    /// <summary>
    /// Writes Tables float tables [Rows, Columns] to one external file, at unaligned offsets as some tools do,
    /// and a graph that gathers the requested rows of each and concatenates them. Returns the data size.
    /// </summary>
    private static long WriteBigModel(string path)
    {
        string directory = Path.GetDirectoryName(path)!;
        var graph = new GraphProto { Name = "big" };
        graph.Input.Add(ProtoFixtures.TensorInfo("indices", TensorProto.Types.DataType.Int64, "n"));
        var gathered = new List<string>();
        var chunk = new byte[256 * Columns * 4];
        using (var data = new FileStream(Path.Combine(directory, "big.weights"), FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            data.Write(new byte[100]);
            for (int t = 0; t < Tables; t++)
            {
                long offset = data.Position;
                for (int firstRow = 0; firstRow < Rows; firstRow += 256)
                {
                    FillRows(chunk, t, firstRow);
                    data.Write(chunk);
                }
                data.Write(new byte[t + 1]);
                var table = new TensorProto { Name = $"table{t}", DataType = (int)TensorProto.Types.DataType.Float, DataLocation = TensorProto.Types.DataLocation.External };
                table.Dims.Add([Rows, Columns]);
                table.ExternalData.Add(ProtoFixtures.Prop("location", "big.weights"));
                table.ExternalData.Add(ProtoFixtures.Prop("offset", offset.ToString()));
                table.ExternalData.Add(ProtoFixtures.Prop("length", ((long)Rows * Columns * 4).ToString()));
                graph.Initializer.Add(table);
                graph.Node.Add(ProtoFixtures.Node("Gather", $"gather{t}", [$"table{t}", "indices"], [$"rows{t}"]));
                gathered.Add($"rows{t}");
            }
        }
        graph.Node.Add(ProtoFixtures.Node("Concat", "concat", gathered.ToArray(), ["rows"],
            new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 0 }));
        graph.Output.Add(ProtoFixtures.TensorInfo("rows", TensorProto.Types.DataType.Float, "m", Columns));
        var model = new ModelProto { IrVersion = 8, ProducerName = "sparseonnx-tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Version = 17 });
        File.WriteAllBytes(path, model.ToByteArray());
        return (long)Tables * Rows * Columns * 4;
    }

    private static void FillRows(byte[] chunk, int table, int firstRow)
    {
        var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(chunk.AsSpan());
        for (int r = 0; r < 256; r++)
        {
            var row = floats.Slice(r * Columns, Columns);
            row[0] = table * Rows + firstRow + r;
            for (int c = 1; c < Columns; c++) row[c] = (c * 31 + table * 7 + r) % 1000 * 0.001f;
        }
    }

    private static float[] RunGather(string modelPath, long[] indices)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = new InferenceSession(modelPath, options);
        using var input = OrtValue.CreateTensorValueFromMemory(indices, [indices.Length]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, new Dictionary<string, OrtValue> { ["indices"] = input }, ["rows"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
