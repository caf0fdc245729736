using SparseOnnx.Calibration;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Cli.Benchmarks;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Benchmarking;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Cli.Reporting;

/// <summary>Calibration in a sweep: the data and the options every level is calibrated with (the level's sparsity set per level).</summary>
internal sealed record SweepCalibration(CalibrationSet Data, CalibrationOptions Template);

/// <summary>A projection shape of the kernel table: [1, K] × [K, N] as one decode token multiplies it.</summary>
internal sealed record KernelShape(string Projection, int K, int N);

/// <summary>What a sparsity sweep does.</summary>
internal sealed record SweepOptions
{
    public required IReadOnlyList<double> Sparsities { get; init; }
    public required PerplexityOptions Perplexity { get; init; }
    public required DecodeBenchmarkOptions Benchmark { get; init; }
    public required CausalLmOptions Runtime { get; init; }
    public IReadOnlySet<ProjectionKind>? Kinds { get; init; }
    public bool SpontaneousNeurons { get; init; } = true;
    /// <summary>Keep the sparsified models in the output folder (they are as large as the input).</summary>
    public bool KeepModels { get; init; }
    /// <summary>When set, every level is also calibrated (thresholds, allocation, spontaneous neurons) on this data.</summary>
    public SweepCalibration? Calibration { get; init; }
    /// <summary>Shapes the kernel is benchmarked at against ONNX Runtime's MatMul (none: no kernel table).</summary>
    public IReadOnlyList<KernelShape> KernelShapes { get; init; } = [];
    /// <summary>How the evaluation text was read, for the report.</summary>
    public string TextReading { get; init; } = "";
}

/// <summary>How a row's model was made.</summary>
internal enum SweepVariant
{
    Dense,
    /// <summary>Top-k at the level, zero spontaneous vectors: no calibration.</summary>
    TopK,
    /// <summary>Calibrated on text: thresholds, allocation, compensation, trained spontaneous neurons.</summary>
    Calibrated,
}

/// <summary>One model of the sweep: the dense input (no sparsity) or a sparsified copy.</summary>
internal sealed record SweepRow(SweepVariant Variant, double? Sparsity, string ModelPath, int RewrittenProjections, PerplexityResult Perplexity,
    ModelThroughput Throughput, CalibrationResult? Calibration = null);

/// <summary>One shape's kernel benchmark.</summary>
internal sealed record KernelRow(KernelShape Shape, OpBenchmarkReport Report);

/// <summary>The dense row first, then one per sparsity (top-k) and, when calibrating, one per sparsity (calibrated).</summary>
internal sealed record SweepResult(string ModelPath, int StreamTokens, SweepOptions Options, IReadOnlyList<SweepRow> Rows,
    IReadOnlyList<KernelRow> Kernels, TimeSpan Elapsed, long ModelBytes);

