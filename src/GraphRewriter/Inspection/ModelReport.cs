using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Inspection;

/// <summary>An operator set import.</summary>
public sealed record OpsetInfo(string Domain, long Version);

/// <summary>A graph input or output: name, element type and shape (numbers for known dims, names for symbolic ones, null for unknown).</summary>
public sealed record ValueSummary(string Name, string Type, IReadOnlyList<object?>? Shape);

/// <summary>Parameter totals over every initializer of every graph (dense, and the values of sparse ones).</summary>
/// <param name="Count">Number of elements.</param>
/// <param name="Bytes">Bytes of all initializer data.</param>
/// <param name="InlineBytes">Of which stored inside the model file.</param>
/// <param name="ExternalBytes">Of which stored in external data files.</param>
/// <param name="Initializers">Number of initializers.</param>
/// <param name="ExternalFiles">External data files, relative to the model's folder.</param>
public sealed record ParameterSummary(long Count, long Bytes, long InlineBytes, long ExternalBytes, int Initializers, IReadOnlyList<string> ExternalFiles);

/// <summary>One classified projection, as reported.</summary>
public sealed record ProjectionSummary(
    string Node, string Op, string Kind, int? Layer, long InFeatures, long OutFeatures, string Dtype,
    string Weight, bool WeightTransposed, string? Bias, string Graph, string KindSource, string? Reason, string? Quantization = null);

/// <summary>What <c>sparseonnx inspect</c> reports about a model.</summary>
public sealed record ModelReport(
    string Path,
    long FileBytes,
    long? IrVersion,
    string? ProducerName,
    string? ProducerVersion,
    string? Domain,
    long? ModelVersion,
    IReadOnlyList<OpsetInfo> Opsets,
    IReadOnlyList<ValueSummary> Inputs,
    IReadOnlyList<ValueSummary> Outputs,
    int NodeCount,
    int SubgraphCount,
    int FunctionCount,
    IReadOnlyList<KeyValuePair<string, int>> OpHistogram,
    ParameterSummary Parameters,
    IReadOnlyList<ProjectionSummary> Projections,
    IReadOnlyList<KeyValuePair<string, string>> Metadata);

/// <summary>Builds a <see cref="ModelReport"/> from a loaded model.</summary>
public static class ModelInspector
{
    /// <summary>Inspects <paramref name="model"/>, classifying its projections with <paramref name="options"/>.</summary>
    public static ModelReport Inspect(Model model, ClassifierOptions? options = null)
    {
        var graphs = model.Graph.SelfAndSubgraphs().ToList();
        var nodes = graphs.SelectMany(g => g.Nodes).ToList();
        var histogram = nodes.GroupBy(OpName).Select(g => new KeyValuePair<string, int>(g.Key, g.Count()))
            .OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).ToList();

        var projections = ProjectionClassifier.Classify(model, options).Select(p => new ProjectionSummary(
            p.DisplayName, p.Node.OpType, p.Kind.ToShortName(), p.Layer, p.InFeatures, p.OutFeatures, p.DataType.DisplayName(),
            p.Weight.Name, p.WeightStoredTransposed, p.Bias?.Name, p.GraphPath,
            p.KindSource switch { KindSource.Structure => "structure", KindSource.NameHint => "name", _ => "none" },
            p.Quantized?.Problem is { } problem ? $"{p.Reason}{(p.Reason is null ? "" : "; ")}not rewritable: {problem}" : p.Reason,
            p.Quantized?.Description)).ToList();

        string path = model.SourcePath ?? "";
        return new ModelReport(
            path,
            path.Length > 0 && File.Exists(path) ? new FileInfo(path).Length : 0,
            model.IrVersion, model.ProducerName, model.ProducerVersion, model.Domain, model.ModelVersion,
            model.OpsetImports.Select(o => new OpsetInfo(o.Key, o.Value)).ToList(),
            model.Graph.Inputs.Where(v => !v.IsInitializer).Select(Summarize).ToList(),
            model.Graph.Outputs.Select(Summarize).ToList(),
            nodes.Count, graphs.Count - 1, model.Functions.Count,
            histogram,
            Parameters(model, graphs),
            projections,
            model.MetadataProps.ToList());
    }

    private static string OpName(Node node) => node.IsStandardDomain ? node.OpType : $"{node.Domain}::{node.OpType}";

    private static ValueSummary Summarize(Value value) => value.Type switch
    {
        TensorType t => new ValueSummary(value.Name, t.ElementType.DisplayName(), t.Shape?.Dims.Select(d => (object?)d.Value ?? d.Symbol).ToList()),
        null => new ValueSummary(value.Name, "?", null),
        var other => new ValueSummary(value.Name, other.ToString(), null),
    };

    /// <summary>Parameters of <paramref name="model"/>: the elements of every initializer (sparse ones by their stored values) of every graph.</summary>
    public static long ParameterCount(Model model) => Tensors(model.Graph.SelfAndSubgraphs()).Sum(t => t.ElementCount);

    private static List<Tensor> Tensors(IEnumerable<Graph> graphs) =>
        graphs.SelectMany(g => g.Initializers.Select(v => v.ConstValue!).Concat(g.SparseInitializers.Select(v => v.SparseConstValue!.Values))).ToList();

    private static ParameterSummary Parameters(Model model, List<Graph> graphs)
    {
        var tensors = Tensors(graphs);
        long count = 0, inline = 0, external = 0;
        foreach (var tensor in tensors)
        {
            count += tensor.ElementCount;
            if (tensor.Data is ExternalTensorData) external += tensor.Data.ByteLength;
            else inline += tensor.Data.ByteLength;
        }
        string folder = model.SourcePath is null ? "" : Path.GetDirectoryName(model.SourcePath) ?? "";
        var files = model.ExternalDataPaths.Select(p => folder.Length > 0 ? Path.GetRelativePath(folder, p) : p).ToList();
        return new ParameterSummary(count, inline + external, inline, external, tensors.Count, files);
    }
}
