using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Calibration.Sequential;
using SparseOnnx.Calibration.Training;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Synthesis;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Calibration.Tests;

/// <summary>
/// Sequential calibration (<see cref="SequentialCalibrator"/>) on the reference model: each block cut out and
/// calibrated alone, its outputs carried on as the next block's inputs, the head scoring the held-out streams.
/// </summary>
public sealed class SequentialCalibratorTests : IDisposable
{
    private static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");
    private static string ModelPath => Path.Combine(Folder, "model.onnx");
    private readonly string _folder = Directory.CreateTempSubdirectory("sparseonnx-sequential-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly Lazy<CalibrationSet> Data = new(() => CalibrationSet.FromTextFile(Path.Combine(Folder, "data", "valid.txt"),
        TextTokenizer.Load(Path.Combine(Folder, "tokenizer.model")), new CalibrationSetOptions { SequenceLength = 64, Samples = 12, ValidationSamples = 6 }, TextReading.PerLine));

    private CalibrationResult Calibrate(CalibrationOptions options, string name, IProgress<CalibrationProgress>? progress = null) =>
        Calibrator.Run(ModelPath, Data.Value, options with { Threads = 1, GreedySamples = 3, GreedyStep = 0.1 }, Path.Combine(_folder, name), progress);

    [Fact]
    public void EveryBlockIsCalibratedAlone_AndTheThresholdsDropTheTargetOnHeldOutText()
    {
        var stages = new List<string>();
        var result = Calibrate(new CalibrationOptions { Sparsity = 0.5, Mode = SparsityMode.Threshold, Allocation = AllocationMethod.Uniform, Compensation = CompensationMode.Off }, "uniform",
            new ImmediateProgress<CalibrationProgress>(p => stages.Add(p.Stage)));

        Assert.Equal(CalibrationMethod.Sequential, result.Method);
        Assert.InRange(result.MeasuredSparsity, 0.47, 0.53);
        Assert.All(result.Groups, g => Assert.InRange(g.MeasuredSparsity, 0.4, 0.6));
        Assert.All(result.Plan.Projections, p => Assert.True(p.Threshold > 0 && p.K is null && p.Spontaneous is null));
        Assert.Equal(42, result.Plan.Projections.Count);
        // Without vectors the calibrated stream is the uniform one, pass for pass.
        Assert.Equal(result.Validation.Uniform, result.Validation.Final);
        Assert.True(result.Validation.Uniform > result.Validation.Dense, "sparsifying half the inputs should cost some loss");
        for (int b = 1; b <= 6; b++)
        {
            Assert.Contains(result.Stages, s => s.Name == $"block {b} of 6 (layer {b - 1})");
            Assert.Contains(stages, s => s.StartsWith($"block {b} of 6: thresholds, sparse upstream", StringComparison.Ordinal));
        }
        Assert.Contains(result.Stages, s => s.Name == "blocks: propagation");
        Assert.Contains(result.Stages, s => s.Name == "held-out losses");
        Assert.Contains(stages, s => s.StartsWith("block 2 of 6 (about ", StringComparison.Ordinal));
        Assert.False(Directory.Exists(Path.Combine(_folder, "uniform")), "the work folder is deleted");
    }

    /// <summary>
    /// Vectors are kept only when they lower the held-out loss by at least two standard errors of the paired
    /// per-window difference: a steady gain passes, the same mean gain drowned in noise does not, a loss never does.
    /// </summary>
    [Fact]
    public void ClearlyLower_AsksForTwoStandardErrorsOfThePairedDifference()
    {
        var baseline = Enumerable.Range(0, 16).Select(i => 4.6 + 0.05 * Math.Sin(i)).ToArray();
        var steady = baseline.Select((b, i) => b - 0.004 + 0.001 * (i % 2)).ToArray();
        var noisy = baseline.Select((b, i) => b - 0.0005 + 0.01 * (i % 2 == 0 ? 1 : -1)).ToArray();
        var worse = baseline.Select(b => b + 0.004).ToArray();
        Assert.True(SequentialCalibrator.ClearlyLower(steady, baseline));
        Assert.True(noisy.Average() < baseline.Average());
        Assert.False(SequentialCalibrator.ClearlyLower(noisy, baseline));
        Assert.False(SequentialCalibrator.ClearlyLower(worse, baseline));
        Assert.Throws<ArgumentException>(() => SequentialCalibrator.ClearlyLower(steady, baseline[..4]));
    }

    /// <summary>
    /// A float16 model is calibrated as it is, not through a float32 copy: its probe and block cuts run in float16
    /// (statistics widened to float32), the thresholds drop the target on its held-out windows, the closed-form
    /// vectors are computed from its float16 weights, and the plan rewrites it into a float16 model that runs. The
    /// vectors are not trained (the backward graph is float32), and a note says so.
    /// </summary>
    [Fact]
    public void AFloat16ModelIsCalibratedInFloat16()
    {
        var dims = LlamaDimensions.Tiny with { Hidden = 256, Heads = 8, KvHeads = 4, Intermediate = 512, Vocab = 256 };
        string path = Path.Combine(_folder, "fp16", "model.onnx");
        using (var half = SyntheticLlama.Build(dims, seed: 4, GraphRewriter.Ir.DataType.Float16)) GraphRewriter.IO.ModelSaver.Save(half, path);
        var random = new Random(2);
        var data = CalibrationSet.FromTokens(Enumerable.Range(0, 20 * 64).Select(_ => random.Next(dims.Vocab)).ToArray(),
            new CalibrationSetOptions { SequenceLength = 64, Samples = 12, ValidationSamples = 6 }, "random ids");

        var result = Calibrator.Run(path, data, new CalibrationOptions { Sparsity = 0.5, Mode = SparsityMode.Threshold, Threads = 1, Training = new SpontaneousTrainingOptions() },
            Path.Combine(_folder, "work"));

        Assert.Equal(CalibrationMethod.Sequential, result.Method);
        Assert.InRange(result.MeasuredSparsity, 0.47, 0.53);
        Assert.Equal(14, result.Plan.Projections.Count);
        Assert.Contains(result.Notes, n => n.Contains("computes in float16", StringComparison.Ordinal));
        Assert.Null(result.Training);
        using var model = GraphRewriter.IO.ModelLoader.Load(path);
        var report = new SparsifyPass(new SparsifyOptions { Mode = SparsityMode.Threshold, Plan = result.Plan }).Run(model).Report;
        Assert.Equal(14, report.Rewritten.Count);
        Assert.All(report.Rewritten, r => Assert.Equal(GraphRewriter.Ir.DataType.Float16, r.DataType));
        string sparse = Path.Combine(_folder, "fp16", "sparse.onnx");
        GraphRewriter.IO.ModelSaver.Save(model, sparse);
        using var lm = Runtime.Inference.CausalLm.Open(sparse);
        var logits = lm.ForwardWindows(data.Validation[0].Select(t => (long)t).ToArray(), 1, 64, out int vocabulary);
        Assert.Equal(dims.Vocab, vocabulary);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
        Assert.False(Directory.Exists(Path.Combine(_folder, "work")), "the work folder is deleted");
    }

    /// <summary>
    /// The dense held-out loss computed block by block (embedding, six cut blocks, head, hidden states carried
    /// between them) is the whole model's: the cut pieces compute the same ops on the same values.
    /// </summary>
    [Fact]
    public void TheDenseLossBlockByBlockIsTheWholeModelsLoss()
    {
        var options = new CalibrationOptions { Sparsity = 0.5, Allocation = AllocationMethod.Uniform, Compensation = CompensationMode.Off };
        var sequential = Calibrate(options, "sequential");
        var full = Calibrate(options with { Method = CalibrationMethod.FullModel }, "full");

        Assert.Equal(CalibrationMethod.FullModel, full.Method);
        Assert.Equal(full.Validation.Dense, sequential.Validation.Dense, 1e-6);
        Assert.InRange(sequential.Validation.Final, full.Validation.Dense, full.Validation.Dense + 2 * (full.Validation.Final - full.Validation.Dense));
    }

    /// <summary>
    /// Compensation and training are judged by each block's output error; the model's held-out loss has the last
    /// word. On these few short windows the block-trained vectors lower every block's error but raise the loss
    /// (they fit 12 windows of 64 tokens): the plan then drops them, and its loss is plain top-k's, measured.
    /// </summary>
    [Fact]
    public void BlockTrainedVectorsThatRaiseTheHeldOutLossAreDropped()
    {
        var result = Calibrate(new CalibrationOptions
        {
            Sparsity = 0.6,
            Mode = SparsityMode.TopK,
            Allocation = AllocationMethod.Uniform,
            Training = new SpontaneousTrainingOptions(),
            Sequential = new SequentialOptions { TrainingSteps = 20, TrainingWindows = 4 },
        }, "trained");

        Assert.Contains(result.Notes, n => n.Contains("spontaneous neurons trained", StringComparison.Ordinal) && n.EndsWith("kept", StringComparison.Ordinal));
        Assert.Contains(result.Notes, n => n.StartsWith("the block-wise vectors raised the held-out loss", StringComparison.Ordinal));
        Assert.Equal(result.Validation.Uniform, result.Validation.Final);
        Assert.All(result.Plan.Projections, p => Assert.Null(p.Spontaneous));
        Assert.All(result.Groups, g => Assert.False(g.Compensated));
        Assert.All(result.Plan.Projections, p => Assert.Equal(SparsifyOptions.KeptEntries(0.6, p.InFeatures!.Value), p.K));
        Assert.Contains(result.Stages, s => s.Name == "blocks: training");
        Assert.Contains("calibrated block by block", result.Plan.CalibrationSource);
    }

    /// <summary>Greedy inside each block keeps the parameter-weighted average at the target.</summary>
    [Fact]
    public void GreedyAllocationInsideTheBlocksKeepsTheAverage()
    {
        var result = Calibrate(new CalibrationOptions { Sparsity = 0.5, Allocation = AllocationMethod.Greedy, Compensation = CompensationMode.Off }, "greedy");
        foreach (var layer in result.Groups.GroupBy(g => g.Layer))
        {
            double average = layer.Sum(g => g.Sparsity * g.Parameters) / layer.Sum(g => (double)g.Parameters);
            Assert.InRange(average, 0.5 - 1e-9, 0.5 + 0.06);
        }
        Assert.True(result.Validation.Final <= result.Validation.Uniform + 0.01);
        // The default objective, the logits: the dense model's distributions are taken once, and a block whose search beat
        // uniform says by how much on the next-token KL.
        Assert.Contains(result.Stages, s => s.Name == "dense logits for the greedy search");
        Assert.All(result.Notes.Where(n => n.Contains(": greedy allocation layer", StringComparison.Ordinal)),
            n => Assert.Contains("next-token KL on the search windows", n));
    }

    /// <summary>
    /// The default allocation searches where the search's estimate (from one dense pass over its windows) fits its
    /// budget and is uniform where it does not, each with a note; with an end-to-end phase to follow, the search
    /// runs without the block-wise closed form.
    /// </summary>
    [Fact]
    public void AutoAllocationSearchesWithinItsBudget_AndIsUniformOverIt()
    {
        var searched = Calibrate(new CalibrationOptions
        {
            Sparsity = 0.5, Training = new SpontaneousTrainingOptions(), Sequential = new SequentialOptions { EndToEndSteps = 2 },
        }, "auto");
        Assert.Contains(searched.Notes, n => n.StartsWith("greedy allocation: the search was estimated at about", StringComparison.Ordinal));
        Assert.Contains(searched.Stages, s => s.Name == "blocks: greedy allocation");
        Assert.Contains(searched.Notes, n => n.StartsWith("no block-wise closed form", StringComparison.Ordinal));
        Assert.DoesNotContain(searched.Stages, s => s.Name == "blocks: compensation");
        Assert.Contains("compensation off", searched.Plan.CalibrationSource);

        var overBudget = Calibrate(new CalibrationOptions { Sparsity = 0.5, GreedyBudget = TimeSpan.Zero, Compensation = CompensationMode.Off }, "auto-uniform");
        Assert.Contains(overBudget.Notes, n => n.StartsWith("uniform allocation: the greedy search would take about", StringComparison.Ordinal)
            && n.Contains("--allocation greedy runs it anyway", StringComparison.Ordinal));
        Assert.DoesNotContain(overBudget.Stages, s => s.Name == "blocks: greedy allocation");
        // Judged from the first block before the whole model ran once for the search's reference.
        Assert.Contains(overBudget.Stages, s => s.Name == "cost estimates");
        Assert.DoesNotContain(overBudget.Stages, s => s.Name == "dense logits for the greedy search");
        Assert.All(overBudget.Groups, g => Assert.Equal(0.5, g.Sparsity));
        Assert.Equal(overBudget.Validation.Uniform, overBudget.Validation.Final);
    }

    /// <summary>
    /// The search's estimate: linear in the dense pass and the KL's cost, a lazy search cheaper than an exhaustive one, a
    /// start nearer the target cheaper than one further away. For llama-brown's 6 blocks of 4 groups at 50% from 0.2 in
    /// steps of 0.05, a lazy block takes 4 + 2 × 4 × 6 = 52 candidates, each (6 + 1) / 2 + 1 = 4.5 dense passes over the
    /// blocks and one KL per block.
    /// </summary>
    [Fact]
    public void TheSearchEstimateCountsCandidatesAndTheirShareOfTheModel()
    {
        using var model = GraphRewriter.IO.ModelLoader.Load(ModelPath);
        var layout = ProbeModelBuilder.Instrument(model, new ProbeOptions());
        var options = new CalibrationOptions { Sparsity = 0.5 };
        var second = TimeSpan.FromSeconds(1);
        Assert.Equal(52 * 4.5, TailObjective.EstimatedSearch(second, TimeSpan.Zero, layout, options).TotalSeconds, 6);
        Assert.Equal(52 * (9 + 6), TailObjective.EstimatedSearch(2 * second, second, layout, options).TotalSeconds, 6);
        Assert.True(TailObjective.EstimatedSearch(second, second, layout, options with { GreedyLazy = false })
            > TailObjective.EstimatedSearch(second, second, layout, options));
        Assert.True(TailObjective.EstimatedSearch(second, second, layout, options with { GreedyStartBelow = 0.1 })
            < TailObjective.EstimatedSearch(second, second, layout, options));
    }

    /// <summary>
    /// The default end-to-end phase runs within its time budget, estimated before the blocks from the first block's
    /// dense pass; over it the phase is left out with a note, and steps given always run.
    /// </summary>
    [Fact]
    public void TheDefaultEndToEndPhaseRunsWithinItsTimeBudget()
    {
        var options = new CalibrationOptions
        {
            Sparsity = 0.5, Allocation = AllocationMethod.Uniform, Compensation = CompensationMode.Off,
            Training = new SpontaneousTrainingOptions(), Sequential = new SequentialOptions { EndToEndBudget = TimeSpan.Zero },
        };
        var over = Calibrate(options, "end-to-end-over");
        Assert.Contains(over.Notes, n => n.StartsWith("no end-to-end training: its 60 steps would take about", StringComparison.Ordinal)
            && n.Contains("--end-to-end-steps N runs it anyway", StringComparison.Ordinal));
        Assert.Contains(over.Stages, s => s.Name == "cost estimates");
        Assert.DoesNotContain(over.Stages, s => s.Name == "end-to-end training");
        Assert.Null(over.Training);

        var asked = Calibrate(options with { Sequential = options.Sequential with { EndToEndSteps = 2 } }, "end-to-end-asked");
        Assert.Contains(asked.Stages, s => s.Name == "end-to-end training");
        Assert.DoesNotContain(asked.Notes, n => n.StartsWith("no end-to-end training", StringComparison.Ordinal));
    }

    /// <summary>
    /// The estimate: each step three forward passes of its windows (four where the references are not cached), each
    /// held-out check the held-out windows plus, re-thresholding, every calibration window; the references once.
    /// </summary>
    [Fact]
    public void TheEndToEndEstimateCountsStepsChecksAndReferences()
    {
        var second = TimeSpan.FromSeconds(1);
        var training = new SpontaneousTrainingOptions();
        Assert.Equal(60 * 24 + 7 * 80 + 16 + 64, SequentialOptions.EndToEndEstimate(second, 60, training, 64, 16, referencesCached: true, rethreshold: true).TotalSeconds, 6);
        Assert.Equal(60 * 32 + 7 * 16 + 16, SequentialOptions.EndToEndEstimate(second, 60, training, 64, 16, referencesCached: false, rethreshold: false).TotalSeconds, 6);
        Assert.Equal(2 * (60 * 24 + 7 * 80 + 16 + 64), SequentialOptions.EndToEndEstimate(2 * second, 60, training, 64, 16, true, true).TotalSeconds, 6);
    }

    /// <summary>
    /// The end-to-end phase's memory gate counts what a large vocabulary adds: the 2-layer model with Llama-3's 128,256
    /// tokens (2.6 GB of weights) peaked at 23.7 GB before its steps were micro-batched; the gate now counts its
    /// held-out distributions and one micro-batch's tensors (2.1 GB), and still keeps the 1B-sized model (6.0 GB) off a
    /// 24 GB machine.
    /// </summary>
    [Fact]
    public void TheEndToEndGateCountsTheVocabulary()
    {
        var training = new SpontaneousTrainingOptions();
        long large = SequentialOptions.VocabularyBytes(128256, 128, heldOutWindows: 16, training);
        Assert.Equal(16L * 128 * 128256 * 4 + TrainingGraph.StepBytesPerWindow(128256, 128), large);
        long small = SequentialOptions.VocabularyBytes(4096, 128, heldOutWindows: 16, training);
        Assert.Equal(16L * 128 * 4096 * 4 + 8 * TrainingGraph.StepBytesPerWindow(4096, 128), small);
        Assert.True(small < 400_000_000);
        const long gigabyte = 1_000_000_000;
        Assert.Equal(4 * 2_590_000_000L + (2L << 30) + large, SequentialOptions.EndToEndBytes(2_590_000_000L, large));
        Assert.True(SequentialOptions.EndToEndFits(2_590_000_000L, large, 24 * gigabyte));
        Assert.False(SequentialOptions.EndToEndFits(2_590_000_000L, large, 14 * gigabyte));
        Assert.False(SequentialOptions.EndToEndFits(5_990_000_000L, large, 24 * gigabyte));
        Assert.True(SequentialOptions.EndToEndFits(25_000_000L, small, 4 * gigabyte));
    }

    [Fact]
    public void GreedyWithTheBlockObjectiveRunsNoTail()
    {
        var result = Calibrate(new CalibrationOptions
        {
            Sparsity = 0.5, Allocation = AllocationMethod.Greedy, GreedyObjective = GreedyObjective.BlockOutput, Compensation = CompensationMode.Off,
        }, "greedy-block");
        Assert.DoesNotContain(result.Stages, s => s.Name == "dense logits for the greedy search");
        Assert.DoesNotContain(result.Notes, n => n.Contains("next-token KL", StringComparison.Ordinal));
    }

    /// <summary>
    /// A graph whose residual stream runs through fused norms (the onnxruntime-genai builder's
    /// SkipSimplifiedLayerNormalization) has no residual Add to cut at: sequential says why.
    /// </summary>
    [Fact]
    public void AModelWithoutResidualAddsCannotBeCutBlockByBlock()
    {
        using var model = SyntheticGenaiLlama.Build(LlamaDimensions.Tiny, seed: 2);
        new SparseOnnx.GraphRewriter.Quantization.DequantizePass().Run(model);
        var layout = ProbeModelBuilder.Instrument(model, new ProbeOptions());
        Assert.Contains("residual Add", SequentialCalibrator.Problem(layout));
    }

    [Fact]
    public void HiddenStatesOverTheBudgetGoToAFileThatIsRemovedAfterwards()
    {
        string path = Path.Combine(_folder, "states.bin");
        var window = Enumerable.Range(0, 6).Select(i => (float)i - 2.5f).ToArray();
        using (var states = HiddenStates.Create(3, 2, 3, budgetBytes: 0, _folder, "states.bin"))
        {
            Assert.True(states.OnDisk);
            Assert.True(File.Exists(path));
            states.Write(2, window);
            states.WriteBatch(0, Enumerable.Range(0, 12).Select(i => (float)i).ToArray());
            Assert.Equal(window, states.ReadBatch(2, 1));
            Assert.Equal(Enumerable.Range(0, 12).Select(i => (float)i), states.ReadBatch(0, 2));
            Assert.Throws<ArgumentException>(() => states.Write(0, new float[5]));
            Assert.Throws<ArgumentOutOfRangeException>(() => states.Read(3, new float[6]));
        }
        Assert.False(File.Exists(path));
        using var memory = HiddenStates.Create(3, 2, 3, budgetBytes: 1 << 20, _folder, "memory.bin");
        Assert.False(memory.OnDisk);
        memory.Write(1, window);
        Assert.Equal(window, memory.ReadBatch(1, 1));
    }

    private sealed class ImmediateProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
