using System.Runtime.InteropServices;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.GraphRewriter.Pruning;

/// <summary>What to do with one MLP block.</summary>
/// <param name="Kept">The neurons to keep, ascending, at least one.</param>
/// <param name="Compensation">
/// Added to down's output in place of the removed neurons' contribution, [down's N] (null: nothing added).
/// </param>
/// <param name="Source">Provenance recorded on the node, e.g. <c>ica ratio=0.2 calibration=valid.txt</c>.</param>
public sealed record NeuronSelection(int[] Kept, float[]? Compensation, string Source);

/// <summary>
/// Removes MLP neurons by slicing weights:
/// <code>
/// down(act(x·W_gate + b_gate) ⊙ (x·W_up + b_up)) + b_down
///   -> down'(act(x·W_gate[:, kept] + b_gate[kept]) ⊙ (x·W_up[:, kept] + b_up[kept])) + b_down + c
/// with W_down' = W_down[kept, :] and c = Σ_{j ∉ kept} E[h_j] · W_down[j, :]
/// </code>
/// (columns j and Width + j of a fused gate_up; act(up) for a plain MLP). Without c this is exactly the
/// original block with the removed neurons' h_j set to zero; c replaces them by their calibration mean
/// (FLAP's bias compensation). Constants that carry the width along the path (a Reshape target such as
/// GPT-2's <c>view(..., 3072)</c>, Split sizes, Slice bounds) and declared shapes are updated with it.
/// </summary>
public static class MlpNeuronPruneRule
{
    /// <summary>The rule's name in node metadata.</summary>
    public const string RuleName = "MlpNeuronPrune";

    /// <summary>Prefix of the metadata keys the rule writes.</summary>
    public const string MetadataPrefix = "sparseonnx.prune.";

    /// <summary>Why <paramref name="block"/> cannot be pruned, or null when it can.</summary>
    public static string? Check(MlpBlock block)
    {
        foreach (var p in block.Feeders.Append(block.Down))
        {
            if (ProjectionFinder.ConstantTensor(p.Weight) is not { } weight || weight.Dims.Length != 2)
                return $"the weight of {p.DisplayName} is not a constant matrix";
            if (weight.DataType.BitWidth() is not { } bits || bits % 8 != 0)
                return $"the weight of {p.DisplayName} is {weight.DataType.DisplayName()}, which cannot be sliced by element";
            if (p.Weight.Uses.Count > 1 && p.WeightTranspose is null)
                return $"the weight of {p.DisplayName} is shared with another node";
            if (p.Bias is { } bias && ProjectionFinder.ConstantTensor(bias) is null)
                return $"the bias of {p.DisplayName} is not a constant";
        }
        // Computed Split sizes and Slice bounds (Phi-3's chunk(2) exports as Shape/Div/Slice) follow the new width by themselves.
        foreach (var node in block.PathNodes)
            if (node.Is("Reshape") && ShapeConstantOf(node) is { Problem: { } problem }) return problem;
        return null;
    }

