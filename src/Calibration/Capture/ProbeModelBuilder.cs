using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Capture;

/// <summary>What the probe instruments.</summary>
public sealed record ProbeOptions
{
    /// <summary>The projection kinds to sparsify (the same default as sparsify).</summary>
    public IReadOnlySet<ProjectionKind> Kinds { get; init; } = SparsifyOptions.DefaultKinds;

    /// <summary>How the sparsifiers select: magnitude threshold or per-token top-k.</summary>
    public SparsityMode Mode { get; init; } = SparsityMode.Threshold;
}

/// <summary>
/// Turns a model into its calibration probe, in place. For every group of projections sharing an input x:
/// <code>
/// threshold mode: keep = float(|x|) &gt; t               (t: probe input, float scalar)
/// top-k mode:     keep = the k largest |x| per row, ties to the lower index   (k: probe input, int64 [1])
/// S(x) = Where(keep, x, 0)  feeds the group's MatMuls;  x, S(x) and mean(keep) become probe outputs
/// </code>
/// and after every projection <c>Y -> Y + c</c> with c [N] a probe input (the compensation vector). This is
/// TopKSparseMatMul's contract written with standard ops, so one session evaluates any thresholds, k and
/// compensation by feeding inputs, without rebuilding anything; exposing tensors as extra outputs is how
/// onnxruntime.quantization's calibrators capture activations. The residual stream after each block is
/// exposed as well, for the allocation search's block-output error.
/// </summary>
public static class ProbeModelBuilder
{
    /// <summary>Name prefix of everything the probe adds.</summary>
    public const string Prefix = "sparseonnx.probe.";

