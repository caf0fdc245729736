using System.Text.Json.Nodes;
using SparseOnnx.GraphRewriter.GenAi;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.GenAi.Tests;

/// <summary>What genai-config writes, where the values come from, and each reason it refuses.</summary>
public class GenAiConfigWriterTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>A copy of the genai int4 fixture (0.35 MB) in a folder of its own.</summary>
    private string Int4Copy(string folder = "int4")
    {
        string target = Path.Combine(_temp.Sub(folder), "model.onnx");
        File.Copy(Fixtures.GenaiInt4Model, target);
        return target;
    }

    private static string FakeLibrary(string folder)
    {
        string path = Path.Combine(folder, "libsparseonnx_ops.so");
        File.WriteAllText(path, "not a library: the writer only copies it");
        return path;
    }

    [Fact]
    public void TheBuilderLayoutWithSizesFromTheGraph()
    {
        using var model = ModelLoader.Load(Int4Copy());
        var plan = GenAiConfigWriter.Plan(model, new GenAiConfigRequest());
        var config = plan.Config;
        var decoder = config["model"]!["decoder"]!;
        Assert.Equal("model.onnx", (string)decoder["filename"]!);
        Assert.Equal((16, 64, 4, 2, 2), ((int)decoder["head_size"]!, (int)decoder["hidden_size"]!, (int)decoder["num_attention_heads"]!,
            (int)decoder["num_hidden_layers"]!, (int)decoder["num_key_value_heads"]!));
        Assert.Equal("""{"input_ids":"input_ids","attention_mask":"attention_mask","past_key_names":"past_key_values.%d.key","past_value_names":"past_key_values.%d.value"}""",
            decoder["inputs"]!.ToJsonString());
        Assert.Equal("""{"logits":"logits","present_key_names":"present.%d.key","present_value_names":"present.%d.value"}""", decoder["outputs"]!.ToJsonString());
        Assert.Null(decoder["session_options"]!["custom_ops_library"]);
        Assert.Equal((4096, 128, "llama"), ((int)config["model"]!["context_length"]!, (int)config["model"]!["vocab_size"]!, (string)config["model"]!["type"]!));
        // GroupQueryAttention takes a past buffer as long as the context: genai shares it with the present.
        Assert.True((bool)config["search"]!["past_present_share_buffer"]!);
        Assert.False((bool)config["search"]!["do_sample"]!);
        Assert.Equal(4096, (int)config["search"]!["max_length"]!);
        // No tokenizer and no config.json: genai's defaults, said in a note.
        Assert.Null(config["model"]!["eos_token_id"]);
        Assert.Contains(plan.Notes, n => n.StartsWith("no tokenizer or config.json", StringComparison.Ordinal));
        Assert.Empty(plan.Copies);
        Assert.False(File.Exists(plan.ConfigPath)); // nothing is written before Write
    }

    [Fact]
    public void IdsAndContextFromHuggingFaceFilesWinOverTheTokenizer()
    {
        string modelPath = Int4Copy();
        string folder = Path.GetDirectoryName(modelPath)!;
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": [2, 7], "pad_token_id": null}""");
        using var model = ModelLoader.Load(modelPath);
        var tokenizer = new GenAiTokenIds(5, [6], null, "the tokenizer");
        var plan = GenAiConfigWriter.Plan(model, new GenAiConfigRequest { TokenizerIds = tokenizer });
        var m = plan.Config["model"]!;
        Assert.Equal(1, (int)m["bos_token_id"]!);
        Assert.Equal("[2,7]", m["eos_token_id"]!.ToJsonString());
        Assert.Equal(2, (int)m["pad_token_id"]!);           // as the builder: the first eos when there is no pad
        Assert.Equal(4096, (int)m["context_length"]!);      // the rotary caches say more than config.json can
        Assert.Contains("special ids from config.json", plan.Notes);

        File.WriteAllText(Path.Combine(folder, "generation_config.json"), """{"eos_token_id": 9, "pad_token_id": 0}""");
        var withGeneration = GenAiConfigWriter.Plan(model, new GenAiConfigRequest { TokenizerIds = tokenizer }).Config["model"]!;
        Assert.Equal((1, 9, 0), ((int)withGeneration["bos_token_id"]!, (int)withGeneration["eos_token_id"]!, (int)withGeneration["pad_token_id"]!));

        File.Delete(Path.Combine(folder, "config.json"));
        File.Delete(Path.Combine(folder, "generation_config.json"));
        var fromTokenizer = GenAiConfigWriter.Plan(model, new GenAiConfigRequest { TokenizerIds = tokenizer }).Config["model"]!;
        Assert.Equal((5, 6, 6), ((int)fromTokenizer["bos_token_id"]!, (int)fromTokenizer["eos_token_id"]!, (int)fromTokenizer["pad_token_id"]!));
    }

    [Fact]
    public void TheContextLengthMustBeKnownAndFitTheRotaryCaches()
    {
        string optimum = Path.Combine(_temp.Sub("brown"), "model.onnx");
        File.Copy(Path.Combine(Fixtures.LlamaBrownFolder, "model.onnx"), optimum);
        using (var model = ModelLoader.Load(optimum))
        {
            var missing = Assert.Throws<GenAiConfigException>(() => GenAiConfigWriter.Plan(model, new GenAiConfigRequest()));
            Assert.Contains("--context-length", missing.Message);
            Assert.Equal(128, (int)GenAiConfigWriter.Plan(model, new GenAiConfigRequest { ContextLength = 128 }).Config["model"]!["context_length"]!);
            File.WriteAllText(Path.Combine(Path.GetDirectoryName(optimum)!, "config.json"), """{"max_position_embeddings": 512}""");
            var stated = GenAiConfigWriter.Plan(model, new GenAiConfigRequest());
            Assert.Equal(512, (int)stated.Config["model"]!["context_length"]!);
            Assert.Contains("context_length 512 from config.json max_position_embeddings", stated.Notes);
            // An Optimum graph concatenates its past itself: its past must be exactly as long as the past.
            Assert.False((bool)stated.Config["search"]!["past_present_share_buffer"]!);
        }
        using var int4 = ModelLoader.Load(Int4Copy());
        var tooLong = Assert.Throws<GenAiConfigException>(() => GenAiConfigWriter.Plan(int4, new GenAiConfigRequest { ContextLength = 8192 }));
        Assert.Equal("The context length 8192 is longer than the 4096 positions the graph's rotary caches cover.", tooLong.Message);
    }

    [Fact]
    public void AnExistingConfigIsKeptUnlessOverwriteIsAsked()
    {
        string modelPath = Int4Copy();
        string existing = Path.Combine(Path.GetDirectoryName(modelPath)!, GenAiFolder.ConfigFileName);
        File.WriteAllText(existing, "{\"builder\": true}");
        using var model = ModelLoader.Load(modelPath);
        var refused = Assert.Throws<GenAiConfigException>(() => GenAiConfigWriter.Plan(model, new GenAiConfigRequest()));
        Assert.Contains("exists", refused.Message);
        Assert.Contains("--force", refused.Message);
        Assert.Equal("{\"builder\": true}", File.ReadAllText(existing));

        var written = GenAiConfigWriter.Plan(model, new GenAiConfigRequest { Overwrite = true }).Write();
        Assert.Equal(existing, written.ConfigPath);
        Assert.Equal("model.onnx", (string)GenAiFolder.ReadConfig(existing)["model"]!["decoder"]!["filename"]!);
        Assert.Empty(Fixtures.TemporaryFiles(_temp.Path));
    }

    /// <summary>genai reads decoder.filename relative to the config's folder and refuses '..'.</summary>
    [Fact]
    public void TheConfigGoesInTheModelsFolderOrOneAbove()
    {
        string modelPath = Int4Copy(Path.Combine("outer", "inner"));
        using var model = ModelLoader.Load(modelPath);
        var above = GenAiConfigWriter.Plan(model, new GenAiConfigRequest { ConfigPath = Path.Combine(_temp.Path, "outer", GenAiFolder.ConfigFileName) });
        Assert.Equal("inner/model.onnx", (string)above.Config["model"]!["decoder"]!["filename"]!);
        Assert.Contains(above.Notes, n => n.StartsWith("genai reads the tokenizer from the config's folder", StringComparison.Ordinal));

        var beside = Assert.Throws<GenAiConfigException>(() =>
            GenAiConfigWriter.Plan(model, new GenAiConfigRequest { ConfigPath = Path.Combine(_temp.Sub("elsewhere"), GenAiFolder.ConfigFileName) }));
        Assert.Contains("refuses '..'", beside.Message);
    }

    [Fact]
    public void ASparseModelGetsTheOpLibraryBesideItsConfig()
    {
        string modelPath = Int4Copy();
        string sparsePath = Path.Combine(_temp.Sub("sparse"), "model.onnx");
        using (var dense = ModelLoader.Load(modelPath))
        {
            new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 }).Run(dense);
            ModelSaver.Save(dense, sparsePath);
        }
        using var model = ModelLoader.Load(sparsePath);
        var noLibrary = Assert.Throws<GenAiConfigException>(() => GenAiConfigWriter.Plan(model, new GenAiConfigRequest()));
        Assert.Contains("needs the op library", noLibrary.Message);

        string library = FakeLibrary(_temp.Sub("lib"));
        var written = GenAiConfigWriter.Plan(model, new GenAiConfigRequest { OpsLibraryPath = () => library }).Write();
        var copy = Assert.Single(written.Copied);
        Assert.Equal(("libsparseonnx_ops.so", "op library"), (copy.FileName, copy.Role));
        string folder = Path.GetDirectoryName(sparsePath)!;
        Assert.Equal(File.ReadAllBytes(library), File.ReadAllBytes(Path.Combine(folder, "libsparseonnx_ops.so")));
        Assert.Equal("libsparseonnx_ops.so", (string)GenAiFolder.ReadConfig(written.ConfigPath)["model"]!["decoder"]!["session_options"]!["custom_ops_library"]!);
    }

    /// <summary>A model that does not fit is refused with every reason in the message, and nothing is written.</summary>
    [Fact]
    public void AMisfitListsEveryReason()
    {
        var graph = new Graph("no_cache");
        var builder = new GraphBuilder(graph);
        var ids = builder.Input("input_ids", DataType.Int64, "batch", "sequence");
        builder.Input("token_type_ids", DataType.Int64, "batch", "sequence");
        var node = new Node("", "Identity", [ids], ["logits"], "copy");
        graph.Nodes.Add(node);
        builder.Output(node.Outputs[0], DataType.Float, "batch", "sequence", 8L);
        var saved = new Model(graph) { IrVersion = 8 };
        saved.OpsetImports.Set("", 17);
        string path = Path.Combine(_temp.Sub("misfit"), "model.onnx");
        ModelSaver.Save(saved, path);

        using var model = ModelLoader.Load(path);
        var error = Assert.Throws<GenAiContractException>(() => GenAiConfigWriter.Plan(model, new GenAiConfigRequest { ContextLength = 64 }));
        Assert.Equal(2, error.Problems.Count);
        Assert.All(error.Problems, p => Assert.Contains("\n  - " + p, error.Message));
        Assert.Contains(error.Problems, p => p.StartsWith("input 'token_type_ids'", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.StartsWith("it has no KV-cache inputs", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(path)!, GenAiFolder.ConfigFileName)));
    }

    /// <summary>The command line: exit 1 and the reasons on stderr for a misfit; the config and its notes for a fit.</summary>
    [Fact]
    public void TheCommandWritesTheConfigOrSaysWhy()
    {
        string modelPath = Int4Copy();
        var (code, output, error) = Fixtures.Cli("genai-config", modelPath);
        Assert.True(code == 0, error);
        Assert.Contains($"wrote {Path.Combine(Path.GetDirectoryName(modelPath)!, GenAiFolder.ConfigFileName)}", output);
        Assert.Contains("note: context_length 4096 from the rows of GroupQueryAttention's rotary caches", output);

        (code, _, error) = Fixtures.Cli("genai-config", modelPath);
        Assert.Equal(1, code);
        Assert.Contains("--force", error);

        (code, output, error) = Fixtures.Cli("genai-config", modelPath, "--force", "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(2, (int)json["config"]!["model"]!["decoder"]!["num_hidden_layers"]!);
        Assert.Empty(json["copied"]!.AsArray());

        string brown = Path.Combine(_temp.Sub("brown"), "model.onnx");
        File.Copy(Path.Combine(Fixtures.LlamaBrownFolder, "model.onnx"), brown);
        (code, _, error) = Fixtures.Cli("genai-config", brown);
        Assert.Equal(1, code);
        Assert.StartsWith("error: The graph does not say how long a context it takes", error);
    }
}
