using SparseOnnx.GraphRewriter.Analysis.Projections;
using System.Diagnostics;
using System.Globalization;
using SparseOnnx.Calibration.Data;
using SparseOnnx.GraphRewriter;
using SparseOnnx.GraphRewriter.Inspection;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Pruning;
using SparseOnnx.Pruning.Capture;
using SparseOnnx.Pruning.Decomposition;
using SparseOnnx.Pruning.Importance;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning;

/// <summary>The model cannot be pruned; the message says why.</summary>
public sealed class PruningModelException(string problem) : SparseOnnxException($"Cannot prune this model: {problem}.");

/// <summary>Progress of a pruning run.</summary>
/// <param name="Stage">What is running.</param>
/// <param name="Done">Units done.</param>
/// <param name="Total">Units in the stage.</param>
public readonly record struct PruneProgress(string Stage, int Done, int Total);

/// <summary>
/// The pruning pass: captures the MLP activations over calibration windows (<see cref="MlpActivations"/>),
/// scores every neuron of the pruned layers (<see cref="PruneMethod"/>), keeps the top ones
/// (<see cref="KeySelection"/>), and slices the rest out of the model (<see cref="MlpNeuronPruneRule"/>),
/// with the removed neurons' mean contribution added to down's output unless compensation is off.
/// Memory: the model's weights stay memory-mapped; captures hold one batch; ICA holds one layer's sample
/// (sampled tokens × neurons floats) and a few components × neurons matrices.
/// </summary>
public static class Pruner
{
    /// <summary>Model metadata key holding the pruning summary.</summary>
    public const string MetadataKey = "sparseonnx.prune";

