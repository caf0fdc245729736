using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Cli.Commands;

/// <summary><c>sparseonnx generate MODEL --prompt "..." [--tokenizer TOK] [--max-tokens N] [--top-p P --seed S]</c>: streams text.</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The ONNX causal LM (dense or sparsified)." };
        var tokenizer = RuntimeOptions.TokenizerOption();
        var prompt = new Option<string>("--prompt") { Description = "The text to continue.", Required = true };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most new tokens.", DefaultValueFactory = _ => 64 };
        var topP = new Option<double?>("--top-p") { Description = "Nucleus sampling with this probability mass (default: greedy)." };
        var temperature = new Option<double>("--temperature") { Description = "Softmax temperature when sampling.", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<int>("--seed") { Description = "Seed of the sampler: the same seed gives the same text.", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print JSON (text, ids, timing) at the end instead of streaming." };
        var runtime = new RuntimeOptions();
        var command = new Command("generate", "Generate text from a prompt (greedy, or top-p sampling with a seed), streaming tokens as they come.")
        {
            model, tokenizer, prompt, maxTokens, topP, temperature, seed, json,
        };
        runtime.AddTo(command);
        command.SetAction(parse =>
        {
            string modelPath = parse.GetValue(model)!.FullName;
            var options = new GenerationOptions
            {
                MaxTokens = parse.GetValue(maxTokens),
                Sampling = new SamplingOptions { TopP = parse.GetValue(topP), Temperature = parse.GetValue(temperature), Seed = parse.GetValue(seed) },
            };
            options.Sampling.Validate();
            if (options.MaxTokens < 1) throw new ArgumentException($"--max-tokens must be at least 1, not {options.MaxTokens}.");
            var tok = RuntimeOptions.LoadTokenizer(parse, tokenizer, modelPath);
            using var lm = CausalLm.Open(modelPath, runtime.Read(parse));
            var writer = parse.InvocationConfiguration.Output;
            bool asJson = parse.GetValue(json);
            string promptText = parse.GetValue(prompt)!;
            if (!asJson) writer.Write(promptText);
            var clock = Stopwatch.StartNew();
            var result = TextGenerator.Generate(lm, tok, promptText, options, token =>
            {
                if (asJson) return;
                writer.Write(token.Text);
                writer.Flush();
            });
            clock.Stop();
            if (asJson)
            {
                writer.WriteLine(new JsonObject
                {
                    ["model"] = modelPath,
                    ["prompt"] = promptText,
                    ["text"] = result.Text,
                    ["prompt_ids"] = new JsonArray(result.PromptIds.Select(i => (JsonNode)i).ToArray()),
                    ["ids"] = new JsonArray(result.Ids.Select(i => (JsonNode)i).ToArray()),
                    ["tokens"] = result.Ids.Count,
                    ["stopped_at_eos"] = result.StoppedAtEos,
                    ["seconds"] = clock.Elapsed.TotalSeconds,
                }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                writer.WriteLine();
                parse.InvocationConfiguration.Error.WriteLine(
                    $"{result.Ids.Count} tokens in {clock.Elapsed.TotalSeconds:F2} s ({result.Ids.Count / clock.Elapsed.TotalSeconds:F1} tokens/s, prefill included){(result.StoppedAtEos ? "; stopped at end of sequence" : "")}");
            }
            return ExitCodes.Success;
        });
        return command;
    }
}