    /// <summary>Instruments <paramref name="model"/>; throws <see cref="CalibrationModelException"/> naming what the probe cannot handle.</summary>
    public static ProbeLayout Instrument(Model model, ProbeOptions options)
    {
        long opset = model.OpsetImports[""] ?? 0; // the indexer treats "" and "ai.onnx" as one domain
        if (opset < 11) throw new CalibrationModelException($"the model imports ONNX opset {opset}; calibration needs opset 11 or newer");
        if (SparsifyPass.CountSparseNodes(model) > 0)
            throw new CalibrationModelException("it is already sparsified (it has TopKSparseMatMul nodes); calibrate the dense model it came from");

        var projections = ProjectionClassifier.Classify(model)
            .Where(p => options.Kinds.Contains(p.Kind) && TopKSparseMatMulRule.Check(p) is null).ToList();
        if (projections.Count == 0)
            throw new CalibrationModelException("it has no projection of the selected kinds that TopKSparseMatMul can replace (see `sparseonnx inspect`)");
        if (projections.FirstOrDefault(p => p.GraphPath != "main") is { } nested)
            throw new CalibrationModelException($"projection {nested.DisplayName} is inside a subgraph ({nested.GraphPath}), as in a merged decoder; " +
                "calibrate the decoder without the If (Optimum's decoder_model.onnx), then apply the plan to the merged one");

        var graph = model.Graph;
        var blockOutputs = new Dictionary<int, Value>();
        string? blockProblem = null;
        foreach (var down in projections.Where(p => p.Kind == ProjectionKind.Down && p.Layer is not null))
        {
            if (ResidualAddAfter(down.Output) is { } residual)
            {
                blockOutputs[down.Layer!.Value] = residual;
                residual.Type ??= OnnxType.Tensor(down.DataType);
            }
            else blockProblem ??= $"the output of {down.DisplayName} does not reach a residual Add";
        }
        // The residual stream entering each block: the other input of the Add after the attention output.
        var blockInputs = new Dictionary<int, Value>();
        foreach (var o in projections.Where(p => p.Kind == ProjectionKind.O && p.Layer is not null))
            if (ResidualStreamJoined(o.Output) is { } stream)
            {
                blockInputs[o.Layer!.Value] = stream;
                // Declared (value_info), so that a block cut out of the saved probe reads it in the model's type.
                if (stream.Type is null)
                {
                    stream.Type = OnnxType.Tensor(o.DataType);
                    if (!stream.IsGraphInput && !graph.ValueInfo.Contains(stream)) graph.ValueInfo.Add(stream);
                }
            }

        var builder = new GraphBuilder(graph, model.UniqueName);
        var zeros = new Dictionary<DataType, Value>();
        Value Zero(DataType type) => zeros.TryGetValue(type, out var z) ? z
            : zeros[type] = builder.Initializer(Tensor.FromElements<byte>(model.UniqueName(Prefix + "zero." + type.DisplayName()), type, [], new byte[type == DataType.Float ? 4 : 2]));
        // Half-precision models are probed in their own type: the probe's settings stay float32 inputs, the magnitudes
        // are compared in float32 (as the op widens each element before comparing it with its float threshold), and a
        // compensation vector is cast to the model's type before its Add, as the rewrite stores it.
        Value ToFloat(Value v, DataType type) => type == DataType.Float ? v : builder.Op("Cast", [v], OnnxAttribute.Int("to", (long)DataType.Float));
        var groups = new List<(string Id, int? Layer, List<ProbeProjection> Members, long K, Value Selection, Value Dense, Value Sparse, Value Kept, DataType Type)>();
        foreach (var shared in projections.GroupBy(p => p.Input).OrderBy(g => g.Min(p => p.Layer ?? int.MaxValue)).ThenBy(g => g.Min(p => p.Kind)))
        {
            var members = shared.OrderBy(p => p.Kind).ToList();
            var x = shared.Key;
            int? layer = members[0].Layer;
            string id = $"{(layer is { } l ? $"layer{l}" : "nolayer")}.{string.Join("_", members.Select(m => m.Kind.ToShortName()))}";
            long k = members[0].InFeatures;
            var type = members[0].DataType;

            var magnitude = ToFloat(builder.Op("Abs", x), type);
            Value selection, keep;
            if (options.Mode == SparsityMode.Threshold)
            {
                selection = builder.Input(model.UniqueName(Prefix + id + ".threshold"), DataType.Float);
                keep = builder.Op("Greater", magnitude, selection);
            }
            else
            {
                selection = builder.Input(model.UniqueName(Prefix + id + ".k"), DataType.Int64, 1L);
                keep = TopKMask(builder, magnitude, selection, model.UniqueName(Prefix + id + ".topk"));
            }
            var sparse = builder.Op("Where", keep, x, Zero(type));
            var kept = builder.Op("ReduceMean", [builder.Op("Cast", [keep], OnnxAttribute.Int("to", (long)DataType.Float))], OnnxAttribute.Int("keepdims", 0));
            var memberNodes = members.Select(m => m.Node).ToHashSet();
            foreach (var use in x.Uses.ToArray())
                if (memberNodes.Contains(use.Node)) use.Node.SetInput(use.InputIndex, sparse);

            var probes = new List<ProbeProjection>();
            foreach (var p in members)
            {
                var compensation = builder.Input(model.UniqueName(Prefix + p.DisplayName + ".compensation"), DataType.Float, p.OutFeatures);
                var added = type == DataType.Float ? compensation : builder.Op("Cast", [compensation], OnnxAttribute.Int("to", (long)type));
                Splice.After(model, p.Output, "Add", [added], Prefix + p.DisplayName + "/compensation", p.Output.Name + ".uncompensated");
                probes.Add(new ProbeProjection(p, compensation.Name));
            }
            groups.Add((id, layer, probes, k, selection, x, sparse, kept, type));
        }

        // Exposed in their own type (a half-precision model's x and S(x) too): ProbeBatch widens them as it reads them.
        void Expose(Value value, DataType type)
        {
            if (value.IsGraphOutput) return;
            value.Type ??= OnnxType.Tensor(type);
            graph.Outputs.Add(value);
        }
        foreach (var g in groups)
        {
            Expose(g.Dense, g.Type);
            Expose(g.Sparse, g.Type);
            Expose(g.Kept, DataType.Float);
        }
        foreach (var residual in blockOutputs.Values) Expose(residual, residual.ElementType ?? DataType.Float);
        graph.SortTopologically();

        var layers = groups.Where(g => g.Layer is not null).Select(g => g.Layer!.Value).Distinct().ToList();
        if (blockProblem is null && layers.FirstOrDefault(l => !blockOutputs.ContainsKey(l), -1) is var missing and >= 0)
            blockProblem = $"layer {missing} has no down projection among the selected kinds";
        // Names are read at the end: splicing renames the values it displaces.
        return new ProbeLayout(options.Mode,
            groups.Select((g, i) => new ProbeGroup(i, g.Id, g.Layer, g.Members, g.K, g.Selection.Name, g.Dense.Name, g.Sparse.Name, g.Kept.Name)).ToArray(),
            blockOutputs.ToDictionary(p => p.Key, p => p.Value.Name), blockProblem)
        {
            BlockInputs = blockInputs.ToDictionary(p => p.Key, p => p.Value.Name),
        };
    }