    /// <summary>
    /// Applies <paramref name="selection"/> to <paramref name="block"/> of <paramref name="model"/> (in place).
    /// The block must have passed <see cref="Check"/>; it is not usable afterwards (find the blocks again).
    /// </summary>
    public static void Apply(Model model, MlpBlock block, NeuronSelection selection)
    {
        if (Check(block) is { } problem) throw new InvalidOperationException($"Cannot prune {block.Name}: {problem}.");
        long width = block.Width;
        var kept = selection.Kept;
        if (kept.Length == 0) throw new ArgumentException($"{block.Name}: at least one neuron must be kept.");
        for (int i = 0; i < kept.Length; i++)
            if (kept[i] < 0 || kept[i] >= width || (i > 0 && kept[i] <= kept[i - 1]))
                throw new ArgumentException($"{block.Name}: kept neurons must be ascending indices below {width}.");
        if (selection.Compensation is { } c && c.Length != block.Down.OutFeatures)
            throw new ArgumentException($"{block.Name}: the compensation needs {block.Down.OutFeatures} values, not {c.Length}.");
        long newWidth = kept.Length;
        var widths = new Dictionary<long, long> { [width] = newWidth, [2 * width] = 2 * newWidth };

        foreach (var feeder in block.Feeders)
        {
            int[] columns = feeder.Kind == ProjectionKind.GateUp ? kept.Concat(kept.Select(j => (int)(j + width))).ToArray() : kept;
            SliceWeight(model, feeder, columns, outputSide: true);
            if (feeder.Bias is { } bias) SliceBias(model, feeder, bias, columns);
            UpdateLastDim(feeder.Node.Outputs[0], widths);
            UpdateLastDim(feeder.Output, widths);
        }
        SliceWeight(model, block.Down, kept, outputSide: false);
        foreach (var node in block.PathNodes)
        {
            if (node.Is("Reshape")) RewriteReshapeTarget(model, node, widths);
            else if (node.Is("Split")) RewriteSplitSizes(model, node, widths);
            else if (node.Is("Slice")) RewriteSliceBounds(model, node, widths);
            foreach (var output in node.Outputs) UpdateLastDim(output, widths);
        }
        UpdateLastDim(block.Down.Input, widths);

        var down = block.Down.Node;
        void Note(string key, string value) => down.MetadataProps.Add(new(MetadataPrefix + key, value));
        Note("rule", RuleName);
        Note("neurons", $"{newWidth}/{width}");
        Note("source", selection.Source);
        if (selection.Compensation is { } compensation && compensation.Any(v => v != 0f))
        {
            var (add, tensor) = VectorAdd.After(model, block.Down.Output, compensation, block.Down.DataType, block.Name + ".prune_compensation",
                block.Name + "/prune_compensation", block.Down.Output.Name + ".uncompensated");
            add.MetadataProps.Add(new(MetadataPrefix + "rule", RuleName + " (compensation)"));
            Note("compensation", tensor.Name);
        }
    }

    /// <summary>
    /// Keeps <paramref name="indices"/> of the projection's output features (a feeder) or input features (down),
    /// whatever the stored layout, and points the node at the sliced copy.
    /// </summary>
    private static void SliceWeight(Model model, Projection projection, int[] indices, bool outputSide)
    {
        var tensor = ProjectionFinder.ConstantTensor(projection.Weight)!;
        long rows = tensor.Dims[0], columns = tensor.Dims[1];
        int size = tensor.DataType.BitWidth()!.Value / 8;
        // Stored [K, N] (MatMul) or [N, K] (transposed): output features are columns of the first, rows of the second.
        bool slicesRows = outputSide == projection.WeightStoredTransposed;
        TensorData data = new SlicedTensorData(tensor.Data, rows, columns, slicesRows ? indices : null, slicesRows ? null : indices, size);
        long[] dims = slicesRows ? [indices.Length, columns] : [rows, indices.Length];
        if (projection.WeightTranspose is not null)
        {
            // MatMul(X, Transpose(W)): write the sliced weight already transposed and drop the Transpose.
            data = new TransposedTensorData(data, dims[0], dims[1], size);
            dims = [dims[1], dims[0]];
        }
        var sliced = new Tensor(model.UniqueName(projection.Weight.Name + ".pruned"), tensor.DataType, dims, data);
        sliced.MetadataProps.Add(new(MetadataPrefix + "sliced_from", projection.Weight.Name));
        var value = projection.Graph.Initializers.Add(sliced);
        var old = projection.Node.Inputs[1]!;
        projection.Node.SetInput(1, value);
        DeadWeightChain.Remove(old, model);
    }

    private static void SliceBias(Model model, Projection projection, Value bias, int[] columns)
    {
        var tensor = ProjectionFinder.ConstantTensor(bias)!;
        int size = tensor.DataType.BitWidth()!.Value / 8;
        var data = new SlicedTensorData(tensor.Data, 1, tensor.ElementCount, null, columns, size);
        var dims = tensor.Dims.Take(tensor.Dims.Length - 1).Append(columns.Length).ToArray();
        var sliced = projection.Graph.Initializers.Add(new Tensor(model.UniqueName(bias.Name + ".pruned"), tensor.DataType, dims, data));
        var reader = projection.BiasAdd ?? projection.Node;
        for (int i = 0; i < reader.Inputs.Count; i++)
            if (reader.Inputs[i] == bias) reader.SetInput(i, sliced);
        DeadWeightChain.Remove(bias, model);
    }

