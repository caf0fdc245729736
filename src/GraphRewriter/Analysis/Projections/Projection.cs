using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>How a projection's kind was decided.</summary>
public enum KindSource
{
    /// <summary>From the graph's structure (attention, MLP and output patterns).</summary>
    Structure,

    /// <summary>From node, weight or metadata names, because the structure was not conclusive.</summary>
    NameHint,

    /// <summary>Not decided: the kind is <see cref="ProjectionKind.Unknown"/>.</summary>
    None,
}

/// <summary>
/// A dense projection <c>Y = X · W (+ b)</c> found in a graph: a MatMul or Gemm whose weight is a constant
/// matrix, or a MatMulNBits with constant quantized weights, with its optional bias, and the role the
/// classifier assigned it.
/// </summary>
public sealed class Projection
{
    internal Projection(Node node, Graph graph, string graphPath, Value input, Value weight, Node? weightTranspose,
        bool weightStoredTransposed, long inFeatures, long outFeatures, DataType dataType, Value? bias, Node? biasAdd, Value output)
    {
        Node = node;
        Graph = graph;
        GraphPath = graphPath;
        Input = input;
        Weight = weight;
        WeightTranspose = weightTranspose;
        WeightStoredTransposed = weightStoredTransposed;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        DataType = dataType;
        Bias = bias;
        BiasAdd = biasAdd;
        Output = output;
    }

    /// <summary>The MatMul or Gemm node.</summary>
    public Node Node { get; }

    /// <summary>The graph holding the node (the main graph or a subgraph such as an If branch).</summary>
    public Graph Graph { get; }

    /// <summary>A readable path to <see cref="Graph"/>: <c>main</c>, or <c>main/&lt;node&gt;/&lt;attribute&gt;</c> for subgraphs.</summary>
    public string GraphPath { get; }

    /// <summary>The activation input X [..., K].</summary>
    public Value Input { get; }

    /// <summary>The constant holding the weight (an initializer, possibly of an enclosing graph).</summary>
    public Value Weight { get; }

    /// <summary>The Transpose node between <see cref="Weight"/> and the MatMul, when the export kept one.</summary>
    public Node? WeightTranspose { get; }

    /// <summary>True when the stored tensor is [N, K] (Gemm transB=1, or MatMul of Transpose(W)).</summary>
    public bool WeightStoredTransposed { get; }

    /// <summary>K: input features.</summary>
    public long InFeatures { get; }

    /// <summary>N: output features.</summary>
    public long OutFeatures { get; }

    /// <summary>
    /// The weight's format when it is quantized (a MatMulNBits node; <see cref="Weight"/> is then its packed
    /// codes), or null for a float weight.
    /// </summary>
    public MatMulNBitsWeight? Quantized { get; internal init; }

    /// <summary>The weight's element type (for a quantized weight, the type of its scales and of A).</summary>
    public DataType DataType { get; }

    /// <summary>The bias vector, when the projection has one (Gemm's C, or an Add right after the MatMul).</summary>
    public Value? Bias { get; }

    /// <summary>The Add node applying <see cref="Bias"/> after a MatMul (null for Gemm or no bias).</summary>
    public Node? BiasAdd { get; }

    /// <summary>The projection's result (after the bias).</summary>
    public Value Output { get; }

    /// <summary>The role assigned by the classifier.</summary>
    public ProjectionKind Kind { get; internal set; } = ProjectionKind.Unknown;

    /// <summary>How <see cref="Kind"/> was decided.</summary>
    public KindSource KindSource { get; internal set; } = KindSource.None;

    /// <summary>Transformer layer (block) index from 0, or null when not known (always null for lm_head).</summary>
    public int? Layer { get; internal set; }

    /// <summary>Why the projection is <see cref="ProjectionKind.Unknown"/>, or other notes on its classification.</summary>
    public string? Reason { get; internal set; }

    /// <summary>The node's name, or a description when it has none.</summary>
    public string DisplayName => string.IsNullOrEmpty(Node.Name) ? $"{Node.OpType}->{Output.Name}" : Node.Name;

    /// <inheritdoc />
    public override string ToString() => $"{DisplayName}: {Kind.ToShortName()} layer {Layer?.ToString() ?? "-"} [{InFeatures}x{OutFeatures}]";
}
