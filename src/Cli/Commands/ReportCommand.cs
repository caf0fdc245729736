using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using SparseOnnx.Cli.Reporting;
using SparseOnnx.Runtime.Benchmarking;
using SparseOnnx.Runtime.Evaluation;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx report MODEL --text FILE [--tokenizer TOK] --sparsities 0,0.3,0.5,0.7 -o FOLDER</c>: sparsifies at
/// each level, evaluates perplexity, benchmarks all models against the dense one in one run, and writes
/// report.md, report.json and PNG plots.
/// </summary>
public static class ReportCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The dense ONNX causal LM." };
        var text = new Option<FileInfo?>("--text") { Description = "Evaluation text (UTF-8), read as --documents says." };
        var reading = new TextReadingCliOptions();
        var ids = new Option<FileInfo?>("--ids") { Description = "Pre-tokenized evaluation ids instead of --text." };
        var tokenizer = RuntimeOptions.TokenizerOption();
        var sparsities = new Option<string>("--sparsities") { Description = "Comma-separated sparsity levels in [0, 1).", DefaultValueFactory = _ => "0,0.3,0.5,0.7" };
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
            model, text, ids, tokenizer, sparsities, output, kinds, noSpontaneous, seqLen, stride, maxEvalTokens, promptTokens, tokens, repetitions, keepModels,
        };
        foreach (var option in reading.All) command.Options.Add(option);
        runtime.AddTo(command);
        command.SetAction(parse =>
        {
            string modelPath = parse.GetValue(model)!.FullName;
            if (!File.Exists(modelPath)) throw new FileNotFoundException($"The model '{modelPath}' does not exist.", modelPath);
            var options = new SweepOptions
            {
                Sparsities = ParseSparsities(parse.GetValue(sparsities)!),
                Perplexity = new PerplexityOptions { SequenceLength = parse.GetValue(seqLen), Stride = parse.GetValue(stride), MaxTokens = parse.GetValue(maxEvalTokens) },
                Benchmark = new DecodeBenchmarkOptions { PromptTokens = parse.GetValue(promptTokens), DecodeTokens = parse.GetValue(tokens), Repetitions = parse.GetValue(repetitions) },
                Runtime = RuntimeOptions.WithSharedPool(runtime.Read(parse)),
                Kinds = parse.GetValue(kinds) is { Length: > 0 } k ? SparsifyCommand.ParseKinds(k) : null,
                SpontaneousNeurons = !parse.GetValue(noSpontaneous),
                KeepModels = parse.GetValue(keepModels),
            };
            options.Perplexity.Validate();
            options.Benchmark.Validate();
            int[] stream = EvalCommand.ReadStream(parse, text, ids, tokenizer, reading, modelPath).Ids;
            string folder = parse.GetValue(output)!.FullName;
            var result = ProgressDisplay.Run(parse.InvocationConfiguration.Error, "Report", bar => SparsitySweep.Run(modelPath, stream, folder, options, bar));
            string textDescription = parse.GetValue(text) is { } t ? $"`{Path.GetFileName(t.FullName)}`" : $"`{Path.GetFileName(parse.GetValue(ids)!.FullName)}` (ids)";
            var written = SweepReportWriter.Write(result, folder, textDescription, "sparseonnx report " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1).SkipWhile(a => a != "report").Skip(1)));

            var console = InspectCommand.ConsoleFor(parse.InvocationConfiguration.Output);
            var table = new Table().AddColumns("sparsity", "perplexity", "prefill tokens/s", "decode tokens/s", "decode speedup");
            foreach (var row in result.Rows)
                table.AddRow(SweepReportWriter.Label(row), $"{row.Perplexity.Perplexity:F2}", $"{row.Throughput.PrefillTokensPerSecond:F1}",
                    $"{row.Throughput.DecodeTokensPerSecond:F2}", $"{row.Throughput.DecodeTokensPerSecond / result.Rows[0].Throughput.DecodeTokensPerSecond:F2}×");
            console.Write(table);
            foreach (string file in written) console.WriteLine($"wrote {file}");
            return ExitCodes.Success;
        });
        return command;
    }

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
