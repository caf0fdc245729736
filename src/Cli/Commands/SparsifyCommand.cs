using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using SparseOnnx.Calibration;
using SparseOnnx.CustomOps;
using SparseOnnx.GraphRewriter;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.GenAi;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx sparsify IN -o OUT (--sparsity S | --mode threshold --threshold T | --plan FILE) [--kinds ...]
/// [--no-spontaneous] [--external auto|always|never] [--json]</c>: rewrites the projections into TopKSparseMatMul
/// followed by spontaneous-neuron Adds and saves the result; prints what it rewrote (layer × kind) and
/// everything it skipped with the reason. Writes nothing, and fails, when nothing could be rewritten. When the input's
/// folder is an onnxruntime-genai folder (genai_config.json), the output's folder becomes one too (<see cref="GenAiCarry"/>).
/// </summary>
public static class SparsifyCommand
{
    public static Command Create()
    {
        var input = new Argument<FileInfo>("model") { Description = "The ONNX model to sparsify (never modified)." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the sparse model.", Required = true };
        var sparsity = new Option<double?>("--sparsity")
        {
            Description = "Fraction of each projection's input entries to drop, in [0, 1): k = round((1 - sparsity) * K) are kept per token.",
        };
        var mode = new Option<string>("--mode") { Description = "topk (keep the k largest |x|) or threshold (keep |x| > threshold).", DefaultValueFactory = _ => "topk" };
        mode.AcceptOnlyFromAmong("topk", "threshold");
        var threshold = new Option<float?>("--threshold") { Description = "Uniform magnitude threshold, in threshold mode." };
        var kinds = new Option<string[]>("--kinds")
        {
            Description = "Projection kinds to rewrite, comma-separated: q,k,v,o,gate,up,down,qkv,gate_up (default), lm_head, unknown.",
            AllowMultipleArgumentsPerToken = true,
        };
        var plan = new Option<FileInfo?>("--plan") { Description = "Per-projection k or threshold and spontaneous values, as calibration writes them (docs/plan-format.md)." };
        var noSpontaneous = new Option<bool>("--no-spontaneous") { Description = "Do not inject the spontaneous-neuron Add after each rewritten projection." };
        var quantize = new Option<string?>("--quantize")
        {
            Description = "Quantize float projections into TopKSparseMatMulNBits: int4 or int8 (RTN symmetric, blocks along K, as `quantize` writes). " +
                "MatMulNBits projections become TopKSparseMatMulNBits with their own weights without it.",
        };
        quantize.AcceptOnlyFromAmong("int4", "int8");
        var blockSize = new Option<int>("--block-size") { Description = "With --quantize: input channels per scale (power of two, at least 16).", DefaultValueFactory = _ => 32 };
        var accuracyLevel = new Option<int>("--accuracy-level")
        {
            Description = "With --quantize: 4 multiplies int8-quantized activations (ONNX Runtime's CPU int4 default), 0 float32 ones.",
            DefaultValueFactory = _ => 4,
        };
        var scaleType = new Option<string>("--scales")
        {
            Description = "With --quantize: fp16 (default; a sparse product reads every block's scales, so half-size scales are faster) or fp32 " +
                "(the same values as `quantize` writes for MatMulNBits).",
            DefaultValueFactory = _ => "fp16",
        };
        scaleType.AcceptOnlyFromAmong("fp16", "fp32");
        var external = RewriteOutputOptions.External();
        var json = RewriteOutputOptions.Json();
        var calibration = new CalibrationCliOptions();
        var command = new Command("sparsify", "Replace projections by TopKSparseMatMul (dynamic input sparsity) followed by spontaneous-neuron Adds. " +
            "With --calibration, thresholds or k per projection, their allocation and compensation are first measured on real text, and the plan is saved too. " +
            "When the input's folder has an onnxruntime-genai genai_config.json, the output's folder gets one naming the output, with the op library and tokenizer files.")
        {
            input, output, sparsity, mode, threshold, kinds, plan, noSpontaneous, quantize, blockSize, accuracyLevel, scaleType, external, json,
        };
        foreach (var option in calibration.All) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var selectionMode = parse.GetValue(mode) == "threshold" ? SparsityMode.Threshold : SparsityMode.TopK;
            var selectedKinds = ParseKinds(parse.GetValue(kinds));
            bool calibrate = calibration.Requested(parse);
            if (calibrate)
            {
                if (parse.GetValue(plan) is not null) throw new ArgumentException("Give either --plan or --calibration: calibration writes the plan.");
                if (parse.GetValue(threshold) is not null) throw new ArgumentException("Calibration measures the thresholds; give --sparsity, not --threshold.");
                if (parse.GetValue(sparsity) is null) throw new ArgumentException("Calibration needs the target --sparsity.");
            }
            var options = new SparsifyOptions
            {
                Mode = selectionMode,
                Sparsity = calibrate ? null : parse.GetValue(sparsity),
                Threshold = parse.GetValue(threshold),
                Kinds = selectedKinds,
                SpontaneousNeurons = !parse.GetValue(noSpontaneous),
                Plan = parse.GetValue(plan) is { } planFile ? SparsityPlan.Load(planFile.FullName) : null,
                Quantization = parse.GetValue(quantize) is { } q
                    ? new WeightQuantization(q == "int8" ? 8 : 4, parse.GetValue(blockSize), parse.GetValue(accuracyLevel), parse.GetValue(scaleType) == "fp16")
                    : null,
            };
            if (!calibrate) options.Validate();
            var saveOptions = new SaveOptions { ExternalData = parse.GetValue(external) };
            string inputPath = parse.GetValue(input)!.FullName;
            string outputPath = parse.GetValue(output)!.FullName;
            var clock = Stopwatch.StartNew();

            using var model = ModelLoader.Load(inputPath);
            ModelSaver.CheckTarget(model, outputPath, saveOptions);
            // Planned before the rewrite, so that a missing op library fails the command before any work is done.
            var genai = GenAiCarry.Prepare(inputPath, outputPath, () => SparseOnnxOps.LibraryPath);

            CalibrationResult? calibrated = null;
            string? planPath = null;
            if (calibrate)
            {
                var calibrationOptions = calibration.Options(parse, parse.GetValue(sparsity)!.Value, selectionMode, selectedKinds);
                if (parse.GetValue(noSpontaneous))
                {
                    // Compensation vectors live in the spontaneous-neuron Adds; without them there is nothing to calibrate into.
                    if (calibrationOptions.Compensation == CompensationMode.On)
                        throw new ArgumentException("--compensation on needs the spontaneous-neuron Adds; drop --no-spontaneous.");
                    if (calibration.SpontaneousGiven(parse) && calibrationOptions.Training is not null)
                        throw new ArgumentException("--spontaneous trained needs the spontaneous-neuron Adds; drop --no-spontaneous.");
                    calibrationOptions = calibrationOptions with { Compensation = CompensationMode.Off, Training = null };
                }
                calibrationOptions.Validate();
                var data = calibration.ReadData(parse, inputPath);
                planPath = calibration.PlanPath(parse, outputPath);
                if (Path.GetFullPath(planPath) == inputPath || Path.GetFullPath(planPath) == outputPath)
                    throw new ArgumentException($"The plan would be written over '{planPath}'; choose another --plan-out.");
                string workFolder = CommandWorkFolders.For(outputPath, "calibration", parse.InvocationConfiguration.Error);
                Directory.CreateDirectory(Path.GetDirectoryName(outputPath)!);
                // The model loaded above is calibrated as it is (the Calibrator instruments a copy) and then rewritten.
                // Quantizing on the way: calibrate a quantized copy (the Calibrator runs a MatMulNBits model as the
                // float model it computes), so thresholds and spontaneous vectors see the int4 weights.
                using var quantized = options.Quantization is not null ? model.Clone() : null;
                if (quantized is not null)
                    new QuantizePass(new QuantizeOptions { Quantization = options.Quantization!, Kinds = selectedKinds }).Run(quantized);
                calibrated = ProgressDisplay.Run(parse.InvocationConfiguration.Error, "Calibrating", bar =>
                    Calibrator.Run(quantized ?? model, data, calibrationOptions, workFolder,
                        new ProgressDisplay.Immediate<CalibrationProgress>(p => bar.Update(p.Done, p.Total, p.Stage))));
                // The plan in memory, as saved: the model records the file it can be re-made from.
                options = options with { Plan = calibrated.Plan.Save(planPath) };
            }
            var report = new SparsifyPass(options).Run(model).Report;
            if (report.Rewritten.Count == 0) throw new NothingToRewriteException(NothingRewrittenMessage(report, model));
            var saved = ModelSaver.Save(model, outputPath, saveOptions);
            GenAiFolderWriteResult? genaiWritten;
            try
            {
                genaiWritten = genai?.Update?.Write();
            }
            catch (ModelSaveException e)
            {
                throw new ModelSaveException($"Wrote {saved.ModelPath}, but could not make its folder an onnxruntime-genai folder: {e.Message}", e);
            }
            clock.Stop();

            var writer = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                var document = ToJson(report, saved, clock.Elapsed);
                if (calibrated is not null) document["calibration"] = CalibrationCliOptions.ToJson(calibrated, planPath!);
                if (genai is not null)
                    document["genai"] = genaiWritten is not null
                        ? GenAiConfigCommand.ToJson(genaiWritten, genai.Update!.Notes)
                        : new JsonObject { ["input_config"] = genai.InputConfig, ["skipped"] = genai.SkipReason };
                writer.WriteLine(document.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                var console = InspectCommand.ConsoleFor(writer);
                if (calibrated is not null) CalibrationCliOptions.Render(calibrated, planPath!, console);
                Render(report, saved, clock.Elapsed, console);
                if (genaiWritten is not null) GenAiConfigCommand.Render(genaiWritten, genai!.Update!.Notes, writer, "genai: ");
                else if (genai is not null) writer.WriteLine($"genai: {genai.InputConfig} not carried: {genai.SkipReason}");
            }
            return ExitCodes.Success;
        });
        return command;
    }

    internal static IReadOnlySet<ProjectionKind> ParseKinds(string[]? values)
    {
        if (values is null || values.Length == 0) return SparsifyOptions.DefaultKinds;
        var kinds = new HashSet<ProjectionKind>();
        foreach (string name in values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            if (name == "unknown") kinds.Add(ProjectionKind.Unknown);
            else if (name == "default") kinds.UnionWith(SparsifyOptions.DefaultKinds);
            else kinds.Add(ProjectionKindNames.Parse(name));
        }
        return kinds;
    }

    private static string NothingRewrittenMessage(SparsifyReport report, Model model)
    {
        int sparse = SparsifyPass.CountSparseNodes(model);
        if (report.Skipped.Count == 0)
            return sparse > 0
                ? $"Nothing to rewrite: the model has no dense projections left ({sparse} are already {TopKSparseMatMulOp.OpType}); no output was written."
                : "Nothing to rewrite: the model has no projection (a MatMul or Gemm of an activation and a constant float matrix); no output was written.";
        var reasons = report.Skipped.GroupBy(s => s.Reason).Select(g => $"{g.Count()} × {g.Key} (e.g. {g.First().Node})");
        return $"Nothing could be rewritten, so no output was written. The {report.Skipped.Count} projections were skipped: " +
            string.Join("; ", reasons) + ".";
    }

    private static JsonObject ToJson(SparsifyReport report, SaveResult saved, TimeSpan elapsed) => new()
    {
        ["output"] = saved.ModelPath,
        ["data_file"] = saved.DataPath,
        ["seconds"] = Math.Round(elapsed.TotalSeconds, 3),
        ["rewritten"] = new JsonArray(report.Rewritten.Select(r => (JsonNode)new JsonObject
        {
            ["node"] = r.Node,
            ["graph"] = r.GraphPath,
            ["kind"] = r.Kind.ToShortName(),
            ["layer"] = r.Layer,
            ["in_features"] = r.InFeatures,
            ["out_features"] = r.OutFeatures,
            ["dtype"] = r.DataType.DisplayName(),
            ["k"] = r.K,
            ["threshold"] = r.Threshold,
            ["kept_fraction"] = r.KeptFraction,
            ["replaced"] = r.ReplacedOp,
            ["spontaneous"] = r.Spontaneous,
            ["spontaneous_calibrated"] = r.SpontaneousCalibrated,
            ["source"] = r.Source,
        }).ToArray()),
        ["skipped"] = new JsonArray(report.Skipped.Select(s => (JsonNode)new JsonObject
        {
            ["node"] = s.Node,
            ["graph"] = s.GraphPath,
            ["kind"] = s.Kind.ToShortName(),
            ["layer"] = s.Layer,
            ["reason"] = s.Reason,
        }).ToArray()),
    };

    private static void Render(SparsifyReport report, SaveResult saved, TimeSpan elapsed, IAnsiConsole console)
    {
        var kinds = report.Rewritten.Select(r => r.Kind).Distinct().Order().ToList();
        var table = new Table().Border(TableBorder.Rounded).AddColumn("layer");
        foreach (var kind in kinds) table.AddColumn(new TableColumn(kind.ToShortName()).RightAligned());
        foreach (var row in report.Rewritten.GroupBy(r => r.Layer).OrderBy(g => g.Key ?? int.MaxValue))
        {
            var cells = new List<string> { row.Key?.ToString(CultureInfo.InvariantCulture) ?? "-" };
            foreach (var kind in kinds)
                cells.Add(string.Join("\n", row.Where(r => r.Kind == kind).Select(Cell).Distinct()));
            table.AddRow(cells.ToArray());
        }
        console.MarkupLine("[bold]Rewritten[/] (cells: k of K, kept %; τ: threshold)");
        console.Write(table);

        foreach (var s in report.Skipped)
            console.MarkupLine($"[yellow]skipped[/] {Markup.Escape(s.Node)} ({s.Kind.ToShortName()}, layer {s.Layer?.ToString(CultureInfo.InvariantCulture) ?? "-"}" +
                $"{(s.GraphPath == "main" ? "" : ", " + Markup.Escape(s.GraphPath))}): {Markup.Escape(s.Reason)}");

        int total = report.Rewritten.Count + report.Skipped.Count;
        var topk = report.Rewritten.Where(r => r.K is not null).ToList();
        string kept = topk.Count == 0 ? "" :
            $"; they read {100.0 * topk.Sum(r => r.K!.Value * r.OutFeatures) / topk.Sum(r => r.InFeatures * r.OutFeatures):0.#}% of their weight rows per token";
        console.MarkupLine($"rewrote {report.Rewritten.Count} of {total} projections{kept}");
        int spontaneous = report.Rewritten.Count(r => r.Spontaneous);
        int calibrated = report.Rewritten.Count(r => r.SpontaneousCalibrated);
        // Float projections get an Add after the op; quantized ones hold the vector in the op's bias input.
        console.MarkupLine(spontaneous == 0 ? "no spontaneous-neuron vectors (--no-spontaneous)"
            : $"spontaneous-neuron vectors: {spontaneous} ({calibrated} calibrated from the plan, {spontaneous - calibrated} zeros until calibrated)");
        if (report.Rewritten.Any(r => r.Spontaneous && r.DataType == DataType.BFloat16))
            console.MarkupLine("[yellow]note[/]: ONNX Runtime's CPU provider has no bfloat16 Add; run this model on a GPU provider, " +
                "or sparsify with --no-spontaneous for CPU.");
        console.MarkupLine($"wrote {Markup.Escape(saved.ModelPath)} ({saved.ModelFileBytes} bytes) in {elapsed.TotalSeconds:0.0} s");
        if (saved.DataPath is not null)
            console.MarkupLine($"wrote {Markup.Escape(saved.DataPath)} ({saved.ExternalTensors} tensors, {saved.ExternalBytes} bytes)");
    }

    private static string Cell(SparsifiedProjection r) => r.K is { } k
        ? $"{k}/{r.InFeatures} {100.0 * k / r.InFeatures:0.#}%"
        : $"τ {r.Threshold!.Value.ToString("0.####", CultureInfo.InvariantCulture)}";
}
