using System.Text.Json.Nodes;
using SparseOnnx.GraphRewriter;
using SparseOnnx.GraphRewriter.GenAi;

namespace SparseOnnx.GenAi.Tests;

/// <summary>Carrying a genai folder through a rewrite: the JSON edits, the files beside it, and every case it leaves alone.</summary>
public class GenAiCarryTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly string _input;
    private readonly string _library;

    public GenAiCarryTests()
    {
        _input = _temp.Sub("input");
        _library = Path.Combine(_temp.Sub("lib"), "libsparseonnx_ops.so");
        File.WriteAllText(_library, "the op library: only copied here");
        File.WriteAllText(Path.Combine(_input, "model.onnx"), "a model: only named here");
    }

    public void Dispose() => _temp.Dispose();

    /// <summary>A config as the genai builder writes it, with settings the carry must keep.</summary>
    private const string BuilderConfig = """
        {
            "model": {
                "bos_token_id": 1,
                "context_length": 2048,
                "decoder": {
                    "session_options": { "log_id": "onnxruntime-genai", "provider_options": [ { "cuda": { "enable_cuda_graph": "0" } } ], "intra_op_num_threads": 2 },
                    "filename": "model.onnx",
                    "head_size": 16, "hidden_size": 64,
                    "inputs": { "input_ids": "input_ids", "attention_mask": "attention_mask", "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value" },
                    "outputs": { "logits": "logits", "present_key_names": "present.%d.key", "present_value_names": "present.%d.value" },
                    "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2
                },
                "eos_token_id": [2, 32000],
                "pad_token_id": 2,
                "type": "llama",
                "vocab_size": 128
            },
            "search": { "do_sample": true, "max_length": 2048, "past_present_share_buffer": true, "temperature": 0.7, "top_k": 40, "top_p": 0.9 }
        }
        """;

    private string WriteInputConfig(string text = BuilderConfig)
    {
        string path = Path.Combine(_input, GenAiFolder.ConfigFileName);
        File.WriteAllText(path, text);
        return path;
    }

    private GenAiCarryPlan Prepare(string output) =>
        GenAiCarry.Prepare(Path.Combine(_input, "model.onnx"), output, () => _library) ?? throw new InvalidOperationException("no plan");

    [Fact]
    public void TheConfigNamesTheOutputAndTheLibraryAndKeepsEverythingElse()
    {
        string inputConfig = WriteInputConfig();
        foreach (string name in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja" })
            File.WriteAllText(Path.Combine(_input, name), name == "tokenizer_config.json" ? """{"tiktoken_file": "vocab.tiktoken"}""" : name);
        File.WriteAllText(Path.Combine(_input, "vocab.tiktoken"), "ranks");
        File.WriteAllText(Path.Combine(_input, "unrelated.txt"), "not a tokenizer file");
        string output = Path.Combine(_temp.Path, "output", "sparse.onnx");

        var plan = Prepare(output);
        Assert.Null(plan.SkipReason);
        var written = plan.Update!.Write();

        var carried = GenAiFolder.ReadConfig(written.ConfigPath);
        var expected = JsonNode.Parse(BuilderConfig)!.AsObject();
        expected["model"]!["decoder"]!["filename"] = "sparse.onnx";
        expected["model"]!["decoder"]!["session_options"]!["custom_ops_library"] = "libsparseonnx_ops.so";
        Assert.True(JsonNode.DeepEquals(expected, carried), carried.ToJsonString());

        string folder = Path.GetDirectoryName(output)!;
        Assert.Equal(File.ReadAllBytes(_library), File.ReadAllBytes(Path.Combine(folder, "libsparseonnx_ops.so")));
        Assert.Equal(["chat_template.jinja", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.tiktoken"],
            written.Copied.Where(c => c.Role == "tokenizer").Select(c => c.FileName).Order(StringComparer.Ordinal));
        foreach (var copy in written.Copied) Assert.Equal(File.ReadAllBytes(copy.Source), File.ReadAllBytes(Path.Combine(folder, copy.FileName)));
        Assert.False(File.Exists(Path.Combine(folder, "unrelated.txt")));
        Assert.Equal(BuilderConfig, File.ReadAllText(inputConfig)); // the input is never written
        Assert.Empty(Fixtures.TemporaryFiles(_temp.Path));
    }

    /// <summary>The output in the input's folder: that folder's config names the input model and stays as it is.</summary>
    [Fact]
    public void TheInputsOwnConfigIsNeverRewritten()
    {
        string inputConfig = WriteInputConfig();
        var plan = Prepare(Path.Combine(_input, "sparse.onnx"));
        Assert.Null(plan.Update);
        Assert.StartsWith("the output is written into the input's folder", plan.SkipReason);
        Assert.Equal(inputConfig, plan.InputConfig);

        // The same folder reached through a symbolic link is the same folder.
        string link = Path.Combine(_temp.Path, "link");
        Directory.CreateSymbolicLink(link, _input);
        Assert.StartsWith("the output is written into the input's folder", Prepare(Path.Combine(link, "sparse.onnx")).SkipReason);
        Assert.Equal(BuilderConfig, File.ReadAllText(inputConfig));
    }

    [Fact]
    public void NoConfigNoPlanAndTheLibraryIsNotAsked()
    {
        bool asked = false;
        Assert.Null(GenAiCarry.Prepare(Path.Combine(_input, "model.onnx"), Path.Combine(_temp.Path, "out", "m.onnx"), () => { asked = true; return _library; }));
        Assert.False(asked);
    }

    [Theory]
    [InlineData("""{"model": {"decoder": {"filename": "other.onnx"}}}""", "its model.decoder.filename is 'other.onnx', not the input model 'model.onnx'")]
    [InlineData("""{"model": {"type": "llama"}}""", "it has no model.decoder section")]
    [InlineData("""{"model": {"decoder": {"filename": "model.onnx"}, "vision": {"filename": "vision.onnx"}, "embedding": {"filename": "embedding.onnx"}}}""",
        "it describes more than the decoder (model.embedding, model.vision), whose files the output folder would lack; copy them and edit the config yourself")]
    [InlineData("""{"model": {"decoder": {"filename": "model.onnx", "session_options": {"custom_ops_library": "libortextensions.so"}}}}""",
        "it already registers the op library 'libortextensions.so', and genai registers one library per model")]
    [InlineData("""{"model": [1, 2""", "is not valid JSON")]
    public void AConfigThatCannotBeCarriedIsLeftWithItsReason(string config, string reason)
    {
        WriteInputConfig(config);
        string output = Path.Combine(_temp.Path, "output", "sparse.onnx");
        var plan = Prepare(output);
        Assert.Null(plan.Update);
        Assert.Contains(reason, plan.SkipReason);
        Assert.False(Directory.Exists(Path.GetDirectoryName(output)));
    }

    /// <summary>A config already naming this library (a folder sparsified before) is carried, the name kept.</summary>
    [Fact]
    public void TheSameLibraryNameIsNotAConflict()
    {
        WriteInputConfig("""{"model": {"decoder": {"filename": "model.onnx", "session_options": {"custom_ops_library": "libsparseonnx_ops.so"}}}, "search": {}}""");
        var plan = Prepare(Path.Combine(_temp.Path, "output", "sparse.onnx"));
        Assert.Null(plan.SkipReason);
        Assert.Equal("libsparseonnx_ops.so", (string)plan.Update!.Config["model"]!["decoder"]!["session_options"]!["custom_ops_library"]!);
    }

    /// <summary>Tokenizer files in model.tokenizer_dir move in beside the config, where genai reads them without the key.</summary>
    [Fact]
    public void ATokenizerDirIsFlattenedIntoTheOutputFolder()
    {
        string tokenizerFolder = _temp.Sub(Path.Combine("input", "tok"));
        File.WriteAllText(Path.Combine(tokenizerFolder, "tokenizer.json"), "{}");
        WriteInputConfig("""{"model": {"tokenizer_dir": "tok", "decoder": {"filename": "model.onnx"}}}""");
        var written = Prepare(Path.Combine(_temp.Path, "output", "sparse.onnx")).Update!.Write();
        var carried = GenAiFolder.ReadConfig(written.ConfigPath);
        Assert.Null(carried["model"]!["tokenizer_dir"]);
        Assert.True(File.Exists(Path.Combine(_temp.Path, "output", "tokenizer.json")));
    }

    /// <summary>A write that fails part way leaves no temporary file, and no config that would name missing files.</summary>
    [Fact]
    public void AFailedWriteLeavesNoTemporaryFiles()
    {
        WriteInputConfig();
        File.WriteAllText(Path.Combine(_input, "tokenizer.json"), "{}");
        string output = Path.Combine(_temp.Path, "output", "sparse.onnx");
        var plan = Prepare(output);
        // A folder where the tokenizer file goes: the rename into place fails.
        Directory.CreateDirectory(Path.Combine(_temp.Path, "output", "tokenizer.json"));
        var error = Assert.Throws<ModelSaveException>(() => plan.Update!.Write());
        Assert.Contains("tokenizer.json", error.Message);
        Assert.False(File.Exists(Path.Combine(_temp.Path, "output", GenAiFolder.ConfigFileName)));
        Assert.Empty(Fixtures.TemporaryFiles(_temp.Path));
    }

    /// <summary>The command line: sparsify into the input's own folder writes the model, leaves the config and says so; --json says it too.</summary>
    [Fact]
    public void SparsifyIntoTheInputsFolderSaysTheConfigIsLeftAlone()
    {
        string folder = _temp.Sub("int4");
        Fixtures.CopyInto(folder, Fixtures.GenaiInt4Model);
        var (code, _, error) = Fixtures.Cli("genai-config", Path.Combine(folder, "model.onnx"));
        Assert.True(code == 0, error);
        string config = Path.Combine(folder, GenAiFolder.ConfigFileName);
        byte[] before = File.ReadAllBytes(config);

        (code, var output, error) = Fixtures.Cli("sparsify", Path.Combine(folder, "model.onnx"), "-o", Path.Combine(folder, "sparse.onnx"), "--sparsity", "0.5");
        Assert.True(code == 0, error);
        Assert.Contains($"genai: {config} not carried: the output is written into the input's folder", output);
        Assert.True(File.Exists(Path.Combine(folder, "sparse.onnx")));
        Assert.Equal(before, File.ReadAllBytes(config));
        Assert.False(File.Exists(Path.Combine(folder, "libsparseonnx_ops.so")));

        (code, output, error) = Fixtures.Cli("sparsify", Path.Combine(folder, "model.onnx"), "-o", Path.Combine(folder, "sparse.onnx"), "--sparsity", "0.5", "--json");
        Assert.True(code == 0, error);
        var genai = JsonNode.Parse(output)!["genai"]!;
        Assert.Equal(config, (string)genai["input_config"]!);
        Assert.StartsWith("the output is written into the input's folder", (string)genai["skipped"]!);
        Assert.Equal(before, File.ReadAllBytes(config));
    }

    /// <summary>The command line: a carry that fails after the model is saved says both, exits 1, and leaves no temporary file.</summary>
    [Fact]
    public void SparsifySaysWhenTheModelIsWrittenButTheFolderCannotBeMadeAGenAiFolder()
    {
        string folder = _temp.Sub("int4");
        Fixtures.CopyInto(folder, Fixtures.GenaiInt4Model);
        var (code, _, error) = Fixtures.Cli("genai-config", Path.Combine(folder, "model.onnx"));
        Assert.True(code == 0, error);
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"), "{}");
        string output = _temp.Sub("out");
        Directory.CreateDirectory(Path.Combine(output, "special_tokens_map.json"));

        (code, _, error) = Fixtures.Cli("sparsify", Path.Combine(folder, "model.onnx"), "-o", Path.Combine(output, "model.onnx"), "--sparsity", "0.5");
        Assert.Equal(1, code);
        Assert.StartsWith($"error: Wrote {Path.Combine(output, "model.onnx")}, but could not make its folder an onnxruntime-genai folder: Could not write", error);
        Assert.False(File.Exists(Path.Combine(output, GenAiFolder.ConfigFileName)));
        Assert.Empty(Fixtures.TemporaryFiles(_temp.Path));
    }
}
