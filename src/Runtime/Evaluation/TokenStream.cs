using System.Text;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Runtime.Evaluation;

/// <summary>How a text file becomes documents before tokenization.</summary>
public enum DocumentConvention
{
    /// <summary>
    /// The whole file is one string, tokenized once, with BOS once at the start when the tokenizer adds one:
    /// the <c>"\n\n".join(test)</c> + fixed-length windows method of the GPTQ, SparseGPT, Wanda and TEAL
    /// evaluation code, and what a model trained on a plain token stream saw. The default.
    /// </summary>
    Whole,

    /// <summary>Each non-empty line is a document, tokenized as [BOS] + tokens (BOS when the tokenizer has one
    /// distinct from EOS), documents concatenated in file order: for models trained that way (llama-brown).</summary>
    Lines,
}

/// <summary>Whether a BOS goes in front of the whole text (<see cref="DocumentConvention.Whole"/> only).</summary>
public enum BosPolicy
{
    /// <summary>As the tokenizer's reference library does (<see cref="TextTokenizer.AddsBosByDefault"/>).</summary>
    Auto,
    /// <summary>Always, when the tokenizer has a BOS.</summary>
    On,
    /// <summary>Never.</summary>
    Off,
}

/// <summary>How a text file is read into a token stream.</summary>
public sealed record TextReading
{
    /// <summary>The document convention; <see cref="DocumentConvention.Whole"/> by default.</summary>
    public DocumentConvention Documents { get; init; } = DocumentConvention.Whole;

    /// <summary>BOS in front of the whole text: <see cref="BosPolicy.Auto"/> by default.</summary>
    public BosPolicy Bos { get; init; } = BosPolicy.Auto;

    /// <summary>One document per line with a BOS each: how llama-brown was trained and its card measured.</summary>
    public static TextReading PerLine { get; } = new() { Documents = DocumentConvention.Lines };

    /// <summary>The convention's name as the CLI and JSON reports write it: <c>whole</c> or <c>lines</c>.</summary>
    public string Name => Documents == DocumentConvention.Whole ? "whole" : "lines";

    /// <summary>Parses a convention name (<c>whole</c>, <c>lines</c>); throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public static DocumentConvention ParseDocuments(string name) => name switch
    {
        "whole" => DocumentConvention.Whole,
        "lines" => DocumentConvention.Lines,
        _ => throw new ArgumentException($"Unknown document convention '{name}' (expected whole or lines)."),
    };

    /// <summary>Parses a BOS policy name (<c>auto</c>, <c>on</c>, <c>off</c>).</summary>
    public static BosPolicy ParseBos(string name) => name switch
    {
        "auto" => BosPolicy.Auto,
        "on" => BosPolicy.On,
        "off" => BosPolicy.Off,
        _ => throw new ArgumentException($"Unknown BOS policy '{name}' (expected auto, on or off)."),
    };
}

/// <summary>A token stream and how it was made from text, for reports and provenance.</summary>
/// <param name="Ids">The stream.</param>
/// <param name="Convention">The document convention (<c>whole</c>, <c>lines</c>; <c>ids</c> for pre-tokenized input).</param>
/// <param name="BosTokens">How many BOS tokens the reading put in (0 or 1 for whole; one per document for lines).</param>
public sealed record TokenizedText(int[] Ids, string Convention, int BosTokens)
{
    /// <summary>The piece (token string) of each id, when asked for (<see cref="TokenStream.Tokenize"/> with pieces).</summary>
    public string[]? Pieces { get; init; }

    /// <summary>One phrase for reports: "whole file as one stream, no BOS", "one document per line, 32 BOS", "pre-tokenized ids".</summary>
    public string Description => Convention switch
    {
        "whole" => $"whole file as one stream, {(BosTokens > 0 ? "BOS once at the start" : "no BOS")}",
        "lines" => $"one document per line, {BosTokens:N0} BOS",
        _ => "pre-tokenized ids",
    };
}

/// <summary>Turns evaluation and calibration text into the token stream that is scored or cut into windows.</summary>
public static class TokenStream
{
    /// <summary>Reads <paramref name="textFile"/> (UTF-8, a byte-order mark dropped, as Python's <c>open(path).read()</c>
    /// reads it) into a token stream by <paramref name="reading"/> (the whole-file convention by default), as
    /// <see cref="Tokenize"/> does.</summary>
    public static TokenizedText Read(string textFile, TextTokenizer tokenizer, TextReading? reading = null, bool withPieces = false)
    {
        if (!File.Exists(textFile)) throw new FileNotFoundException($"The text file '{textFile}' does not exist.", textFile);
        return Tokenize(File.ReadAllText(textFile, Encoding.UTF8), tokenizer, reading, withPieces);
    }

    /// <summary>
    /// Tokenizes <paramref name="text"/> by <paramref name="reading"/>: the whole text at once with BOS in front as
    /// <see cref="TextReading.Bos"/> says, or each non-empty line (lines end at \n, \r\n or \r) as a document
    /// [BOS] + tokens (BOS when the tokenizer has one distinct from EOS, unless <see cref="BosPolicy.Off"/>).
    /// With <paramref name="withPieces"/> the result also has each id's piece.
    /// </summary>
    public static TokenizedText Tokenize(string text, TextTokenizer tokenizer, TextReading? reading = null, bool withPieces = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(tokenizer);
        reading ??= new TextReading();
        var ids = new List<int>();
        var pieces = withPieces ? new List<string>() : null;
        void Document(string document, bool bos)
        {
            if (bos)
            {
                ids.Add(tokenizer.BosId!.Value);
                pieces?.Add(tokenizer.BosText ?? "<bos>");
            }
            if (pieces is null) ids.AddRange(tokenizer.Encode(document));
            else
                foreach (var (id, piece) in tokenizer.EncodeToPieces(document))
                {
                    ids.Add(id);
                    pieces.Add(piece);
                }
        }
        int bosTokens = 0;
        if (reading.Documents == DocumentConvention.Lines)
        {
            bool addBos = tokenizer.BosId is not null && tokenizer.BosId != tokenizer.EosId && reading.Bos != BosPolicy.Off;
            using var lines = new StringReader(text);
            for (string? line; (line = lines.ReadLine()) is not null;)
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                Document(line, addBos);
                if (addBos) bosTokens++;
            }
        }
        else
        {
            bool bos = tokenizer.BosId is not null && reading.Bos switch
            {
                BosPolicy.On => true,
                BosPolicy.Off => false,
                _ => tokenizer.AddsBosByDefault,
            };
            Document(text, bos);
            bosTokens = bos ? 1 : 0;
        }
        return new TokenizedText(ids.ToArray(), reading.Name, bosTokens) { Pieces = pieces?.ToArray() };
    }

    /// <summary>
    /// Reads pre-tokenized ids: whitespace-separated integers, one sequence per line, concatenated.
    /// Throws <see cref="FormatException"/> naming the line and the token that is not an id.
    /// </summary>
    public static int[] FromIdsFile(string idsFile)
    {
        if (!File.Exists(idsFile)) throw new FileNotFoundException($"The ids file '{idsFile}' does not exist.", idsFile);
        var stream = new List<int>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(idsFile))
        {
            lineNumber++;
            foreach (string token in line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
                stream.Add(int.TryParse(token, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id)
                    ? id : throw new FormatException($"{idsFile}:{lineNumber}: '{token}' is not a token id."));
        }
        return stream.ToArray();
    }
}
