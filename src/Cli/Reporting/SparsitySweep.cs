using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Benchmarking;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Cli.Reporting;

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
}

/// <summary>One model of the sweep: the dense input (no sparsity) or a sparsified copy.</summary>
internal sealed record SweepRow(double? Sparsity, string ModelPath, int RewrittenProjections, PerplexityResult Perplexity, ModelThroughput Throughput);

/// <summary>The dense row first, then one per sparsity in the order given.</summary>
internal sealed record SweepResult(string ModelPath, int StreamTokens, SweepOptions Options, IReadOnlyList<SweepRow> Rows, TimeSpan Elapsed);

/// <summary>
/// Sparsifies a model at several levels (top-k mode, the given kinds), evaluates the perplexity of the
/// dense model and of each level on the same token stream, then benchmarks them all in one interleaved run
/// with the dense model as baseline.
/// </summary>
internal static class SparsitySweep
{
    public static SweepResult Run(string modelPath, int[] stream, string outputFolder, SweepOptions options, ProgressDisplay.IBar bar)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string modelsFolder = Path.Combine(outputFolder, "models");
        var paths = new List<string> { modelPath };
        var rewritten = new List<int> { 0 };
        int steps = options.Sparsities.Count * 2 + 1 + 1, step = 0;
        try
        {
            foreach (double sparsity in options.Sparsities)
            {
                bar.Update(step++, steps, $"Sparsifying at {sparsity:P0}");
                string target = Path.Combine(modelsFolder, $"sparsity-{sparsity:0.00}", "model.onnx");
                if (Directory.Exists(Path.GetDirectoryName(target)))
                    throw new ArgumentException($"'{Path.GetDirectoryName(target)}' already exists; choose another output folder or remove it.");
                using var model = ModelLoader.Load(modelPath);
                var pass = new SparsifyPass(new SparsifyOptions
                {
                    Sparsity = sparsity,
                    Kinds = options.Kinds ?? SparsifyOptions.DefaultKinds,
                    SpontaneousNeurons = options.SpontaneousNeurons,
                });
                pass.Run(model);
                if (pass.Report!.Rewritten.Count == 0)
                    throw new ArgumentException($"Nothing in '{modelPath}' could be sparsified with the chosen kinds; see 'sparseonnx sparsify' for the reasons.");
                paths.Add(target);
                ModelSaver.Save(model, target);
                rewritten.Add(pass.Report.Rewritten.Count);
            }

            var perplexities = new List<PerplexityResult>();
            var models = new List<CausalLm>();
            try
            {
                foreach (string path in paths)
                {
                    var lm = CausalLm.Open(path, options.Runtime);
                    models.Add(lm);
                    string label = path == modelPath ? "dense" : Path.GetFileName(Path.GetDirectoryName(path))!;
                    int at = step++;
                    perplexities.Add(PerplexityEvaluator.Evaluate(lm, stream, options.Perplexity,
                        new ProgressDisplay.Immediate<PerplexityProgress>(p => bar.Update(at + (double)p.Scored / p.Total, steps, $"Perplexity: {label}"))));
                }
                int benchAt = step;
                var throughput = DecodeBenchmark.RunAll(models, options.Benchmark,
                    new ProgressDisplay.Immediate<BenchmarkProgress>(p => bar.Update(benchAt + (double)p.Done / p.Total, steps, "Decode benchmark (interleaved)")));
                var rows = paths.Select((path, i) => new SweepRow(i == 0 ? null : options.Sparsities[i - 1], path, rewritten[i], perplexities[i], throughput[i])).ToList();
                return new SweepResult(modelPath, stream.Length, options, rows, clock.Elapsed);
            }
            finally
            {
                foreach (var lm in models) lm.Dispose();
            }
        }
        finally
        {
            // Only what this sweep wrote is removed; a folder the user had there is left alone.
            if (!options.KeepModels)
            {
                foreach (string path in paths.Skip(1)) Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
                if (Directory.Exists(modelsFolder) && !Directory.EnumerateFileSystemEntries(modelsFolder).Any()) Directory.Delete(modelsFolder);
            }
        }
    }
}
