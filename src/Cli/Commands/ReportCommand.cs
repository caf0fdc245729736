using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using SparseOnnx.Calibration;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Calibration.Training;
using SparseOnnx.Cli.Reporting;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Benchmarking;
using SparseOnnx.Runtime.Evaluation;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx report MODEL --text FILE [--calibration TEXT] [--sparsities 0.5,0.7] -o FOLDER [--quick]</c>: sparsifies
/// at each level (top-k, and calibrated when calibration text is given), evaluates perplexity, benchmarks all models
/// against the dense one in one run, times the kernel at Llama-size projection shapes, and writes report.md,
/// report.json and PNG plots. <c>--quick</c> is the uncalibrated sweep alone (0, 30, 50, 70%), no kernel table.
/// </summary>
public static class ReportCommand
{
    /// <summary>Llama-3-8B's projection shapes (Llama-2-7B's but for GQA's k/v and the wider MLP).</summary>
    internal static readonly KernelShape[] LlamaShapes =
    [
        new("q, o", 4096, 4096), new("k, v", 4096, 1024), new("gate, up", 4096, 14336), new("down", 14336, 4096),
    ];

    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The dense ONNX causal LM." };
        var text = new Option<FileInfo?>("--text") { Description = "Evaluation text (UTF-8), read as --documents says." };
        var reading = new TextReadingCliOptions();
        var ids = new Option<FileInfo?>("--ids") { Description = "Pre-tokenized evaluation ids instead of --text." };
        var tokenizer = RuntimeOptions.TokenizerOption();
        var sparsities = new Option<string?>("--sparsities") { Description = "Comma-separated sparsity levels in [0, 1) (default 0.5,0.7; with --quick 0,0.3,0.5,0.7)." };
        var quick = new Option<bool>("--quick") { Description = "The uncalibrated top-k sweep alone (default levels 0,0.3,0.5,0.7), no kernel table: about 2 minutes on the reference model." };
        var calibrationText = new Option<FileInfo?>("--calibration") { Description = "Calibration text (read as --documents says): each level is also calibrated (thresholds, allocation, compensation, trained spontaneous neurons) and compared with top-k." };
        var calibrationIds = new Option<FileInfo?>("--calibration-ids") { Description = "Calibration data as pre-tokenized ids instead of --calibration." };
        // The calibrated rows are what `sparsify --calibration` gives with its defaults, so each option here defaults to sparsify's.
        var allocation = new Option<string>("--allocation") { Description = "Calibrated rows: auto (as sparsify: greedy where its search fits memory and its time budget, else uniform), greedy (TEAL's block-wise search) or uniform.", DefaultValueFactory = _ => "auto" };
        var greedyStep = new Option<double>("--greedy-step") { Description = "Calibrated rows, greedy: sparsity step of one group per iteration.", DefaultValueFactory = _ => new CalibrationOptions().GreedyStep };
        var trainSteps = new Option<int?>("--train-steps") { Description = "Calibrated rows: Adam steps of the whole-model training of the spontaneous neurons (the sequential method's end-to-end phase; 0: closed form only; default: as sparsify, 60 where it fits in memory)." };
        var noKernels = new Option<bool>("--no-kernels") { Description = "Leave out the kernel table at Llama-size projection shapes." };
        allocation.AcceptOnlyFromAmong("auto", "greedy", "uniform");
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Folder for report.md, report.json and the plots.", Required = true };
        var kinds = new Option<string[]>("--kinds") { Description = "Projection kinds to sparsify (as 'sparsify --kinds').", AllowMultipleArgumentsPerToken = true };
        var noSpontaneous = new Option<bool>("--no-spontaneous") { Description = "Leave the spontaneous-neuron Adds out." };
        var seqLen = new Option<int>("--seq-len") { Description = "Perplexity window length.", DefaultValueFactory = _ => 128 };
        var stride = new Option<int>("--stride") { Description = "Perplexity window stride.", DefaultValueFactory = _ => 128 };
        var maxEvalTokens = new Option<int>("--max-eval-tokens") { Description = "Evaluate on the first N tokens only (0: all).", DefaultValueFactory = _ => 0 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Benchmark prompt length.", DefaultValueFactory = _ => 128 };
        var tokens = new Option<int>("--tokens") { Description = "Benchmark tokens decoded.", DefaultValueFactory = _ => 128 };
        var repetitions = new Option<int>("--repetitions") { Description = "Benchmark repetitions per model.", DefaultValueFactory = _ => 3 };
        var keepModels = new Option<bool>("--keep-models") { Description = "Keep the sparsified models under FOLDER/models." };
        var runtime = new RuntimeOptions();
        var command = new Command("report", "Sparsify at several levels, evaluate and benchmark each against the dense model, write a markdown report with plots.")
        {
            model, text, ids, tokenizer, sparsities, quick, calibrationText, calibrationIds, allocation, greedyStep, trainSteps, noKernels,
            output, kinds, noSpontaneous, seqLen, stride, maxEvalTokens, promptTokens, tokens, repetitions, keepModels,
        };
        foreach (var option in reading.All) command.Options.Add(option);
        runtime.AddTo(command);
        command.SetAction(parse =>
        {
            string modelPath = parse.GetValue(model)!.FullName;
            if (!File.Exists(modelPath)) throw new FileNotFoundException($"The model '{modelPath}' does not exist.", modelPath);
            bool isQuick = parse.GetValue(quick);
            var calibrationFile = parse.GetValue(calibrationText);
            var calibrationIdsFile = parse.GetValue(calibrationIds);
            if (calibrationFile is not null && calibrationIdsFile is not null) throw new ArgumentException("Give one of --calibration and --calibration-ids, not both.");
            bool calibrate = calibrationFile is not null || calibrationIdsFile is not null;
            if (isQuick && calibrate) throw new ArgumentException("--quick is the uncalibrated sweep; drop --calibration, or drop --quick.");
            if (calibrate && parse.GetValue(noSpontaneous)) throw new ArgumentException("Calibrated rows need the spontaneous-neuron Adds; drop --no-spontaneous.");
            var levels = ParseSparsities(parse.GetValue(sparsities) ?? (isQuick ? "0,0.3,0.5,0.7" : "0.5,0.7"));
            var textReading = reading.Read(parse);
            SweepCalibration? calibration = null;
            if (calibrate)
            {
                if (levels.Any(l => l == 0)) throw new ArgumentException("--sparsities: calibrating at 0 has nothing to calibrate; leave 0 out.");
                if (parse.GetValue(trainSteps) < 0) throw new ArgumentException("--train-steps must be ≥ 0.");
                var setOptions = new CalibrationSetOptions();
                var data = calibrationIdsFile is not null
                    ? CalibrationSet.FromIdsFile(calibrationIdsFile.FullName, setOptions)
                    : CalibrationSet.FromTextFile(calibrationFile!.FullName, RuntimeOptions.LoadTokenizer(parse, tokenizer, modelPath), setOptions, textReading);
                int? steps = parse.GetValue(trainSteps);
                var template = new CalibrationOptions
                {
                    Mode = SparsityMode.Threshold,
                    Allocation = parse.GetValue(allocation) switch { "greedy" => AllocationMethod.Greedy, "uniform" => AllocationMethod.Uniform, _ => AllocationMethod.Auto },
                    GreedyStep = parse.GetValue(greedyStep),
                    Compensation = CompensationMode.Auto,
                    Training = steps == 0 ? null : new SpontaneousTrainingOptions { Steps = steps ?? new SpontaneousTrainingOptions().Steps },
                    Sequential = new Calibration.Sequential.SequentialOptions { EndToEndSteps = steps is > 0 ? steps : null },
                    Threads = runtime.Read(parse).Threads,
                };
                template.Validate();
                calibration = new SweepCalibration(data, template);
            }
            var options = new SweepOptions
            {
                Sparsities = levels,
                Calibration = calibration,
                KernelShapes = isQuick || parse.GetValue(noKernels) ? [] : LlamaShapes,
                Perplexity = new PerplexityOptions { SequenceLength = parse.GetValue(seqLen), Stride = parse.GetValue(stride), MaxTokens = parse.GetValue(maxEvalTokens) },
                Benchmark = new DecodeBenchmarkOptions { PromptTokens = parse.GetValue(promptTokens), DecodeTokens = parse.GetValue(tokens), Repetitions = parse.GetValue(repetitions) },
                Runtime = RuntimeOptions.WithSharedPool(runtime.Read(parse)),
                Kinds = parse.GetValue(kinds) is { Length: > 0 } k ? SparsifyCommand.ParseKinds(k) : null,
                SpontaneousNeurons = !parse.GetValue(noSpontaneous),
                KeepModels = parse.GetValue(keepModels),
                TextReading = parse.GetValue(ids) is null ? TextReadingDescription(textReading) : "pre-tokenized ids",
            };
            options.Perplexity.Validate();
            options.Benchmark.Validate();
            int[] stream = EvalCommand.ReadStream(parse, text, ids, tokenizer, reading, modelPath).Ids;
            string folder = parse.GetValue(output)!.FullName;
            var result = ProgressDisplay.Run(parse.InvocationConfiguration.Error, "Report", bar => SparsitySweep.Run(modelPath, stream, folder, options, bar));
            string textDescription = parse.GetValue(text) is { } t ? $"`{Path.GetFileName(t.FullName)}`" : $"`{Path.GetFileName(parse.GetValue(ids)!.FullName)}` (ids)";
            var written = SweepReportWriter.Write(result, folder, textDescription, "sparseonnx report " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1).SkipWhile(a => a != "report").Skip(1)));

            var console = InspectCommand.ConsoleFor(parse.InvocationConfiguration.Output);
            var table = new Table().AddColumns("model", "perplexity", "prefill tokens/s", "decode tokens/s", "decode speedup");
            foreach (var row in result.Rows)
                table.AddRow(SweepReportWriter.Label(row), $"{row.Perplexity.Perplexity:F2}", $"{row.Throughput.PrefillTokensPerSecond:F1}",
                    $"{row.Throughput.DecodeTokensPerSecond:F2}", $"{row.Throughput.DecodeTokensPerSecond / result.Rows[0].Throughput.DecodeTokensPerSecond:F2}×");
            console.Write(table);
            foreach (string file in written) console.WriteLine($"wrote {file}");
            return ExitCodes.Success;
        });
        return command;
    }

    private static string TextReadingDescription(TextReading reading) => reading.Documents == DocumentConvention.Whole
        ? $"one stream (`--documents whole`, BOS {reading.Bos.ToString().ToLowerInvariant()})"
        : "one document per line with its own BOS (`--documents lines`)";

    internal static IReadOnlyList<double> ParseSparsities(string text)
    {
        var values = new List<double>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !(value >= 0 && value < 1))
                throw new ArgumentException($"--sparsities: '{part}' is not a sparsity in [0, 1).");
            if (values.Contains(value)) throw new ArgumentException($"--sparsities: {part} is given twice.");
            values.Add(value);
        }
        if (values.Count == 0) throw new ArgumentException("--sparsities: give at least one level.");
        return values;
    }
}
