using Microsoft.ML.OnnxRuntime;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Training;
using SparseOnnx.GraphRewriter.Autodiff;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// A block cut out of the probe (<see cref="ProbeCut"/>) turned into the training graph of its spontaneous
/// neurons against the dense block's output, the block-local objective of sequential calibration. Added inputs:
/// the parameters (as <see cref="TrainingGraph"/>: α per group or c per projection), the dense block's output T
/// on the same input [batch, length, hidden], and a weight per token [batch, length, 1]. Added outputs: the loss and
/// every parameter's gradient.
/// <code>loss = Σ_tokens w · Σ_channels (y − T)²     ∂loss/∂y = 2 · w · (y − T)</code>
/// with y the sparse block's output; the trainer sets w = 1 / (‖T_token‖² · tokens), so the loss is the mean relative
/// squared error per token that the allocation search and the compensation check measure. Per token, not over
/// the batch: the residual stream's few massive tokens (the first of each window) would otherwise decide alone,
/// and a vector that fixes them, added to every token, moved all the others (block errors fell, the loss rose).
/// </summary>
internal sealed class BlockTrainingGraph
{
    private BlockTrainingGraph(IReadOnlyList<TrainingParameter> parameters, string target, string scale, string loss)
    {
        Parameters = parameters;
        TargetInput = target;
        ScaleInput = scale;
        LossOutput = loss;
    }

    /// <summary>The trained inputs, in group order.</summary>
    public IReadOnlyList<TrainingParameter> Parameters { get; }
    /// <summary>Input: the dense block's output [batch, length, hidden].</summary>
    public string TargetInput { get; }
    /// <summary>Input: the loss weight of each token [batch, length, 1].</summary>
    public string ScaleInput { get; }
    /// <summary>Output: the scaled squared error of the batch (float scalar).</summary>
    public string LossOutput { get; }

    /// <summary>Extends the block cut <paramref name="block"/> in place; <paramref name="output"/> is its output value.</summary>
    public static BlockTrainingGraph Build(Model block, IReadOnlyList<ProbeGroup> groups, string output, SpontaneousSpace space)
    {
        var graph = block.Graph;
        var builder = new GraphBuilder(graph, hint => block.UniqueName(TrainingGraph.Prefix + hint));
        var y = graph.Outputs.FirstOrDefault(o => o.Name == output) ?? throw new ArgumentException($"The block has no output '{output}'.", nameof(output));
        var parameters = TrainingGraph.AddParameters(block, builder, groups, space);
        var target = builder.Input(block.UniqueName(TrainingGraph.Prefix + "target"), DataType.Float, "batch", "length", "hidden");
        var scale = builder.Input(block.UniqueName(TrainingGraph.Prefix + "token_weight"), DataType.Float, "batch", "length", 1L);
        var difference = builder.Op("Sub", y, target);
        var loss = builder.Op("ReduceSum", [builder.Op("Mul", builder.Op("Mul", difference, difference), scale)], OnnxAttribute.Int("keepdims", 0));
        builder.Output(loss, DataType.Float);
        var two = builder.Initializer(block.UniqueName(TrainingGraph.Prefix + "two"), [], [2f]);
        var seed = builder.Op("Mul", difference, builder.Op("Mul", scale, two));
        var gradients = GradientGraphBuilder.Build(block, new GradientRequest(parameters.Select(p => p.Input).ToArray(), [(y, seed)]));
        var described = new List<TrainingParameter>();
        foreach (var (description, input) in parameters)
        {
            builder.Output(gradients[input], DataType.Float, description.Length);
            described.Add(description with { GradientOutput = gradients[input].Name });
        }
        return new BlockTrainingGraph(described, target.Name, scale.Name, loss.Name);
    }

    /// <summary>The inputs one batch feeds besides the block's own: the target, the scale and, in the input space, the α.</summary>
    public IReadOnlyList<(string Name, OrtValue Value)> BatchInputs(float[] target, int windows, int length, int hidden,
        IReadOnlyList<float[]> parameters)
    {
        var weights = new float[windows * length];
        for (int token = 0; token < weights.Length; token++)
        {
            double energy = 0;
            for (int c = 0; c < hidden; c++) energy += (double)target[token * hidden + c] * target[token * hidden + c];
            weights[token] = (float)(1 / (Math.Max(energy, double.Epsilon) * weights.Length));
        }
        var inputs = new List<(string, OrtValue)>
        {
            (TargetInput, OrtValue.CreateTensorValueFromMemory(target, [windows, length, hidden])),
            (ScaleInput, OrtValue.CreateTensorValueFromMemory(weights, [windows, length, 1])),
        };
        for (int i = 0; i < parameters.Count; i++)
            if (Parameters[i].Projection is null)
                inputs.Add((Parameters[i].Input, OrtValue.CreateTensorValueFromMemory(parameters[i], [parameters[i].Length])));
        return inputs;
    }
}
