namespace SparseOnnx.Runtime.Tokenization.SentencePiece;

/// <summary>A segment of normalized text and its id (the unknown id when the vocabulary lacks it).</summary>
internal readonly record struct Segment(int Start, int Length, int Id);

/// <summary>The vocabulary as the segmenters look it up: SentencePiece's <c>pieces_</c> (normal, user-defined and
/// unused pieces) and its reserved map (unknown, control, byte pieces), with the types and scores by id.</summary>
internal sealed class PieceVocabulary
{
    private readonly Dictionary<string, int> _pieces = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _reserved = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _piecesBySpan;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _reservedBySpan;

    public PieceVocabulary(IReadOnlyList<Piece> pieces, int unknownId)
    {
        Pieces = pieces;
        for (int id = 0; id < pieces.Count; id++)
        {
            var piece = pieces[id];
            bool normal = piece.Type is PieceType.Normal or PieceType.UserDefined or PieceType.Unused;
            if (!(normal ? _pieces : _reserved).TryAdd(piece.Text, id))
                throw new FormatException($"piece '{piece.Text}' is defined twice (ids {(normal ? _pieces : _reserved)[piece.Text]} and {id})");
        }
        if ((uint)unknownId >= (uint)pieces.Count || pieces[unknownId].Type != PieceType.Unknown)
            throw new FormatException($"unk_id {unknownId} is not an unknown piece");
        UnknownId = unknownId;
        _piecesBySpan = _pieces.GetAlternateLookup<ReadOnlySpan<char>>();
        _reservedBySpan = _reserved.GetAlternateLookup<ReadOnlySpan<char>>();
        UserDefined = pieces.Where(p => p.Type == PieceType.UserDefined).Select(p => p.Text).ToArray();
    }

    public IReadOnlyList<Piece> Pieces { get; }
    public int UnknownId { get; }
    public IReadOnlyList<string> UserDefined { get; }

    /// <summary>The id of a normal, user-defined or unused piece, or −1 (what BPE merges and the unigram lattice may use).</summary>
    public int FindMergeable(ReadOnlySpan<char> text) => _piecesBySpan.TryGetValue(text, out int id) ? id : -1;

    /// <summary>SentencePiece's PieceToId: reserved pieces first, then the others, else the unknown id.</summary>
    public int IdOf(ReadOnlySpan<char> text) =>
        _reservedBySpan.TryGetValue(text, out int id) ? id : _piecesBySpan.TryGetValue(text, out id) ? id : UnknownId;

    public PieceType TypeOf(int id) => Pieces[id].Type;
}

/// <summary>
/// SentencePiece BPE segmentation (bpe_model.cc): the normalized text is split into characters (a user-defined
/// symbol stays whole and never merges), then the adjacent pair whose concatenation is a piece with the highest
/// score is merged, the leftmost on ties, until no pair is a piece. A piece of type unused is split back into
/// the two pieces it was merged from.
/// </summary>
internal static class BpeSegmenter
{
    private struct Symbol
    {
        public int Start, Length, Previous, Next;
        public bool Frozen;
    }

    private readonly record struct Candidate(float Score, int Left, int Right, int Length);

    /// <summary>Orders candidates as SentencePiece's agenda pops them: highest score first, then lowest left index.</summary>
    private sealed class AgendaOrder : IComparer<(float Score, int Left)>
    {
        public static readonly AgendaOrder Instance = new();
        public int Compare((float Score, int Left) a, (float Score, int Left) b) =>
            a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left);
    }

    public static List<Segment> Segment(string normalized, PieceVocabulary vocabulary, PrefixMatcherChars userDefined)
    {
        var symbols = new List<Symbol>();
        for (int position = 0; position < normalized.Length;)
        {
            int length = userDefined.LongestMatch(normalized.AsSpan(position));
            bool frozen = length > 0;
            if (!frozen) length = char.IsHighSurrogate(normalized[position]) && position + 1 < normalized.Length ? 2 : 1;
            symbols.Add(new Symbol { Start = position, Length = length, Previous = symbols.Count - 1, Next = position + length < normalized.Length ? symbols.Count + 1 : -1, Frozen = frozen });
            position += length;
        }
        if (symbols.Count == 0) return [];
        var agenda = new PriorityQueue<Candidate, (float, int)>(AgendaOrder.Instance);
        var reverseMerges = new Dictionary<string, (string Left, string Right)>(StringComparer.Ordinal);
        var items = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(symbols);

        void MaybeAdd(Span<Symbol> all, int left, int right)
        {
            if (left < 0 || right < 0 || all[left].Frozen || all[right].Frozen) return;
            int length = all[left].Length + all[right].Length;
            var text = normalized.AsSpan(all[left].Start, length);
            int id = vocabulary.FindMergeable(text);
            if (id < 0) return;
            agenda.Enqueue(new Candidate(vocabulary.Pieces[id].Score, left, right, length), (vocabulary.Pieces[id].Score, left));
            if (vocabulary.TypeOf(id) == PieceType.Unused)
                reverseMerges[text.ToString()] = (normalized.Substring(all[left].Start, all[left].Length), normalized.Substring(all[right].Start, all[right].Length));
        }

        for (int i = 1; i < items.Length; i++) MaybeAdd(items, i - 1, i);
        while (agenda.TryDequeue(out var top, out _))
        {
            ref var left = ref items[top.Left];
            ref var right = ref items[top.Right];
            // A candidate whose symbols changed since it was queued is stale.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != top.Length) continue;
            left.Length += right.Length;
            left.Next = right.Next;
            if (right.Next >= 0) items[right.Next].Previous = top.Left;
            right.Length = 0;
            MaybeAdd(items, left.Previous, top.Left);
            MaybeAdd(items, top.Left, left.Next);
        }

        var output = new List<Segment>(symbols.Count);
        void Resegment(int start, int length)
        {
            int id = vocabulary.IdOf(normalized.AsSpan(start, length));
            if (vocabulary.TypeOf(id) == PieceType.Unused && reverseMerges.TryGetValue(normalized.Substring(start, length), out var parts))
            {
                Resegment(start, parts.Left.Length);
                Resegment(start + parts.Left.Length, parts.Right.Length);
                return;
            }
            output.Add(new Segment(start, length, id));
        }
        for (int index = 0; index != -1; index = items[index].Next) Resegment(items[index].Start, items[index].Length);
        return output;
    }
}

