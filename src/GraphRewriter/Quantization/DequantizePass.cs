using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Passes;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.GraphRewriter.Quantization;

/// <summary>
/// The float model a quantized one computes: every readable MatMulNBits projection becomes
/// <c>MatMul(X, W)</c> (and an <c>Add</c> of its bias) with W its dequantized weight, float32, [K, N], computed
/// while the model is saved. Node names are kept, so a plan measured on the result (calibration reads float
/// weights) applies to the quantized model unchanged. The weights are exactly the quantized ones; only
/// accuracy_level 4's int8 rounding of the activations is not modelled.
/// </summary>
public sealed class DequantizePass : IPass
{
    public string Name => "dequantize";

    public PassResult Run(Model model)
    {
        var messages = new List<string>();
        foreach (var projection in ProjectionClassifier.Classify(model))
        {
            if (projection.Quantized is not { Problem: null } q || projection.DataType != DataType.Float) continue;
            var node = projection.Node;
            var graph = node.Graph!;
            var read = q.Reader();
            long k = q.K, n = q.N;
            var weight = graph.Initializers.Add(new Tensor(model.UniqueName(projection.Weight.Name + ".dequantized"), DataType.Float, [k, n],
                new DeferredTensorData(k * n * 4, () =>
                {
                    var values = read().DequantizeKn();
                    var bytes = new byte[values.LongLength * 4];
                    Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
                    return bytes;
                })));
            var oldInputs = node.Inputs.Skip(1).Where(v => v is not null).Cast<Value>().ToList();
            var bias = projection.Bias;
            node.Domain = "";
            node.OpType = "MatMul";
            foreach (var attribute in node.Attributes.Select(a => a.Name).ToList()) node.Attributes.Remove(attribute);
            node.TruncateInputs(1);
            node.AppendInput(weight);
            if (bias is not null) Splice.After(model, node.Outputs[0], "Add", [bias], (node.Name ?? "matmul") + "/bias", node.Outputs[0].Name + ".without_bias");
            foreach (var old in oldInputs)
                if (old != bias) DeadWeightChain.Remove(old, model);
            messages.Add($"dequantized {projection.DisplayName}");
        }
        return messages.Count > 0 ? PassResult.Modified([.. messages]) : PassResult.Unchanged();
    }
}
