using System.Globalization;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>How float weights are quantized when they are sparsified with <c>--quantize</c>.</summary>
/// <param name="Bits">4 or 8.</param>
/// <param name="BlockSize">Input channels per scale (a power of two, at least 16).</param>
/// <param name="AccuracyLevel">0: float32 activations; 4: int8 activations per block (MatMulNBits' CPU level).</param>
/// <param name="Float16Scales">
/// Store the scales as float16 (TopKSparseMatMulNBits only; MatMulNBits needs scales of A's type). A sparse
/// product reads every block's scales whatever it drops, so float16 scales cut what it reads at 50% sparsity
/// by a sixth; the codes are rounded against the float16 scale, one rounding.
/// </param>
public sealed record WeightQuantization(int Bits = 4, int BlockSize = 32, int AccuracyLevel = 4, bool Float16Scales = false)
{
    /// <summary>Throws <see cref="ArgumentException"/> for unsupported settings.</summary>
    public void Validate()
    {
        if (Bits is not (4 or 8)) throw new ArgumentException($"Quantization bits must be 4 or 8, not {Bits}.");
        if (BlockSize < 16 || (BlockSize & (BlockSize - 1)) != 0) throw new ArgumentException($"The block size must be a power of two of at least 16, not {BlockSize}.");
        if (AccuracyLevel is not (0 or 4)) throw new ArgumentException($"The accuracy level must be 0 (float32) or 4 (int8 activations), not {AccuracyLevel}.");
    }
}

/// <summary>
/// Replaces a projection by the sparse quantized op (contract: docs/topk-sparse-matmul-nbits.md):
/// <code>
/// MatMulNBits(X, B, scales[, zp][, , bias]) -> TopKSparseMatMulNBits(X, codes, scales[, zp][, bias])   same weights
/// MatMul(X, W) with quantization           -> TopKSparseMatMulNBits(X, codes, scales)              W quantized RTN
/// </code>
/// From MatMulNBits no dequantized weight changes: the codes, scales and zero points are re-laid out by input
/// row. From a float weight, ONNX Runtime's symmetric round-to-nearest quantization (<see cref="RtnQuantizer"/>)
/// is written straight into that layout, so the result equals <c>quantize</c> then <c>sparsify</c>. The new
/// tensors are computed while the model is saved, one at a time.
/// </summary>
internal static class TopKSparseMatMulNBitsRule
{
    public const string RuleName = "TopKSparseMatMulNBits";

    /// <summary>Null when the projection can be rewritten (quantizing a float one with <paramref name="quantization"/>); otherwise why not.</summary>
    public static string? Check(Projection projection, WeightQuantization? quantization)
    {
        var node = projection.Node;
        if (node.Graph is null) return "the node was already rewritten or removed";
        if (projection.Quantized is { } q)
        {
            if (q.Problem is not null) return q.Problem;
            if (projection.DataType != DataType.Float)
                return $"its scales and activations are {projection.DataType.DisplayName()}; {TopKSparseMatMulNBitsOp.OpType} takes float32 (float16 MatMulNBits models are GPU exports)";
            return null;
        }
        if (quantization is null) return "not quantized";
        if (!node.Is("MatMul")) return $"quantizing a {node.OpType} is not supported (MatMul only)";
        if (projection.DataType != DataType.Float) return $"the weight is {projection.DataType.DisplayName()}; quantization reads float32";
        if (node.Inputs[0]!.Shape is { Rank: < 2 } shape) return $"the input has rank {shape.Rank}; the op needs rank 2 or more";
        if (ProjectionFinder.ConstantTensor(projection.Weight)!.Data.ByteLength > Array.MaxLength) return "the weight is larger than 2 GiB";
        return null;
    }

