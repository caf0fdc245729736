using SparseOnnx.GraphRewriter.Synthesis;

namespace SparseOnnx.GraphRewriter.Tests.Synthesis;

/// <summary>
/// Hugging Face <c>LlamaForCausalLM.forward</c> written out loop by loop in double precision, reading the
/// weights from a model's initializers by their Hugging Face names: the independent answer a
/// <see cref="SyntheticLlama"/> graph is checked against. It has no cache; each call sees a whole sequence.
/// </summary>
public sealed class LlamaReference
{
    private readonly LlamaDimensions _dims;
    private readonly Dictionary<string, float[]> _weights = new(StringComparer.Ordinal);

    public LlamaReference(Model model, LlamaDimensions dims)
    {
        _dims = dims;
        foreach (var initializer in model.Graph.Initializers)
        {
            using var lease = initializer.ConstValue!.Data.Acquire();
            _weights[initializer.Name] = lease.AsSpan<float>().ToArray();
        }
    }

    /// <summary>
    /// Logits [batch, length, vocab], row-major, for inputs [batch, length] given row-major. Entries of
    /// queries that see no key (left-padding positions) are not meaningful: HF leaves them to the mask's
    /// arithmetic, this gives them a zero attention result.
    /// </summary>
    public float[] Logits(int batch, int length, long[] inputIds, long[] attentionMask, long[] positionIds)
    {
        var logits = new float[(long)batch * length * _dims.Vocab];
        for (int b = 0; b < batch; b++)
        {
            var hidden = new double[length][];
            for (int t = 0; t < length; t++)
                hidden[t] = Row("model.embed_tokens.weight", inputIds[b * length + t], _dims.Hidden);
            var visible = new bool[length, length];
            for (int i = 0; i < length; i++)
                for (int j = 0; j <= i; j++)
                    visible[i, j] = attentionMask[b * length + j] != 0;
            var positions = positionIds.AsSpan(b * length, length).ToArray();

            for (int layer = 0; layer < _dims.Layers; layer++)
            {
                string prefix = $"model.layers.{layer}";
                var attention = Attention(hidden.Select(h => RmsNorm(h, $"{prefix}.input_layernorm.weight")).ToArray(),
                    $"{prefix}.self_attn", positions, visible);
                for (int t = 0; t < length; t++)
                {
                    Accumulate(hidden[t], attention[t]);
                    var normed = RmsNorm(hidden[t], $"{prefix}.post_attention_layernorm.weight");
                    Accumulate(hidden[t], Mlp(normed, $"{prefix}.mlp"));
                }
            }
            for (int t = 0; t < length; t++)
            {
                var row = Project(RmsNorm(hidden[t], "model.norm.weight"), "lm_head.weight", _dims.Hidden, _dims.Vocab);
                for (int v = 0; v < _dims.Vocab; v++) logits[((long)b * length + t) * _dims.Vocab + v] = (float)row[v];
            }
        }
        return logits;
    }

