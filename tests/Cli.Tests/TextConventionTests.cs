using System.CommandLine;
using System.Text.Json.Nodes;
using SparseOnnx.Cli.Commands;

namespace SparseOnnx.Cli.Tests;

/// <summary>
/// How text becomes tokens: eval's default is the papers' convention (the whole file tokenized once), each
/// reference model's card is reproduced under its own convention, and <c>tokenize</c> prints exactly the stream
/// eval scores.
/// </summary>
public class TextConventionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-cli-text-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var root = new RootCommand { EvalCommand.Create(), TokenizeCommand.Create(), SparsifyCommand.Create() };
        int code = CommandRunner.Run(root, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Folder(string model) => Path.Combine(RepositoryPaths.Models, model);

    /// <summary>
    /// eval --text on each trained reference model, under the convention it was trained with, equals the PyTorch
    /// perplexity of its card (computed on Python-tokenized ids of the same file, same windows) to 0.01%, on the
    /// same number of scored tokens and (llama-mix) the same stream length.
    /// </summary>
    [Theory]
    [InlineData("llama-brown", "lines")]
    [InlineData("llama-mix", "whole")]
    public void EvalReproducesEachModelCardUnderItsConvention(string model, string documents)
    {
        var (expected, tokens, streamTokens) = ModelCards.TestPerplexity(Folder(model));
        var args = new List<string> { "eval", Path.Combine(Folder(model), "model.onnx"), "--text", Path.Combine(Folder(model), "data", "test.txt"), "--threads", "2", "--json" };
        if (documents != "whole") args.AddRange(["--documents", documents]); // whole is the default
        var (code, stdout, error) = Run(args.ToArray());
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal(documents, (string)json["documents"]!);
        Assert.Equal(tokens, (long)json["tokens"]!);
        if (streamTokens is long stream) Assert.Equal(stream, (long)json["stream_tokens"]!);
        double perplexity = (double)json["perplexity"]!;
        double relative = Math.Abs(perplexity - expected) / expected;
        Assert.True(relative < 1e-4, $"{model}: eval gives {perplexity:F4}, the card (PyTorch) {expected} ({relative:P4} apart)");
    }

    [Fact]
    public void WholeFileReadingTokenizesOnceWithoutPerLineBos()
    {
        string text = Path.Combine(_dir, "two.txt");
        File.WriteAllText(text, "The jury said it.\nThe man replied.\n");
        string tokenizer = Path.Combine(Folder("llama-brown"), "tokenizer.model");
        var (code, stdout, error) = Run("tokenize", "--tokenizer", tokenizer, "--text", text, "--json");
        Assert.True(code == 0, error);
        var whole = JsonNode.Parse(stdout)!;
        Assert.Equal("whole", (string)whole["documents"]!);
        Assert.Equal(0, (int)whole["bos_tokens"]!); // a plain SentencePiece model adds no BOS, as sentencepiece's encode
        int[] wholeIds = whole["ids"]!.AsArray().Select(i => (int)i!).ToArray();
        Assert.DoesNotContain(1, wholeIds);

        (code, stdout, error) = Run("tokenize", "--tokenizer", tokenizer, "--text", text, "--json", "--documents", "lines");
        Assert.True(code == 0, error);
        var lines = JsonNode.Parse(stdout)!;
        int[] lineIds = lines["ids"]!.AsArray().Select(i => (int)i!).ToArray();
        Assert.Equal(2, (int)lines["bos_tokens"]!);
        Assert.Equal(1, lineIds[0]);
        Assert.Equal(2, lineIds.Count(id => id == 1));
        // llama-brown's tokenizer normalizes nothing (identity): read whole, the line break is a token of its own
        // (byte piece <0x0A>, id 13); read as lines, it is gone and each line has its BOS instead.
        int newline = 3 + '\n';
        Assert.Equal(2, wholeIds.Count(id => id == newline));
        Assert.DoesNotContain(newline, lineIds);

        (code, stdout, _) = Run("tokenize", "--tokenizer", tokenizer, "--text", text, "--json", "--bos", "on");
        Assert.Equal(0, code);
        Assert.Equal([1, .. wholeIds], JsonNode.Parse(stdout)!["ids"]!.AsArray().Select(i => (int)i!));
    }

    [Fact]
    public void TokenizePrintsWhatEvalReadsAndPiecesWhenAsked()
    {
        string tokenizer = Path.Combine(Folder("llama-mix"), "tokenizer.model");
        var (code, stdout, error) = Run("tokenize", "--tokenizer", tokenizer, "--string", "ﬁne  café\u00a0time");
        Assert.True(code == 0, error);
        int[] ids = stdout.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        (code, stdout, error) = Run("tokenize", "--tokenizer", tokenizer, "--string", "fine café time", "--pieces", "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(stdout)!;
        // nmt_nfkc: the ligature, the double space and the NBSP normalize away.
        Assert.Equal(ids, json["ids"]!.AsArray().Select(i => (int)i!));
        var pieces = json["pieces"]!.AsArray().Select(p => (string)p!).ToArray();
        Assert.Equal(ids.Length, pieces.Length);
        // "é" is not in llama-mix's vocabulary: it comes out as its two UTF-8 byte pieces.
        Assert.Equal(["\u2581fine", "\u2581ca", "f", "<0xC3>", "<0xA9>", "\u2581time"], pieces);
        Assert.Contains("\"\u2581", stdout); // pieces are printed readably, not \u-escaped
    }

    [Fact]
    public void TokenizedIdsFileEvaluatesLikeTheText()
    {
        string model = Path.Combine(Folder("llama-mix"), "model.onnx");
        string test = Path.Combine(Folder("llama-mix"), "data", "test.txt");
        var (code, ids, error) = Run("tokenize", "--tokenizer", Path.Combine(Folder("llama-mix"), "tokenizer.model"), "--text", test);
        Assert.True(code == 0, error);
        string idsFile = Path.Combine(_dir, "test.ids");
        File.WriteAllText(idsFile, ids);
        var (_, fromText, _) = Run("eval", model, "--text", test, "--max-tokens", "3000", "--json");
        var (_, fromIds, _) = Run("eval", model, "--ids", idsFile, "--max-tokens", "3000", "--json");
        Assert.Equal((double)JsonNode.Parse(fromText)!["perplexity"]!, (double)JsonNode.Parse(fromIds)!["perplexity"]!);
        Assert.Equal("ids", (string)JsonNode.Parse(fromIds)!["documents"]!);
    }

    [Theory]
    [InlineData(new string[] { }, "exactly one of --text and --string")]
    [InlineData(new[] { "--string", "a", "--documents", "paragraphs" }, "paragraphs")]
    [InlineData(new[] { "--string", "a", "--bos", "maybe" }, "maybe")]
    public void TokenizeRefusesBadArguments(string[] extra, string expected)
    {
        var (code, _, error) = Run(["tokenize", "--tokenizer", Path.Combine(Folder("llama-brown"), "tokenizer.model"), .. extra]);
        Assert.NotEqual(0, code);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void HelpStatesTheDefaultConventionAndTheOption()
    {
        foreach (string command in new[] { "eval", "sparsify", "tokenize" })
        {
            var (_, stdout, _) = Run(command, "--help");
            Assert.Contains("--documents", stdout);
            Assert.Contains("lines", stdout);
        }
        var (_, evalHelp, _) = Run("eval", "--help");
        Assert.Contains("read as one string and tokenized once", evalHelp);
    }
}