    /// <summary>
    /// Prunes <paramref name="modelPath"/> (never modified) with statistics of <paramref name="data"/>'s calibration
    /// windows. The probe model and the activation samples go to <paramref name="workFolder"/> (created, and
    /// deleted afterwards when this call created it).
    /// </summary>
    public static PruneResult Run(string modelPath, CalibrationSet data, PruneOptions options, string workFolder, IProgress<PruneProgress>? progress = null)
    {
        options.Validate();
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"The model '{modelPath}' does not exist.", modelPath);
        // Deleted afterwards when this call created it, and on Ctrl-C or SIGTERM through ScratchPaths.
        using var scratch = ScratchFolder.Claim(workFolder);
        return Prune(modelPath, data, options, workFolder, progress);
    }

    private static PruneResult Prune(string modelPath, CalibrationSet data, PruneOptions options, string workFolder, IProgress<PruneProgress>? progress)
    {
        var clock = Stopwatch.StartNew();
        var model = ModelLoader.Load(modelPath);
        try
        {
            // Slicing input channels out of down_proj breaks its blocks along K, so a quantized MLP would have
            // to be requantized: prune the float model, then quantize the result.
            if (ProjectionClassifier.Classify(model).FirstOrDefault(p => p.Quantized is not null && p.Kind is ProjectionKind.Gate or ProjectionKind.Up
                    or ProjectionKind.Down or ProjectionKind.GateUp) is { } quantized)
                throw new PruningModelException($"its MLP projections are quantized ({quantized.DisplayName} is MatMulNBits); prune the float model, " +
                    "then quantize the pruned one (`sparseonnx quantize`)");
            var (blocks, keepWhole) = PrunableBlocks(model, options);
            long parametersBefore = ModelInspector.ParameterCount(model);

            // Capture on a second copy: the probe instruments its model in place.
            var captureClock = Stopwatch.StartNew();
            bool sample = options.Method == PruneMethod.Ica;
            IReadOnlyList<LayerActivations> activations;
            using (var probe = ModelLoader.Load(modelPath))
                activations = MlpActivations.Capture(probe, data.Calibration, sample ? options.SampleTokens : 0, data.Calibration.Count,
                    workFolder, options.Threads, new Progress(progress, "Capturing MLP activations"));
            captureClock.Stop();
            var byDown = activations.ToDictionary(a => a.DownNode);
            var missing = blocks.FirstOrDefault(b => !byDown.ContainsKey(b.Name));
            if (missing is not null) throw new PruningModelException($"the capture probe did not expose the input of {missing.Name}");

            var scoreClock = Stopwatch.StartNew();
            var scores = new double[]?[blocks.Count];
            var networks = new LayerNetworks?[blocks.Count];
            using (var products = sample ? new MatrixProducts(options.Threads) : null)
            {
                var pruned = Enumerable.Range(0, blocks.Count).Where(i => !keepWhole.Contains(blocks[i].Layer)).ToList();
                for (int n = 0; n < pruned.Count; n++)
                {
                    int i = pruned[n];
                    progress?.Report(new PruneProgress(sample ? "Decomposing into functional networks" : "Scoring neurons", n, pruned.Count));
                    var block = blocks[i];
                    scores[i] = NeuronScores.Of(block, byDown[block.Name], options, products, out networks[i]);
                }
                progress?.Report(new PruneProgress(sample ? "Decomposing into functional networks" : "Scoring neurons", pruned.Count, pruned.Count));
            }
            scoreClock.Stop();

            var selection = KeySelection.Select(scores, blocks.Select(b => (int)b.Width).ToList(), options.Ratio, options.EffectiveAllocation, options.MinKeptFraction);
            string source = string.Create(CultureInfo.InvariantCulture,
                $"{options.Method.ToString().ToLowerInvariant()}{(options.Method == PruneMethod.Ica ? $" score={options.IcaScore.ToString().ToLowerInvariant()}" : "")} ratio={options.Ratio} allocation={options.EffectiveAllocation.ToString().ToLowerInvariant()} calibration={data.Source}");
            var results = new List<LayerPruning>();
            for (int i = 0; i < blocks.Count; i++)
            {
                var block = blocks[i];
                var kept = selection.Kept[i];
                bool whole = scores[i] is null;
                if (whole || kept.Length == block.Width)
                {
                    results.Add(new LayerPruning(block.Layer, block.Name, (int)block.Width, kept.Length, whole, false, networks[i]));
                    continue;
                }
                float[]? compensation = null;
                if (options.Compensation)
                {
                    var means = byDown[block.Name].Means.ToArray();
                    foreach (int j in kept) means[j] = 0; // only the removed neurons' contribution
                    compensation = MlpBlockWeights.DownRowCombination(block, means);
                }
                MlpNeuronPruneRule.Apply(model, block, new NeuronSelection(kept, compensation, source));
                results.Add(new LayerPruning(block.Layer, block.Name, (int)block.Width, kept.Length, false, compensation is not null, networks[i]));
            }
            model.Graph.SortTopologically();
            var result = new PruneResult(model, options, results, selection.Threshold, parametersBefore, ModelInspector.ParameterCount(model),
                activations.Count > 0 ? activations[0].Tokens : 0, activations.Count > 0 ? activations[0].SampledTokens : 0,
                captureClock.Elapsed, scoreClock.Elapsed, clock.Elapsed);
            model.MetadataProps.RemoveAll(p => p.Key == MetadataKey);
            model.MetadataProps.Add(new(MetadataKey, string.Create(CultureInfo.InvariantCulture,
                $"{source}; MLP neurons {result.NeuronsAfter}/{result.NeuronsBefore}; compensation {(options.Compensation ? "on" : "off")}")));
            return result;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The model's MLP blocks, checked for pruning, and the layers kept whole.</summary>
    private static (IReadOnlyList<MlpBlock> Blocks, HashSet<int> KeepWhole) PrunableBlocks(Model model, PruneOptions options)
    {
        if (GraphRewriter.Sparsify.SparsifyPass.CountSparseNodes(model) > 0)
            throw new PruningModelException("it is already sparsified (it has TopKSparseMatMul nodes); prune the dense model, then sparsify the pruned one");
        var (blocks, problems) = MlpBlocks.Find(model);
        if (blocks.Count == 0)
            throw new PruningModelException("it has no MLP block (gate/up feeding down) in its main graph" + (problems.Count > 0 ? $": {problems[0]}" :
                " (a merged decoder keeps its layers inside an If: prune the decoder without it, Optimum's decoder_model.onnx)"));
        if (problems.Count > 0) throw new PruningModelException(problems[0]);
        foreach (var block in blocks)
            if (MlpNeuronPruneRule.Check(block) is { } problem) throw new PruningModelException($"{block.Name}: {problem}");
        var layers = blocks.Select(b => b.Layer).ToList();
        if (options.KeepLayers.FirstOrDefault(l => !layers.Contains(l), -1) is var unknown and >= 0)
            throw new ArgumentException($"--keep-layers names layer {unknown}, but the model's MLP layers are {string.Join(", ", layers)}.");
        var keepWhole = options.KeepLayers.ToHashSet();
        if (options.KeepFirstLayer) keepWhole.Add(layers[0]);
        if (options.KeepLastLayer) keepWhole.Add(layers[^1]);
        if (blocks.All(b => keepWhole.Contains(b.Layer))) throw new ArgumentException("Every MLP layer is kept whole; nothing would be pruned.");
        return (blocks, keepWhole);
    }

    private sealed class Progress(IProgress<PruneProgress>? target, string stage) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => target?.Report(new PruneProgress(stage, value.Done, value.Total));
    }
}
