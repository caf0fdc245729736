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
/// on the same input [batch, length, hidden], and a scale. Added outputs: the loss and every parameter's gradient.
/// <code>loss = scale · Σ (y − T)²     ∂loss/∂y = 2 · scale · (y − T)</code>
/// with y the sparse block's output; the trainer sets scale to 1 / Σ T² of the batch, so the loss is the
/// relative squared error the allocation search and the compensation check measure.
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
    /// <summary>Input: the loss scale (float scalar).</summary>
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
        var scale = builder.Input(block.UniqueName(TrainingGraph.Prefix + "scale"), DataType.Float);
        var difference = builder.Op("Sub", y, target);
        var loss = builder.Op("Mul", builder.Op("ReduceSum", [builder.Op("Mul", difference, difference)], OnnxAttribute.Int("keepdims", 0)), scale);
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
    public IReadOnlyList<(string Name, OrtValue Value)> BatchInputs(float[] target, int windows, int length, int hidden, double scale,
        IReadOnlyList<float[]> parameters)
    {
        var inputs = new List<(string, OrtValue)>
        {
            (TargetInput, OrtValue.CreateTensorValueFromMemory(target, [windows, length, hidden])),
            (ScaleInput, OrtValue.CreateTensorValueFromMemory(new[] { (float)scale }, [])),
        };
        for (int i = 0; i < parameters.Count; i++)
            if (Parameters[i].Projection is null)
                inputs.Add((Parameters[i].Input, OrtValue.CreateTensorValueFromMemory(parameters[i], [parameters[i].Length])));
        return inputs;
    }
}
