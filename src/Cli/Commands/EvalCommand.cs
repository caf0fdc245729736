using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Cli.Commands;

/// <summary><c>sparseonnx eval MODEL --text FILE [--tokenizer TOK] [--seq-len 128] [--stride 128] [--json]</c>: perplexity.</summary>
public static class EvalCommand
{
    internal const string Method =
        "Method: " + TextReadingCliOptions.WholeSentence + " (Or --ids: whitespace-separated ids, lines concatenated.) Windows of --seq-len tokens " +
        "start every --stride tokens, each run from an empty KV cache; in each window every token but the first is scored from " +
        "the window's prefix, minus tokens an earlier window already scored; windows stop once one reaches the end of the stream. " +
        "Perplexity = exp(mean negative log-likelihood over the scored tokens). With --stride = --seq-len (the default) this is " +
        "non-overlapping windows with no context across them, as the reference model cards measure in PyTorch.";

    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The ONNX causal LM (dense or sparsified)." };
        var text = new Option<FileInfo?>("--text") { Description = "Evaluation text (UTF-8), read as --documents says." };
        var reading = new TextReadingCliOptions();
        var ids = new Option<FileInfo?>("--ids") { Description = "Pre-tokenized evaluation ids instead of --text (whitespace-separated, lines concatenated)." };
        var tokenizer = RuntimeOptions.TokenizerOption();
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per window.", DefaultValueFactory = _ => 128 };
        var stride = new Option<int>("--stride") { Description = "Tokens between window starts (≤ --seq-len).", DefaultValueFactory = _ => 128 };
        var batch = new Option<int>("--batch") { Description = "Windows per ONNX Runtime call.", DefaultValueFactory = _ => 8 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Evaluate only the first N tokens of the stream (0: all).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print JSON (perplexity, tokens, …) instead of text." };
        var runtime = new RuntimeOptions();
        var command = new Command("eval", "Perplexity of a model on a text. " + Method)
        {
            model, text, ids, tokenizer, seqLen, stride, batch, maxTokens, json,
        };
        foreach (var option in reading.All) command.Options.Add(option);
        runtime.AddTo(command);
        command.SetAction(parse =>
        {
            string modelPath = parse.GetValue(model)!.FullName;
            var options = new PerplexityOptions
            {
                SequenceLength = parse.GetValue(seqLen), Stride = parse.GetValue(stride),
                BatchSize = parse.GetValue(batch), MaxTokens = parse.GetValue(maxTokens),
            };
            options.Validate();
            var tokenized = ReadStream(parse, text, ids, tokenizer, reading, modelPath);
            int[] stream = tokenized.Ids;
            var clock = Stopwatch.StartNew();
            using var lm = CausalLm.Open(modelPath, runtime.Read(parse));
            var result = ProgressDisplay.Run(parse.InvocationConfiguration.Error, $"Perplexity of {Path.GetFileName(modelPath)}", bar =>
                PerplexityEvaluator.Evaluate(lm, stream, options, new ProgressDisplay.Immediate<PerplexityProgress>(p => bar.Update(p.Scored, p.Total))));
            clock.Stop();
            var writer = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
                writer.WriteLine(ToJson(modelPath, result, options, tokenized, clock.Elapsed.TotalSeconds).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else
                writer.WriteLine($"perplexity {result.Perplexity:F3} over {result.Tokens:N0} scored tokens " +
                                 $"({result.Windows:N0} windows of {options.SequenceLength}, stride {options.Stride}; mean NLL {result.MeanNll:F5} nats; " +
                                 $"{tokenized.Description}) in {clock.Elapsed.TotalSeconds:F1} s");
            return ExitCodes.Success;
        });
        return command;
    }

    internal static TokenizedText ReadStream(ParseResult parse, Option<FileInfo?> text, Option<FileInfo?> ids, Option<FileSystemInfo?> tokenizer,
        TextReadingCliOptions reading, string modelPath)
    {
        var textFile = parse.GetValue(text);
        var idsFile = parse.GetValue(ids);
        if ((textFile is null) == (idsFile is null)) throw new ArgumentException("Give exactly one of --text and --ids.");
        if (idsFile is not null) return new TokenizedText(TokenStream.FromIdsFile(idsFile.FullName), "ids", 0);
        return TokenStream.Read(textFile!.FullName, RuntimeOptions.LoadTokenizer(parse, tokenizer, modelPath), reading.Read(parse));
    }

    internal static JsonObject ToJson(string modelPath, PerplexityResult result, PerplexityOptions options, TokenizedText text, double seconds) => new()
    {
        ["documents"] = text.Convention,
        ["bos_tokens"] = text.BosTokens,
        ["model"] = modelPath,
        ["perplexity"] = result.Perplexity,
        ["tokens"] = result.Tokens,
        ["mean_nll"] = result.MeanNll,
        ["windows"] = result.Windows,
        ["stream_tokens"] = result.StreamTokens,
        ["seq_len"] = options.SequenceLength,
        ["stride"] = options.Stride,
        ["seconds"] = seconds,
    };
}
