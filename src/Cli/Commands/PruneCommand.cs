using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.Pruning;
using SparseOnnx.Pruning.Decomposition;
using SparseOnnx.Pruning.Importance;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx prune IN -o OUT --ratio R (--calibration TEXT [--tokenizer TOK] | --calibration-ids FILE)
/// [--method ica|magnitude|activation] [--no-compensation] [--keep-layers first,last|N,...] [--json]</c>: removes
/// that fraction of the MLP neurons, the ones outside the key neurons of each layer's functional networks
/// (or with the lowest baseline score), by slicing weights; the result is a smaller dense model that
/// <c>sparsify</c> can then sparsify.
/// </summary>
public static class PruneCommand
{
    public static Command Create()
    {
        var input = new Argument<FileInfo>("model") { Description = "The dense ONNX model to prune (never modified)." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the pruned model.", Required = true };
        var ratio = new Option<double>("--ratio") { Description = "Fraction of all MLP neurons to remove, in (0, 1); layers kept whole count in the total.", DefaultValueFactory = _ => 0.2 };
        var method = new Option<string>("--method")
        {
            Description = "ica: keep the key neurons of each layer's functional networks (|z| > τ in a z-scored ICA map, one τ for all layers); " +
                "magnitude: the L2 norm of each neuron's weights; activation: Wanda-sp-like ‖W_down row‖·‖h‖ on the calibration text.",
            DefaultValueFactory = _ => "ica",
        };
        method.AcceptOnlyFromAmong("ica", "magnitude", "activation");
        var allocation = new Option<string?>("--allocation") { Description = "global (one threshold across layers; ICA's default) or uniform (the same share from every layer; the baselines' default)." };
        allocation.AcceptOnlyFromAmong("global", "uniform");
        var noCompensation = new Option<bool>("--no-compensation") { Description = "Do not add the removed neurons' mean contribution (E[h_j]·W_down[j, :]) to down's output." };
        var keepLayers = new Option<string>("--keep-layers") { Description = "Layers kept whole: 'first', 'last', layer numbers, comma-separated, or 'none' (the paper keeps the first and the last).", DefaultValueFactory = _ => "first,last" };
        var minKept = new Option<double>("--min-kept") { Description = "Every pruned layer keeps at least this fraction of its neurons.", DefaultValueFactory = _ => 0.05 };
        var components = new Option<int>("--components") { Description = "ICA: PCA components (functional networks) per layer.", DefaultValueFactory = _ => 128 };
        var restarts = new Option<int>("--restarts") { Description = "ICA: FastICA runs from different seeded starts; the most stable is kept.", DefaultValueFactory = _ => 5 };
        var icaScore = new Option<string>("--ica-score")
        {
            Description = "ICA: maps (the paper: a neuron's largest |z| over the z-scored network maps), weighted (that times std(h)·‖W_down row‖), or output (decompose h·‖W_down row‖ unstandardized, score by |z| in its maps).",
            DefaultValueFactory = _ => "maps",
        };
        icaScore.AcceptOnlyFromAmong("maps", "weighted", "output");
        var icaTokens = new Option<int>("--ica-tokens") { Description = "ICA: calibration tokens sampled for the decomposition.", DefaultValueFactory = _ => 8192 };
        var external = RewriteOutputOptions.External();
        var json = RewriteOutputOptions.Json();
        var calibration = new CalibrationCliOptions();
        var command = new Command("prune", "Remove MLP neurons (functional-network pruning): keep the key neurons of each layer's ICA networks, or those a baseline " +
            "ranks highest, slice the rest out of gate/up/down, and add their mean contribution back. The result is a smaller dense model.")
        {
            input, output, ratio, method, allocation, noCompensation, keepLayers, minKept, components, restarts, icaScore, icaTokens, external, json,
        };
        foreach (var option in calibration.DataOptions) command.Options.Add(option);
        command.SetAction(parse =>
        {
            if (!calibration.Requested(parse)) throw new ArgumentException("Pruning measures activations on real text: give --calibration FILE (or --calibration-ids FILE).");
            string inputPath = parse.GetValue(input)!.FullName;
            string outputPath = parse.GetValue(output)!.FullName;
            var options = new PruneOptions
            {
                Ratio = parse.GetValue(ratio),
                Method = Enum.Parse<PruneMethod>(parse.GetValue(method)!, ignoreCase: true),
                Allocation = parse.GetValue(allocation) is { } a ? Enum.Parse<Allocation>(a, ignoreCase: true) : null,
                Compensation = !parse.GetValue(noCompensation),
                MinKeptFraction = parse.GetValue(minKept),
                SampleTokens = parse.GetValue(icaTokens),
                IcaScore = Enum.Parse<IcaScore>(parse.GetValue(icaScore)!, ignoreCase: true),
                Ica = new IcaOptions { Components = parse.GetValue(components), Restarts = parse.GetValue(restarts), Seed = parse.GetValue(calibration.Seed) },
                Threads = parse.GetValue(calibration.Threads),
            };
            options = ParseKeepLayers(parse.GetValue(keepLayers)!, options);
            options.Validate();
            var saveOptions = new SaveOptions { ExternalData = parse.GetValue(external) };
            // Refuse a target that would overwrite the input (or its data) before the long part, not after.
            using (var source = ModelLoader.Load(inputPath)) ModelSaver.CheckTarget(source, outputPath, saveOptions);
            var data = calibration.ReadData(parse, inputPath);
            string workFolder = CommandWorkFolders.For(outputPath, "prune", parse.InvocationConfiguration.Error);
            Directory.CreateDirectory(Path.GetDirectoryName(outputPath)!);
            var clock = Stopwatch.StartNew();
            using var result = ProgressDisplay.Run(parse.InvocationConfiguration.Error, "Pruning", bar =>
                Pruner.Run(inputPath, data, options, workFolder, new ProgressDisplay.Immediate<PruneProgress>(p => bar.Update(p.Done, p.Total, p.Stage))));
            ModelSaver.CheckTarget(result.Model, outputPath, saveOptions);
            var saved = ModelSaver.Save(result.Model, outputPath, saveOptions);
            clock.Stop();

            var writer = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json)) writer.WriteLine(ToJson(result, saved, clock.Elapsed).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else Render(result, saved, clock.Elapsed, InspectCommand.ConsoleFor(writer));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Parses --keep-layers into <paramref name="options"/>.</summary>
    internal static PruneOptions ParseKeepLayers(string text, PruneOptions options)
    {
        var kept = new HashSet<int>();
        bool first = false, last = false;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part == "none") continue;
            if (part == "first") first = true;
            else if (part == "last") last = true;
            else if (int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int layer)) kept.Add(layer);
            else throw new ArgumentException($"--keep-layers takes 'first', 'last', 'none' or layer numbers, not '{part}'.");
        }
        return options with { KeepLayers = kept, KeepFirstLayer = first, KeepLastLayer = last };
    }

