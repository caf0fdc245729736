using System.Globalization;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>How sparse one projection becomes, and where that decision came from.</summary>
/// <param name="K">Entries kept per token (top-k), or null in threshold mode.</param>
/// <param name="Threshold">Magnitude threshold, or null in top-k mode.</param>
/// <param name="Source">Provenance: the uniform option or the plan it came from.</param>
public sealed record SparsitySetting(long? K, float? Threshold, string Source);

/// <summary>State shared by the rewrites of one model.</summary>
internal sealed class RewriteContext(Model model)
{
    public Model Model { get; } = model;

    /// <summary>Weights stored [N, K] and their [K, N] copies, so a weight shared by several projections is transposed once.</summary>
    public Dictionary<Value, Value> KnWeights { get; } = new();
}

/// <summary>
/// Replaces a dense projection by the sparse op (contract: docs/topk-sparse-matmul.md):
/// <code>
/// MatMul(X, W)                      -> TopKSparseMatMul(X, W)
/// MatMul(X, Transpose(Wt))          -> TopKSparseMatMul(X, W)         W = Wtᵀ, stored [K, N]
/// Gemm(X, B, C; alpha, beta, transB) -> Add(Mul(TopKSparseMatMul(X, op(B)), alpha), beta · C)
/// </code>
/// (the Mul only when alpha ≠ 1, the Add only when C is given). The node is retyped in place, so it keeps
/// its name, its output and its position; a following bias Add is left as it is. Identity, Transpose and
/// Constant nodes and initializers that only fed the weight are removed; a transposed copy is computed
/// while the model is saved, band by band, never whole in memory.
/// </summary>
internal static class TopKSparseMatMulRule
{
    public const string RuleName = "TopKSparseMatMul";

    /// <summary>Null when <paramref name="projection"/> can be rewritten; otherwise why not.</summary>
    public static string? Check(Projection projection)
    {
        var node = projection.Node;
        if (node.Graph is null || !(node.Is("MatMul") || node.Is("Gemm")))
            return "the node was already rewritten or removed";
        if (!FloatElements.IsSupported(projection.DataType))
            return $"the weight is {projection.DataType.DisplayName()}; {TopKSparseMatMulOp.OpType} takes float32, float16 or bfloat16";
        var input = node.Inputs[0]!;
        if (input.ElementType is { } inputType && inputType != projection.DataType)
            return $"the input is {inputType.DisplayName()} but the weight is {projection.DataType.DisplayName()}";
        if (input.Shape is { Rank: < 2 } shape)
            return $"the input has rank {shape.Rank}; {TopKSparseMatMulOp.OpType} needs rank 2 or more";
        if (node.Is("Gemm") && node.InputOrNull(2) is { } c && c.ElementType is { } biasType && biasType != projection.DataType)
            return $"the Gemm bias is {biasType.DisplayName()} but the weight is {projection.DataType.DisplayName()}";
        if (projection.WeightStoredTransposed && ProjectionFinder.ConstantTensor(projection.Weight)!.Data.ByteLength > Array.MaxLength)
            return "the weight is stored [N, K] and larger than 2 GiB; transposing it is not supported";
        return null;
    }

