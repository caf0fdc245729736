using Microsoft.ML.OnnxRuntime;
using SparseOnnx.Runtime.Inference;
using SparseOnnx.CustomOps;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using OrtFloat16 = Microsoft.ML.OnnxRuntime.Float16;
using OrtBFloat16 = Microsoft.ML.OnnxRuntime.BFloat16;

namespace SparseOnnx.Cli.Benchmarks;

/// <summary>How to run the TopKSparseMatMul benchmark.</summary>
public sealed record OpBenchmarkOptions
{
    public int M { get; init; } = 1;
    public int K { get; init; } = 4096;
    public int N { get; init; } = 11008;
    public IReadOnlyList<double> Sparsities { get; init; } = [0, 0.25, 0.5, 0.75, 0.9];
    public DataType Type { get; init; } = DataType.Float;
    public int Threads { get; init; } = 2;
    public bool ThresholdMode { get; init; }
    public int Iterations { get; init; } = 30;
    /// <summary>Distinct weight matrices every run cycles through; 0 picks enough to exceed twice the L3 cache.</summary>
    public int Copies { get; init; }
}

/// <summary>One sparsity level's result. Times are per op (one [M, K] × [K, N] product), medians over the iterations.</summary>
public sealed record OpBenchmarkRow(double Sparsity, long? K, float? Threshold, double DenseMs, double SparseMs,
    double Speedup, double Bound, double DenseGBps, double SparseGBps, double RowsReadFraction);

public sealed record OpBenchmarkReport(OpBenchmarkOptions Options, int Copies, MachineInfo Machine, string OrtVersion,
    string DenseBaseline, string OpLibrary, IReadOnlyList<OpBenchmarkRow> Results);

