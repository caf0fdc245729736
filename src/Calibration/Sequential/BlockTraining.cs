using SparseOnnx.Calibration.Compensation;
using SparseOnnx.Calibration.Training;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// Spontaneous neurons trained against the dense block's output: Adam on the block's relative squared error
/// (<see cref="BlockTrainingGraph"/>) over batches of the calibration windows that have targets, warm-started from the closed-form
/// vectors (or zero), the selection fixed. Every few steps the held-out error is measured and the best vectors
/// kept, with early stopping. In threshold mode the thresholds are then measured again with the trained vectors
/// (they move o's and down's inputs). The result replaces what the block had only when it lowers the block's
/// held-out error.
/// </summary>
internal sealed class BlockTraining : IBlockStage
{
    public string Name => "training";

    public bool Enabled(BlockContext block) => block.Options.Training is not null && block.Sequential.TrainingSteps > 0;

    public void Run(BlockContext block)
    {
        var options = block.Options.Training!;
        var sequential = block.Sequential;
        string stage = $"{block.Name}: training spontaneous neurons";
        double before = block.HeldOutError ?? block.RelativeError(block.Settings, heldOut: true);
        BlockTrainingGraph graph = null!;
        using var cut = ProbeCut.Open(block.Cut.ProbePath, block.Cut.Layout, block.Cut.HiddenInput, [block.Output], "block-training.onnx",
            block.Options.Threads, block.Options.Device, block.Options.CudaProviderLibrary,
            model => graph = BlockTrainingGraph.Build(model, block.Groups, block.Output, options.Space), memoryArena: false);

        var basis = block.Settings.Clone();
        foreach (var g in block.Groups)
            foreach (var p in g.Members)
                if (!options.WarmStart) basis.SetCompensation(p, null);
        var parameters = graph.Parameters.Select(t => t.Projection is { } p && basis.Compensation(p) is { } initial
            ? (float[])initial.Clone() : new float[t.Length]).ToArray();
        var settingsOf = (float[][] values) => Compensated(basis, graph, values);

        var outputs = new List<string> { graph.LossOutput };
        outputs.AddRange(graph.Parameters.Select(p => p.GradientOutput));
        var optimizer = new AdamOptimizer(parameters.Select(p => p.Length));
        var order = new Random(options.Seed + block.Layer);
        var queue = new Queue<int>();
        int windows = block.CalibrationTarget.Windows, length = block.Data.SequenceLength, hidden = block.Calibration.Hidden;
        int batchWindows = Math.Min(sequential.TrainingWindows, windows);
        double best = block.RelativeError(settingsOf(parameters), heldOut: true);
        var bestParameters = parameters.Select(p => (float[])p.Clone()).ToArray();
        int sinceBest = 0, steps = 0, bestStep = 0;
        var target = new float[batchWindows * block.CalibrationTarget.FloatsPerWindow];
        var indices = new int[batchWindows];
        var batchStates = HiddenStates.Create(batchWindows, length, hidden, long.MaxValue, "", "");
        var batchTokens = new int[batchWindows][];
        var scratch = new float[block.Calibration.FloatsPerWindow];
        for (; steps < sequential.TrainingSteps; steps++)
        {
            block.Report(stage, steps, sequential.TrainingSteps);
            if (queue.Count < batchWindows)
                foreach (int i in Enumerable.Range(0, windows).OrderBy(_ => order.Next())) queue.Enqueue(i);
            for (int b = 0; b < batchWindows; b++)
            {
                indices[b] = queue.Dequeue();
                batchTokens[b] = block.Data.Calibration[indices[b]];
                block.Calibration.Read(indices[b], scratch);
                batchStates.Write(b, scratch);
                var span = target.AsSpan(b * scratch.Length, scratch.Length);
                block.CalibrationTarget.Read(indices[b], span);
            }
            float[][] gradients = [];
            cut.Run(batchTokens, batchStates, batchWindows, options.Space == SpontaneousSpace.Output ? settingsOf(parameters) : basis, outputs, batch =>
                gradients = graph.Parameters.Select(p => batch.Floats(p.GradientOutput).ToArray()).ToArray(),
                batchInputs: (_, count) => graph.BatchInputs(target, count, length, hidden, parameters));
            optimizer.Step(parameters, gradients, AdamOptimizer.Schedule(options.LearningRate, steps, sequential.TrainingSteps));
            if ((steps + 1) % sequential.EvaluateEvery != 0 && steps + 1 != sequential.TrainingSteps) continue;
            double error = block.RelativeError(settingsOf(parameters), heldOut: true);
            if (error < best)
            {
                best = error;
                bestStep = steps + 1;
                for (int p = 0; p < parameters.Length; p++) parameters[p].CopyTo(bestParameters[p], 0);
                sinceBest = 0;
            }
            else if (++sinceBest >= options.Patience && options.Patience > 0)
            {
                steps++;
                break;
            }
        }
        batchStates.Dispose();
        block.Report(stage, sequential.TrainingSteps, sequential.TrainingSteps);

        var trained = settingsOf(bestParameters);
        if (block.Options.Mode == SparsityMode.Threshold)
        {
            // The trained vectors move o's and down's inputs: measured again, each threshold drops its allocation.
            var histograms = block.MeasureHistograms(trained, $"{block.Name}: thresholds with the trained vectors");
            foreach (var g in block.Groups) block.Select(trained, g, block.Allocation[g.Index], histograms);
        }
        double after = block.RelativeError(trained, heldOut: true);
        bool keep = after < before || !options.KeepOnlyIfBetter;
        block.Notes.Add(FormattableString.Invariant(
            $"{block.Name}: spontaneous neurons trained {steps} steps (best at {bestStep}), held-out block error {before:0.00000} -> {after:0.00000}; ")
            + (keep ? "kept" : "not kept"));
        if (!keep) return;
        block.Settings = trained;
        block.HeldOutError = after;
        foreach (var g in block.Groups) block.Compensated.Add(g);
    }

    /// <summary>The probe settings the vectors give: output-space vectors set as they are, input-space α as W·α on the basis.</summary>
    private static SparseOnnx.Calibration.Capture.ProbeSettings Compensated(SparseOnnx.Calibration.Capture.ProbeSettings basis, BlockTrainingGraph graph,
        float[][] parameters)
    {
        var settings = basis.Clone();
        for (int i = 0; i < graph.Parameters.Count; i++)
        {
            var parameter = graph.Parameters[i];
            if (parameter.Projection is { } projection)
            {
                settings.SetCompensation(projection, (float[])parameters[i].Clone());
                continue;
            }
            var alpha = parameters[i].Select(v => (double)v).ToArray();
            foreach (var member in parameter.Group.Members)
            {
                var vector = ClosedFormCompensation.Vector(member, alpha);
                if (basis.Compensation(member) is { } baseVector)
                    for (int n = 0; n < vector.Length; n++) vector[n] += baseVector[n];
                settings.SetCompensation(member, vector);
            }
        }
        return settings;
    }
}