    /// <summary>
    /// Rewrites <paramref name="projection"/> (which <see cref="Check"/> accepted) and returns the value that
    /// now holds its result: the projection's output (after its bias Add, if any), or for a Gemm with alpha or
    /// C the last value of the sequence that replaces it (named as the Gemm's output was).
    /// </summary>
    public static Value Apply(Projection projection, SparsitySetting setting, RewriteContext context)
    {
        var node = projection.Node;
        var model = context.Model;
        bool gemm = node.Is("Gemm");
        float alpha = gemm ? node.Attributes.GetFloat("alpha", 1f) : 1f;
        float beta = gemm ? node.Attributes.GetFloat("beta", 1f) : 1f;
        var bias = gemm ? node.InputOrNull(2) : null;
        string replaced = gemm
            ? $"Gemm(transB={node.Attributes.GetInt("transB", 0)}, alpha={Format(alpha)}, beta={Format(beta)})"
            : projection.WeightTranspose is null ? "MatMul" : "MatMul(X, Transpose(W))";
        var oldWeightInput = node.Inputs[1]!;
        var weight = WeightKn(projection, context);

        node.Domain = TopKSparseMatMulOp.Domain;
        node.OpType = TopKSparseMatMulOp.OpType;
        foreach (var attribute in node.Attributes.Select(a => a.Name).ToList()) node.Attributes.Remove(attribute);
        node.TruncateInputs(2);
        node.SetInput(1, weight);
        node.Attributes.Set(setting.K is { } k
            ? OnnxAttribute.Int(TopKSparseMatMulOp.KAttribute, k)
            : OnnxAttribute.Float(TopKSparseMatMulOp.ThresholdAttribute, setting.Threshold!.Value));
        RecordProvenance(node, projection, setting, replaced);
        DeadWeightChain.Remove(oldWeightInput, model);

        var result = node.Outputs[0];
        result.Type ??= ProjectedType(node.Inputs[0]!, projection.OutFeatures, projection.DataType);
        Splice.Declare(result);
        if (!gemm) return projection.Output; // the MatMul's output, or the output of the bias Add that follows it
        string nodeName = projection.DisplayName;
        if (alpha != 1f)
        {
            var scale = Scalar(node.Graph!, model.UniqueName(nodeName + ".alpha"), alpha, projection.DataType);
            result = Splice.After(model, result, "Mul", [scale], nodeName + "/alpha", result.Name + ".unscaled").Outputs[0];
        }
        if (bias is not null)
        {
            var scaledBias = beta == 1f ? bias : ScaledBias(bias, beta, projection, node, context);
            var add = Splice.After(model, result, "Add", [scaledBias], nodeName + "/bias", result.Name + ".without_bias");
            DeadWeightChain.Remove(bias, model);
            add.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "rule", RuleName + " (Gemm bias)"));
            result = add.Outputs[0];
        }
        return result;
    }

    /// <summary>The weight in [K, N] layout: the constant itself, or its transposed copy (created once per constant).</summary>
    private static Value WeightKn(Projection projection, RewriteContext context)
    {
        var source = projection.Weight;
        if (!projection.WeightStoredTransposed) return source;
        if (context.KnWeights.TryGetValue(source, out var cached)) return cached;
        var tensor = ProjectionFinder.ConstantTensor(source)!;
        long n = tensor.Dims[0], k = tensor.Dims[1];
        var data = new TransposedTensorData(tensor.Data, n, k, tensor.DataType.BitWidth()!.Value / 8);
        var transposed = new Tensor(context.Model.UniqueName(source.Name + ".kn"), tensor.DataType, [k, n], data);
        transposed.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "transposed_from", source.Name));
        var value = source.Graph!.Initializers.Add(transposed);
        context.KnWeights[source] = value;
        return value;
    }

    private static Value ScaledBias(Value bias, float beta, Projection projection, Node node, RewriteContext context)
    {
        var model = context.Model;
        if (ProjectionFinder.ConstantTensor(bias) is { } tensor && FloatElements.IsSupported(tensor.DataType) && tensor.ElementCount <= 1 << 24)
        {
            var values = FloatElements.Decode(tensor.Data.ToArray(), tensor.DataType);
            for (int i = 0; i < values.Length; i++) values[i] *= beta;
            var scaled = new Tensor(model.UniqueName(bias.Name + ".beta"), tensor.DataType, tensor.Dims,
                new InMemoryTensorData(FloatElements.Encode(values, tensor.DataType)));
            return node.Graph!.Initializers.Add(scaled);
        }
        var factor = Scalar(node.Graph!, model.UniqueName(projection.DisplayName + ".beta"), beta, projection.DataType);
        var mul = new Node("", "Mul", [bias, factor], [model.UniqueName(bias.Name + ".beta")], model.UniqueName(projection.DisplayName + "/beta"));
        mul.Outputs[0].Type = bias.Type;
        node.Graph!.Nodes.InsertBefore(node, mul);
        Splice.Declare(mul.Outputs[0]);
        return mul.Outputs[0];
    }

    private static Value Scalar(Graph graph, string name, float value, DataType type) =>
        graph.Initializers.Add(new Tensor(name, type, [], new InMemoryTensorData(FloatElements.Encode([value], type))));

    /// <summary>The output type of X·W: X's leading dimensions and N (symbolic names kept), or unknown shape.</summary>
    internal static TensorType ProjectedType(Value input, long outFeatures, DataType type)
    {
        if (input.Shape is { Rank: >= 1 } shape)
            return new TensorType(type, new Shape(shape.Dims.Take(shape.Rank - 1).Append(Dim.Known(outFeatures))));
        return new TensorType(type, null);
    }

    private static void RecordProvenance(Node node, Projection projection, SparsitySetting setting, string replaced)
    {
        void Add(string key, string value) => node.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + key, value));
        Add("rule", RuleName);
        Add("replaced", replaced);
        Add("kind", projection.Kind.ToShortName());
        if (projection.Layer is { } layer) Add("layer", layer.ToString(CultureInfo.InvariantCulture));
        Add("weight", projection.Weight.Name);
        if (setting.K is { } k)
        {
            Add("k", k.ToString(CultureInfo.InvariantCulture));
            Add("sparsity", Format(1.0 - (double)k / projection.InFeatures));
        }
        else
        {
            Add("threshold", Format(setting.Threshold!.Value));
        }
        Add("source", setting.Source);
    }

    internal static string Format(double value) => value.ToString("0.######", CultureInfo.InvariantCulture);
}
