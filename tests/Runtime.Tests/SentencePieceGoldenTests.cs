using System.Text.Json.Nodes;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Runtime.Tests;

/// <summary>
/// Our SentencePiece implementation against the Python library (sentencepiece 0.1.97) id for id, on the golden
/// cases of models/tokenizers (written by models/recipe/sentencepiece_golden.py): four small tokenizers trained
/// to cover the normalizers (nmt_nfkc, identity, nmt_nfkc_cf, a user rule table), BPE and unigram, byte fallback
/// on and off, user-defined symbols, dummy prefix and extra-whitespace removal on and off; and the two reference
/// models' own tokenizers. Texts: newlines, tabs, runs of spaces, NBSP and other spaces, full-width letters,
/// ligatures, combining accents, emoji, control characters, bytes that need fallback, one-character texts,
/// and whole documents of several KB.
/// </summary>
public class SentencePieceGoldenTests
{
    public static TheoryData<string> CaseFiles()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(Path.Combine(RepositoryPaths.Models, "tokenizers"), "*.cases.json").Order())
            data.Add(Path.GetFileName(file));
        return data;
    }

    private static (TextTokenizer Tokenizer, JsonArray Cases) Load(string caseFile)
    {
        string path = Path.Combine(RepositoryPaths.Models, "tokenizers", caseFile);
        var golden = JsonNode.Parse(File.ReadAllText(path))!;
        var tokenizer = TextTokenizer.Load(Path.Combine(Path.GetDirectoryName(path)!, (string)golden["tokenizer"]!));
        Assert.Equal(TokenizerFormat.SentencePiece, tokenizer.Format);
        var cases = golden["cases"]!.AsArray();
        Assert.True(cases.Count >= 25, $"{caseFile} has only {cases.Count} cases");
        return (tokenizer, cases);
    }

    [Theory]
    [MemberData(nameof(CaseFiles))]
    public void IdsAndPiecesEqualThePythonLibrarys(string caseFile)
    {
        var (tokenizer, cases) = Load(caseFile);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            string text = (string)c!["text"]!;
            int[] expected = c["ids"]!.AsArray().Select(i => (int)i!).ToArray();
            string[] expectedPieces = c["pieces"]!.AsArray().Select(p => (string)p!).ToArray();
            var actual = tokenizer.EncodeToPieces(text);
            int[] ids = actual.Select(p => p.Id).ToArray();
            if (!expected.SequenceEqual(ids))
            {
                int first = Enumerable.Range(0, Math.Min(expected.Length, ids.Length)).FirstOrDefault(i => expected[i] != ids[i], Math.Min(expected.Length, ids.Length));
                failures.Add($"{c["name"]}: {ids.Length} ids vs {expected.Length}; first difference at {first}: " +
                             $"got [{string.Join(' ', actual.Skip(first).Take(6).Select(p => p.Piece))}], expected [{string.Join(' ', expectedPieces.Skip(first).Take(6))}]");
            }
            else if (!expectedPieces.SequenceEqual(actual.Select(p => p.Piece)))
                failures.Add($"{c["name"]}: same ids, other pieces");
            Assert.Equal(expected, tokenizer.Encode(text));
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [MemberData(nameof(CaseFiles))]
    public void DecodingGivesWhatThePythonLibraryDecodes(string caseFile)
    {
        var (tokenizer, cases) = Load(caseFile);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            int[] ids = c!["ids"]!.AsArray().Select(i => (int)i!).ToArray();
            string expected = (string)c["decoded"]!, actual = tokenizer.Decode(ids);
            if (expected != actual) failures.Add($"{c["name"]}: got {Escape(actual)}, expected {Escape(expected)}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData(3, "model type WORD is not supported")]
    [InlineData(4, "model type CHAR is not supported")]
    public void AModelTypeWithoutAnImplementationIsRefusedByName(int modelType, string expected)
    {
        // A second trainer_spec message merges into the first, as protobuf defines: field 2, 2 bytes, model_type = modelType.
        byte[] model = [.. File.ReadAllBytes(Path.Combine(RepositoryPaths.Models, "tokenizers", "identity-bpe.model")), 0x12, 0x02, 0x18, (byte)modelType];
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "tokenizer.model");
        File.WriteAllBytes(path, model);
        var error = Assert.Throws<TokenizerLoadException>(() => TextTokenizer.Load(path));
        Assert.Contains(expected, error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void ATruncatedNormalizerTableIsRefused()
    {
        // normalizer_spec (field 3) with a precompiled_charsmap (field 2) that declares a 4 GB trie in 5 bytes.
        byte[] model = [.. File.ReadAllBytes(Path.Combine(RepositoryPaths.Models, "tokenizers", "identity-bpe.model")), 0x1A, 0x07, 0x12, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "tokenizer.model");
        File.WriteAllBytes(path, model);
        var error = Assert.Throws<TokenizerLoadException>(() => TextTokenizer.Load(path));
        Assert.Contains("precompiled_charsmap", error.Message);
    }

    private static string Escape(string s) => System.Text.Json.JsonSerializer.Serialize(s.Length > 120 ? s[..120] : s);
}
