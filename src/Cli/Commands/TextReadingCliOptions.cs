using System.CommandLine;
using SparseOnnx.Runtime.Evaluation;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>--documents whole|lines</c> and <c>--bos auto|on|off</c>: how a text file becomes the token stream, shared by
/// evaluation (<c>eval</c>, <c>report</c>) and calibration (<c>sparsify --calibration</c>, <c>prune</c>), so a
/// model is calibrated on text read the way it is evaluated.
/// </summary>
internal sealed class TextReadingCliOptions
{
    public const string WholeSentence =
        "A text file is read as one string and tokenized once (BOS once at the start when the tokenizer adds one), " +
        "the convention of the GPTQ, SparseGPT, Wanda and TEAL evaluation code; --documents lines makes each line a document " +
        "with its own BOS, for models trained that way (llama-brown).";

    public Option<string> Documents { get; } = new("--documents")
    {
        Description = "whole: the file is one text, tokenized once (the papers' convention); lines: each non-empty line is a document with its own BOS (for models trained on such documents, like llama-brown).",
        DefaultValueFactory = _ => "whole",
    };

    public Option<string> Bos { get; } = new("--bos")
    {
        Description = "With --documents whole, a BOS in front of the text: auto (as the tokenizer's reference library does: tokenizer_config.json's add_bos_token or the tokenizer.json template; plain SentencePiece adds none), on, off.",
        DefaultValueFactory = _ => "auto",
    };

    public TextReadingCliOptions()
    {
        Documents.AcceptOnlyFromAmong("whole", "lines");
        Bos.AcceptOnlyFromAmong("auto", "on", "off");
    }

    public IEnumerable<Option> All => [Documents, Bos];

    public TextReading Read(ParseResult parse) => new()
    {
        Documents = TextReading.ParseDocuments(parse.GetValue(Documents)!),
        Bos = TextReading.ParseBos(parse.GetValue(Bos)!),
    };
}
