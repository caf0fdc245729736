using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>
/// Finds dense projections in one graph: <c>MatMul(X, W)</c>, <c>MatMul(X, Transpose(W))</c> and
/// <c>Gemm(X, W, b)</c> with transA = 0 and transB 0 or 1, where W is a constant matrix (an initializer of
/// this or an enclosing graph, or a Constant node, possibly behind Identity nodes as TorchScript writes tied
/// weights), and a MatMul's bias when exactly one Add of a constant [N] vector follows it; and ONNX
/// Runtime's MatMulNBits with constant quantized weights.
/// </summary>
internal static class ProjectionFinder
{
    public static List<Projection> Find(Graph graph, string graphPath)
    {
        var found = new List<Projection>();
        foreach (var node in graph.Nodes)
        {
            var projection = node.Is("MatMul") ? FromMatMul(node, graph, graphPath)
                : node.Is("Gemm") ? FromGemm(node, graph, graphPath)
                : MatMulNBitsFormat.IsMatMulNBits(node) ? FromMatMulNBits(node, graph, graphPath)
                : null;
            if (projection is not null) found.Add(projection);
        }
        return found;
    }

    private static Projection? FromMatMul(Node node, Graph graph, string graphPath)
    {
        if (node.Inputs.Count != 2 || node.Inputs[0] is not { } x || node.Inputs[1] is not { } b) return null;
        if (ConstantTensor(x) is not null) return null;
        var weight = ResolveWeight(b);
        if (weight is null) return null;
        var (constant, tensor, transpose, transposed) = weight.Value;
        long inFeatures = transposed ? tensor.Dims[1] : tensor.Dims[0];
        long outFeatures = transposed ? tensor.Dims[0] : tensor.Dims[1];
        var output = node.Outputs[0];
        var (bias, biasAdd) = FindBiasAdd(output, outFeatures);
        return new Projection(node, graph, graphPath, x, constant, transpose, transposed, inFeatures, outFeatures,
            tensor.DataType, bias, biasAdd, biasAdd?.Outputs[0] ?? output);
    }

    private static Projection? FromGemm(Node node, Graph graph, string graphPath)
    {
        if (node.Inputs.Count < 2 || node.Inputs[0] is not { } x || node.Inputs[1] is not { } b) return null;
        if (node.Attributes.GetInt("transA", 0) != 0 || ConstantTensor(x) is not null) return null;
        var weight = ResolveWeight(b);
        if (weight is null) return null;
        var (constant, tensor, transpose, viaTranspose) = weight.Value;
        bool transposed = (node.Attributes.GetInt("transB", 0) != 0) ^ viaTranspose;
        long inFeatures = transposed ? tensor.Dims[1] : tensor.Dims[0];
        long outFeatures = transposed ? tensor.Dims[0] : tensor.Dims[1];
        Value? bias = node.InputOrNull(2) is { } c && ConstantTensor(c) is not null ? c : null;
        return new Projection(node, graph, graphPath, x, constant, transpose, transposed, inFeatures, outFeatures,
            tensor.DataType, bias, null, node.Outputs[0]);
    }

    /// <summary>
    /// MatMulNBits(X, B, scales[, zero_points[, g_idx[, bias]]]) with constant B, scales and zero points: a
    /// projection whose weight is stored [N, K] in N-bit blocks. Attributes SparseOnnx cannot rewrite (3 bits,
    /// g_idx) still make a projection, so inspect and the classifier see it; its format says why.
    /// </summary>
    private static Projection? FromMatMulNBits(Node node, Graph graph, string graphPath)
    {
        if (node.InputOrNull(0) is not { } x || node.InputOrNull(1) is not { } b || node.InputOrNull(2) is not { } scales) return null;
        if (ConstantTensor(x) is not null || !b.IsConstant || !scales.IsConstant) return null;
        var zeroPoints = node.InputOrNull(3) is { Name.Length: > 0 } z ? z : null;
        if (zeroPoints is not null && !zeroPoints.IsConstant) return null;
        long k = node.Attributes.GetInt("K", 0), n = node.Attributes.GetInt("N", 0);
        if (k <= 0 || n <= 0) return null;
        var attributes = MatMulNBitsFormat.ReadAttributes(node, out var problem);
        var scaleType = scales.ConstValue!.DataType;
        if (problem is null && scaleType is not (DataType.Float or DataType.Float16))
            problem = $"its scales are {scaleType.DisplayName()}";
        var bias = node.InputOrNull(5) is { Name.Length: > 0 } biasValue && ConstantTensor(biasValue) is not null ? biasValue : null;
        var format = new MatMulNBitsWeight(node, b, scales, zeroPoints, (int)node.Attributes.GetInt("bits", 4), k, n,
            (int)node.Attributes.GetInt("block_size", 0), attributes?.AccuracyLevel ?? (int)node.Attributes.GetInt("accuracy_level", 0), problem);
        return new Projection(node, graph, graphPath, x, b, null, true, k, n, scaleType, bias, null, node.Outputs[0]) { Quantized = format };
    }

    /// <summary>The constant matrix behind a MatMul/Gemm B input, looking through Identity and a 2-D Transpose.</summary>
    private static (Value Constant, Tensor Tensor, Node? Transpose, bool Transposed)? ResolveWeight(Value b)
    {
        Node? transpose = null;
        var current = SkipIdentities(b);
        if (current.Producer is { } producer && producer.Is("Transpose") && producer.Inputs.Count == 1 && producer.Inputs[0] is { } source)
        {
            var perm = producer.Attributes["perm"]?.AsInts();
            if (perm is not null && !perm.Value.SequenceEqual([1L, 0L])) return null;
            transpose = producer;
            current = SkipIdentities(source);
        }
        var tensor = ConstantTensor(current);
        if (tensor is null || tensor.Dims.Length != 2 || tensor.Dims[0] == 0 || tensor.Dims[1] == 0) return null;
        if (!tensor.DataType.IsFloatingPoint()) return null;
        return (current, tensor, transpose, transpose is not null);
    }

    private static Value SkipIdentities(Value value)
    {
        for (int guard = 0; guard < 64 && value.Producer is { } p && p.Is("Identity") && p.Inputs.Count == 1 && p.Inputs[0] is { } source; guard++)
            value = source;
        return value;
    }

    /// <summary>The tensor of a constant value: a non-overridable initializer, or a Constant node's tensor.</summary>
    internal static Tensor? ConstantTensor(Value value)
    {
        if (value.IsConstant) return value.ConstValue;
        if (value.Producer is { } p && p.Is("Constant") && p.Attributes["value"] is { Kind: AttributeKind.Tensor } a) return a.AsTensor();
        return null;
    }

    /// <summary>The bias Add after a MatMul: the only reader of its output, adding a constant of N elements.</summary>
    private static (Value? Bias, Node? Add) FindBiasAdd(Value matmulOutput, long outFeatures)
    {
        if (matmulOutput.Uses.Count != 1 || matmulOutput.IsGraphOutput) return (null, null);
        var add = matmulOutput.Uses[0].Node;
        if (!add.Is("Add") || add.Inputs.Count != 2) return (null, null);
        var other = add.Inputs[1 - matmulOutput.Uses[0].InputIndex];
        if (other is null || ConstantTensor(other) is not { } tensor) return (null, null);
        bool vector = tensor.Dims.Length >= 1 && tensor.Dims[^1] == outFeatures && tensor.ElementCount == outFeatures;
        return vector ? (other, add) : (null, null);
    }
}