/// <summary>
/// SentencePiece unigram segmentation (unigram_model.cc, the optimized Viterbi): the best-scoring path over
/// every piece that starts at each character, scores added in float32 as the library does; a user-defined
/// symbol scores length × the highest piece score − 0.1 so it always wins; a character no piece covers is
/// the unknown id at the lowest normal score − 10. Unused pieces are never chosen.
/// </summary>
internal static class UnigramSegmenter
{
    private const float UnknownPenalty = 10.0f;

    public static List<Segment> Segment(string normalized, PieceVocabulary vocabulary, int longestPiece)
    {
        // The library starts max_score_ at FLT_MIN, the smallest positive normal float, not the most negative one.
        float minScore = float.MaxValue, maxScore = 1.17549435e-38f;
        foreach (var piece in vocabulary.Pieces)
            if (piece.Type == PieceType.Normal)
            {
                minScore = Math.Min(minScore, piece.Score);
                maxScore = Math.Max(maxScore, piece.Score);
            }
        float unknownScore = minScore - UnknownPenalty;
        int size = normalized.Length;
        var bestScore = new float[size + 1];
        var bestStart = new int[size + 1];
        var bestId = new int[size + 1];
        Array.Fill(bestStart, -1);
        for (int start = 0; start < size;)
        {
            float scoreHere = bestScore[start];
            int characterLength = char.IsHighSurrogate(normalized[start]) && start + 1 < size ? 2 : 1;
            bool hasSingleCharacter = false;
            for (int end = start + 1; end <= size && end - start <= longestPiece; end++)
            {
                if (end < size && char.IsLowSurrogate(normalized[end])) continue;
                var text = normalized.AsSpan(start, end - start);
                int id = vocabulary.FindMergeable(text);
                if (id < 0 || vocabulary.TypeOf(id) == PieceType.Unused) continue;
                // As in the library, the piece score is a double (the user-defined bonus is computed in double),
                // the path score is added and compared in double, and stored back as float.
                double score = vocabulary.TypeOf(id) == PieceType.UserDefined
                    ? (float)System.Text.Encoding.UTF8.GetByteCount(text) * maxScore - 0.1
                    : vocabulary.Pieces[id].Score;
                double candidate = score + scoreHere;
                if (bestStart[end] == -1 || candidate > bestScore[end])
                {
                    bestScore[end] = (float)candidate;
                    bestStart[end] = start;
                    bestId[end] = id;
                }
                if (end - start == characterLength) hasSingleCharacter = true;
            }
            if (!hasSingleCharacter)
            {
                int end = start + characterLength;
                float candidate = unknownScore + scoreHere;
                if (bestStart[end] == -1 || candidate > bestScore[end])
                {
                    bestScore[end] = candidate;
                    bestStart[end] = start;
                    bestId[end] = vocabulary.UnknownId;
                }
            }
            start += characterLength;
        }
        var output = new List<Segment>();
        for (int end = size; end > 0; end = bestStart[end]) output.Add(new Segment(bestStart[end], end - bestStart[end], bestId[end]));
        output.Reverse();
        return output;
    }
}

/// <summary><see cref="PrefixMatcher"/> over normalized UTF-16 text, for the segmenters.</summary>
internal sealed class PrefixMatcherChars
{
    private readonly HashSet<string>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly int _longest;

    public PrefixMatcherChars(IEnumerable<string> symbols)
    {
        var set = new HashSet<string>(symbols, StringComparer.Ordinal);
        _lookup = set.GetAlternateLookup<ReadOnlySpan<char>>();
        _longest = set.Count == 0 ? 0 : set.Max(s => s.Length);
    }

    /// <summary>Length in chars of the longest symbol <paramref name="text"/> starts with, or 0.</summary>
    public int LongestMatch(ReadOnlySpan<char> text)
    {
        for (int length = Math.Min(_longest, text.Length); length > 0; length--)
            if (_lookup.Contains(text[..length])) return length;
        return 0;
    }
}