    /// <summary>The Reshape's target shape as a constant (directly, or the last piece of a Concat), or why it cannot be rewritten.</summary>
    private static (Value? Holder, Node? Reader, int InputIndex, long[]? Values, string? Problem) ShapeConstantOf(Node reshape)
    {
        var shape = reshape.InputOrNull(1);
        if (shape is null) return (null, null, 0, null, $"{reshape} has no target shape");
        if (Int64s(shape) is { } direct) return (shape, reshape, 1, direct, null);
        if (shape.Producer is { } concat && concat.Is("Concat") && concat.Inputs.Count > 0 && concat.Inputs[^1] is { } last)
        {
            if (Int64s(last) is not { } piece) return (null, null, 0, null, null); // the last dimension is computed: it follows the pruned width
            if (shape.Uses.Count > 1) return (null, null, 0, null, $"the target shape of {reshape} is shared with another node");
            return (last, concat, concat.Inputs.Count - 1, piece, null);
        }
        return (null, null, 0, null, null);
    }

    private static void RewriteReshapeTarget(Model model, Node reshape, IReadOnlyDictionary<long, long> widths)
    {
        var (holder, reader, index, values, _) = ShapeConstantOf(reshape);
        if (holder is null || values is not { Length: > 0 } || !widths.TryGetValue(values[^1], out long width)) return;
        var updated = values.ToArray();
        updated[^1] = width;
        ReplaceConstantInput(model, reader!, index, updated);
    }

    private static void RewriteSplitSizes(Model model, Node split, IReadOnlyDictionary<long, long> widths)
    {
        if (split.Attributes["split"] is { } attribute)
            split.Attributes.Set(OnnxAttribute.Ints("split", attribute.AsInts().Select(s => widths.GetValueOrDefault(s, s))));
        else if (split.InputOrNull(1) is { } sizes && Int64s(sizes) is { } values)
            ReplaceConstantInput(model, split, 1, values.Select(s => widths.GetValueOrDefault(s, s)).ToArray());
    }

    private static void RewriteSliceBounds(Model model, Node slice, IReadOnlyDictionary<long, long> widths)
    {
        for (int i = 1; i <= 2; i++)
            if (slice.InputOrNull(i) is { } bound && Int64s(bound) is { } values && values.Any(widths.ContainsKey))
                ReplaceConstantInput(model, slice, i, values.Select(v => widths.GetValueOrDefault(v, v)).ToArray());
    }

    private static void ReplaceConstantInput(Model model, Node reader, int index, long[] values)
    {
        var old = reader.Inputs[index]!;
        var graph = reader.Graph!;
        var replacement = graph.Initializers.Add(Tensor.FromElements<long>(model.UniqueName(old.Name + ".pruned"), DataType.Int64, [values.Length], values));
        reader.SetInput(index, replacement);
        DeadWeightChain.Remove(old, model);
    }

    private static long[]? Int64s(Value value) =>
        ProjectionFinder.ConstantTensor(value) is { DataType: DataType.Int64, Dims.Length: <= 1 } tensor
            ? MemoryMarshal.Cast<byte, long>(tensor.Data.ToArray()).ToArray()
            : null;

    private static void UpdateLastDim(Value value, IReadOnlyDictionary<long, long> widths)
    {
        if (value.Type is not TensorType { Shape: { Rank: > 0 } shape } type) return;
        if (shape.Dims[^1].Value is not { } last || !widths.TryGetValue(last, out long width)) return;
        value.Type = type with { Shape = new Shape(shape.Dims.SetItem(shape.Rank - 1, Dim.Known(width))) };
    }
}
