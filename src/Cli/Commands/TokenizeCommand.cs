using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using SparseOnnx.Runtime.Evaluation;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx tokenize --tokenizer T (--text FILE | --string S) [--pieces] [--json] [--documents whole|lines] [--bos auto|on|off]</c>:
/// the ids a text gives under the same loading and convention as <c>eval</c>, to diff against another tokenizer.
/// </summary>
public static class TokenizeCommand
{
    public static Command Create()
    {
        var tokenizer = RuntimeOptions.TokenizerOption();
        tokenizer.Description = "Tokenizer: SentencePiece tokenizer.model, Hugging Face tokenizer.json, a .tiktoken file, or a folder with one.";
        tokenizer.Required = true;
        var text = new Option<FileInfo?>("--text") { Description = "A text file (UTF-8), read as eval reads it (--documents)." };
        var @string = new Option<string?>("--string") { Description = "A text given on the command line." };
        var pieces = new Option<bool>("--pieces") { Description = "Also print each id's piece (token string)." };
        var json = new Option<bool>("--json") { Description = "Print JSON: {\"ids\": [...]} (and \"pieces\" with --pieces), with the convention used." };
        var reading = new TextReadingCliOptions();
        var command = new Command("tokenize", "Print the token ids of a text, read exactly as eval and calibration read it. " + TextReadingCliOptions.WholeSentence)
        {
            tokenizer, text, @string, pieces, json,
        };
        foreach (var option in reading.All) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var file = parse.GetValue(text);
            string? literal = parse.GetValue(@string);
            if ((file is null) == (literal is null)) throw new ArgumentException("Give exactly one of --text and --string.");
            var loaded = RuntimeOptions.LoadTokenizer(parse, tokenizer, null);
            bool withPieces = parse.GetValue(pieces);
            var result = file is not null
                ? TokenStream.Read(file.FullName, loaded, reading.Read(parse), withPieces)
                : TokenStream.Tokenize(literal!, loaded, reading.Read(parse), withPieces);
            var writer = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                var document = new JsonObject
                {
                    ["tokenizer"] = loaded.Source,
                    ["documents"] = result.Convention,
                    ["bos_tokens"] = result.BosTokens,
                    ["count"] = result.Ids.Length,
                    ["ids"] = new JsonArray(result.Ids.Select(id => (JsonNode)id).ToArray()),
                };
                if (result.Pieces is { } p) document["pieces"] = new JsonArray(p.Select(x => (JsonNode)x).ToArray());
                // Pieces stay readable ("▁the", "<0x0A>"): relaxed escaping writes non-ASCII as is, still valid JSON.
                writer.WriteLine(document.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            }
            else if (result.Pieces is { } p)
                for (int i = 0; i < result.Ids.Length; i++) writer.WriteLine($"{result.Ids[i]}\t{p[i]}");
            else
                writer.WriteLine(string.Join(' ', result.Ids)); // the format eval --ids and --calibration-ids read
            return ExitCodes.Success;
        });
        return command;
    }
}
