using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;

namespace GenerationService;

/// <summary>Configuration section <c>Model</c>: the model the service runs.</summary>
public sealed class ModelSettings
{
    /// <summary>The model file (a SparseOnnx-sparsified model, or a dense one).</summary>
    public string Path { get; set; } = "";

    /// <summary>The tokenizer (<c>tokenizer.model</c>, <c>tokenizer.json</c>, ...); empty: the one beside the model.</summary>
    public string? Tokenizer { get; set; }

    /// <summary>
    /// Most tokens, prompt and generated, one request may hold; empty: <c>context_length</c> of a genai_config.json or
    /// <c>max_position_embeddings</c> of a config.json beside the model. llama-brown has neither: it was trained on 128.
    /// </summary>
    public int? ContextLength { get; set; }

    /// <summary>ONNX Runtime's intra-op threads for the one session (0: its default, one per core).</summary>
    public int Threads { get; set; }
}

/// <summary>Configuration section <c>Generation</c>.</summary>
public sealed class GenerationSettings
{
    /// <summary>Generations run at once; the others wait their turn (0: one per core).</summary>
    public int MaxConcurrent { get; set; }

    /// <summary>maxTokens of a request that gives none.</summary>
    public int DefaultMaxTokens { get; set; } = 64;
}

/// <summary>The body of <c>POST /generate</c> and <c>POST /generate/stream</c>.</summary>
/// <param name="Prompt">The text to continue.</param>
/// <param name="MaxTokens">Most tokens to generate (fewer when the model ends the text first).</param>
/// <param name="TopP">Nucleus sampling's probability mass in (0, 1]; absent: greedy.</param>
/// <param name="Seed">The sampler's seed (top-p only): the same seed and prompt give the same text.</param>
public sealed record GenerateRequest(string? Prompt, int? MaxTokens, double? TopP = null, int? Seed = null);

/// <summary>The answer of <c>POST /generate</c>.</summary>
/// <param name="Text">The generated text (the prompt not included).</param>
/// <param name="Ids">The generated token ids.</param>
/// <param name="PromptTokens">Tokens the prompt encoded to (BOS included).</param>
/// <param name="StoppedAtEos">Whether generation ended at the end-of-sequence token (its id is the last one).</param>
public sealed record GenerateResponse(string Text, IReadOnlyList<int> Ids, int PromptTokens, bool StoppedAtEos);

/// <summary>A <c>token</c> event of <c>POST /generate/stream</c>: one generated token and the text it completes.</summary>
public sealed record TokenEvent(int Id, string Text);

/// <summary>The last event of <c>POST /generate/stream</c>, <c>done</c>.</summary>
public sealed record DoneEvent(int Tokens, int PromptTokens, bool StoppedAtEos);

/// <summary>A request that passed <see cref="Generator.Check"/>: its prompt's ids and the options to generate with.</summary>
public sealed record CheckedRequest(string Prompt, int PromptTokens, GenerationOptions Options);

/// <summary>
/// The one model of the service, shared by every request. <see cref="CausalLm"/> is made for this: one ONNX Runtime
/// session (so the op library is registered once), whose <c>Run</c> is safe to call from several threads, and each
/// generation keeps its KV cache in its own <see cref="DecoderSequence"/> (<see cref="TextGenerator"/> starts one per
/// call and frees it when the call ends). The tokenizer is immutable and shared too. What is not shared is CPU time:
/// at most <see cref="GenerationSettings.MaxConcurrent"/> generations run at once, the rest wait asynchronously, so a
/// burst of requests neither blocks a thread each (starving the server's thread pool) nor splits the cores between
/// dozens of sequences that would all finish late.
/// </summary>
public sealed class Generator : IDisposable
{
    private readonly CausalLm _model;
    private readonly TextTokenizer _tokenizer;
    private readonly SemaphoreSlim _gate;
    private readonly bool _addBos;

    private Generator(CausalLm model, TextTokenizer tokenizer, int contextLength, int maxConcurrent, int defaultMaxTokens)
    {
        _model = model;
        _tokenizer = tokenizer;
        ContextLength = contextLength;
        MaxConcurrent = maxConcurrent;
        DefaultMaxTokens = defaultMaxTokens;
        _gate = new SemaphoreSlim(maxConcurrent, maxConcurrent);
        // As TextGenerator decides by default: BOS in front when the tokenizer has one distinct from EOS. Decided here
        // and passed on, so the prompt length checked against the context is the one generation uses.
        _addBos = tokenizer.BosId is { } bos && bos != tokenizer.EosId;
    }

    /// <summary>Most tokens, prompt and generated, one request may hold.</summary>
    public int ContextLength { get; }

    /// <summary>Generations run at once.</summary>
    public int MaxConcurrent { get; }

    /// <summary>maxTokens of a request that gives none.</summary>
    public int DefaultMaxTokens { get; }

    /// <summary>The model file.</summary>
    public string ModelPath => _model.ModelPath;

    /// <summary>Where the model runs.</summary>
    public ExecutionDevice Device => _model.Device;

