using SparseOnnx.Calibration.Sequential;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Calibration.Training;
using SparseOnnx.GraphRewriter.Autodiff;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Calibration.Tests;

/// <summary>Adam, its schedule, and training inside the calibration pass on the reference model (few steps, small windows).</summary>
public sealed class SpontaneousTrainingTests : IDisposable
{
    private static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");
    private readonly string _folder = Directory.CreateTempSubdirectory("sparseonnx-train-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly Lazy<CalibrationSet> Data = new(() => CalibrationSet.FromTextFile(Path.Combine(Folder, "data", "valid.txt"),
        TextTokenizer.Load(Path.Combine(Folder, "tokenizer.model")), new CalibrationSetOptions { SequenceLength = 64, Samples = 32, ValidationSamples = 8 }, TextReading.PerLine));

    [Fact]
    public void Adam_MinimisesAnIllConditionedQuadratic()
    {
        // f(x) = Σ c_i (x_i − t_i)² with curvatures spanning 10⁴: Adam's per-coordinate scaling reaches every target.
        float[] target = [1f, -2f, 0.5f], curvature = [100f, 1f, 0.01f];
        var x = new float[3];
        var adam = new AdamOptimizer([3]);
        for (int step = 0; step < 3000; step++)
        {
            var gradient = x.Select((v, i) => 2 * curvature[i] * (v - target[i])).ToArray();
            adam.Step([x], [gradient], AdamOptimizer.Schedule(0.05, step, 3000));
        }
        for (int i = 0; i < 3; i++) Assert.True(MathF.Abs(x[i] - target[i]) < 0.02f, $"x[{i}] = {x[i]}, target {target[i]}");
        Assert.Equal(3000, adam.StepsTaken);
    }

    [Fact]
    public void Schedule_WarmsUpThenDecaysToATenth()
    {
        Assert.Equal(0.2, AdamOptimizer.Schedule(1, 0, 100), 6);   // warm-up of 5 steps: 1/5
        Assert.Equal(1.0, AdamOptimizer.Schedule(1, 5, 100), 6);   // peak after warm-up
        Assert.Equal(0.1 + 0.45 * (1 + Math.Cos(Math.PI * 47 / 95)), AdamOptimizer.Schedule(1, 52, 100), 6);
        Assert.Equal(0.1, AdamOptimizer.Schedule(1, 100, 100), 6);
        Assert.True(AdamOptimizer.Schedule(1, 60, 100) > AdamOptimizer.Schedule(1, 70, 100));
    }

    private CalibrationResult Calibrate(SpontaneousTrainingOptions training, CompensationMode compensation, string name) =>
        Calibrator.Run(Path.Combine(Folder, "model.onnx"), Data.Value,
            new CalibrationOptions { Sparsity = 0.7, Compensation = compensation, Threads = 1, Training = training, Method = CalibrationMethod.FullModel }, Path.Combine(_folder, name));

    [Theory]
    [InlineData(SpontaneousSpace.Input)]
    [InlineData(SpontaneousSpace.Output)]
    public void Training_LowersTheHeldOutKl_AndThePlanCarriesTheVectors(SpontaneousSpace space)
    {
        var result = Calibrate(new SpontaneousTrainingOptions
        {
            Space = space, WarmStart = false, Steps = 12, BatchWindows = 8, EvaluateEvery = 4, Patience = 0, KeepOnlyIfBetter = false,
            LearningRate = space == SpontaneousSpace.Input ? 0.005 : 0.003,
        }, CompensationMode.Off, "train-" + space);
        var training = result.Training!;
        Assert.True(training.Kept);
        Assert.Equal(12, training.Steps);
        Assert.Equal([0, 4, 8, 12], training.History.Select(h => h.Step));
        Assert.True(training.FinalHeldOutKl < 0.97 * training.InitialHeldOutKl,
            $"held-out KL {training.InitialHeldOutKl} -> {training.FinalHeldOutKl} after 12 steps");
        Assert.Equal(result.Validation.Trained, result.Validation.Final);
        Assert.All(result.Plan.Projections, p => Assert.Equal(p.OutFeatures, p.Spontaneous!.Length));
        Assert.All(result.Groups, g => Assert.True(g.Compensated));
        // Thresholds are re-measured with the trained vectors applied: the plan drops the target on held-out text.
        Assert.InRange(result.MeasuredSparsity, 0.68, 0.72);
        Assert.Equal(result.Groups.Select(g => g.Threshold).ToHashSet(), result.Plan.Projections.Select(p => p.Threshold).ToHashSet());
        Assert.False(Directory.Exists(Path.Combine(_folder, "train-" + space)), "the work folder is deleted");
    }

    [Fact]
    public void TopK_Mode_Trains_WithKFixed()
    {
        var result = Calibrator.Run(Path.Combine(Folder, "model.onnx"), Data.Value, new CalibrationOptions
        {
            Sparsity = 0.6, Mode = GraphRewriter.Sparsify.SparsityMode.TopK, Compensation = CompensationMode.Off, Threads = 1, Method = CalibrationMethod.FullModel,
            Training = new SpontaneousTrainingOptions { Steps = 12, BatchWindows = 8, EvaluateEvery = 4, Patience = 0, KeepOnlyIfBetter = false, LearningRate = 0.003 },
        }, Path.Combine(_folder, "topk"));
        Assert.True(result.Training!.Kept);
        Assert.All(result.Plan.Projections, p => Assert.True(p.K is not null && p.Threshold is null && p.Spontaneous is not null));
        Assert.True(result.Training.FinalHeldOutKl < result.Training.InitialHeldOutKl, $"{result.Training.InitialHeldOutKl} -> {result.Training.FinalHeldOutKl}");
    }

    [Fact]
    public void Checked_Training_NeverRaisesTheHeldOutLoss_AndStopsEarlyWhenTheHeldOutKlStalls()
    {
        // A learning rate far too high makes the held-out KL worse than the start: early stopping returns the
        // start, and the held-out check leaves calibration's own result in place.
        var result = Calibrate(new SpontaneousTrainingOptions { Steps = 40, BatchWindows = 2, EvaluateEvery = 2, Patience = 2, LearningRate = 5 },
            CompensationMode.Auto, "checked");
        var training = result.Training!;
        Assert.StartsWith("stopped early after", training.Stopped);
        Assert.True(training.Steps < 40);
        Assert.True(result.Validation.Final <= result.Validation.Uniform);
        if (!training.Kept) Assert.True(result.Validation.Trained >= result.Validation.Final);
        else Assert.Equal(result.Validation.Trained, result.Validation.Final);
    }

    [Theory]
    [InlineData(CalibrationMethod.FullModel)]
    [InlineData(CalibrationMethod.Sequential)]
    public void AnOperatorWithoutGradient_FallsBackToTheClosedForm_UnlessTrainingWasRequired(CalibrationMethod method)
    {
        // The reference model with its SiLU's sigmoids made HardSigmoid: it still runs, but has no gradient rule.
        string path = Path.Combine(_folder, "hard.onnx");
        using (var model = ModelLoader.Load(Path.Combine(Folder, "model.onnx")))
        {
            foreach (var node in model.Graph.Nodes.Where(n => n.Is("Sigmoid"))) node.OpType = "HardSigmoid";
            ModelSaver.Save(model, path);
        }
        var options = new CalibrationOptions { Sparsity = 0.5, Threads = 1, Training = new SpontaneousTrainingOptions { Steps = 2 }, Method = method };
        var result = Calibrator.Run(path, Data.Value, options, Path.Combine(_folder, "fallback"));
        Assert.Null(result.Training);
        // Sequential: the end-to-end phase (the default where it fits) is what trains, and what falls back.
        Assert.Contains(result.Notes, n => n.StartsWith("spontaneous neurons not trained") && n.Contains("HardSigmoid node"));

        var error = Assert.Throws<UnsupportedGradientException>(() => Calibrator.Run(path, Data.Value,
            options with { Training = options.Training with { Required = true } }, Path.Combine(_folder, "required")));
        Assert.Contains("no gradient rule for HardSigmoid", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_folder, "required")), "the work folder is deleted after a failure too");
    }
}