    public static Value Apply(Projection projection, SparsitySetting setting, WeightQuantization? quantization, RewriteContext context)
    {
        var node = projection.Node;
        var model = context.Model;
        var graph = node.Graph!;
        long k = projection.InFeatures, n = projection.OutFeatures;
        string name = projection.DisplayName;
        Func<NBitsBlocks> read;
        int bits, blockSize, accuracyLevel;
        bool zeroPoints, float16Scales = false;
        string replaced;
        var oldInputs = node.Inputs.Skip(1).Where(v => v is not null).Cast<Value>().ToList();
        Value? bias = null;
        if (projection.Quantized is { } q)
        {
            read = q.Reader();  // bound to the tensors now: the node and its old inputs change below
            (bits, blockSize, zeroPoints) = (q.Bits, q.BlockSize, q.ZeroPoints is not null);
            float16Scales = q.ScalesFitFloat16();  // lossless, and a sixth fewer bytes read at 50% sparsity
            accuracyLevel = q.AccuracyLevel == 4 ? 4 : 0;  // levels 1-3 compute in float32, 16 or bf16 on CPU; we take float32
            replaced = $"MatMulNBits({q.Description})";
            bias = projection.Bias;
        }
        else
        {
            var quant = quantization!;
            var weight = ProjectionFinder.ConstantTensor(projection.Weight)!;
            bool transposed = projection.WeightStoredTransposed;
            read = () => RtnQuantizer.Quantize(WeightKn(weight, transposed, k, n), k, n, quant.Bits, quant.BlockSize, quant.Float16Scales);
            (bits, blockSize, accuracyLevel, zeroPoints, float16Scales) = (quant.Bits, quant.BlockSize, quant.AccuracyLevel, false, quant.Float16Scales);
            replaced = projection.WeightTranspose is null ? "MatMul" : "MatMul(X, Transpose(W))";
        }

        long blocks = (k + blockSize - 1) / blockSize, padded = QuantizedRowsFormat.PaddedColumns(n);
        long rowBytes = QuantizedRowsFormat.RowBytes(bits, n);
        var codes = graph.Initializers.Add(new Tensor(model.UniqueName(name + ".codes"), DataType.UInt8, [k, rowBytes],
            new DeferredTensorData(k * rowBytes, () => QuantizedRowsFormat.Codes(read()))));
        var scales = graph.Initializers.Add(new Tensor(model.UniqueName(name + ".scales"), float16Scales ? DataType.Float16 : DataType.Float, [blocks, padded],
            new DeferredTensorData(blocks * padded * (float16Scales ? 2 : 4), () =>
            {
                var w = read();
                return float16Scales ? QuantizedRowsFormat.BlockHalves(w, w.Scales) : QuantizedRowsFormat.BlockFloats(w, w.Scales);
            })));
        Value? zeros = zeroPoints
            ? graph.Initializers.Add(new Tensor(model.UniqueName(name + ".zero_points"), DataType.Float, [blocks, padded],
                new DeferredTensorData(blocks * padded * 4, () => { var w = read(); return QuantizedRowsFormat.BlockFloats(w, w.ZeroPoints!); })))
            : null;

        node.Domain = TopKSparseMatMulOp.Domain;
        node.OpType = TopKSparseMatMulNBitsOp.OpType;
        foreach (var attribute in node.Attributes.Select(a => a.Name).ToList()) node.Attributes.Remove(attribute);
        node.TruncateInputs(1);
        node.AppendInput(codes);
        node.AppendInput(scales);
        if (zeros is not null || bias is not null) node.AppendInput(zeros);
        if (bias is not null) node.AppendInput(bias);
        node.Attributes.Set(OnnxAttribute.Int("K", k));
        node.Attributes.Set(OnnxAttribute.Int("N", n));
        node.Attributes.Set(OnnxAttribute.Int("bits", bits));
        node.Attributes.Set(OnnxAttribute.Int("block_size", blockSize));
        node.Attributes.Set(OnnxAttribute.Int("accuracy_level", accuracyLevel));
        node.Attributes.Set(setting.K is { } kept
            ? OnnxAttribute.Int(TopKSparseMatMulOp.KAttribute, kept)
            : OnnxAttribute.Float(TopKSparseMatMulOp.ThresholdAttribute, setting.Threshold!.Value));
        void Add(string key, string value) => node.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + key, value));
        Add("rule", RuleName);
        Add("replaced", replaced);
        Add("kind", projection.Kind.ToShortName());
        if (projection.Layer is { } layer) Add("layer", layer.ToString(CultureInfo.InvariantCulture));
        Add("weight", projection.Weight.Name);
        if (projection.Quantized is null) Add("quantized", $"RTN symmetric int{bits}, block {blockSize} along K, {(float16Scales ? "float16" : "float32")} scales");
        if (setting.K is { } kk)
        {
            Add("k", kk.ToString(CultureInfo.InvariantCulture));
            Add("sparsity", TopKSparseMatMulRule.Format(1.0 - (double)kk / k));
        }
        else Add("threshold", TopKSparseMatMulRule.Format(setting.Threshold!.Value));
        Add("source", setting.Source);
        foreach (var old in oldInputs)
            if (old != bias) DeadWeightChain.Remove(old, model);

        var result = node.Outputs[0];
        result.Type ??= TopKSparseMatMulRule.ProjectedType(node.Inputs[0]!, n, DataType.Float);
        Splice.Declare(result);
        return projection.Output;
    }

    /// <summary>
    /// The spontaneous-neuron vector of a rewritten projection as the op's bias input (added to an existing bias
    /// in one tensor), instead of an Add after it: the same sum, one node fewer per projection (the Adds cost
    /// 1.2 ms of a 1B-size model's token). The tensor is named <c>&lt;node&gt;.spontaneous</c> (or
    /// <c>&lt;node&gt;.bias_and_spontaneous</c>) and carries the vector's provenance, as the Add's would.
    /// </summary>
    public static void AttachSpontaneous(Model model, Node node, string projectionName, long outFeatures, float[]? values, string calibration)
    {
        if (values is not null && values.Length != outFeatures)
            throw new ArgumentException($"{values.Length} spontaneous values for a projection with {outFeatures} outputs.", nameof(values));
        var vector = values ?? new float[outFeatures];
        var bias = node.InputOrNull(4);
        string name = projectionName + ".spontaneous";
        if (bias is not null)
        {
            var tensor = ProjectionFinder.ConstantTensor(bias) ?? throw new InvalidModelException($"The bias of {projectionName} is not a constant.");
            using var lease = tensor.Data.Acquire();
            var existing = lease.AsSpan<float>();
            var sum = new float[outFeatures];
            for (int i = 0; i < sum.Length; i++) sum[i] = vector[i] + existing[i];
            vector = sum;
            name = projectionName + ".bias_and_spontaneous";
        }
        var combined = new Tensor(model.UniqueName(name), DataType.Float, [outFeatures], InMemoryTensorData.FromElements<float>(vector));
        combined.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "calibration", calibration));
        if (bias is not null) combined.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "includes_bias", bias.Name));
        var value = node.Graph!.Initializers.Add(combined);
        while (node.Inputs.Count < 4) node.AppendInput(null);
        if (node.Inputs.Count == 4) node.AppendInput(value);
        else node.SetInput(4, value);
        if (bias is not null) DeadWeightChain.Remove(bias, model);
        node.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "spontaneous", $"{value.Name} (bias input); {calibration}"));
    }

    /// <summary>The float weight as [K, N] row-major values.</summary>
    internal static float[] WeightKn(Tensor tensor, bool storedTransposed, long k, long n)
    {
        using var lease = tensor.Data.Acquire();
        var values = lease.AsSpan<float>();
        if (!storedTransposed) return values.ToArray();
        var kn = new float[checked(k * n)];
        for (long row = 0; row < n; row++)
            for (long col = 0; col < k; col++) kn[col * n + row] = values[(int)(row * k + col)];
        return kn;
    }
}

/// <summary>The names of the sparse quantized op (contract: docs/topk-sparse-matmul-nbits.md).</summary>
public static class TopKSparseMatMulNBitsOp
{
    /// <summary>Operator type, in <see cref="TopKSparseMatMulOp.Domain"/>.</summary>
    public const string OpType = "TopKSparseMatMulNBits";
}
