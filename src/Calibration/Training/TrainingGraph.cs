using Microsoft.ML.OnnxRuntime;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.GraphRewriter.Autodiff;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.Calibration.Training;

/// <summary>Where the trained spontaneous-neuron vectors live.</summary>
public enum SpontaneousSpace
{
    /// <summary>The paper's parameterisation: one α per group in the projections' input space [K]; each projection adds W·α.</summary>
    Input,
    /// <summary>One vector per projection in its output space [N], trained directly (what the Add holds), a superset of W·α.</summary>
    Output,
}

/// <summary>
/// The probe (<see cref="ProbeModelBuilder"/>) turned into a training graph for spontaneous neurons. Added inputs:
/// the parameters (α per group or c per projection, float32, starting wherever the trainer sets them), the
/// dense model's next-token probabilities p [batch, length, V] for the batch, Σ p log p over the batch, and
/// the scale 1 / positions. Added outputs: the loss and the gradient of every parameter. The loss is
/// <code>KL(dense ‖ sparse) = scale · (Σ p log p − Σ p · log softmax(z))   averaged over positions</code>
/// whose gradient with respect to the logits z is scale · (softmax(z) − p), the seed of the backward graph
/// <see cref="GradientGraphBuilder"/> appends. In the input space, the compensation input c of each projection
/// becomes c + W·α (the projection's own weight, read through its own MatMul or Gemm), so the trainer sets c
/// to a fixed base (zeros, or a closed-form vector) and trains α.
/// </summary>
public sealed class TrainingGraph
{
    /// <summary>Name prefix of everything training adds.</summary>
    public const string Prefix = "sparseonnx.train.";

    private TrainingGraph(SpontaneousSpace space, IReadOnlyList<TrainingParameter> parameters, string reference, string negativeEntropy, string scale, string loss)
    {
        Space = space;
        Parameters = parameters;
        ReferenceInput = reference;
        NegativeEntropyInput = negativeEntropy;
        ScaleInput = scale;
        LossOutput = loss;
    }

    /// <summary>The parameterisation.</summary>
    public SpontaneousSpace Space { get; }
    /// <summary>The trained inputs, in layout order (one per group or one per projection).</summary>
    public IReadOnlyList<TrainingParameter> Parameters { get; }
    /// <summary>Input: the dense model's probabilities [batch, length, V].</summary>
    public string ReferenceInput { get; }
    /// <summary>Input: Σ p log p over the batch (float scalar).</summary>
    public string NegativeEntropyInput { get; }
    /// <summary>Input: 1 / (batch × length) (float scalar).</summary>
    public string ScaleInput { get; }
    /// <summary>Output: the mean KL over the batch's positions (float scalar).</summary>
    public string LossOutput { get; }

    /// <summary>
    /// The probe settings a training run feeds: <paramref name="basis"/> (thresholds or k, and the fixed vectors
    /// the input space adds W·α to), with the compensation inputs set to <paramref name="parameters"/> in the output space.
    /// </summary>
    public ProbeSettings Settings(ProbeSettings basis, IReadOnlyList<float[]> parameters)
    {
        if (Space == SpontaneousSpace.Input) return basis;
        var settings = basis.Clone();
        for (int i = 0; i < Parameters.Count; i++) settings.SetCompensation(Parameters[i].Projection!, parameters[i]);
        return settings;
    }

