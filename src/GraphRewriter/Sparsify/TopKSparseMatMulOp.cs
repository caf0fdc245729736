namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>
/// The names the rewriter writes for the TopKSparseMatMul op (contract: docs/topk-sparse-matmul.md). The op
/// library's C# side (SparseOnnx.CustomOps) declares the same names; a test keeps them equal.
/// </summary>
public static class TopKSparseMatMulOp
{
    /// <summary>Operator domain.</summary>
    public const string Domain = "ai.sparseonnx";

    /// <summary>Operator set version of the domain.</summary>
    public const long OpsetVersion = 1;

    /// <summary>Operator type.</summary>
    public const string OpType = "TopKSparseMatMul";

    /// <summary>Attribute: entries kept per row.</summary>
    public const string KAttribute = "k";

    /// <summary>Attribute: magnitude an entry must exceed to be kept.</summary>
    public const string ThresholdAttribute = "threshold";

    /// <summary>Prefix of the node metadata keys that record provenance.</summary>
    public const string MetadataPrefix = "sparseonnx.";
}
