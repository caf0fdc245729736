using System.Globalization;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Passes;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.GraphRewriter.Quantization;

/// <summary>What <see cref="QuantizePass"/> quantizes and how.</summary>
public sealed record QuantizeOptions
{
    /// <summary>Every projection kind, the output head included, as the onnxruntime-genai builder's <c>-p int4</c> quantizes.</summary>
    public static IReadOnlySet<ProjectionKind> DefaultKinds { get; } =
        Enum.GetValues<ProjectionKind>().Where(k => k != ProjectionKind.Unknown).ToHashSet();

    public WeightQuantization Quantization { get; init; } = new();

    public IReadOnlySet<ProjectionKind> Kinds { get; init; } = DefaultKinds;
}

/// <summary>One projection the pass quantized or left alone.</summary>
public sealed record QuantizedProjection(string Node, ProjectionKind Kind, int? Layer, long InFeatures, long OutFeatures, string? SkipReason);

/// <summary>
/// Writes the dense int4/int8 baseline a user would deploy on CPU: every float32 MatMul projection becomes
/// <c>com.microsoft.MatMulNBits</c> with ONNX Runtime's symmetric round-to-nearest quantization
/// (<see cref="RtnQuantizer"/>: blocks along K, no zero points, float32 scales, holding float16 values when
/// <see cref="WeightQuantization.Float16Scales"/> asks for them), the accuracy level given
/// (4, int8 activations, by default). A bias Add after the MatMul stays as it is. The quantized tensors are
/// computed while the model is saved, one weight at a time.
/// </summary>
public sealed class QuantizePass(QuantizeOptions options) : IPass
{
    public string Name => "quantize";

    public IReadOnlyList<QuantizedProjection> Projections { get; private set; } = [];

    public PassResult Run(Model model)
    {
        options.Quantization.Validate();
        var q = options.Quantization;
        var results = new List<QuantizedProjection>();
        var messages = new List<string>();
        foreach (var projection in ProjectionClassifier.Classify(model))
        {
            string? reason = !options.Kinds.Contains(projection.Kind) ? $"kind {projection.Kind.ToShortName()} is not among the kinds to quantize"
                : projection.Quantized is not null ? "already quantized (MatMulNBits)"
                : !projection.Node.Is("MatMul") ? $"a {projection.Node.OpType} (MatMul only)"
                : projection.DataType != DataType.Float ? $"the weight is {projection.DataType.DisplayName()} (float32 only)"
                : null;
            results.Add(new QuantizedProjection(projection.DisplayName, projection.Kind, projection.Layer, projection.InFeatures, projection.OutFeatures, reason));
            if (reason is not null)
            {
                messages.Add($"skipped {projection.DisplayName}: {reason}");
                continue;
            }
            Rewrite(projection, q, model);
            messages.Add($"quantized {projection.DisplayName} ({projection.Kind.ToShortName()}) to int{q.Bits}");
        }
        Projections = results;
        bool changed = results.Any(r => r.SkipReason is null);
        if (changed)
        {
            model.OpsetImports.Set(MatMulNBitsFormat.Domain, 1);
            model.MetadataProps.Add(new("sparseonnx.quantize",
                $"RTN symmetric int{q.Bits} block={q.BlockSize} accuracy_level={q.AccuracyLevel} projections={results.Count(r => r.SkipReason is null)}"));
        }
        return changed ? PassResult.Modified([.. messages]) : PassResult.Unchanged([.. messages]);
    }

    private static void Rewrite(Projection projection, WeightQuantization q, Model model)
    {
        var node = projection.Node;
        var graph = node.Graph!;
        long k = projection.InFeatures, n = projection.OutFeatures, blocks = (k + q.BlockSize - 1) / q.BlockSize;
        var tensor = ProjectionFinder.ConstantTensor(projection.Weight)!;
        bool transposed = projection.WeightStoredTransposed;
        NBitsBlocks Read() => RtnQuantizer.Quantize(TopKSparseMatMulNBitsRule.WeightKn(tensor, transposed, k, n), k, n, q.Bits, q.BlockSize, q.Float16Scales);
        string name = projection.DisplayName;
        long blob = q.BlockSize * q.Bits / 8;
        var b = graph.Initializers.Add(new Tensor(model.UniqueName(name + ".qweight"), DataType.UInt8, [n, blocks, blob],
            new DeferredTensorData(n * blocks * blob, () => MatMulNBitsFormat.PackB(Read()))));
        var scales = graph.Initializers.Add(new Tensor(model.UniqueName(name + ".scales"), DataType.Float, [n * blocks],
            new DeferredTensorData(n * blocks * 4, () =>
            {
                var s = Read().Scales;
                var bytes = new byte[s.LongLength * 4];
                Buffer.BlockCopy(s, 0, bytes, 0, bytes.Length);
                return bytes;
            })));
        var old = node.Inputs[1]!;
        node.Domain = MatMulNBitsFormat.Domain;
        node.OpType = MatMulNBitsFormat.OpType;
        node.SetInput(1, b);
        node.AppendInput(scales);
        node.Attributes.Set(OnnxAttribute.Int("K", k));
        node.Attributes.Set(OnnxAttribute.Int("N", n));
        node.Attributes.Set(OnnxAttribute.Int("bits", q.Bits));
        node.Attributes.Set(OnnxAttribute.Int("block_size", q.BlockSize));
        node.Attributes.Set(OnnxAttribute.Int("accuracy_level", q.AccuracyLevel));
        node.MetadataProps.Add(new("sparseonnx.quantized", string.Create(CultureInfo.InvariantCulture, $"RTN symmetric int{q.Bits}, block {q.BlockSize}, from {projection.Weight.Name}")));
        DeadWeightChain.Remove(old, model);
    }
}