/// <summary>
/// The dense MatMul and TopKSparseMatMul on the same weights, both run through ONNX Runtime in one process
/// with the same thread count, interleaved, medians reported.
///
/// Each model holds <see cref="OpBenchmarkOptions.Copies"/> distinct weight matrices, all multiplied by the
/// same input A in one run, so every run reads every copy once, as one decode step through a whole model
/// reads each layer's weights once. With copies totalling more than twice the L3 cache, the weights come from
/// DRAM, not from a cache that one repeated matrix would fit in. The weights are written once; the sparse
/// model of each sparsity level references the dense model's data file.
/// </summary>
public static class OpBenchmark
{
    public static OpBenchmarkReport Run(OpBenchmarkOptions options, Action<string>? progress = null)
    {
        progress ??= _ => { };
        var machine = MachineInfo.Read();
        int elementSize = options.Type == DataType.Float ? 4 : 2;
        long matrixBytes = (long)options.K * options.N * elementSize;
        int copies = options.Copies > 0 ? options.Copies
            : (int)Math.Clamp((2 * Math.Max(machine.L3CacheBytes, 64L << 20) + matrixBytes - 1) / matrixBytes, 2, 64);

        var random = new Random(1234);
        var inputs = Enumerable.Range(0, 8).Select(_ => Normal(random, options.M * options.K)).ToArray();
        var levels = options.Sparsities.Select(s => Level(s, options, inputs)).ToList();

        string folder = Path.Combine(Path.GetTempPath(), $"sparseonnx-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            progress($"writing {copies} weight matrices of {matrixBytes >> 20} MiB ({copies * matrixBytes >> 20} MiB) to {folder}");
            string densePath = Path.Combine(folder, "dense.onnx");
            WriteDenseModel(densePath, options, copies);

            using var sessionOptions = SharedThreadPoolSessionOptions(options.Threads);
            bool hasDense = options.Type != DataType.BFloat16;
            progress("loading the dense model in ONNX Runtime");
            using var dense = hasDense ? new InferenceSession(densePath, sessionOptions) : null;

            var rows = new List<OpBenchmarkRow>();
            for (int l = 0; l < levels.Count; l++)
            {
                var level = levels[l];
                string sparsePath = Path.Combine(folder, $"sparse_{l}.onnx");
                WriteSparseModel(densePath, sparsePath, options, copies, level);
                using var sparse = new InferenceSession(sparsePath, sessionOptions);
                progress($"sparsity {level.Sparsity:0.##}: {options.Iterations} interleaved runs of each");
                var (denseTimes, sparseTimes) = TimeInterleaved(dense, sparse, options, inputs);
                double denseMs = Median(denseTimes) / copies, sparseMs = Median(sparseTimes) / copies;
                double sparseBytes = matrixBytes * level.RowsReadFraction;
                rows.Add(new OpBenchmarkRow(level.Sparsity, level.K, level.Threshold, denseMs, sparseMs, denseMs / sparseMs,
                    1 / (1 - level.Sparsity), matrixBytes / (denseMs * 1e6), sparseBytes / (sparseMs * 1e6), level.RowsReadFraction));
            }
            return new OpBenchmarkReport(options, copies, machine, OrtEnv.Instance().GetVersionString(),
                options.Type == DataType.BFloat16 ? "none (ONNX Runtime has no bfloat16 MatMul on CPU)" : $"ONNX Runtime MatMul ({options.Type.DisplayName()})",
                LibraryDescription(), rows);
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
    /// Session options for both sessions on one process-wide ONNX Runtime thread pool of <paramref name="threads"/>
    /// threads, as a host serving one model has. With a pool per session, the idle pool's spinning workers
    /// would compete with the running one for the same cores and distort both timings.
    /// </summary>
    internal static SessionOptions SharedThreadPoolSessionOptions(int threads)
    {
        var options = new SessionOptions
        {
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        if (SharedThreadPool.TryUse(threads))
        {
            options.DisablePerSessionThreads();
        }
        else
        {
            // The process-wide environment exists without a pool of this size: per-session pools that do not spin.
            options.IntraOpNumThreads = threads;
            options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        }
        options.RegisterSparseOnnxOps();
        return options;
    }

    private sealed record LevelSpec(double Sparsity, long? K, float? Threshold, double RowsReadFraction);

    /// <summary>k (or the threshold giving that sparsity on these inputs), and the fraction of B's rows the op reads.</summary>
    private static LevelSpec Level(double sparsity, OpBenchmarkOptions o, float[][] inputs)
    {
        if (sparsity is < 0 or >= 1) throw new ArgumentException($"Sparsity must be in [0, 1), got {sparsity}.");
        long k = Math.Max(1, (long)Math.Round((1 - sparsity) * o.K));
        float? threshold = null;
        if (o.ThresholdMode)
        {
            var magnitudes = inputs.SelectMany(a => a).Select(MathF.Abs).Order().ToArray();
            threshold = sparsity == 0 ? 0f : magnitudes[(int)Math.Min(magnitudes.Length - 1, sparsity * magnitudes.Length)];
        }
        // Rows of B read per op: the union of what the M rows keep, unless the kernel takes the dense path
        // (many rows, or selections covering most of K), which reads all of B.
        double fraction = inputs.Average(a =>
        {
            var union = new bool[o.K];
            for (int m = 0; m < o.M; m++)
            {
                var row = a.AsSpan(m * o.K, o.K);
                float cut = threshold ?? KthLargestMagnitude(row, k);
                for (int i = 0; i < o.K; i++) union[i] |= threshold is null ? MathF.Abs(row[i]) >= cut : MathF.Abs(row[i]) > cut;
            }
            double f = union.Count(x => x) / (double)o.K;
            bool dense = (!o.ThresholdMode && k == o.K) || o.M > 16 || f > 0.85;
            return dense && o.Type != DataType.BFloat16 ? 1.0 : f;
        });
        return new LevelSpec(sparsity, o.ThresholdMode ? null : k, threshold, fraction);
    }

    private static float KthLargestMagnitude(ReadOnlySpan<float> row, long k)
    {
        var magnitudes = row.ToArray().Select(MathF.Abs).OrderDescending().ToArray();
        return magnitudes[k - 1];
    }

    /// <summary>
    /// The weights, written once (external data), and a group of MatMul nodes reading them: Y_c = A · W_c.
    /// For bfloat16, which ORT cannot multiply on CPU, the model holds only the weights and is never run.
    /// </summary>
    private static void WriteDenseModel(string path, OpBenchmarkOptions o, int copies)
    {
        var graph = new Graph("dense");
        var builder = new GraphBuilder(graph);
        var a = builder.Input("A", o.Type, "m", (long)o.K);
        for (int c = 0; c < copies; c++)
        {
            var weight = builder.Initializer(new Tensor($"W_{c}", o.Type, [o.K, o.N],
                new GeneratedTensorData(o.Type, (long)o.K * o.N, seed: (ulong)c + 1, scale: 0.05f)));
            if (o.Type == DataType.BFloat16) continue;
            var node = builder.Node("", "MatMul", [a, weight], 1, $"matmul_{c}");
            node.Outputs[0].Name = $"Y_{c}";
            builder.Output(node.Outputs[0], o.Type, "m", (long)o.N);
        }
        using var model = new Model(graph) { IrVersion = 8, ProducerName = "sparseonnx bench-op" };
        model.OpsetImports.Set("", 17);
        ModelSaver.Save(model, path, new SaveOptions { ExternalData = ExternalDataMode.Always });
    }

    /// <summary>The same weights (referenced in the dense model's data file, not copied) under TopKSparseMatMul nodes.</summary>
    private static void WriteSparseModel(string densePath, string path, OpBenchmarkOptions o, int copies, LevelSpec level)
    {
        using var weights = ModelLoader.Load(densePath);
        var graph = new Graph("sparse");
        var builder = new GraphBuilder(graph);
        var a = builder.Input("A", o.Type, "m", (long)o.K);
        for (int c = 0; c < copies; c++)
        {
            var tensor = weights.Graph.Initializers.Find($"W_{c}")!.ConstValue!;
            var weight = builder.Initializer(new Tensor($"W_{c}", tensor.DataType, tensor.Dims, tensor.Data));
            var attribute = level.K is { } k ? OnnxAttribute.Int("k", k) : OnnxAttribute.Float("threshold", level.Threshold!.Value);
            var node = builder.Node(SparseOnnxOps.Domain, SparseOnnxOps.TopKSparseMatMul, [a, weight], 1, $"sparse_{c}", attribute);
            node.Outputs[0].Name = $"Y_{c}";
            builder.Output(node.Outputs[0], o.Type, "m", (long)o.N);
        }
        using var model = new Model(graph) { IrVersion = 8, ProducerName = "sparseonnx bench-op" };
        model.OpsetImports.Set("", 17);
        model.OpsetImports.Set(SparseOnnxOps.Domain, SparseOnnxOps.OpsetVersion);
        var result = ModelSaver.Save(model, path, new SaveOptions { ExternalData = ExternalDataMode.Always, ReuseExternalDataInOutputFolder = true });
        if (result.ReusedTensors != copies) throw new InvalidOperationException("The sparse benchmark model did not reuse the weights file.");
    }

    private static (List<double> Dense, List<double> Sparse) TimeInterleaved(InferenceSession? dense, InferenceSession sparse,
        OpBenchmarkOptions o, float[][] inputs)
    {
        var values = inputs.Select(a => Input(o.Type, a, [o.M, o.K])).ToArray();
        try
        {
            if (dense is null) return ([double.NaN], InterleavedTimer.Time([sparse], values, o.Iterations)[0]);
            var times = InterleavedTimer.Time([dense, sparse], values, o.Iterations);
            return (times[0], times[1]);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static OrtValue Input(DataType type, float[] values, long[] shape) => type switch
    {
        DataType.Float16 => OrtValue.CreateTensorValueFromMemory(values.Select(v => (OrtFloat16)v).ToArray(), shape),
        DataType.BFloat16 => OrtValue.CreateTensorValueFromMemory(values.Select(v => (OrtBFloat16)v).ToArray(), shape),
        _ => OrtValue.CreateTensorValueFromMemory(values, shape),
    };

    internal static float[] Normal(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();

    /// <summary>Which op library file ran (path, size, modification time), so a result can be traced to a build.</summary>
    internal static string LibraryDescription()
    {
        var file = new FileInfo(SparseOnnxOps.LibraryPath);
        return $"{file.FullName} ({file.Length} bytes, {file.LastWriteTimeUtc:yyyy-MM-dd HH:mm:ss} UTC)";
    }

    private static double Median(List<double> values) => InterleavedTimer.Median(values);
}
