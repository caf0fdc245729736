using Google.Protobuf;

namespace SparseOnnx.Runtime.Tokenization.SentencePiece;

/// <summary>The type of a piece, as <c>sentencepiece_model.proto</c> numbers them.</summary>
internal enum PieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>The segmentation algorithm of a model (<c>TrainerSpec.model_type</c>).</summary>
internal enum SentencePieceAlgorithm
{
    Unigram = 1,
    Bpe = 2,
    Word = 3,
    Char = 4,
}

/// <summary>One vocabulary entry.</summary>
internal readonly record struct Piece(string Text, float Score, PieceType Type);

/// <summary>The normalizer of a model (<c>NormalizerSpec</c>); the defaults are the proto's.</summary>
internal sealed record NormalizerSpec
{
    public string Name { get; init; } = "";
    /// <summary>The compiled rule table: a little-endian uint32 trie size, the Darts double-array trie, then the
    /// NUL-terminated replacement strings the trie's values point into. Empty for <c>identity</c>.</summary>
    public byte[] PrecompiledCharsMap { get; init; } = [];
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;
}

/// <summary>
/// The parts of a SentencePiece <c>ModelProto</c> that encoding and decoding read: pieces, the trainer's model
/// type, byte fallback and special ids, and the normalizer. Read with protobuf's wire format directly (the
/// field numbers of <c>sentencepiece_model.proto</c>), so no generated bindings are needed; unknown fields are
/// skipped as protobuf requires.
/// </summary>
internal sealed class SentencePieceModelFile
{
    public List<Piece> Pieces { get; } = [];
    public SentencePieceAlgorithm Algorithm { get; private set; } = SentencePieceAlgorithm.Unigram;
    public bool ByteFallback { get; private set; }
    public bool TreatWhitespaceAsSuffix { get; private set; }
    public int UnknownId { get; private set; }
    public int BosId { get; private set; } = 1;
    public int EosId { get; private set; } = 2;
    public NormalizerSpec Normalizer { get; private set; } = new();
    /// <summary>The decoding-side normalizer, when the model has one (it changes decoded text only).</summary>
    public NormalizerSpec? Denormalizer { get; private set; }

    public static SentencePieceModelFile Parse(byte[] bytes)
    {
        var model = new SentencePieceModelFile();
        var input = new CodedInputStream(bytes);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag), WireFormat.GetTagWireType(tag))
            {
                case (1, WireFormat.WireType.LengthDelimited): model.Pieces.Add(ReadPiece(input.ReadBytes())); break;
                case (2, WireFormat.WireType.LengthDelimited): model.ReadTrainerSpec(input.ReadBytes()); break;
                case (3, WireFormat.WireType.LengthDelimited): model.Normalizer = ReadNormalizer(input.ReadBytes()); break;
                case (5, WireFormat.WireType.LengthDelimited): model.Denormalizer = ReadNormalizer(input.ReadBytes()); break;
                default: input.SkipLastField(); break;
            }
        }
        if (model.Pieces.Count == 0) throw new FormatException("the model has no pieces (is this a SentencePiece model?)");
        return model;
    }

    private static Piece ReadPiece(ByteString bytes)
    {
        string text = "";
        float score = 0;
        var type = PieceType.Normal;
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag), WireFormat.GetTagWireType(tag))
            {
                case (1, WireFormat.WireType.LengthDelimited): text = input.ReadString(); break;
                case (2, WireFormat.WireType.Fixed32): score = input.ReadFloat(); break;
                case (3, WireFormat.WireType.Varint): type = (PieceType)input.ReadEnum(); break;
                default: input.SkipLastField(); break;
            }
        }
        if (text.Length == 0) throw new FormatException("a piece is empty");
        if (!Enum.IsDefined(type)) throw new FormatException($"piece '{text}' has unknown type {(int)type}");
        return new Piece(text, score, type);
    }

    private void ReadTrainerSpec(ByteString bytes)
    {
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag), WireFormat.GetTagWireType(tag))
            {
                case (3, WireFormat.WireType.Varint): Algorithm = (SentencePieceAlgorithm)input.ReadEnum(); break;
                case (24, WireFormat.WireType.Varint): TreatWhitespaceAsSuffix = input.ReadBool(); break;
                case (35, WireFormat.WireType.Varint): ByteFallback = input.ReadBool(); break;
                case (40, WireFormat.WireType.Varint): UnknownId = input.ReadInt32(); break;
                case (41, WireFormat.WireType.Varint): BosId = input.ReadInt32(); break;
                case (42, WireFormat.WireType.Varint): EosId = input.ReadInt32(); break;
                default: input.SkipLastField(); break;
            }
        }
    }

    private static NormalizerSpec ReadNormalizer(ByteString bytes)
    {
        var spec = new NormalizerSpec();
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            spec = (WireFormat.GetTagFieldNumber(tag), WireFormat.GetTagWireType(tag)) switch
            {
                (1, WireFormat.WireType.LengthDelimited) => spec with { Name = input.ReadString() },
                (2, WireFormat.WireType.LengthDelimited) => spec with { PrecompiledCharsMap = input.ReadBytes().ToByteArray() },
                (3, WireFormat.WireType.Varint) => spec with { AddDummyPrefix = input.ReadBool() },
                (4, WireFormat.WireType.Varint) => spec with { RemoveExtraWhitespaces = input.ReadBool() },
                (5, WireFormat.WireType.Varint) => spec with { EscapeWhitespaces = input.ReadBool() },
                _ => Skip(input, spec),
            };
        }
        return spec;

        static NormalizerSpec Skip(CodedInputStream input, NormalizerSpec spec)
        {
            input.SkipLastField();
            return spec;
        }
    }
}
