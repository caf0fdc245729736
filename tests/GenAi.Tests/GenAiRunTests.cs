using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntimeGenAI;
using SparseOnnx.GraphRewriter.GenAi;
using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;
using Xunit.Abstractions;

namespace SparseOnnx.GenAi.Tests;

/// <summary>
/// Folders that genai-config writes and sparsify carries, run by onnxruntime-genai's own C# API as a host that knows
/// nothing of SparseOnnx would run them (no op library registered by us: the config names the copy in the folder),
/// against SparseOnnx.Runtime's greedy decoding of the same model with the same prompt ids. Both run the graph in
/// ONNX Runtime 1.32 on the CPU, so greedy decoding must give the same tokens, up to and including an end-of-sequence
/// id, which both stop at.
/// </summary>
public class GenAiRunTests(GenAiRuntime genaiRuntime, ITestOutputHelper log) : IClassFixture<GenAiRuntime>, IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Greedy decoding with SparseOnnx.Runtime, stopping where genai stops: at <paramref name="eos"/> or after <paramref name="newTokens"/>.</summary>
    private static int[] RuntimeGreedy(string modelPath, int[] prompt, int newTokens, IReadOnlySet<int> eos)
    {
        using var model = CausalLm.Open(modelPath, new CausalLmOptions { Threads = 2 });
        using var sequence = model.StartSequence();
        var tokens = new List<int>(prompt);
        float[] logits = sequence.Append(prompt);
        for (int step = 0; step < newTokens; step++)
        {
            int next = TokenSampler.ArgMax(logits);
            tokens.Add(next);
            if (eos.Contains(next)) break;
            logits = sequence.Append([next]);
        }
        return tokens.ToArray();
    }

    /// <summary>The ids genai stops at: eos_token_id (one or a list), or the pad id it falls back on (0 by default).</summary>
    private static HashSet<int> EosIds(string folder)
    {
        var model = GenAiFolder.ReadConfig(Path.Combine(folder, GenAiFolder.ConfigFileName))["model"]!;
        return model["eos_token_id"] switch
        {
            JsonArray ids => ids.Select(i => (int)i!).ToHashSet(),
            JsonNode id => [(int)id],
            null => [model["pad_token_id"] is { } pad ? (int)pad : 0],
        };
    }

    /// <summary>Runs every prompt through both and asserts the same sequences; returns how many generated tokens were compared.</summary>
    private int AssertSameGreedyTokens(string folder, string modelFile, IEnumerable<int[]> prompts, int newTokens)
    {
        var eos = EosIds(folder);
        int compared = 0;
        var clock = Stopwatch.StartNew();
        foreach (int[] prompt in prompts)
        {
            int[] genai = genaiRuntime.Greedy(folder, prompt, newTokens);
            int[] runtime = RuntimeGreedy(Path.Combine(folder, modelFile), prompt, newTokens, eos);
            Assert.True(genai.SequenceEqual(runtime),
                $"prompt [{string.Join(",", prompt)}]\n genai   [{string.Join(",", genai)}]\n runtime [{string.Join(",", runtime)}]");
            Assert.True(genai.Length > prompt.Length, "nothing was generated");
            compared += genai.Length - prompt.Length;
        }
        log.WriteLine($"{folder}: {compared} generated tokens equal in {clock.Elapsed.TotalSeconds:F1} s");
        return compared;
    }

    /// <summary>Prompts from llama-brown's test text, with its BOS as it was trained.</summary>
    private static List<int[]> BrownPrompts()
    {
        var tokenizer = TextTokenizer.Load(Path.Combine(Fixtures.LlamaBrownFolder, "tokenizer.model"));
        return File.ReadLines(Path.Combine(Fixtures.LlamaBrownFolder, "data", "test.txt")).Take(4)
            .Select(line => tokenizer.Encode(line[..Math.Min(line.Length, 60)], addBos: true))
            .Append(tokenizer.Encode("The jury said", addBos: true))
            .ToList();
    }

    private static List<int[]> RandomPrompts(int vocabulary, int seed)
    {
        var random = new Random(seed);
        return [.. new[] { 1, 5, 12 }.Select(length => Enumerable.Range(0, length).Select(_ => random.Next(3, vocabulary)).ToArray())];
    }

    /// <summary>
    /// llama-brown (an Optimum-style export shipped without a genai config): genai-config writes it, genai runs the dense
    /// folder; sparsify --sparsity 0.5 of that folder into another carries the config, and genai runs the sparse folder
    /// with the op library copied into it. Both give SparseOnnx.Runtime's greedy tokens.
    /// </summary>
    [Fact]
    public void LlamaBrownDenseAndSparseRunInGenAiAsInTheRuntime()
    {
        string dense = _temp.Sub("dense");
        Fixtures.CopyInto(dense, Path.Combine(Fixtures.LlamaBrownFolder, "model.onnx"), Path.Combine(Fixtures.LlamaBrownFolder, "tokenizer.model"));
        var (code, output, error) = Fixtures.Cli("genai-config", Path.Combine(dense, "model.onnx"), "--context-length", "128");
        Assert.True(code == 0, error);
        Assert.Contains("note: special ids from the tokenizer 'tokenizer.model'", output);
        var denseConfig = GenAiFolder.ReadConfig(Path.Combine(dense, GenAiFolder.ConfigFileName))["model"]!;
        Assert.Equal((1, 2, 128), ((int)denseConfig["bos_token_id"]!, (int)denseConfig["eos_token_id"]!, (int)denseConfig["context_length"]!));
        Assert.Null(denseConfig["decoder"]!["session_options"]!["custom_ops_library"]);
        var prompts = BrownPrompts();
        Assert.True(AssertSameGreedyTokens(dense, "model.onnx", prompts, 40) >= 150);

        string sparse = Path.Combine(_temp.Path, "sparse");
        (code, output, error) = Fixtures.Cli("sparsify", Path.Combine(dense, "model.onnx"), "-o", Path.Combine(sparse, "model-50.onnx"), "--sparsity", "0.5");
        Assert.True(code == 0, error);
        Assert.Contains($"genai: wrote {Path.Combine(sparse, GenAiFolder.ConfigFileName)}", output);
        Assert.Contains("genai: copied tokenizer.model (tokenizer)", output);
        var sparseConfig = GenAiFolder.ReadConfig(Path.Combine(sparse, GenAiFolder.ConfigFileName));
        Assert.Equal("model-50.onnx", (string)sparseConfig["model"]!["decoder"]!["filename"]!);
        Assert.Equal("libsparseonnx_ops.so", (string)sparseConfig["model"]!["decoder"]!["session_options"]!["custom_ops_library"]!);
        Assert.Equal(File.ReadAllBytes(SparseOnnx.CustomOps.SparseOnnxOps.LibraryPath), File.ReadAllBytes(Path.Combine(sparse, "libsparseonnx_ops.so")));
        Assert.True(AssertSameGreedyTokens(sparse, "model-50.onnx", prompts, 40) >= 150);

        // Dropping half of every projection's inputs changes what greedy decoding picks: the sparse model is not the dense one.
        Assert.Contains(prompts, p => !genaiRuntime.Greedy(dense, p, 40).SequenceEqual(genaiRuntime.Greedy(sparse, p, 40)));
    }

    /// <summary>
    /// The genai builder's own graph (GroupQueryAttention, SkipSimplifiedLayerNormalization, packed qkv, MatMulNBits int4,
    /// no position_ids): genai-config writes its config (shared past/present buffer, as the builder sets it for this
    /// attention), and genai runs it dense and sparsified (TopKSparseMatMulNBits) with SparseOnnx.Runtime's tokens.
    /// </summary>
    [Fact]
    public void TheGenaiBuilderGraphDenseAndSparseRunInGenAiAsInTheRuntime()
    {
        string dense = _temp.Sub("int4");
        Fixtures.CopyInto(dense, Fixtures.GenaiInt4Model);
        var (code, _, error) = Fixtures.Cli("genai-config", Path.Combine(dense, "model.onnx"));
        Assert.True(code == 0, error);
        Assert.True((bool)GenAiFolder.ReadConfig(Path.Combine(dense, GenAiFolder.ConfigFileName))["search"]!["past_present_share_buffer"]!);
        var prompts = RandomPrompts(128, seed: 11);
        AssertSameGreedyTokens(dense, "model.onnx", prompts, 24);

        string sparse = Path.Combine(_temp.Path, "int4-sparse");
        (code, _, error) = Fixtures.Cli("sparsify", Path.Combine(dense, "model.onnx"), "-o", Path.Combine(sparse, "model.onnx"), "--sparsity", "0.5");
        Assert.True(code == 0, error);
        Assert.Equal("libsparseonnx_ops.so", (string)GenAiFolder.ReadConfig(Path.Combine(sparse, GenAiFolder.ConfigFileName))["model"]!["decoder"]!["session_options"]!["custom_ops_library"]!);
        AssertSameGreedyTokens(sparse, "model.onnx", prompts, 24);
    }

    /// <summary>genai-config on an already sparsified model (no config carried): it sets the library and copies it.</summary>
    [Fact]
    public void GenAiConfigOnASparseModelCopiesTheLibrary()
    {
        string source = _temp.Sub("source");
        Fixtures.CopyInto(source, Fixtures.GenaiInt4Model);
        string sparse = Path.Combine(_temp.Path, "sparse");
        var (code, _, error) = Fixtures.Cli("sparsify", Path.Combine(source, "model.onnx"), "-o", Path.Combine(sparse, "model.onnx"), "--sparsity", "0.7");
        Assert.True(code == 0, error);
        Assert.False(File.Exists(Path.Combine(sparse, GenAiFolder.ConfigFileName)));
        (code, var output, error) = Fixtures.Cli("genai-config", Path.Combine(sparse, "model.onnx"));
        Assert.True(code == 0, error);
        Assert.Contains("copied libsparseonnx_ops.so (op library)", output);
        AssertSameGreedyTokens(sparse, "model.onnx", RandomPrompts(128, seed: 5), 16);
    }

    /// <summary>
    /// Why the folder carries a copy of the op library: genai 0.20 refuses a custom_ops_library outside the model
    /// folder, its own library folder and the working directory, even named by an absolute path.
    /// </summary>
    [Fact]
    public void GenAiRefusesAnOpLibraryOutsideTheFolder()
    {
        string source = _temp.Sub("source");
        Fixtures.CopyInto(source, Fixtures.GenaiInt4Model);
        string sparse = Path.Combine(_temp.Path, "sparse");
        var (code, _, error) = Fixtures.Cli("sparsify", Path.Combine(source, "model.onnx"), "-o", Path.Combine(sparse, "model.onnx"), "--sparsity", "0.5");
        Assert.True(code == 0, error);
        (code, _, error) = Fixtures.Cli("genai-config", Path.Combine(sparse, "model.onnx"));
        Assert.True(code == 0, error);
        string elsewhere = Path.Combine(_temp.Sub("elsewhere"), "libsparseonnx_ops.so");
        File.Move(Path.Combine(sparse, "libsparseonnx_ops.so"), elsewhere);
        string configPath = Path.Combine(sparse, GenAiFolder.ConfigFileName);
        var config = GenAiFolder.ReadConfig(configPath);
        config["model"]!["decoder"]!["session_options"]!["custom_ops_library"] = elsewhere;
        File.WriteAllBytes(configPath, GenAiFolder.Serialize(config));
        var refused = Assert.Throws<OnnxRuntimeGenAIException>(() => genaiRuntime.Greedy(sparse, [1, 2, 3], 4));
        Assert.Contains("not within an allowed directory", refused.Message);
    }
}

/// <summary>genai's process-wide state: shut down (OgaHandle) once the tests that use it are done, after every Model and Generator is disposed.</summary>
public sealed class GenAiRuntime : IDisposable
{
    private readonly OgaHandle _handle = new();

    /// <summary>Greedy decoding of <paramref name="prompt"/> by genai from <paramref name="folder"/>: the whole sequence, prompt included.</summary>
    public int[] Greedy(string folder, int[] prompt, int newTokens)
    {
        using var model = new Model(folder);
        using var parameters = new GeneratorParams(model);
        parameters.SetSearchOption("max_length", prompt.Length + newTokens);
        parameters.SetSearchOption("do_sample", false);
        using var generator = new Generator(model, parameters);
        generator.AppendTokens(prompt);
        while (!generator.IsDone()) generator.GenerateNextToken();
        return generator.GetSequence(0).ToArray();
    }

    public void Dispose() => _handle.Dispose();
}
