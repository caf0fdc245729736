using Microsoft.ML.Tokenizers;

namespace SparseOnnx.Runtime.Tokenization;

/// <summary>Reads SentencePiece <c>tokenizer.model</c> files (BPE or unigram) with Microsoft.ML.Tokenizers.</summary>
internal static class SentencePieceLoader
{
    public static TextTokenizer Load(string path)
    {
        using var stream = File.OpenRead(path);
        // BOS/EOS are added by the callers that want them (TextTokenizer.Encode), never implicitly.
        var tokenizer = SentencePieceTokenizer.Create(stream, false, false);
        int vocabulary = tokenizer.Vocabulary.Count == 0 ? 0 : tokenizer.Vocabulary.Values.Max() + 1;
        return new TextTokenizer(tokenizer, TokenizerFormat.SentencePiece, path,
            tokenizer.BeginningOfSentenceId >= 0 ? tokenizer.BeginningOfSentenceId : null,
            tokenizer.EndOfSentenceId >= 0 ? tokenizer.EndOfSentenceId : null,
            vocabulary);
    }
}
