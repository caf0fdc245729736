using System.Text.Json.Nodes;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Runtime.Tests;

/// <summary>
/// Hugging Face tokenizer.json files against the Rust tokenizers library itself (its Node binding, npm
/// <c>tokenizers</c>), id for id, on the golden cases of models/tokenizers/hf (written by
/// models/recipe/hf_tokenizer_golden.py): one small byte-level BPE under six normalizer and pre-tokenizer
/// chains (GPT-2's ByteLevel; NFKC + Lowercase + Replace + Strip + Prepend with add_prefix_space; Llama 3's
/// Split + ByteLevel; Qwen2's NFC + Split; NFD; NFKD + Strip), on the SentencePiece golden texts plus a special token.
/// </summary>
public class HuggingFaceGoldenTests
{
    private static string Folder => Path.Combine(RepositoryPaths.Models, "tokenizers", "hf");

    public static TheoryData<string> CaseFiles()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(Folder, "*.cases.json").Order()) data.Add(Path.GetFileName(file));
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseFiles))]
    public void IdsEqualTheRustLibrarys(string caseFile)
    {
        var golden = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, caseFile)))!;
        var tokenizer = TextTokenizer.Load(Path.Combine(Folder, (string)golden["tokenizer"]!));
        Assert.Equal(TokenizerFormat.HuggingFaceJson, tokenizer.Format);
        var cases = golden["cases"]!.AsArray();
        Assert.True(cases.Count >= 25);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            int[] expected = c!["ids"]!.AsArray().Select(i => (int)i!).ToArray();
            int[] actual = tokenizer.Encode((string)c["text"]!);
            if (!expected.SequenceEqual(actual))
            {
                int first = Enumerable.Range(0, Math.Min(expected.Length, actual.Length)).FirstOrDefault(i => expected[i] != actual[i], Math.Min(expected.Length, actual.Length));
                failures.Add($"{c["name"]}: {actual.Length} ids vs {expected.Length}; first difference at {first}: got [{string.Join(' ', actual.Skip(first).Take(6))}], expected [{string.Join(' ', expected.Skip(first).Take(6))}]");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void AnAddedTokenDecodesToItsContent()
    {
        string path = Path.Combine(Folder, "hf-chain.tokenizer.json");
        int added = JsonNode.Parse(File.ReadAllText(path))!["added_tokens"]!.AsArray().Where(t => (string)t!["content"]! == "mxyz").Select(t => (int)t!["id"]!).Single();
        var tokenizer = TextTokenizer.Load(path);
        // NFKC, Lowercase, Strip and Prepend make "MXYZ" the token's own normalized content, "▁mxyz": one id.
        int[] ids = tokenizer.Encode("MXYZ");
        Assert.Equal([added], ids);
        Assert.Equal("mxyz", tokenizer.Decode(ids));
    }
}