/// <summary>
/// Sparsifies a model at several levels (top-k mode, the given kinds) and, with calibration data, calibrates it at
/// the same levels; evaluates the perplexity of the dense model and of every sparsified one on the same token
/// stream; benchmarks them all in one interleaved run with the dense model as baseline; and times the kernel at
/// the given projection shapes against ONNX Runtime's MatMul.
/// </summary>
internal static class SparsitySweep
{
    public static SweepResult Run(string modelPath, int[] stream, string outputFolder, SweepOptions options, ProgressDisplay.IBar bar)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string modelsFolder = Path.Combine(outputFolder, "models");
        // Unless they are kept, the models this sweep writes are removed also when the process is interrupted.
        using var modelsScratch = options.KeepModels || Directory.Exists(modelsFolder) ? null : ScratchPaths.Track(modelsFolder);
        var variants = new List<(SweepVariant Variant, double? Sparsity, string Path, int Rewritten, CalibrationResult? Calibration)> { (SweepVariant.Dense, null, modelPath, 0, null) };
        int levels = options.Sparsities.Count;
        int calibrations = options.Calibration is null ? 0 : levels;
        // Progress units: each rewrite 1, each calibration 8 (it runs the model many times), each evaluation 1, the benchmark 1, each kernel shape 1.
        double steps = levels + 8 * calibrations + (1 + levels + calibrations) + 1 + options.KernelShapes.Count, step = 0;
        // Loaded once: every variant is rewritten from a clone (which shares the weights) and calibration leaves it as it was.
        using var source = ModelLoader.Load(modelPath);
        try
        {
            foreach (double sparsity in options.Sparsities)
            {
                bar.Update(step++, steps, $"Sparsifying at {100 * sparsity:0.#}% (top-k)");
                variants.Add(Rewrite(source, modelPath, modelsFolder, $"topk-{sparsity:0.00}", new SparsifyOptions
                {
                    Sparsity = sparsity,
                    Kinds = options.Kinds ?? SparsifyOptions.DefaultKinds,
                    SpontaneousNeurons = options.SpontaneousNeurons,
                }, SweepVariant.TopK, sparsity, null));
            }
            if (options.Calibration is { } calibration)
                foreach (double sparsity in options.Sparsities)
                {
                    double at = step;
                    string label = $"Calibrating at {100 * sparsity:0.#}%";
                    var calibrationOptions = calibration.Template with { Sparsity = sparsity, Kinds = options.Kinds ?? SparsifyOptions.DefaultKinds };
                    string work = Path.Combine(outputFolder, $".calibration-{Environment.ProcessId}");
                    var result = Calibrator.Run(source, calibration.Data, calibrationOptions, work,
                        new ProgressDisplay.Immediate<CalibrationProgress>(p => bar.Update(at + 8 * p.Done / Math.Max(1, p.Total), steps, $"{label}: {p.Stage}")));
                    step += 8;
                    variants.Add(Rewrite(source, modelPath, modelsFolder, $"calibrated-{sparsity:0.00}", new SparsifyOptions
                    {
                        Plan = result.Plan,
                        Mode = calibrationOptions.Mode,
                        Kinds = options.Kinds ?? SparsifyOptions.DefaultKinds,
                        SpontaneousNeurons = true,
                    }, SweepVariant.Calibrated, sparsity, result));
                }

            var perplexities = new List<PerplexityResult>();
            var models = new List<CausalLm>();
            IReadOnlyList<ModelThroughput> throughput;
            try
            {
                foreach (var variant in variants)
                {
                    var lm = CausalLm.Open(variant.Path, options.Runtime);
                    models.Add(lm);
                    string label = variant.Variant == SweepVariant.Dense ? "dense" : Path.GetFileName(Path.GetDirectoryName(variant.Path))!;
                    double at = step++;
                    perplexities.Add(PerplexityEvaluator.Evaluate(lm, stream, options.Perplexity,
                        new ProgressDisplay.Immediate<PerplexityProgress>(p => bar.Update(at + (double)p.Scored / p.Total, steps, $"Perplexity: {label}"))));
                }
                double benchAt = step++;
                throughput = DecodeBenchmark.RunAll(models, options.Benchmark,
                    new ProgressDisplay.Immediate<BenchmarkProgress>(p => bar.Update(benchAt + (double)p.Done / p.Total, steps, "Decode benchmark (interleaved)")));
            }
            finally
            {
                foreach (var lm in models) lm.Dispose();
            }
            var rows = variants.Select((v, i) => new SweepRow(v.Variant, v.Sparsity, v.Path, v.Rewritten, perplexities[i], throughput[i], v.Calibration)).ToList();

            var kernels = new List<KernelRow>();
            foreach (var shape in options.KernelShapes)
            {
                bar.Update(step++, steps, $"Kernel at {shape.Projection} [{shape.K}, {shape.N}]");
                kernels.Add(new KernelRow(shape, OpBenchmark.Run(new OpBenchmarkOptions
                {
                    K = shape.K, N = shape.N, Sparsities = [0, .. options.Sparsities.Where(s => s > 0)], Threads = options.Runtime.Threads,
                })));
            }
            return new SweepResult(modelPath, stream.Length, options, rows, kernels, clock.Elapsed, ModelBytes(modelPath));
        }
        finally
        {
            // Only what this sweep wrote is removed; a folder the user had there is left alone.
            if (!options.KeepModels)
            {
                foreach (var variant in variants.Skip(1)) Directory.Delete(Path.GetDirectoryName(variant.Path)!, recursive: true);
                if (Directory.Exists(modelsFolder) && !Directory.EnumerateFileSystemEntries(modelsFolder).Any()) Directory.Delete(modelsFolder);
            }
        }
    }

    private static (SweepVariant, double?, string, int, CalibrationResult?) Rewrite(Model source, string modelPath, string modelsFolder, string name,
        SparsifyOptions sparsify, SweepVariant variant, double sparsity, CalibrationResult? calibration)
    {
        string target = Path.Combine(modelsFolder, name, "model.onnx");
        if (Directory.Exists(Path.GetDirectoryName(target)))
            throw new ArgumentException($"'{Path.GetDirectoryName(target)}' already exists; choose another output folder or remove it.");
        using var model = source.Clone();
        var report = new SparsifyPass(sparsify).Run(model).Report;
        if (report.Rewritten.Count == 0)
            throw new ArgumentException($"Nothing in '{modelPath}' could be sparsified with the chosen kinds; see 'sparseonnx sparsify' for the reasons.");
        ModelSaver.Save(model, target);
        return (variant, sparsity, target, report.Rewritten.Count, calibration);
    }

    /// <summary>The model's file and its external data files: the bytes one dense decode step reads.</summary>
    private static long ModelBytes(string modelPath)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        string stem = Path.GetFileName(modelPath);
        return Directory.EnumerateFiles(folder).Where(f => Path.GetFileName(f).StartsWith(stem, StringComparison.Ordinal)).Sum(f => new FileInfo(f).Length);
    }
}
