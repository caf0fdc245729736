using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Runtime.Tests;

public class DecoderSequenceTests(ReferenceModel reference) : IClassFixture<ReferenceModel>
{
    [Fact]
    public void TheSignatureIsDiscoveredFromTheModel()
    {
        var signature = reference.Model.Signature;
        Assert.Equal(6, signature.Layers.Count);
        Assert.Equal(2, signature.KvHeads);
        Assert.Equal(32, signature.HeadDim);
        Assert.Equal(4096, signature.Vocabulary);
        Assert.Equal("position_ids", signature.PositionIds);
        Assert.Equal("present.5.value", signature.Layers[5].PresentValue);
    }

    /// <summary>Prefill in chunks and single-token steps through the KV cache give the logits of one full pass.</summary>
    [Fact]
    public void IncrementalDecodingMatchesAFullPass()
    {
        int[] tokens = reference.Tokenizer.Encode("The jury further said in term-end presentments that the City", addBos: true);
        float[] full = reference.Model.ForwardWindows(tokens.Select(t => (long)t).ToArray(), 1, tokens.Length, out int vocabulary);
        using var sequence = reference.Model.StartSequence();
        var incremental = new List<float>();
        incremental.AddRange(sequence.AppendAllLogits(tokens.AsSpan(0, 5), out _));
        incremental.AddRange(sequence.AppendAllLogits(tokens.AsSpan(5, 3), out _));
        for (int i = 8; i < tokens.Length; i++) incremental.AddRange(sequence.AppendAllLogits(tokens.AsSpan(i, 1), out _));
        Assert.Equal(tokens.Length, sequence.Tokens.Count);
        Assert.Equal(full.Length, incremental.Count);
        int worst = 0;
        for (int i = 0; i < full.Length; i++)
            if (Math.Abs(full[i] - incremental[i]) > Math.Abs(full[worst] - incremental[worst])) worst = i;
        Assert.True(Math.Abs(full[worst] - incremental[worst]) < 1e-4,
            $"position {worst / vocabulary}, id {worst % vocabulary}: {incremental[worst]} vs {full[worst]}");
    }

    [Fact]
    public void ADisposedSequenceCannotBeUsed()
    {
        var sequence = reference.Model.StartSequence();
        sequence.Append([1, 337]);
        sequence.Dispose();
        Assert.Throws<ObjectDisposedException>(() => sequence.Append([502]));
    }

    [Fact]
    public void AModelWithoutAKvCacheIsRefusedWithTheReason()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "no_cache.onnx");
        var graph = new Graph("no_cache");
        var builder = new GraphBuilder(graph);
        var ids = builder.Input("input_ids", DataType.Int64, "batch", "sequence");
        var table = builder.Initializer("table", [16, 8], new float[128]);
        var logits = builder.Op("Gather", table, ids);
        logits.Name = "logits";
        builder.Output(logits, DataType.Float, "batch", "sequence", 8L);
        var model = new Model(graph) { IrVersion = 8 };
        model.OpsetImports.Set("", 17);
        ModelSaver.Save(model, path);
        var error = Assert.Throws<UnsupportedModelException>(() => CausalLm.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("no past_key_values", error.Message);
    }

    /// <summary>Every committed export (Llama, Qwen2, Gemma, GPT-2, Phi-3, nn.Linear-on-2-D, the onnxruntime-genai int4 graph) runs through the cache.</summary>
    [Theory]
    [InlineData("families/gemma")]
    [InlineData("families/genai-int4")]
    [InlineData("families/gpt2")]
    [InlineData("families/linear2d")]
    [InlineData("families/phi3")]
    [InlineData("families/qwen2")]
    public void EveryFamilyExportDecodesThroughTheCache(string folder)
    {
        using var model = CausalLm.Open(Path.Combine(RepositoryPaths.Models, folder, "model.onnx"));
        int[] tokens = [1, 17, 5, 9, 33, 2, 8];
        float[] full = model.ForwardWindows(tokens.Select(t => (long)t).ToArray(), 1, tokens.Length, out int vocabulary);
        using var sequence = model.StartSequence();
        sequence.Append(tokens.AsSpan(0, 4));
        sequence.Append(tokens.AsSpan(4, 2));
        float[] last = sequence.Append(tokens.AsSpan(6, 1));
        var expected = full.AsSpan((tokens.Length - 1) * vocabulary, vocabulary);
        for (int i = 0; i < vocabulary; i++)
            Assert.True(Math.Abs(expected[i] - last[i]) <= 1e-4 + 1e-4 * Math.Abs(expected[i]), $"{folder} id {i}: {last[i]} vs {expected[i]}");
    }

    /// <summary>The CPU-only ONNX Runtime package has no CUDA provider: asking for CUDA fails with ONNX Runtime's
    /// reason, Auto falls back to the CPU.</summary>
    [Fact]
    public void CudaWithoutTheProviderFailsAndAutoFallsBackToCpu()
    {
        var error = Assert.Throws<ExecutionProviderUnavailableException>(() => CausalLm.Open(ReferenceModel.ModelPath, new CausalLmOptions { Device = ExecutionDevice.Cuda }));
        Assert.Contains("CUDA execution provider is not available", error.Message);
        using var model = CausalLm.Open(ReferenceModel.ModelPath, new CausalLmOptions { Device = ExecutionDevice.Auto });
        Assert.Equal(ExecutionDevice.Cpu, model.Device);
        using var sequence = model.StartSequence();
        Assert.Equal(4096, sequence.Append([1, 337]).Length);
    }

    /// <summary>Without a built-in CUDA provider, a provider library to register as a plugin is tried; a missing
    /// one is named in the error (and Auto still falls back to the CPU).</summary>
    [Fact]
    public void CudaThroughAMissingProviderLibraryNamesTheLibrary()
    {
        const string library = "/nonexistent/libonnxruntime_providers_cuda.so";
        var error = Assert.Throws<ExecutionProviderUnavailableException>(() => CausalLm.Open(ReferenceModel.ModelPath,
            new CausalLmOptions { Device = ExecutionDevice.Cuda, CudaProviderLibrary = library }));
        Assert.Contains(library, error.Message);
        Assert.Contains("does not exist", error.Message);
        using var model = CausalLm.Open(ReferenceModel.ModelPath, new CausalLmOptions { Device = ExecutionDevice.Auto, CudaProviderLibrary = library });
        Assert.Equal(ExecutionDevice.Cpu, model.Device);
    }

    [Fact]
    public void AMissingModelIsNamed()
    {
        var error = Assert.Throws<FileNotFoundException>(() => CausalLm.Open("/nonexistent/model.onnx"));
        Assert.Contains("/nonexistent/model.onnx", error.Message);
    }
}
