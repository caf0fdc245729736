using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Runtime.Evaluation;

/// <summary>Turns evaluation text into the token stream that perplexity is measured on.</summary>
public static class TokenStream
{
    /// <summary>
    /// Each non-empty line of <paramref name="textFile"/> is one document, encoded as [BOS] + tokens (BOS when
    /// the tokenizer has one distinct from EOS), and the documents are concatenated in file order; the
    /// reference model card measures PyTorch perplexity on exactly this stream.
    /// </summary>
    public static int[] FromTextFile(string textFile, TextTokenizer tokenizer)
    {
        if (!File.Exists(textFile)) throw new FileNotFoundException($"The text file '{textFile}' does not exist.", textFile);
        bool addBos = tokenizer.BosId is not null && tokenizer.BosId != tokenizer.EosId;
        var stream = new List<int>();
        foreach (string line in File.ReadLines(textFile))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            stream.AddRange(tokenizer.Encode(line, addBos));
        }
        return stream.ToArray();
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
