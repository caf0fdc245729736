using System.Globalization;
using System.Text.RegularExpressions;

namespace SparseOnnx.Runtime.Tests;

/// <summary>Figures the model recipe measured in PyTorch and wrote into models/llama-brown/README.md.</summary>
public static partial class ModelCard
{
    private static string Text => File.ReadAllText(Path.Combine(ReferenceModel.Folder, "README.md"));

    /// <summary>Test-split perplexity and scored tokens (non-overlapping 128-token windows).</summary>
    public static (double Perplexity, long Tokens) TestPerplexity()
    {
        var (perplexity, tokens, _) = ModelCards.TestPerplexity(ReferenceModel.Folder);
        return (perplexity, tokens);
    }

    /// <summary>The greedy sample: prompt, number of new tokens, and the text shown (prompt + continuation).</summary>
    public static (string Prompt, int NewTokens, string Text) GreedySample()
    {
        var header = Regex.Match(Text, @"(\d+) new tokens\) from the\s+prompt ""([^""]+)""");
        var quote = Regex.Match(Text, @"^> (.+)$", RegexOptions.Multiline);
        Assert.True(header.Success && quote.Success, "The model card has no greedy sample.");
        return (header.Groups[2].Value, int.Parse(header.Groups[1].Value, CultureInfo.InvariantCulture), quote.Groups[1].Value);
    }
}
