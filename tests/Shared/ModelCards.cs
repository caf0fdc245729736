using System.Globalization;
using System.Text.RegularExpressions;

namespace SparseOnnx.Tests.Shared;

/// <summary>Figures the model recipe measured in PyTorch and wrote into a trained reference model's card (README.md).</summary>
public static partial class ModelCards
{
    /// <summary>The card's test row: llama-brown's "| **test** | scored | **ppl** |" or llama-mix's
    /// "| **test** | stream | scored | **ppl** |".</summary>
    [GeneratedRegex(@"\| \*\*test\*\* \| (?:([\d,]+) \| )?([\d,]+) \| \*\*([\d.]+)\*\* \|")]
    private static partial Regex TestRow();

    /// <summary>Test-split perplexity, scored tokens and (when the card states it) stream tokens, measured in PyTorch with
    /// non-overlapping 128-token windows under the model's own document convention.</summary>
    public static (double Perplexity, long Tokens, long? StreamTokens) TestPerplexity(string modelFolder)
    {
        var match = TestRow().Match(File.ReadAllText(Path.Combine(modelFolder, "README.md")));
        if (!match.Success) throw new InvalidOperationException($"The model card in {modelFolder} has no test perplexity row.");
        static long Count(string s) => long.Parse(s.Replace(",", ""), CultureInfo.InvariantCulture);
        return (double.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture), Count(match.Groups[2].Value),
            match.Groups[1].Success ? Count(match.Groups[1].Value) : null);
    }
}
