using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Inspection;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.Cli.Commands;

/// <summary><c>sparseonnx inspect MODEL [--json] [--no-name-hints]</c>.</summary>
public static class InspectCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The ONNX model file (its external data is read from its folder)." };
        var json = new Option<bool>("--json") { Description = "Print a JSON report instead of tables." };
        var noNameHints = new Option<bool>("--no-name-hints") { Description = "Classify projections by graph structure only, ignoring node and weight names." };
        var command = new Command("inspect", "Summarize a model: producer, opsets, inputs and outputs, operators, parameters, and the projections SparseOnnx can rewrite.")
        {
            model, json, noNameHints,
        };
        command.SetAction(parse =>
        {
            var file = parse.GetValue(model)!;
            using var loaded = ModelLoader.Load(file.FullName);
            var report = ModelInspector.Inspect(loaded, new ClassifierOptions { UseNameHints = !parse.GetValue(noNameHints) });
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json)) output.WriteLine(ToJson(report).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else Render(report, ConsoleFor(output));
            return ExitCodes.Success;
        });
        return command;
    }

    internal static IAnsiConsole ConsoleFor(TextWriter output)
    {
        // Colors and styles only on a terminal; files and pipes get plain text at a fixed width.
        bool terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!terminal) console.Profile.Width = 160;
        return console;
    }

    /// <summary>The report as JSON: snake_case keys, the op histogram as an ordered object.</summary>
    public static JsonObject ToJson(ModelReport r)
    {
        var histogram = new JsonObject();
        foreach (var (op, count) in r.OpHistogram) histogram[op] = count;
        return new JsonObject
        {
            ["path"] = r.Path,
            ["file_bytes"] = r.FileBytes,
            ["ir_version"] = r.IrVersion,
            ["producer"] = new JsonObject { ["name"] = r.ProducerName, ["version"] = r.ProducerVersion },
            ["domain"] = r.Domain,
            ["model_version"] = r.ModelVersion,
            ["opsets"] = new JsonArray(r.Opsets.Select(o => (JsonNode)new JsonObject { ["domain"] = o.Domain, ["version"] = o.Version }).ToArray()),
            ["inputs"] = Values(r.Inputs),
            ["outputs"] = Values(r.Outputs),
            ["node_count"] = r.NodeCount,
            ["subgraph_count"] = r.SubgraphCount,
            ["function_count"] = r.FunctionCount,
            ["op_histogram"] = histogram,
            ["parameters"] = new JsonObject
            {
                ["count"] = r.Parameters.Count,
                ["bytes"] = r.Parameters.Bytes,
                ["inline_bytes"] = r.Parameters.InlineBytes,
                ["external_bytes"] = r.Parameters.ExternalBytes,
                ["initializers"] = r.Parameters.Initializers,
                ["external_files"] = new JsonArray(r.Parameters.ExternalFiles.Select(f => (JsonNode)JsonValue.Create(f)).ToArray()),
            },
            ["projections"] = new JsonArray(r.Projections.Select(p => (JsonNode)new JsonObject
            {
                ["node"] = p.Node,
                ["op"] = p.Op,
                ["kind"] = p.Kind,
                ["layer"] = p.Layer,
                ["in_features"] = p.InFeatures,
                ["out_features"] = p.OutFeatures,
                ["dtype"] = p.Dtype,
                ["quantization"] = p.Quantization,
                ["weight"] = p.Weight,
                ["weight_transposed"] = p.WeightTransposed,
                ["bias"] = p.Bias,
                ["graph"] = p.Graph,
                ["kind_source"] = p.KindSource,
                ["reason"] = p.Reason,
            }).ToArray()),
            ["metadata"] = new JsonArray(r.Metadata.Select(m => (JsonNode)new JsonObject { ["key"] = m.Key, ["value"] = m.Value }).ToArray()),
        };
    }

    private static JsonArray Values(IEnumerable<ValueSummary> values) => new(values.Select(v => (JsonNode)new JsonObject
    {
        ["name"] = v.Name,
        ["dtype"] = v.Type,
        ["shape"] = v.Shape is null ? null : new JsonArray(v.Shape.Select(d => d switch
        {
            long l => (JsonNode?)JsonValue.Create(l),
            string s => JsonValue.Create(s),
            _ => null,
        }).ToArray()),
    }).ToArray());

    private static void Render(ModelReport r, IAnsiConsole console)
    {
        console.MarkupLine($"[bold]{Markup.Escape(r.Path)}[/] ({Bytes(r.FileBytes)})");
        console.MarkupLine($"IR {r.IrVersion?.ToString(CultureInfo.InvariantCulture) ?? "?"} · producer {Markup.Escape($"{r.ProducerName} {r.ProducerVersion}".Trim())} · opsets " +
            Markup.Escape(string.Join(", ", r.Opsets.Select(o => $"{(o.Domain.Length == 0 ? "ai.onnx" : o.Domain)} {o.Version}"))));
        console.WriteLine();

        var io = new Table().Border(TableBorder.Rounded).AddColumns("", "name", "type", "shape");
        foreach (var v in r.Inputs) io.AddRow("in", Markup.Escape(v.Name), v.Type, Markup.Escape(Shape(v)));
        foreach (var v in r.Outputs) io.AddRow("out", Markup.Escape(v.Name), v.Type, Markup.Escape(Shape(v)));
        console.Write(io);

        console.MarkupLine($"[bold]Operators[/]: {r.NodeCount} nodes" + (r.SubgraphCount > 0 ? $" in {r.SubgraphCount + 1} graphs" : "") +
            (r.FunctionCount > 0 ? $", {r.FunctionCount} model-local functions (not analysed)" : ""));
        console.MarkupLine("  " + Markup.Escape(string.Join(", ", r.OpHistogram.Select(kv => $"{kv.Key} {kv.Value}"))));
        var p = r.Parameters;
        console.MarkupLine($"[bold]Parameters[/]: {Count(p.Count)} in {p.Initializers} initializers, {Bytes(p.Bytes)} " +
            $"({Bytes(p.InlineBytes)} inline, {Bytes(p.ExternalBytes)} external" +
            (p.ExternalFiles.Count > 0 ? $" in {Markup.Escape(string.Join(", ", p.ExternalFiles))}" : "") + ")");
        console.WriteLine();

        var kinds = r.Projections.GroupBy(x => x.Kind).Select(g => $"{g.Key} {g.Count()}");
        console.MarkupLine($"[bold]Projections[/]: {r.Projections.Count} ({Markup.Escape(string.Join(", ", kinds))})");
        if (r.Projections.Count == 0) return;
        bool manyGraphs = r.Projections.Select(x => x.Graph).Distinct().Count() > 1;
        var table = new Table().Border(TableBorder.Rounded).AddColumns("layer", "kind", "node", "in", "out", "weights", "bias");
        if (manyGraphs) table.AddColumn("graph");
        foreach (var x in r.Projections)
        {
            var row = new List<string>
            {
                x.Layer?.ToString(CultureInfo.InvariantCulture) ?? "-",
                x.Kind == "unknown" ? "[yellow]unknown[/]" : x.KindSource == "name" ? $"{x.Kind} [dim](name)[/]" : x.Kind,
                Markup.Escape(x.Node), x.InFeatures.ToString(CultureInfo.InvariantCulture), x.OutFeatures.ToString(CultureInfo.InvariantCulture),
                x.Quantization is { } q ? Markup.Escape($"{q} ({x.Dtype} scales)") : x.Dtype, x.Bias is null ? "" : "yes",
            };
            if (manyGraphs) row.Add(Markup.Escape(x.Graph));
            table.AddRow(row.ToArray());
        }
        console.Write(table);
        foreach (var x in r.Projections.Where(x => x.Reason is not null && x.Kind == "unknown"))
            console.MarkupLine($"[yellow]unknown[/] {Markup.Escape(x.Node)}: {Markup.Escape(x.Reason!)}");
    }

    private static string Shape(ValueSummary v) => v.Shape is null ? "?" : "[" + string.Join(", ", v.Shape.Select(d => d?.ToString() ?? "?")) + "]";

    private static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.00} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.0} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:0.0} KiB",
        _ => $"{bytes} B",
    };

    private static string Count(long n) => n switch
    {
        >= 1_000_000_000 => $"{n / 1e9:0.00} B",
        >= 1_000_000 => $"{n / 1e6:0.00} M",
        >= 1_000 => $"{n / 1e3:0.0} K",
        _ => n.ToString(CultureInfo.InvariantCulture),
    };
}