    /// <summary>LlamaAttention on one sequence: per-token q, k, v; RoPE; grouped-query softmax attention; o_proj.</summary>
    private double[][] Attention(double[][] x, string module, long[] positions, bool[,] visible)
    {
        int length = x.Length, headDim = _dims.HeadDim, groupSize = _dims.Heads / _dims.KvHeads;
        var q = x.Select((h, t) => Rotate(Project(h, $"{module}.q_proj.weight", _dims.Hidden, _dims.Heads * headDim), positions[t])).ToArray();
        var k = x.Select((h, t) => Rotate(Project(h, $"{module}.k_proj.weight", _dims.Hidden, _dims.KvHeads * headDim), positions[t])).ToArray();
        var v = x.Select(h => Project(h, $"{module}.v_proj.weight", _dims.Hidden, _dims.KvHeads * headDim)).ToArray();

        var output = new double[length][];
        for (int i = 0; i < length; i++)
        {
            var context = new double[_dims.Heads * headDim];
            for (int head = 0; head < _dims.Heads; head++)
            {
                // repeat_kv repeats each key/value head groupSize times in a row.
                int kvHead = head / groupSize;
                var scores = new double[length];
                double max = double.NegativeInfinity;
                for (int j = 0; j < length; j++)
                {
                    if (!visible[i, j]) continue;
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) dot += q[i][head * headDim + d] * k[j][kvHead * headDim + d];
                    scores[j] = dot / Math.Sqrt(headDim);
                    max = Math.Max(max, scores[j]);
                }
                if (double.IsNegativeInfinity(max)) continue; // sees no key: a padding query
                double sum = 0;
                for (int j = 0; j < length; j++)
                {
                    scores[j] = visible[i, j] ? Math.Exp(scores[j] - max) : 0;
                    sum += scores[j];
                }
                for (int j = 0; j < length; j++)
                    for (int d = 0; d < headDim; d++)
                        context[head * headDim + d] += scores[j] / sum * v[j][kvHead * headDim + d];
            }
            output[i] = Project(context, $"{module}.o_proj.weight", _dims.Hidden, _dims.Hidden);
        }
        return output;
    }

    /// <summary>
    /// Rotate-half RoPE on every head of <paramref name="heads"/> at <paramref name="position"/>:
    /// out[d] = x[d]·cos(p·f) + rot[d]·sin(p·f), f = θ^(−2(d mod D/2)/D), rot = (−x[D/2..], x[..D/2]).
    /// </summary>
    private double[] Rotate(double[] heads, long position)
    {
        int headDim = _dims.HeadDim, half = headDim / 2;
        var rotated = new double[heads.Length];
        for (int start = 0; start < heads.Length; start += headDim)
            for (int d = 0; d < headDim; d++)
            {
                double angle = position * Math.Pow(_dims.RopeTheta, -2.0 * (d % half) / headDim);
                double partner = d < half ? -heads[start + d + half] : heads[start + d - half];
                rotated[start + d] = heads[start + d] * Math.Cos(angle) + partner * Math.Sin(angle);
            }
        return rotated;
    }

    /// <summary>LlamaMLP: down(silu(gate(x)) · up(x)).</summary>
    private double[] Mlp(double[] x, string module)
    {
        var gate = Project(x, $"{module}.gate_proj.weight", _dims.Hidden, _dims.Intermediate);
        var up = Project(x, $"{module}.up_proj.weight", _dims.Hidden, _dims.Intermediate);
        var product = new double[_dims.Intermediate];
        for (int i = 0; i < product.Length; i++) product[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
        return Project(product, $"{module}.down_proj.weight", _dims.Intermediate, _dims.Hidden);
    }

    /// <summary>LlamaRMSNorm: weight · x / sqrt(mean(x²) + eps).</summary>
    private double[] RmsNorm(double[] x, string weightName)
    {
        var weight = _weights[weightName];
        double meanSquare = x.Sum(e => e * e) / x.Length;
        double scale = 1 / Math.Sqrt(meanSquare + _dims.RmsEps);
        return x.Select((e, i) => weight[i] * e * scale).ToArray();
    }

    /// <summary>x · W for W stored [inFeatures, outFeatures] row-major.</summary>
    private double[] Project(double[] x, string weightName, int inFeatures, int outFeatures)
    {
        var weight = _weights[weightName];
        Assert.Equal((long)inFeatures * outFeatures, weight.LongLength);
        var y = new double[outFeatures];
        for (int k = 0; k < inFeatures; k++)
            for (int n = 0; n < outFeatures; n++)
                y[n] += x[k] * weight[k * outFeatures + n];
        return y;
    }

    private double[] Row(string weightName, long row, int width) =>
        _weights[weightName].AsSpan(checked((int)(row * width)), width).ToArray().Select(e => (double)e).ToArray();

    private static void Accumulate(double[] target, double[] addend)
    {
        for (int i = 0; i < target.Length; i++) target[i] += addend[i];
    }
}