    /// <summary>
    /// Opens the model and its tokenizer. Throws <see cref="ArgumentException"/> for settings that cannot work, and
    /// what <see cref="CausalLm.Open"/> and <see cref="TextTokenizer.Load"/> throw for a model or tokenizer they reject.
    /// </summary>
    public static Generator Open(ModelSettings model, GenerationSettings generation)
    {
        if (string.IsNullOrWhiteSpace(model.Path))
            throw new ArgumentException("No model: set Model:Path (--model FILE, or Model__Path in the environment).");
        string path = System.IO.Path.GetFullPath(model.Path);
        if (!File.Exists(path)) throw new FileNotFoundException($"The model '{path}' (Model:Path) does not exist.", path);
        string folder = System.IO.Path.GetDirectoryName(path)!;
        int contextLength = model.ContextLength ?? ContextLengthBeside(folder)
            ?? throw new ArgumentException($"The context length of {path} is unknown (no genai_config.json or config.json beside it): set Model:ContextLength (--context-length N).");
        if (contextLength < 2) throw new ArgumentException($"Model:ContextLength must be at least 2, not {contextLength}.");
        if (generation.MaxConcurrent < 0) throw new ArgumentException($"Generation:MaxConcurrent must be 0 (one per core) or more, not {generation.MaxConcurrent}.");
        if (generation.DefaultMaxTokens < 1) throw new ArgumentException($"Generation:DefaultMaxTokens must be at least 1, not {generation.DefaultMaxTokens}.");
        var tokenizer = TextTokenizer.Load(string.IsNullOrWhiteSpace(model.Tokenizer) ? folder : model.Tokenizer);
        var lm = CausalLm.Open(path, new CausalLmOptions { Threads = model.Threads });
        int concurrent = generation.MaxConcurrent > 0 ? generation.MaxConcurrent : Environment.ProcessorCount;
        return new Generator(lm, tokenizer, contextLength, concurrent, generation.DefaultMaxTokens);
    }

    /// <summary>Checks a request against the model: the problem with it (naming the field), or what to generate.</summary>
    public (CheckedRequest? Request, string? Problem) Check(GenerateRequest? request)
    {
        if (request is null) return (null, "The body must be a JSON object: {\"prompt\": \"...\", \"maxTokens\": N}.");
        if (string.IsNullOrEmpty(request.Prompt)) return (null, "prompt is missing or empty: give the text to continue.");
        int maxTokens = request.MaxTokens ?? DefaultMaxTokens;
        if (maxTokens <= 0) return (null, $"maxTokens must be at least 1, not {maxTokens}.");
        if (request.TopP is double p && !(p > 0 && p <= 1)) return (null, $"topP must be in (0, 1], not {p}.");
        if (request.Seed is not null && request.TopP is null) return (null, "seed is for top-p sampling: give topP too, or no seed (greedy).");
        int promptTokens = _tokenizer.Encode(request.Prompt, _addBos).Length;
        if (promptTokens == 0) return (null, "prompt encodes to no tokens: give some text.");
        int room = ContextLength - promptTokens;
        if (maxTokens > room)
            return (null, room <= 0
                ? $"prompt is {promptTokens} tokens, which fills the model's context of {ContextLength} tokens: shorten it."
                : $"maxTokens {maxTokens} is more than the {room} tokens the model's context of {ContextLength} leaves after the prompt's {promptTokens}.");
        var sampling = request.TopP is double topP ? new SamplingOptions { TopP = topP, Seed = request.Seed ?? 0 } : new SamplingOptions();
        return (new CheckedRequest(request.Prompt, promptTokens, new GenerationOptions { MaxTokens = maxTokens, Sampling = sampling, AddBos = _addBos }), null);
    }

    /// <summary>Generates to the end, once a place is free; stops early when <paramref name="cancellation"/> fires (the client left).</summary>
    public async Task<GenerateResponse> GenerateAsync(CheckedRequest request, CancellationToken cancellation)
    {
        await _gate.WaitAsync(cancellation);
        try
        {
            // Synchronous: the model runs on this thread, one of at most MaxConcurrent that do.
            var result = TextGenerator.Generate(_model, _tokenizer, request.Prompt, request.Options,
                onToken: _ => cancellation.ThrowIfCancellationRequested());
            return new GenerateResponse(result.Text, result.Ids, result.PromptIds.Count, result.StoppedAtEos);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// The tokens as server-sent events, each as soon as it is generated (<c>token</c>), then <c>done</c>. Leaving the
    /// enumeration early (the client went away) ends the generation and frees its KV cache.
    /// </summary>
    public async IAsyncEnumerable<SseItem<object>> StreamAsync(CheckedRequest request, [EnumeratorCancellation] CancellationToken cancellation)
    {
        await _gate.WaitAsync(cancellation);
        try
        {
            int count = 0;
            int last = -1;
            foreach (var token in TextGenerator.Stream(_model, _tokenizer, request.Prompt, request.Options))
            {
                cancellation.ThrowIfCancellationRequested();
                count++;
                last = token.Id;
                yield return new SseItem<object>(new TokenEvent(token.Id, token.Text), "token");
            }
            bool stoppedAtEos = request.Options.StopAtEos && count > 0 && last == _tokenizer.EosId;
            yield return new SseItem<object>(new DoneEvent(count, request.PromptTokens, stoppedAtEos), "done");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _model.Dispose();
        _gate.Dispose();
    }

    // The context length that exporters write beside the model: onnxruntime-genai's genai_config.json, Hugging Face's config.json.
    private static int? ContextLengthBeside(string folder)
    {
        static int? Read(string file, Func<JsonElement, JsonElement?> find)
        {
            if (!File.Exists(file)) return null;
            using var document = JsonDocument.Parse(File.ReadAllText(file));
            return find(document.RootElement) is { ValueKind: JsonValueKind.Number } value && value.TryGetInt32(out int n) ? n : null;
        }
        static JsonElement? Property(JsonElement element, string name) =>
            element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) ? value : null;
        return Read(System.IO.Path.Combine(folder, "genai_config.json"), root => Property(root, "model") is { } m ? Property(m, "context_length") : null)
            ?? Read(System.IO.Path.Combine(folder, "config.json"), root => Property(root, "max_position_embeddings"));
    }
}
