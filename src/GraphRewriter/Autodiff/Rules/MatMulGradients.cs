using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>
/// MatMul (numpy semantics, batched and broadcast) and Gemm. For Y = A·B: dA = dY·Bᵀ and dB = Aᵀ·dY, summed
/// over broadcast batch axes. A 2-D B whose rank is declared (a weight) uses MatMul with a transposed B,
/// which ONNX Runtime folds once at load; otherwise Einsum's ellipsis handles any batch rank without
/// shape inference.
/// </summary>
internal static class MatMulGradients
{
    public static IEnumerable<KeyValuePair<string, GradientRule>> All => [new("MatMul", MatMul), new("Gemm", Gemm)];

    private static Value?[] MatMul(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var a = node.Inputs[0]!;
        var b = node.Inputs[1]!;
        if (a.Shape is { Rank: 1 } || b.Shape is { Rank: 1 })
            throw UnsupportedGradientException.For(node, "an operand is 1-D (vector products are not supported)");
        Value? da = null, db = null;
        if (wanted[0])
            da = b.Shape is { Rank: 2 }
                ? e.Op("MatMul", dy[0], e.Op("Transpose", [b], OnnxAttribute.Ints("perm", [1, 0])))
                : e.Unbroadcast(e.Op("Einsum", [dy[0], WithBatchOf(e, b, dy[0]!)], OnnxAttribute.String("equation", "...ij,...kj->...ik")), a);
        if (wanted[1])
            db = e.Unbroadcast(e.Op("Einsum", [WithBatchOf(e, a, dy[0]!), dy[0]], OnnxAttribute.String("equation", "...ji,...jk->...ik")), b);
        return [da, db];
    }

    /// <summary>
    /// <paramref name="operand"/> expanded to the batch axes of <paramref name="result"/>: Einsum's ellipsis
    /// needs both operands to have the same batch rank, which numpy-style MatMul broadcasting does not.
    /// </summary>
    private static Value WithBatchOf(GradientEmitter e, Value operand, Value result)
    {
        var batch = e.Op("Slice", e.ShapeOf(result), e.Ints(0), e.Ints(-2));
        var matrix = e.Op("Slice", e.ShapeOf(operand), e.Ints(-2), e.Ints(long.MaxValue));
        return e.Op("Expand", operand, e.Op("Concat", [batch, matrix], OnnxAttribute.Int("axis", 0)));
    }

    // Y = α·op(A)·op(B) + β·C, op = transpose when transA / transB.
    private static Value?[] Gemm(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var a = node.Inputs[0]!;
        var b = node.Inputs[1]!;
        float alpha = node.Attributes.GetFloat("alpha", 1f), beta = node.Attributes.GetFloat("beta", 1f);
        bool transA = node.Attributes.GetInt("transA", 0) != 0, transB = node.Attributes.GetInt("transB", 0) != 0;
        var g = dy[0]!;
        Value Gemm2(Value x, Value y, bool tx, bool ty) => e.Op("Gemm", [x, y],
            OnnxAttribute.Float("alpha", alpha), OnnxAttribute.Int("transA", tx ? 1 : 0), OnnxAttribute.Int("transB", ty ? 1 : 0));
        var result = new Value?[node.Inputs.Count];
        // d op(A) = α·dY·op(B)ᵀ;  dA = d op(A), or its transpose when transA.
        if (wanted[0]) result[0] = transA ? Gemm2(b, g, transB, true) : Gemm2(g, b, false, !transB);
        // d op(B) = α·op(A)ᵀ·dY;  dB = d op(B), or its transpose when transB.
        if (wanted[1]) result[1] = transB ? Gemm2(g, a, true, transA) : Gemm2(a, g, !transA, false);
        if (node.Inputs.Count > 2 && wanted[2])
            result[2] = e.Unbroadcast(beta == 1f ? g : e.Op("Mul", g, e.Scalar(beta)), node.Inputs[2]!);
        return result;
    }
}
