using SparseOnnx.Runtime.Tokenization.SentencePiece;

namespace SparseOnnx.Runtime.Tokenization;

/// <summary>Reads SentencePiece <c>tokenizer.model</c> files (BPE or unigram) into our implementation of the library.</summary>
internal static class SentencePieceLoader
{
    public static TextTokenizer Load(string path)
    {
        var model = SentencePieceModelFile.Parse(File.ReadAllBytes(path));
        var encoder = new SentencePieceEncoder(model);
        int? Special(int id, PieceType type) => id >= 0 && id < model.Pieces.Count && model.Pieces[id].Type == type ? id : null;
        // BOS/EOS are added by the callers that want them (TextTokenizer.Encode), never implicitly.
        return new TextTokenizer(new SentencePieceCodec(encoder), TokenizerFormat.SentencePiece, path,
            Special(model.BosId, PieceType.Control), Special(model.EosId, PieceType.Control), model.Pieces.Count)
        {
            AddsBosByDefault = HuggingFaceTokenizerConfig.AddBosToken(path) ?? false,
            BosText = Special(model.BosId, PieceType.Control) is int bos ? model.Pieces[bos].Text : null,
            Warnings = model.Denormalizer is { PrecompiledCharsMap.Length: > 0 }
                ? [$"{Path.GetFileName(path)} has a denormalizer (rules for decoded text); ids are exact, but decoded text leaves it out"]
                : [],
        };
    }
}

/// <summary>Our SentencePiece implementation as a codec.</summary>
internal sealed class SentencePieceCodec(SentencePieceEncoder encoder) : ITokenCodec
{
    public IReadOnlyList<(int Id, string Piece)> EncodeToPieces(string text) => encoder.EncodePieces(text).Select(p => (p.Id, p.Piece)).ToArray();

    public IReadOnlyList<int> Encode(string text) => encoder.Encode(text);

    public string Decode(IEnumerable<int> ids) => encoder.Decode(ids);
}
