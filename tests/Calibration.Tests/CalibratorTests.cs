using SparseOnnx.Calibration.Sequential;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Calibration.Statistics;
using SparseOnnx.Calibration.Data;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Calibration.Tests;

/// <summary>The whole-model calibration (<see cref="CalibrationMethod.FullModel"/>) on the reference model, with small samples so it runs in seconds.</summary>
public sealed class CalibratorTests : IDisposable
{
    private static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");
    private static string ModelPath => Path.Combine(Folder, "model.onnx");
    private readonly string _folder = Directory.CreateTempSubdirectory("sparseonnx-calibrate-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly Lazy<CalibrationSet> Data = new(() => CalibrationSet.FromTextFile(Path.Combine(Folder, "data", "valid.txt"),
        TextTokenizer.Load(Path.Combine(Folder, "tokenizer.model")), new CalibrationSetOptions { SequenceLength = 64, Samples = 12, ValidationSamples = 6 }, TextReading.PerLine));

    private CalibrationResult Calibrate(CalibrationOptions options, string name) =>
        Calibrator.Run(ModelPath, Data.Value, options with { Threads = 1, GreedySamples = 3, GreedyStep = 0.1, Method = CalibrationMethod.FullModel }, Path.Combine(_folder, name));

    [Fact]
    public void Uniform_Thresholds_DropTheTargetFraction_OnHeldOutText()
    {
        var result = Calibrate(new CalibrationOptions { Sparsity = 0.5, Compensation = CompensationMode.Off }, "uniform");
        Assert.Equal(AllocationMethod.Uniform, result.Allocation);
        Assert.InRange(result.MeasuredSparsity, 0.47, 0.53);
        Assert.All(result.Groups, g => Assert.InRange(g.MeasuredSparsity, 0.4, 0.6));
        Assert.True(result.Validation.Uniform > result.Validation.Dense, "sparsifying half the inputs should cost some loss");
        Assert.Equal(result.Validation.Uniform, result.Validation.Final);
        Assert.All(result.Plan.Projections, p => Assert.True(p.Threshold > 0 && p.K is null && p.Spontaneous is null));
        Assert.Equal(42, result.Plan.Projections.Count);
        Assert.False(Directory.Exists(Path.Combine(_folder, "uniform")), "the work folder is deleted");
    }

    /// <summary>
    /// A model with external data is calibrated without a copy of its weights in the work folder: its data file is
    /// hard-linked there and the probe references it (issue 21: the 1B model's probe was a 5.6 GB copy). The plan
    /// is the one the same weights inline give, the links go with the work folder, and the source is untouched.
    /// </summary>
    [Fact]
    public void AnExternalDataModelIsCalibratedWithoutACopyOfItsWeights()
    {
        string source = Path.Combine(_folder, "src", "model.onnx");
        using (var model = ModelLoader.Load(ModelPath)) ModelSaver.Save(model, source, new SaveOptions { ExternalData = ExternalDataMode.Always });
        var sourceData = new FileInfo(source + ".data");
        long sourceBytes = sourceData.Length;
        DateTime sourceTime = sourceData.LastWriteTimeUtc;
        string work = Path.Combine(_folder, "linked");
        long probeBytes = -1;
        bool linked = false;
        var progress = new ImmediateProgress<CalibrationProgress>(_ =>
        {
            if (probeBytes >= 0 || !File.Exists(Path.Combine(work, "probe.onnx"))) return;
            linked = File.Exists(Path.Combine(work, "model.onnx.data"));
            probeBytes = Directory.GetFiles(work).Where(f => Path.GetFileName(f).StartsWith("probe.onnx", StringComparison.Ordinal)).Sum(f => new FileInfo(f).Length);
        });
        var options = new CalibrationOptions { Sparsity = 0.5, Compensation = CompensationMode.Off } with { Threads = 1, GreedySamples = 3, GreedyStep = 0.1, Method = CalibrationMethod.FullModel };

        var result = Calibrator.Run(source, Data.Value, options, work, progress);

        Assert.True(linked, "the source's data file is linked into the work folder while calibrating");
        Assert.InRange(probeBytes, 1, sourceBytes / 10);
        string note = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the work folder links the source's {sourceBytes / 1e9:F2} GB of weights instead of copying them");
        Assert.Contains(result.Notes, n => n.StartsWith(note, StringComparison.Ordinal));
        var inline = Calibrate(new CalibrationOptions { Sparsity = 0.5, Compensation = CompensationMode.Off }, "inline");
        Assert.Equal(inline.Plan.Projections.Select(p => (p.Node, p.Threshold)), result.Plan.Projections.Select(p => (p.Node, p.Threshold)));
        Assert.Equal(inline.Validation, result.Validation);
        Assert.False(Directory.Exists(work), "the work folder, with its links, is deleted");
        sourceData.Refresh();
        Assert.Equal((sourceBytes, sourceTime), (sourceData.Length, sourceData.LastWriteTimeUtc));
    }

    /// <summary>
    /// The library API takes a loaded model and leaves it as it was: the plan comes back in memory, the model's
    /// bytes are unchanged, its external data is linked (not copied) into the work folder, and the plan is the one
    /// calibrating the same file by path gives, so the caller rewrites the model it already holds.
    /// </summary>
    [Fact]
    public void ALoadedModelIsCalibratedAsItIs_AndRewrittenWithThePlanInMemory()
    {
        string source = Path.Combine(_folder, "src", "model.onnx");
        using (var original = ModelLoader.Load(ModelPath)) ModelSaver.Save(original, source, new SaveOptions { ExternalData = ExternalDataMode.Always });
        long sourceBytes = new FileInfo(source + ".data").Length;
        using var model = ModelLoader.Load(source);
        byte[] before = ModelSaver.ToBytes(model);
        string work = Path.Combine(_folder, "loaded");
        long probeBytes = -1;
        var progress = new ImmediateProgress<CalibrationProgress>(_ =>
        {
            if (probeBytes >= 0 || !File.Exists(Path.Combine(work, "probe.onnx"))) return;
            probeBytes = Directory.GetFiles(work).Where(f => Path.GetFileName(f).StartsWith("probe.onnx", StringComparison.Ordinal)).Sum(f => new FileInfo(f).Length);
        });
        var options = new CalibrationOptions { Sparsity = 0.5, Compensation = CompensationMode.Off, Threads = 1 };

        var result = Calibrator.Run(model, Data.Value, options, work, progress);

        Assert.Equal(CalibrationMethod.Sequential, result.Method);
        Assert.Equal(before, ModelSaver.ToBytes(model));
        Assert.InRange(probeBytes, 1, sourceBytes / 10);
        Assert.False(Directory.Exists(work), "the work folder, with its links, is deleted");
        var byPath = Calibrator.Run(source, Data.Value, options, Path.Combine(_folder, "by-path"));
        Assert.Equal(byPath.Plan.Projections.Select(p => (p.Node, p.Threshold)), result.Plan.Projections.Select(p => (p.Node, p.Threshold)));

        var report = new SparsifyPass(new SparsifyOptions { Mode = SparsityMode.Threshold, Plan = result.Plan }).Run(model).Report;
        Assert.Equal(42, report.Rewritten.Count);
    }

    /// <summary>
    /// The CUDA provider for the probes: this CPU-only ONNX Runtime has none, so asking for CUDA fails with ONNX
    /// Runtime's reason and leaves no work folder, and auto calibrates on the CPU and says so (the CUDA path
    /// itself runs where a GPU is lent).
    /// </summary>
    [Fact]
    public void CudaWithoutTheProviderFailsCleanlyAndAutoCalibratesOnTheCpu()
    {
        var options = new CalibrationOptions { Sparsity = 0.5, Compensation = CompensationMode.Off, Device = SparseOnnx.Runtime.Inference.ExecutionDevice.Cuda };
        var error = Assert.Throws<SparseOnnx.Runtime.Inference.ExecutionProviderUnavailableException>(() => Calibrate(options, "cuda"));
        Assert.Contains("CUDA execution provider is not available", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_folder, "cuda")));

        var auto = Calibrate(options with { Device = SparseOnnx.Runtime.Inference.ExecutionDevice.Auto }, "auto");
        Assert.Contains("calibrated on the CPU: this ONNX Runtime has no usable CUDA provider", auto.Notes);
        var cpu = Calibrate(options with { Device = SparseOnnx.Runtime.Inference.ExecutionDevice.Cpu }, "cpu");
        Assert.Equal(cpu.Plan.Projections.Select(p => p.Threshold), auto.Plan.Projections.Select(p => p.Threshold));
    }

    private sealed class ImmediateProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    [Fact]
    public void Auto_Compensation_NeverMakesTheHeldOutLossWorse_AndThePlanAppliesToTheModel()
    {
        var result = Calibrate(new CalibrationOptions { Sparsity = 0.6, Compensation = CompensationMode.Auto }, "auto");
        Assert.True(result.Validation.Final <= result.Validation.Uniform);
        int compensated = result.Groups.Count(g => g.Compensated);
        Assert.Equal(compensated > 0, result.Validation.Final < result.Validation.Uniform);
        Assert.Equal(result.Groups.Where(g => g.Compensated).Sum(g => g.Kinds.Split('+').Length),
            result.Plan.Projections.Count(p => p.Spontaneous is not null));

        string planPath = Path.Combine(_folder, "plan.json");
        result.Plan.Save(planPath);
        using var model = ModelLoader.Load(ModelPath);
        var pass = new SparsifyPass(new SparsifyOptions { Mode = SparsityMode.Threshold, Plan = SparsityPlan.Load(planPath) });
        var report = pass.Run(model).Report;
        Assert.Equal(42, report.Rewritten.Count);
        Assert.Equal(result.Plan.Projections.Count(p => p.Spontaneous is not null), report.Rewritten.Count(r => r.SpontaneousCalibrated));
    }

    [Fact]
    public void On_Compensation_AppliesEveryVector_AndTheyRestoreTheMeanOfWhatWasDropped()
    {
        var result = Calibrate(new CalibrationOptions { Sparsity = 0.5, Compensation = CompensationMode.On }, "on");
        Assert.All(result.Groups, g => Assert.True(g.Compensated));
        Assert.All(result.Plan.Projections, p => Assert.True(p.Spontaneous is { } s && s.Any(v => v != 0)));
    }

    [Theory]
    [InlineData(GreedyObjective.Logits)]
    [InlineData(GreedyObjective.BlockOutput)]
    public void Greedy_KeepsTheWeightedAverage_AndIsKeptOnlyWhenItWinsOnHeldOutText(GreedyObjective objective)
    {
        var result = Calibrate(new CalibrationOptions
            { Sparsity = 0.6, Allocation = AllocationMethod.Greedy, GreedyObjective = objective, Compensation = CompensationMode.Off }, "greedy-" + objective);
        Assert.Contains(result.Notes, n => n.StartsWith("greedy allocation searched: layer0.q_k_v "));
        Assert.NotNull(result.Validation.Greedy);
        foreach (var layer in result.Groups.GroupBy(g => g.Layer))
            Assert.Equal(0.6, layer.Sum(g => g.Sparsity * g.Parameters) / layer.Sum(g => (double)g.Parameters), 6);
        if (result.Allocation == AllocationMethod.Greedy)
        {
            Assert.True(result.Validation.Greedy <= result.Validation.Uniform);
            Assert.Contains(result.Groups, g => Math.Abs(g.Sparsity - 0.6) > 0.01);
        }
        else
        {
            Assert.True(result.Validation.Greedy > result.Validation.Uniform);
            Assert.All(result.Groups, g => Assert.Equal(0.6, g.Sparsity, 9));
        }
        Assert.True(result.Validation.Final <= result.Validation.Uniform);
        Assert.InRange(result.MeasuredSparsity, 0.57, 0.63);
    }

    [Fact]
    public void TopK_Mode_WritesKPerProjection()
    {
        var result = Calibrate(new CalibrationOptions { Sparsity = 0.5, Mode = SparsityMode.TopK, Compensation = CompensationMode.Off }, "topk");
        Assert.All(result.Plan.Projections, p => Assert.Equal(SparsifyOptions.KeptEntries(0.5, p.InFeatures!.Value), p.K));
        Assert.InRange(result.MeasuredSparsity, 0.49, 0.51);
    }

    [Fact]
    public void KlDivergence_IsZeroForTheSameDistribution_AndMatchesTheFormula()
    {
        float[] logits = [1f, 2f, -0.5f, 0f];
        double logTotal = Math.Log(logits.Sum(v => Math.Exp(v)));
        var logP = logits.Select(v => v - logTotal).ToArray();
        var (p, negativeEntropy) = TokenDistributions.Of(logits, 4);
        Assert.Equal(logP.Select(Math.Exp), p.Select(v => (double)v), (a, b) => Math.Abs(a - b) < 1e-7);
        Assert.Equal(logP.Sum(lp => Math.Exp(lp) * lp), negativeEntropy[0], 9);
        Assert.Equal(0, TokenDistributions.KlDivergence(p, negativeEntropy[0], logits), 6);
        // Shifting logits changes nothing; KL(p || uniform) = log V - H(p).
        Assert.Equal(0, TokenDistributions.KlDivergence(p, negativeEntropy[0], logits.Select(v => v + 3f).ToArray()), 6);
        Assert.Equal(Math.Log(4) + negativeEntropy[0], TokenDistributions.KlDivergence(p, negativeEntropy[0], new float[4]), 6);
    }
}
