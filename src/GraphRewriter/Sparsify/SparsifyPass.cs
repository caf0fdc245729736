using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Passes;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>
/// Sparsifies a model's projections: finds and classifies them (<see cref="ProjectionClassifier"/>), decides
/// which to rewrite and how sparse (the options' kinds, uniform setting and plan), then rewrites each with
/// <see cref="TopKSparseMatMulRule"/> and, unless disabled, follows it with <see cref="SpontaneousNeuronRule"/>.
/// Everything is decided before anything changes: a plan that does not fit the model throws and leaves the
/// model untouched. Adds the <c>ai.sparseonnx</c> opset import and records what it did in model metadata.
/// </summary>
public sealed class SparsifyPass : IPass<SparsifyReport>
{
    /// <summary>Model metadata key recording the sparsify run.</summary>
    public const string ModelMetadataKey = TopKSparseMatMulOp.MetadataPrefix + "sparsify";

    private readonly SparsifyOptions _options;

    /// <summary>Creates the pass; throws <see cref="ArgumentException"/> for invalid options.</summary>
    public SparsifyPass(SparsifyOptions options)
    {
        options.Validate();
        _options = options;
    }

    /// <inheritdoc />
    public string Name => "sparsify";

    /// <summary>Runs the pass; the result's report says what it rewrote and skipped.</summary>
    public PassResult<SparsifyReport> Run(Model model)
    {
        CheckOpsetImport(model);
        var projections = ProjectionClassifier.Classify(model);
        var planEntries = _options.Plan is { } plan ? PlanMatcher.Match(plan, projections) : new Dictionary<Projection, PlanEntry>();

        var decisions = new List<(Projection Projection, SparsitySetting Setting, PlanEntry? Entry)>();
        var skipped = new List<SkippedProjection>();
        foreach (var projection in projections)
        {
            var entry = planEntries.GetValueOrDefault(projection);
            string? reason = SkipReason(projection, entry, out var setting);
            if (reason is null) decisions.Add((projection, setting!, entry));
            else skipped.Add(new SkippedProjection(projection.DisplayName, projection.GraphPath, projection.Kind, projection.Layer,
                projection.InFeatures, projection.OutFeatures, reason));
        }

        var rewritten = new List<SparsifiedProjection>();
        if (decisions.Count > 0)
        {
            model.OpsetImports.Set(TopKSparseMatMulOp.Domain, TopKSparseMatMulOp.OpsetVersion);
            var context = new RewriteContext(model);
            foreach (var (projection, setting, entry) in decisions)
            {
                string replaced = projection.Node.OpType;
                var output = UsesQuantizedOp(projection)
                    ? TopKSparseMatMulNBitsRule.Apply(projection, setting, _options.Quantization, context)
                    : TopKSparseMatMulRule.Apply(projection, setting, context);
                bool calibrated = entry?.Spontaneous is not null;
                string provenance = calibrated ? CalibrationProvenance() : "none: zeros until calibrated";
                if (_options.SpontaneousNeurons && UsesQuantizedOp(projection))
                    TopKSparseMatMulNBitsRule.AttachSpontaneous(model, projection.Node, projection.DisplayName, projection.OutFeatures,
                        entry?.Spontaneous, provenance);
                else if (_options.SpontaneousNeurons)
                    SpontaneousNeuronRule.Apply(model, output, projection.DisplayName, projection.OutFeatures, projection.DataType,
                        entry?.Spontaneous, provenance);
                rewritten.Add(new SparsifiedProjection(projection.DisplayName, projection.GraphPath, projection.Kind, projection.Layer,
                    projection.InFeatures, projection.OutFeatures, projection.DataType, setting.K, setting.Threshold, replaced,
                    _options.SpontaneousNeurons, calibrated && _options.SpontaneousNeurons, setting.Source));
            }
            model.MetadataProps.Add(new(ModelMetadataKey, Summary(rewritten.Count)));
        }

        var report = new SparsifyReport(rewritten, skipped);
        var messages = rewritten.Select(r => $"rewrote {r.Node} ({r.Kind.ToShortName()}, layer {r.Layer?.ToString() ?? "-"}): " +
                (r.K is { } k ? $"k = {k} of {r.InFeatures}" : $"threshold {r.Threshold}"))
            .Concat(skipped.Select(s => $"skipped {s.Node} ({s.Kind.ToShortName()}): {s.Reason}")).ToArray();
        return new PassResult<SparsifyReport>(rewritten.Count > 0, messages, report);
    }