    private static JsonObject ToJson(PruneResult result, SaveResult saved, TimeSpan elapsed) => new()
    {
        ["output"] = saved.ModelPath,
        ["method"] = result.Options.Method.ToString().ToLowerInvariant(),
        ["allocation"] = result.Options.EffectiveAllocation.ToString().ToLowerInvariant(),
        ["ratio"] = result.Options.Ratio,
        ["compensation"] = result.Options.Compensation,
        ["threshold"] = result.Threshold,
        ["neurons_before"] = result.NeuronsBefore,
        ["neurons_after"] = result.NeuronsAfter,
        ["parameters_before"] = result.ParametersBefore,
        ["parameters_after"] = result.ParametersAfter,
        ["calibration_tokens"] = result.Tokens,
        ["sampled_tokens"] = result.SampledTokens,
        ["capture_seconds"] = Math.Round(result.CaptureTime.TotalSeconds, 3),
        ["scoring_seconds"] = Math.Round(result.DecompositionTime.TotalSeconds, 3),
        ["seconds"] = Math.Round(elapsed.TotalSeconds, 3),
        ["layers"] = new JsonArray(result.Layers.Select(l => (JsonNode)new JsonObject
        {
            ["layer"] = l.Layer,
            ["down"] = l.DownNode,
            ["neurons"] = l.Width,
            ["kept"] = l.Kept,
            ["kept_whole"] = l.KeptWhole,
            ["compensated"] = l.Compensated,
            ["ica"] = l.Networks is not { } n ? null : new JsonObject
            {
                ["components"] = n.Components,
                ["iterations"] = n.Iterations,
                ["converged"] = n.Converged,
                ["stability"] = Math.Round(n.Stability, 4),
                ["seconds"] = Math.Round(n.Seconds, 3),
            },
        }).ToArray()),
    };

    private static void Render(PruneResult result, SaveResult saved, TimeSpan elapsed, IAnsiConsole console)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumn("layer").AddColumn("neurons", c => c.RightAligned())
            .AddColumn("kept", c => c.RightAligned()).AddColumn("removed", c => c.RightAligned()).AddColumn("compensated").AddColumn("ICA");
        foreach (var l in result.Layers)
            table.AddRow(l.Layer.ToString(CultureInfo.InvariantCulture), l.Width.ToString(CultureInfo.InvariantCulture), l.Kept.ToString(CultureInfo.InvariantCulture),
                l.KeptWhole ? "kept whole" : $"{100.0 * (l.Width - l.Kept) / l.Width:0.#}%", l.Compensated ? "yes" : "",
                l.Networks is { } n ? $"{n.Components} networks, {n.Iterations} it{(n.Converged ? "" : " (not converged)")}, stability {n.Stability:0.00}, {n.Seconds:0.0} s" : "");
        var o = result.Options;
        console.MarkupLine($"[bold]Pruned[/] {o.Method.ToString().ToLowerInvariant()} ({o.EffectiveAllocation.ToString().ToLowerInvariant()} allocation" +
            (result.Threshold is { } t ? $", τ = {t.ToString("0.###", CultureInfo.InvariantCulture)}" : "") + ")");
        console.Write(table);
        console.MarkupLine($"MLP neurons {result.NeuronsAfter:N0} / {result.NeuronsBefore:N0} ({100.0 * (result.NeuronsBefore - result.NeuronsAfter) / result.NeuronsBefore:0.##}% removed); " +
            $"parameters {result.ParametersAfter:N0} / {result.ParametersBefore:N0} ({100.0 * (result.ParametersBefore - result.ParametersAfter) / result.ParametersBefore:0.##}% fewer)");
        console.MarkupLine($"calibration tokens {result.Tokens:N0}" + (result.SampledTokens > 0 ? $", {result.SampledTokens:N0} sampled for ICA" : "") +
            $"; capture {result.CaptureTime.TotalSeconds:0.0} s, scoring {result.DecompositionTime.TotalSeconds:0.0} s, total {elapsed.TotalSeconds:0.0} s");
        console.MarkupLine($"wrote {Markup.Escape(saved.ModelPath)}" + (saved.DataPath is not null ? $" and {Markup.Escape(saved.DataPath)}" : ""));
    }
}
