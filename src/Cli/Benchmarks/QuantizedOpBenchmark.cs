using Microsoft.ML.OnnxRuntime;
using SparseOnnx.CustomOps;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Cli.Benchmarks;

/// <summary>One sparsity level of the quantized benchmark: medians per op (one [M, K] × [K, N] product).</summary>
public sealed record QuantizedBenchmarkRow(double Sparsity, long K, double SparseMs, double MatMulNBitsLevel4Ms, double MatMulNBitsLevel0Ms,
    double Float32Ms, double SpeedupVsLevel4, double SpeedupVsLevel0, double SpeedupVsFloat32, double SparseBytesRead, double SparseGBps);

public sealed record QuantizedBenchmarkReport(OpBenchmarkOptions Options, int Bits, int BlockSize, int AccuracyLevel, bool Float16Scales, int Copies,
    MachineInfo Machine, string OrtVersion, string OpLibrary, double DenseBytes, IReadOnlyList<QuantizedBenchmarkRow> Results);

/// <summary>
/// TopKSparseMatMulNBits against ONNX Runtime's own MatMulNBits at the same bits and block size (accuracy
/// levels 4 and 0) and against float32 MatMul, all in one process on one shared thread pool, interleaved,
/// medians reported. The quantized ops read the same random codes and scales; the float32 MatMul reads
/// random weights of the same shape. Each model holds enough weight copies to exceed twice the L3 cache, all
/// multiplied per run, so the weights come from DRAM as in a decode step through a whole model.
/// </summary>
public static class QuantizedOpBenchmark
{
    public static QuantizedBenchmarkReport Run(OpBenchmarkOptions options, int bits, int blockSize, int accuracyLevel, bool float16Scales,
        Action<string>? progress = null)
    {
        progress ??= _ => { };
        var machine = MachineInfo.Read();
        long k = options.K, n = options.N, blocks = (k + blockSize - 1) / blockSize;
        double denseBytes = n * blocks * (blockSize * bits / 8 + 4.0);  // MatMulNBits' codes and float32 scales
        long l3 = Math.Max(machine.L3CacheBytes, 64L << 20);
        int copies = options.Copies > 0 ? options.Copies : (int)Math.Clamp((2 * l3 + denseBytes - 1) / denseBytes, 2, 64);
        int floatCopies = (int)Math.Clamp((2 * l3 + k * n * 4 - 1) / (k * n * 4), 2, 64);

        var random = new Random(1234);
        var weights = Enumerable.Range(0, copies).Select(c => RandomWeight(bits, k, n, blockSize, new Random(100 + c))).ToArray();
        var inputs = Enumerable.Range(0, 8).Select(_ => OpBenchmark.Normal(random, options.M * options.K)).ToArray();

        string folder = Path.Combine(Path.GetTempPath(), $"sparseonnx-bench-q-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            progress($"writing {copies} quantized weight copies ({copies * denseBytes / (1 << 20):0} MiB) and {floatCopies} float32 ones to {folder}");
            string level4 = Write(folder, "matmulnbits4.onnx", o => MatMulNBitsModel(o, weights, bits, blockSize, 4), options);
            string level0 = Write(folder, "matmulnbits0.onnx", o => MatMulNBitsModel(o, weights, bits, blockSize, 0), options);
            string float32 = Write(folder, "float32.onnx", o => Float32Model(o, floatCopies), options);
            using var sessionOptions = OpBenchmark.SharedThreadPoolSessionOptions(options.Threads);
            using var dense4 = new InferenceSession(level4, sessionOptions);
            using var dense0 = new InferenceSession(level0, sessionOptions);
            using var dense32 = new InferenceSession(float32, sessionOptions);

            var rows = new List<QuantizedBenchmarkRow>();
            foreach (double sparsity in options.Sparsities)
            {
                long kept = SparsifyOptions.KeptEntries(sparsity, k);
                string path = Write(folder, $"sparse_{kept}.onnx", o => SparseModel(o, weights, bits, blockSize, accuracyLevel, kept, float16Scales), options);
                using var sparse = new InferenceSession(path, sessionOptions);
                progress($"sparsity {sparsity:0.##}: {options.Iterations} interleaved runs of each op");
                var sessions = new[] { (sparse, copies), (dense4, copies), (dense0, copies), (dense32, floatCopies) };
                var times = TimeInterleaved(sessions, options, inputs);
                double sparseMs = times[0], l4 = times[1], l0 = times[2], f32 = times[3];
                double bytes = SparseBytes(inputs, options, kept, bits, blockSize, float16Scales ? 2 : 4);
                rows.Add(new QuantizedBenchmarkRow(sparsity, kept, sparseMs, l4, l0, f32, l4 / sparseMs, l0 / sparseMs, f32 / sparseMs, bytes, bytes / (sparseMs * 1e6)));
            }
            return new QuantizedBenchmarkReport(options, bits, blockSize, accuracyLevel, float16Scales, copies, machine, OrtEnv.Instance().GetVersionString(),
                OpBenchmark.LibraryDescription(), denseBytes, rows);
        }
        finally
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException) { }
        }
    }

    /// <summary>
    /// Random codes in the full range and scales in [0.005, 0.05), float16 numbers so that float16 and
    /// float32 scales hold the same weight: the speed does not depend on the values.
    /// </summary>
    private static NBitsBlocks RandomWeight(int bits, long k, long n, int blockSize, Random random)
    {
        long blocks = (k + blockSize - 1) / blockSize;
        var codes = new byte[n * blocks * blockSize];
        random.NextBytes(codes);
        int mask = (1 << bits) - 1;
        for (long i = 0; i < codes.LongLength; i++) codes[i] = (byte)(codes[i] & mask);
        var scales = Enumerable.Range(0, (int)(n * blocks)).Select(_ => (float)(Half)(0.005f + 0.045f * (float)random.NextDouble())).ToArray();
        return new NBitsBlocks(bits, k, n, blockSize, codes, scales, null);
    }

    private static string Write(string folder, string name, Func<OpBenchmarkOptions, Model> build, OpBenchmarkOptions options)
    {
        string path = Path.Combine(folder, name);
        using var model = build(options);
        ModelSaver.Save(model, path, new SaveOptions { ExternalData = ExternalDataMode.Always });
        return path;
    }

    private static (Graph Graph, GraphBuilder Builder, Value A) Start(OpBenchmarkOptions o)
    {
        var graph = new Graph("bench");
        var builder = new GraphBuilder(graph);
        return (graph, builder, builder.Input("A", DataType.Float, "m", (long)o.K));
    }

    private static Model Finish(Graph graph)
    {
        var model = new Model(graph) { IrVersion = 8, ProducerName = "sparseonnx bench-op" };
        model.OpsetImports.Set("", 17);
        model.OpsetImports.Set(MatMulNBitsFormat.Domain, 1);
        model.OpsetImports.Set(SparseOnnxOps.Domain, SparseOnnxOps.OpsetVersion);
        return model;
    }

    private static void Output(GraphBuilder builder, Node node, int c, OpBenchmarkOptions o)
    {
        node.Outputs[0].Name = $"Y_{c}";
        builder.Output(node.Outputs[0], DataType.Float, "m", (long)o.N);
    }

    private static Model MatMulNBitsModel(OpBenchmarkOptions o, NBitsBlocks[] weights, int bits, int blockSize, int level)
    {
        var (graph, builder, a) = Start(o);
        for (int c = 0; c < weights.Length; c++)
        {
            var w = weights[c];
            long blocks = w.BlocksPerColumn;
            var b = builder.Initializer(new Tensor($"B_{c}", DataType.UInt8, [w.N, blocks, blockSize * bits / 8], new InMemoryTensorData(MatMulNBitsFormat.PackB(w))));
            var s = builder.Initializer(Tensor.FromElements<float>($"S_{c}", DataType.Float, [w.N * blocks], w.Scales));
            var node = builder.Node(MatMulNBitsFormat.Domain, MatMulNBitsFormat.OpType, [a, b, s], 1, $"matmulnbits_{c}",
                OnnxAttribute.Int("K", w.K), OnnxAttribute.Int("N", w.N), OnnxAttribute.Int("bits", bits), OnnxAttribute.Int("block_size", blockSize),
                OnnxAttribute.Int("accuracy_level", level));
            Output(builder, node, c, o);
        }
        return Finish(graph);
    }

    private static Model SparseModel(OpBenchmarkOptions o, NBitsBlocks[] weights, int bits, int blockSize, int level, long kept, bool float16Scales)
    {
        var (graph, builder, a) = Start(o);
        for (int c = 0; c < weights.Length; c++)
        {
            var w = weights[c];
            long padded = QuantizedRowsFormat.PaddedColumns(w.N);
            var codes = builder.Initializer(new Tensor($"codes_{c}", DataType.UInt8, [w.K, QuantizedRowsFormat.RowBytes(bits, w.N)],
                new InMemoryTensorData(QuantizedRowsFormat.Codes(w))));
            var scales = builder.Initializer(new Tensor($"scales_{c}", float16Scales ? DataType.Float16 : DataType.Float, [w.BlocksPerColumn, padded],
                new InMemoryTensorData(float16Scales ? QuantizedRowsFormat.BlockHalves(w, w.Scales) : QuantizedRowsFormat.BlockFloats(w, w.Scales))));
            var node = builder.Node(SparseOnnxOps.Domain, TopKSparseMatMulNBitsOp.OpType, [a, codes, scales], 1, $"sparse_{c}",
                OnnxAttribute.Int("K", w.K), OnnxAttribute.Int("N", w.N), OnnxAttribute.Int("bits", bits), OnnxAttribute.Int("block_size", blockSize),
                OnnxAttribute.Int("accuracy_level", level), OnnxAttribute.Int("k", kept));
            Output(builder, node, c, o);
        }
        return Finish(graph);
    }

    private static Model Float32Model(OpBenchmarkOptions o, int copies)
    {
        var (graph, builder, a) = Start(o);
        for (int c = 0; c < copies; c++)
        {
            var weight = builder.Initializer(new Tensor($"W_{c}", DataType.Float, [o.K, o.N],
                new GeneratedTensorData(DataType.Float, (long)o.K * o.N, seed: (ulong)c + 1, scale: 0.05f)));
            Output(builder, builder.Node("", "MatMul", [a, weight], 1, $"matmul_{c}"), c, o);
        }
        return Finish(graph);
    }

    /// <summary>Bytes the sparse op needs per product: the codes of the rows some row of A kept, and every block's scales that has one.</summary>
    private static double SparseBytes(float[][] inputs, OpBenchmarkOptions o, long kept, int bits, int blockSize, int scaleBytes)
    {
        long padded = QuantizedRowsFormat.PaddedColumns(o.N), rowBytes = QuantizedRowsFormat.RowBytes(bits, o.N);
        return inputs.Average(a =>
        {
            var rows = new bool[o.K];
            for (int m = 0; m < o.M; m++)
            {
                var magnitudes = a.AsSpan(m * o.K, o.K).ToArray().Select(MathF.Abs).ToArray();
                float cut = magnitudes.OrderDescending().ElementAt((int)kept - 1);
                for (int i = 0; i < o.K; i++) rows[i] |= magnitudes[i] >= cut;
            }
            if (o.M > 16) return (double)o.K * rowBytes + (o.K + blockSize - 1) / blockSize * padded * (double)scaleBytes;  // prefill reads all
            long blocksRead = Enumerable.Range(0, (o.K + blockSize - 1) / blockSize).Count(b => rows.Skip(b * blockSize).Take(blockSize).Any(x => x));
            return rows.Count(x => x) * (double)rowBytes + blocksRead * padded * (double)scaleBytes;
        });
    }

    /// <summary>Per-op medians of each session (a run's time over its weight copies), interleaved by <see cref="InterleavedTimer"/>.</summary>
    private static double[] TimeInterleaved((InferenceSession Session, int Copies)[] sessions, OpBenchmarkOptions o, float[][] inputs)
    {
        var values = inputs.Select(a => OrtValue.CreateTensorValueFromMemory(a, [o.M, o.K])).ToArray();
        try
        {
            var times = InterleavedTimer.Time(sessions.Select(s => s.Session).ToArray(), values, o.Iterations);
            return times.Select((t, s) => InterleavedTimer.Median(t) / sessions[s].Copies).ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }
}
