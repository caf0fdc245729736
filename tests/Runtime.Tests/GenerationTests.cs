using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Runtime.Tests;

public class GenerationTests(ReferenceModel reference) : IClassFixture<ReferenceModel>
{
    /// <summary>Greedy decoding with the KV cache reproduces the PyTorch sample on the model card, token for token.</summary>
    [Fact]
    public void GreedyDecodingReproducesTheModelCardSample()
    {
        var (prompt, newTokens, expected) = ModelCard.GreedySample();
        var streamed = new List<GeneratedToken>();
        var result = TextGenerator.Generate(reference.Model, reference.Tokenizer, prompt, new GenerationOptions { MaxTokens = newTokens }, streamed.Add);
        Assert.Equal(newTokens, result.Ids.Count);
        Assert.Equal(expected, prompt + result.Text);
        Assert.Equal(result.Text, string.Concat(streamed.Select(t => t.Text)));
        Assert.Equal(1, result.PromptIds[0]); // BOS, as the model was trained
    }

    [Fact]
    public void TopPSamplingIsReproducibleBySeed()
    {
        GenerationResult Sample(int seed) => TextGenerator.Generate(reference.Model, reference.Tokenizer, "The jury said",
            new GenerationOptions { MaxTokens = 24, Sampling = new SamplingOptions { TopP = 0.9, Seed = seed } });
        var first = Sample(7);
        Assert.Equal(first.Ids, Sample(7).Ids);
        var others = new[] { 8, 9, 10 }.Select(Sample).ToList();
        Assert.Contains(others, other => !other.Ids.SequenceEqual(first.Ids));
        var greedy = TextGenerator.Generate(reference.Model, reference.Tokenizer, "The jury said", new GenerationOptions { MaxTokens = 24 });
        Assert.Contains(others.Append(first), sample => !sample.Ids.SequenceEqual(greedy.Ids));
    }

    [Fact]
    public void ATinyNucleusIsGreedy()
    {
        var greedy = TextGenerator.Generate(reference.Model, reference.Tokenizer, "The jury said", new GenerationOptions { MaxTokens = 16 });
        var nucleus = TextGenerator.Generate(reference.Model, reference.Tokenizer, "The jury said",
            new GenerationOptions { MaxTokens = 16, Sampling = new SamplingOptions { TopP = 1e-9, Seed = 3 } });
        Assert.Equal(greedy.Ids, nucleus.Ids);
    }

    [Fact]
    public void TopPSamplesOnlyFromTheNucleus()
    {
        // Probabilities ∝ exp(logits): 0.665, 0.245, 0.090 → top-p 0.8 keeps ids 0 and 1 only.
        float[] logits = [2f, 1f, 0f];
        var sampler = new TokenSampler(new SamplingOptions { TopP = 0.8, Seed = 1 });
        var counts = new int[3];
        for (int i = 0; i < 4000; i++) counts[sampler.Next(logits)]++;
        Assert.Equal(0, counts[2]);
        double share = counts[0] / 4000.0;
        Assert.InRange(share, 0.665 / 0.910 - 0.03, 0.665 / 0.910 + 0.03);
    }

    [Theory]
    [InlineData(0.0, 1.0)]
    [InlineData(1.5, 1.0)]
    [InlineData(0.9, 0.0)]
    public void BadSamplingOptionsAreRefused(double topP, double temperature)
    {
        Assert.Throws<ArgumentException>(() => new TokenSampler(new SamplingOptions { TopP = topP, Temperature = temperature }));
    }

    /// <summary>Requests running at once on one loaded model give what they give alone.</summary>
    [Fact]
    public void ConcurrentRequestsOnOneModelMatchSequentialOnes()
    {
        string[] prompts = ["The jury said", "It was a long", "In the morning", "The President"];
        var options = new GenerationOptions { MaxTokens = 20 };
        var sequential = prompts.Select(p => TextGenerator.Generate(reference.Model, reference.Tokenizer, p, options).Ids.ToArray()).ToArray();
        var concurrent = new int[prompts.Length][];
        Parallel.For(0, prompts.Length * 3, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var ids = TextGenerator.Generate(reference.Model, reference.Tokenizer, prompts[i % prompts.Length], options).Ids.ToArray();
            Assert.Equal(sequential[i % prompts.Length], ids);
        });
    }

    [Fact]
    public void AnEmptyPromptIsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => TextGenerator.Generate(reference.Model, reference.Tokenizer, "", new GenerationOptions { AddBos = false }));
        Assert.Contains("prompt", error.Message);
    }
}
