using SparseOnnx.Runtime.Evaluation;

namespace SparseOnnx.Runtime.Tests;

public class PerplexityWindowTests
{
    [Fact]
    public void NonOverlappingWindowsScoreEveryTokenButEachWindowsFirst()
    {
        var windows = PerplexityEvaluator.Windows(300, new PerplexityOptions { SequenceLength = 128, Stride = 128 });
        Assert.Equal([(0, 128, 1), (128, 128, 129), (256, 44, 257)], windows.Select(w => (w.Start, w.Length, w.FirstScored)));
        Assert.Equal(300 - 3, windows.Sum(w => w.Scored));
    }

    [Fact]
    public void ALastWindowOfOneTokenIsDropped()
    {
        var windows = PerplexityEvaluator.Windows(257, new PerplexityOptions { SequenceLength = 128, Stride = 128 });
        Assert.Equal(2, windows.Count);
        Assert.Equal(254, windows.Sum(w => w.Scored));
    }

    [Fact]
    public void OverlappingWindowsScoreOnlyWhatNoEarlierWindowScored()
    {
        // Stride 64: the second window [64, 192) has 64 tokens of context and scores [128, 192) only.
        var windows = PerplexityEvaluator.Windows(256, new PerplexityOptions { SequenceLength = 128, Stride = 64 });
        Assert.Equal([(0, 128, 1), (64, 128, 128), (128, 128, 192)], windows.Select(w => (w.Start, w.Length, w.FirstScored)));
        Assert.Equal(255, windows.Sum(w => w.Scored));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(128, 0)]
    [InlineData(128, 129)]
    public void BadWindowingIsRefused(int sequenceLength, int stride)
    {
        Assert.Throws<ArgumentException>(() => PerplexityEvaluator.Windows(100, new PerplexityOptions { SequenceLength = sequenceLength, Stride = stride }));
    }

    [Fact]
    public void NllIsMinusLogSoftmax()
    {
        float[] logits = [1f, 2f, 3f];
        double expected = -Math.Log(Math.Exp(2) / (Math.Exp(1) + Math.Exp(2) + Math.Exp(3)));
        Assert.Equal(expected, PerplexityEvaluator.NegativeLogLikelihood(logits, 1), 12);
        // Large logits must not overflow: the log-sum-exp is shifted by the maximum.
        Assert.Equal(Math.Log(2), PerplexityEvaluator.NegativeLogLikelihood([1000f, 1000f], 0), 12);
    }
}

public class ReferencePerplexityTests(ReferenceModel reference) : IClassFixture<ReferenceModel>
{
    /// <summary>
    /// The reference model's test-split perplexity through ONNX Runtime agrees with the PyTorch figure on its
    /// model card within 0.5% (the bar), on exactly the same scored tokens.
    /// </summary>
    [Fact]
    public void TestSplitPerplexityAgreesWithPyTorchWithinHalfAPercent()
    {
        var (expectedPerplexity, expectedTokens) = ModelCard.TestPerplexity();
        int[] stream = TokenStream.Read(ReferenceModel.TestText, reference.Tokenizer, TextReading.PerLine).Ids;
        var result = PerplexityEvaluator.Evaluate(reference.Model, stream);
        Assert.Equal(expectedTokens, result.Tokens);
        double relative = Math.Abs(result.Perplexity - expectedPerplexity) / expectedPerplexity;
        Assert.True(relative < 0.005, $"ONNX Runtime perplexity {result.Perplexity:F3} vs PyTorch {expectedPerplexity} ({relative:P3} apart)");
    }

    [Fact]
    public void BatchingDoesNotChangeTheResult()
    {
        int[] stream = TokenStream.Read(ReferenceModel.TestText, reference.Tokenizer, TextReading.PerLine).Ids;
        var one = PerplexityEvaluator.Evaluate(reference.Model, stream, new PerplexityOptions { BatchSize = 1, MaxTokens = 1000 });
        var many = PerplexityEvaluator.Evaluate(reference.Model, stream, new PerplexityOptions { BatchSize = 5, MaxTokens = 1000 });
        Assert.Equal(1000 - 8, one.Tokens);
        Assert.Equal(one.MeanNll, many.MeanNll, 5);
    }

    [Fact]
    public void AnIdOutsideTheVocabularyIsNamed()
    {
        var error = Assert.Throws<ArgumentException>(() => PerplexityEvaluator.Evaluate(reference.Model, [1, 5, 99999]));
        Assert.Contains("99999", error.Message);
    }
}