    /// <summary>
    /// keep[..., i] = whether |x| entry i is among the <paramref name="k"/> largest <paramref name="magnitude"/> of its
    /// row (bool, the shape of <paramref name="magnitude"/>): exactly k per row, ties to the lower index, as
    /// TopKSparseMatMul keeps them.
    /// </summary>
    internal static Value TopKMask(GraphBuilder builder, Value magnitude, Value k, string name)
    {
        // Unsorted: which k are chosen does not depend on their order (ties still go to the lower index, tested), and
        // ORT then selects in linear time instead of sorting every row (dense passes, k = K, sorted them all).
        var top = builder.Node("", "TopK", [magnitude, k], 2, name, OnnxAttribute.Int("axis", -1), OnnxAttribute.Int("sorted", 0));
        // Scatter ones at the k indices TopK chose. Comparing with the k-th value would keep every tie.
        var zeros = builder.Op("ConstantOfShape", builder.Op("Shape", magnitude));
        var ones = builder.Op("ConstantOfShape", [builder.Op("Shape", top.Outputs[0])],
            OnnxAttribute.FromTensor("value", Tensor.FromElements<float>("one", DataType.Float, [1], [1f])));
        var chosen = builder.Op("ScatterElements", [zeros, top.Outputs[1], ones], OnnxAttribute.Int("axis", -1));
        return builder.Op("Cast", [chosen], OnnxAttribute.Int("to", (long)DataType.Bool));
    }

    /// <summary>The Add that joins <paramref name="value"/> to the residual stream (its other input is computed, not a constant bias), through bias Adds.</summary>
    private static Value? ResidualAddAfter(Value value) => ResidualJoin(value)?.Sum;

    /// <summary>The residual stream <paramref name="value"/> is added to (the Add's other, computed input), through bias Adds.</summary>
    private static Value? ResidualStreamJoined(Value value) => ResidualJoin(value)?.Stream;

    private static (Value Sum, Value Stream)? ResidualJoin(Value value)
    {
        for (int depth = 0; depth < 4; depth++)
        {
            var adds = value.Uses.Where(u => u.Node.Is("Add")).Select(u => u.Node).ToList();
            if (adds.Count != 1) return null;
            var add = adds[0];
            var other = add.Inputs[0] == value ? add.Inputs[1] : add.Inputs[0];
            if (other is null) return null;
            if (!other.IsConstant) return (add.Outputs[0], other);
            value = add.Outputs[0];
        }
        return null;
    }
}

/// <summary>The model cannot be calibrated; the message says why.</summary>
public sealed class CalibrationModelException(string problem) : Exception($"Cannot calibrate this model: {problem}.");