    /// <summary>
    /// The inputs a batch of <paramref name="windows"/> × <paramref name="length"/> feeds besides the probe's own:
    /// the dense model's probabilities (row after row, V per row; kept alive by the caller while the batch runs),
    /// Σ p log p, the scale, and in the input space the α. The scale is 1 / <paramref name="positions"/>, the positions
    /// of the whole step (the batch's own by default): a micro-batch's loss and gradients are then its share of the
    /// step's mean, and the micro-batches' sum is the step's.
    /// </summary>
    public IReadOnlyList<(string Name, OrtValue Value)> BatchInputs(Memory<float> probabilities, double negativeEntropy, int windows, int length,
        IReadOnlyList<float[]> parameters, long positions = 0)
    {
        long vocabulary = probabilities.Length / ((long)windows * length);
        if (positions == 0) positions = (long)windows * length;
        var inputs = new List<(string, OrtValue)>
        {
            (ReferenceInput, OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, probabilities, [windows, length, vocabulary])),
            (NegativeEntropyInput, OrtValue.CreateTensorValueFromMemory(new[] { (float)negativeEntropy }, [])),
            (ScaleInput, OrtValue.CreateTensorValueFromMemory(new[] { 1f / positions }, [])),
        };
        if (Space == SpontaneousSpace.Input)
            for (int i = 0; i < parameters.Count; i++)
                inputs.Add((Parameters[i].Input, OrtValue.CreateTensorValueFromMemory(parameters[i], [parameters[i].Length])));
        return inputs;
    }

    /// <summary>
    /// What a training step holds per window beyond the weights, by its vocabulary-wide tensors: the logits, their
    /// log-softmax and softmax, the reference, the products and the backward's gradients, each length × V floats.
    /// Measured on a 128,256-token vocabulary (ONNX Runtime's CPU provider, windows of 128): about 0.9 GB per window,
    /// some fourteen such tensors; sixteen are counted.
    /// </summary>
    public static long StepBytesPerWindow(long vocabulary, int length) => 16L * length * vocabulary * sizeof(float);

    /// <summary>Extends <paramref name="probe"/> in place (its layout is <paramref name="layout"/>; its logits output is <paramref name="logits"/>).</summary>
    public static TrainingGraph Build(Model probe, ProbeLayout layout, string logits, SpontaneousSpace space)
    {
        var graph = probe.Graph;
        var builder = new GraphBuilder(graph, hint => probe.UniqueName(Prefix + hint));
        var z = graph.Outputs.FirstOrDefault(o => o.Name == logits) ?? throw new ArgumentException($"The probe has no output '{logits}'.", nameof(logits));
        var parameters = AddParameters(probe, builder, layout.Groups, space);

        var reference = builder.Input(probe.UniqueName(Prefix + "reference"), DataType.Float, "batch", "length", "vocabulary");
        var negativeEntropy = builder.Input(probe.UniqueName(Prefix + "negative_entropy"), DataType.Float);
        var scale = builder.Input(probe.UniqueName(Prefix + "scale"), DataType.Float);
        var logSoftmax = builder.Op("LogSoftmax", [z], OnnxAttribute.Int("axis", -1));
        var cross = builder.Op("ReduceSum", [builder.Op("Mul", reference, logSoftmax)], OnnxAttribute.Int("keepdims", 0));
        var loss = builder.Op("Mul", builder.Op("Sub", negativeEntropy, cross), scale);
        builder.Output(loss, DataType.Float);
        var seed = builder.Op("Mul", builder.Op("Sub", builder.Op("Exp", logSoftmax), reference), scale);

        var gradients = GradientGraphBuilder.Build(probe, new GradientRequest(parameters.Select(p => p.Input).ToArray(), [(z, seed)]));
        var described = new List<TrainingParameter>();
        foreach (var (description, input) in parameters)
        {
            var gradient = gradients[input];
            builder.Output(gradient, DataType.Float, description.Length);
            described.Add(description with { GradientOutput = gradient.Name });
        }
        return new TrainingGraph(space, described, reference.Name, negativeEntropy.Name, scale.Name, loss.Name);
    }

    /// <summary>
    /// The trained inputs for <paramref name="groups"/>: per group an α [K] added as W·α to each member's compensation
    /// input (input space), or each member's compensation input itself (output space).
    /// </summary>
    internal static List<(TrainingParameter Description, Value Input)> AddParameters(Model probe, GraphBuilder builder, IEnumerable<ProbeGroup> groups,
        SpontaneousSpace space)
    {
        var graph = probe.Graph;
        var parameters = new List<(TrainingParameter Description, Value Input)>();
        var firstAxis = space == SpontaneousSpace.Input ? builder.Initializer(probe.UniqueName(Prefix + "axis0"), [1], [0L]) : null;
        var flatShape = space == SpontaneousSpace.Input ? builder.Initializer(probe.UniqueName(Prefix + "flat"), [1], [-1L]) : null;
        foreach (var group in groups)
        {
            if (space == SpontaneousSpace.Input)
            {
                var alpha = builder.Input(probe.UniqueName(Prefix + group.Id + ".alpha"), DataType.Float, group.InFeatures);
                var row = builder.Op("Unsqueeze", alpha, firstAxis);
                foreach (var projection in group.Members) AddToCompensation(probe, builder, projection, row, flatShape!);
                parameters.Add((new TrainingParameter(alpha.Name, group, null, group.InFeatures), alpha));
            }
            else
                foreach (var projection in group.Members)
                {
                    var input = graph.Inputs.First(i => i.Name == projection.CompensationInput);
                    parameters.Add((new TrainingParameter(input.Name, group, projection, projection.OutFeatures), input));
                }
        }
        return parameters;
    }

    /// <summary>c → c + W·α for <paramref name="projection"/>, with W read through the projection's own node.</summary>
    private static void AddToCompensation(Model probe, GraphBuilder builder, ProbeProjection projection, Value alphaRow, Value flatShape)
    {
        var compensation = probe.Graph.Inputs.First(i => i.Name == projection.CompensationInput);
        var use = compensation.Uses.Single();
        var add = use.Node;
        // The projection node itself (the compensation Add may follow its bias Add), found by the name plans use.
        var node = probe.Graph.Nodes.FirstOrDefault(n => n.Name == projection.Node)
            ?? throw new InvalidOperationException($"The probe has no node named {projection.Node}.");
        Value term = node.OpType switch
        {
            "MatMul" => builder.Op("MatMul", alphaRow, node.Inputs[1]),
            "Gemm" => builder.Op("Gemm", [alphaRow, node.Inputs[1]],
                OnnxAttribute.Int("transB", node.Attributes.GetInt("transB", 0)), OnnxAttribute.Float("alpha", node.Attributes.GetFloat("alpha", 1f))),
            _ => throw new InvalidOperationException($"Projection {projection.Node} is a {node.OpType}, not a MatMul or Gemm."),
        };
        var flat = builder.Op("Reshape", term, flatShape);
        var total = builder.Op("Add", compensation, flat);
        add.SetInput(use.InputIndex, total);
    }
}

/// <summary>One trained input: its name, the group it belongs to, the projection (output space only), its length, and its gradient output.</summary>
public sealed record TrainingParameter(string Input, ProbeGroup Group, ProbeProjection? Projection, long Length)
{
    /// <summary>The gradient output's name.</summary>
    public string GradientOutput { get; init; } = "";
}