    /// <summary>Why <paramref name="projection"/> stays dense, or null with the setting to rewrite it with.</summary>
    private string? SkipReason(Projection projection, PlanEntry? entry, out SparsitySetting? setting)
    {
        setting = null;
        if (!_options.Kinds.Contains(projection.Kind))
            return projection.Kind == ProjectionKind.Unknown
                ? $"kind unknown ({projection.Reason ?? "not classified"}); add 'unknown' to the kinds to rewrite it anyway"
                : $"kind {projection.Kind.ToShortName()} is not among the kinds to rewrite";
        var reason = UsesQuantizedOp(projection)
            ? TopKSparseMatMulNBitsRule.Check(projection, _options.Quantization)
            : TopKSparseMatMulRule.Check(projection);
        if (reason is not null) return reason;
        setting = Setting(projection, entry);
        if (setting is null)
            return _options.Plan is not null && entry is null
                ? "not in the plan, and no uniform sparsity or threshold was given"
                : "the plan gives it no k or threshold, and no uniform sparsity or threshold was given";
        return null;
    }

    /// <summary>MatMulNBits projections, and float ones when quantizing, become TopKSparseMatMulNBits.</summary>
    private bool UsesQuantizedOp(Projection projection) => projection.Quantized is not null || _options.Quantization is not null;

    private SparsitySetting? Setting(Projection projection, PlanEntry? entry)
    {
        string planSource = $"plan {_options.Plan?.SourcePath ?? "(in memory)"}";
        if (entry?.K is { } k) return new SparsitySetting(k, null, planSource);
        if (entry?.Threshold is { } t) return new SparsitySetting(null, t, planSource);
        if (_options.Mode == SparsityMode.TopK && _options.Sparsity is { } s)
            return new SparsitySetting(SparsifyOptions.KeptEntries(s, projection.InFeatures), null,
                $"uniform sparsity {TopKSparseMatMulRule.Format(s)}");
        if (_options.Mode == SparsityMode.Threshold && _options.Threshold is { } threshold)
            return new SparsitySetting(null, threshold, $"uniform threshold {TopKSparseMatMulRule.Format(threshold)}");
        return null;
    }

    private string CalibrationProvenance() =>
        $"plan {_options.Plan!.SourcePath ?? "(in memory)"}" + (_options.Plan.CalibrationSource is { } c ? $"; calibrated on {c}" : "");

    private string Summary(int count)
    {
        var parts = new List<string> { $"projections={count}", $"mode={(_options.Mode == SparsityMode.TopK ? "topk" : "threshold")}" };
        if (_options.Sparsity is { } s) parts.Add($"sparsity={TopKSparseMatMulRule.Format(s)}");
        if (_options.Threshold is { } t) parts.Add($"threshold={TopKSparseMatMulRule.Format(t)}");
        parts.Add("kinds=" + string.Join(",", _options.Kinds.Order().Select(k => k.ToShortName())));
        if (_options.Plan is { } plan) parts.Add($"plan={plan.SourcePath ?? "(in memory)"}");
        parts.Add($"spontaneous={(_options.SpontaneousNeurons ? "on" : "off")}");
        if (_options.Quantization is { } q) parts.Add($"quantize=int{q.Bits} block={q.BlockSize} accuracy_level={q.AccuracyLevel}");
        return string.Join(" ", parts);
    }

    private static void CheckOpsetImport(Model model)
    {
        if (model.OpsetImports[TopKSparseMatMulOp.Domain] is { } version && version != TopKSparseMatMulOp.OpsetVersion)
            throw new InvalidModelException(
                $"The model imports {TopKSparseMatMulOp.Domain} version {version}; this SparseOnnx writes version {TopKSparseMatMulOp.OpsetVersion}.");
    }

    /// <summary>The model's projection nodes already rewritten into the sparse op (by an earlier run).</summary>
    public static int CountSparseNodes(Model model) =>
        model.AllGraphs().SelectMany(g => g.Nodes).Count(n => n.Domain == TopKSparseMatMulOp.Domain
            && n.OpType is TopKSparseMatMulOp.OpType or TopKSparseMatMulNBitsOp.OpType);
}
