using SparseOnnx.Calibration.Statistics;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Training;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Tests;

/// <summary>
/// The training graph on the reference model (a torch.onnx export: RMSNorm, rotary slices, GQA, softmax
/// attention, SwiGLU): its loss against the KL computed from two plain probe runs, and its gradients against
/// finite differences of that loss along random directions.
/// </summary>
public sealed class TrainingGraphTests : IDisposable
{
    private static string ModelPath(string family) => family == "llama-brown"
        ? Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx")
        : Path.Combine(RepositoryPaths.Models, "families", family, "model.onnx");
    private readonly string _folder = Directory.CreateTempSubdirectory("sparseonnx-training-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Random windows of ids below 32, which every model here has.</summary>
    private static int[][] Windows(int count, int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(1, 32)).ToArray()).ToArray();
    }

    private sealed class Fixture : IDisposable
    {
        public required ProbeSession Probe { get; init; }
        public required ProbeSession Training { get; init; }
        public required TrainingGraph Graph { get; init; }
        public void Dispose()
        {
            Probe.Dispose();
            Training.Dispose();
        }
    }

    private Fixture Open(string family, SpontaneousSpace space)
    {
        using var probeModel = ModelLoader.Load(ModelPath(family));
        var layout = ProbeModelBuilder.Instrument(probeModel, new ProbeOptions());
        var probe = ProbeSession.Open(probeModel, layout, Path.Combine(_folder, "probe"), threads: 1);
        using var trainingModel = ModelLoader.Load(ModelPath(family));
        var trainingLayout = ProbeModelBuilder.Instrument(trainingModel, new ProbeOptions());
        var graph = TrainingGraph.Build(trainingModel, trainingLayout, probe.Logits, space);
        var training = ProbeSession.Open(trainingModel, layout, Path.Combine(_folder, "training-" + space), threads: 1);
        return new Fixture { Probe = probe, Training = training, Graph = graph };
    }

    private static (float Loss, float[][] Gradients) LossAndGradients(Fixture f, int[][] windows, ProbeSettings settings, float[][] parameters,
        float[] probabilities, double negativeEntropy)
    {
        float loss = 0;
        float[][] gradients = [];
        var outputs = new[] { f.Graph.LossOutput }.Concat(f.Graph.Parameters.Select(p => p.GradientOutput)).ToArray();
        f.Training.Run(windows, windows.Length, f.Graph.Settings(settings, parameters), outputs, batch =>
        {
            loss = batch.Floats(f.Graph.LossOutput)[0];
            gradients = f.Graph.Parameters.Select(p => batch.Floats(p.GradientOutput).ToArray()).ToArray();
        }, batchInputs: (_, count) => f.Graph.BatchInputs(probabilities, negativeEntropy, count, windows[0].Length, parameters));
        return (loss, gradients);
    }

    /// <summary>The reference model, and the committed exports of the other families (GPT-2: Gemm, LayerNormalization, Split, tanh GELU).</summary>
    [Theory]
    [InlineData("llama-brown", SpontaneousSpace.Input)]
    [InlineData("llama-brown", SpontaneousSpace.Output)]
    [InlineData("qwen2", SpontaneousSpace.Input)]
    [InlineData("phi3", SpontaneousSpace.Output)]
    [InlineData("phi3", SpontaneousSpace.Input)]
    [InlineData("gemma", SpontaneousSpace.Input)]
    [InlineData("gpt2", SpontaneousSpace.Input)]
    [InlineData("linear2d", SpontaneousSpace.Output)]
    public void Gradients_MatchFiniteDifferences_ThroughTheWholeModel(string family, SpontaneousSpace space)
    {
        using var f = Open(family, space);
        var windows = Windows(2, 12, 5);
        var layout = f.Probe.Layout;
        var logits = f.Probe.Capture(windows, 2, new ProbeSettings(layout), f.Probe.Logits);
        int v = logits.Length / (windows.Length * windows[0].Length);
        var (probabilities, entropy) = TokenDistributions.Of(logits, v);
        double negativeEntropy = entropy.Sum();

        // Thresholds below every magnitude: the Where masks are all true, so the loss is smooth and finite
        // differences are exact up to curvature. With real thresholds a perturbation flips entries across the
        // threshold, a jump finite differences see and the gradient (masks held fixed, as in training) does not;
        // the masked Where is checked on its own in the GraphRewriter rule tests. Random vectors make the loss
        // and its gradient non-zero.
        var settings = new ProbeSettings(layout);
        foreach (var g in layout.Groups) settings.SetThreshold(g, -1f);
        var random = new Random(9);
        float[] RandomVector(long n, float scale) => Enumerable.Range(0, (int)n).Select(_ => (float)(random.NextDouble() - 0.5) * scale).ToArray();
        ProbeSettings Equivalent(float[][] parameters)
        {
            var equivalent = settings.Clone();
            if (space == SpontaneousSpace.Output)
                for (int i = 0; i < parameters.Length; i++) equivalent.SetCompensation(f.Graph.Parameters[i].Projection!, parameters[i]);
            else
                foreach (var (parameter, alpha) in f.Graph.Parameters.Zip(parameters))
                    foreach (var member in parameter.Group.Members)
                        equivalent.SetCompensation(member, Compensation.ClosedFormCompensation.Vector(member, alpha.Select(x => (double)x).ToArray()));
            return equivalent;
        }
        double ProbeKl(float[][] parameters)
        {
            var all = f.Probe.Capture(windows, 2, Equivalent(parameters), f.Probe.Logits);
            double kl = 0;
            for (int row = 0; row < entropy.Length; row++)
                kl += TokenDistributions.KlDivergence(probabilities.AsSpan(row * v, v), entropy[row], all.AsSpan(row * v, v));
            return kl / entropy.Length;
        }

        // Vectors large enough to move the distribution measurably, whatever the model's activation scale.
        float[][] parameters = [];
        double expected = 0;
        for (float scale = 0.01f; scale < 1e4f && expected < 3e-3; scale *= 4)
        {
            parameters = f.Graph.Parameters.Select(p => RandomVector(p.Length, scale)).ToArray();
            expected = ProbeKl(parameters);
        }
        Assert.True(expected >= 3e-3, $"no random vectors moved the distribution (KL {expected})");
        var (loss, gradients) = LossAndGradients(f, windows, settings, parameters, probabilities, negativeEntropy);
        Assert.Equal(f.Graph.Parameters.Count, gradients.Length);
        Assert.All(gradients.Zip(f.Graph.Parameters), pair => Assert.Equal(pair.Second.Length, pair.First.Length));
        // The graph's loss is the KL a plain probe run gives for the same vectors.
        Assert.True(Math.Abs(loss - expected) <= 1e-3 * expected + 1e-5, $"training graph loss {loss}, probe KL {expected}");

        // Directional derivatives: (L(p + hu) − L(p − hu)) / 2h against g·u, along the gradient and along the
        // gradient plus a random direction of the same length (a random direction alone is nearly orthogonal
        // to g in thousands of dimensions, and its derivative drowns in float32 rounding).
        double gradientNorm = Math.Sqrt(gradients.Sum(g => g.Sum(x => (double)x * x)));
        for (int trial = 0; trial < 2; trial++)
        {
            var noise = parameters.Select(p => RandomVector(p.Length, 1f)).ToArray();
            double noiseNorm = Math.Sqrt(noise.Sum(d => d.Sum(x => (double)x * x)));
            var direction = gradients.Zip(noise).Select(pair => pair.First.Zip(pair.Second)
                .Select(x => (float)(x.First / gradientNorm + (trial == 0 ? 0 : x.Second / noiseNorm))).ToArray()).ToArray();
            double predicted = gradients.Zip(direction).Sum(pair => pair.First.Zip(pair.Second).Sum(x => (double)x.First * x.Second));
            // A step that moves the loss by about 5%: the loss is a float32 difference of large sums, so smaller steps
            // drown in rounding (phi3: 1% steps scatter by 3%, 5% steps agree to 4 digits), and curvature is still small.
            float h = (float)(0.05 * loss / Math.Max(Math.Abs(predicted), 1e-12));
            float[][] Moved(float sign) => parameters.Zip(direction).Select(pair => pair.First.Zip(pair.Second).Select(x => x.First + sign * h * x.Second).ToArray()).ToArray();
            double up = LossAndGradients(f, windows, settings, Moved(1), probabilities, negativeEntropy).Loss;
            double down = LossAndGradients(f, windows, settings, Moved(-1), probabilities, negativeEntropy).Loss;
            double numeric = (up - down) / (2 * h);
            Assert.True(Math.Abs(numeric - predicted) <= 0.03 * Math.Abs(predicted) + 1e-5,
                $"direction {trial}: backward graph {predicted}, finite differences {numeric} (loss {loss})");
        }
    }

    /// <summary>
    /// A step run as micro-batches (each window alone, scaled by the whole step's positions) sums to the step run at
    /// once: what the trainer does where a large vocabulary's tensors exceed the step's memory.
    /// </summary>
    [Fact]
    public void MicroBatches_SumToTheWholeStep()
    {
        using var f = Open("llama-brown", SpontaneousSpace.Output);
        var windows = Windows(3, 12, 7);
        var layout = f.Probe.Layout;
        var probabilities = f.Probe.Capture(windows, 3, new ProbeSettings(layout), f.Probe.Logits);
        int v = probabilities.Length / (windows.Length * windows[0].Length);
        var entropy = TokenDistributions.IntoProbabilities(probabilities, v);
        var settings = new ProbeSettings(layout);
        foreach (var g in layout.Groups) settings.SetThreshold(g, 0.05f);
        var random = new Random(3);
        var parameters = f.Graph.Parameters.Select(p => Enumerable.Range(0, (int)p.Length).Select(_ => (float)(random.NextDouble() - 0.5) * 0.5f).ToArray()).ToArray();
        var (whole, wholeGradients) = LossAndGradients(f, windows, settings, parameters, probabilities, entropy.Sum());

        int length = windows[0].Length, perWindow = length * v;
        double summed = 0;
        var summedGradients = parameters.Select(p => new double[p.Length]).ToArray();
        var outputs = new[] { f.Graph.LossOutput }.Concat(f.Graph.Parameters.Select(p => p.GradientOutput)).ToArray();
        f.Training.Run(windows, 1, f.Graph.Settings(settings, parameters), outputs, batch =>
        {
            summed += batch.Floats(f.Graph.LossOutput)[0];
            for (int i = 0; i < parameters.Length; i++)
            {
                var share = batch.Floats(f.Graph.Parameters[i].GradientOutput);
                for (int j = 0; j < share.Length; j++) summedGradients[i][j] += share[j];
            }
        }, batchInputs: (first, count) => f.Graph.BatchInputs(probabilities.AsMemory(first * perWindow, count * perWindow),
            entropy.Skip(first * length).Take(count * length).Sum(), count, length, parameters, positions: windows.Length * length));

        Assert.True(whole > 1e-4, $"the step's loss {whole} is too small to compare");
        Assert.True(Math.Abs(summed - whole) <= 1e-4 * whole, $"micro-batches {summed}, whole step {whole}");
        double norm = Math.Sqrt(wholeGradients.Sum(g => g.Sum(x => (double)x * x)));
        double difference = Math.Sqrt(wholeGradients.Zip(summedGradients).Sum(pair => pair.First.Zip(pair.Second).Sum(x => (x.First - x.Second) * (x.First - x.Second))));
        Assert.True(norm > 0 && difference <= 1e-4 * norm, $"gradients differ by {difference} (norm {norm})");
    }

    /// <summary>The micro-batch size: a large vocabulary's step runs a window at a time, a small one's whole batch at once.</summary>
    [Fact]
    public void MicroBatch_FollowsTheVocabularyAndTheStepMemory()
    {
        var options = new SpontaneousTrainingOptions();
        Assert.Equal(1, SpontaneousTrainer.MicroBatch(options, vocabulary: 128256, length: 128, batch: 8));
        Assert.Equal(8, SpontaneousTrainer.MicroBatch(options, vocabulary: 4096, length: 128, batch: 8));
        Assert.Equal(4, SpontaneousTrainer.MicroBatch(options with { StepMemoryBytes = 4L * TrainingGraph.StepBytesPerWindow(32000, 128) }, 32000, 128, 8));
        Assert.Throws<ArgumentException>(() => (options with { StepMemoryBytes = 1000 }).Validate());
    }
}
