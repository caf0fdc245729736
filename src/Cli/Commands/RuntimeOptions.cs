using System.CommandLine;
using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Cli.Commands;

/// <summary>The options every command that runs a model shares: threads and device.</summary>
internal sealed class RuntimeOptions
{
    public Option<int> Threads { get; } = new("--threads")
    {
        Description = "ONNX Runtime intra-op threads (default: all logical cores).",
        DefaultValueFactory = _ => Environment.ProcessorCount,
    };

    public Option<ExecutionDevice> Device { get; } = new("--device")
    {
        Description = "cpu, cuda (fails without ONNX Runtime's CUDA provider: a GPU build of ONNX Runtime, or ORT's " +
                      "libonnxruntime_providers_cuda.so named in $SPARSEONNX_ORT_CUDA_PROVIDER), or auto (CUDA when available).",
        DefaultValueFactory = _ => ExecutionDevice.Cpu,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Threads);
        command.Options.Add(Device);
    }

    public CausalLmOptions Read(ParseResult parse)
    {
        int threads = parse.GetValue(Threads);
        if (threads < 1) throw new ArgumentException($"--threads must be at least 1, not {threads}.");
        return new CausalLmOptions { Threads = threads, Device = parse.GetValue(Device) };
    }

    /// <summary>
    /// Commands that load several models at once (bench, report) run them on one process-wide pool, as a
    /// host serving them would; a process whose ONNX Runtime environment already exists with another pool
    /// (tests running commands in one process) keeps per-session pools.
    /// </summary>
    public static CausalLmOptions WithSharedPool(CausalLmOptions options) =>
        SharedThreadPool.TryUse(options.Threads) ? options with { SharedThreadPool = true } : options;

    /// <summary>Loads the tokenizer named by <paramref name="option"/>, or the one beside the model when none is named.
    /// Its warnings (what it reproduces only in part) go to stderr.</summary>
    public static TextTokenizer LoadTokenizer(ParseResult parse, Option<FileSystemInfo?> option, string? modelPath)
    {
        TextTokenizer tokenizer;
        if (parse.GetValue(option) is { } given) tokenizer = TextTokenizer.Load(given.FullName);
        else
        {
            if (modelPath is null) throw new ArgumentException("Give the tokenizer with --tokenizer.");
            string folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
            if (!File.Exists(Path.Combine(folder, "tokenizer.model")) && !File.Exists(Path.Combine(folder, "tokenizer.json")))
                throw new ArgumentException($"No --tokenizer given and none beside the model in '{folder}' (tokenizer.model or tokenizer.json).");
            tokenizer = TextTokenizer.Load(folder);
        }
        foreach (string warning in tokenizer.Warnings) parse.InvocationConfiguration.Error.WriteLine($"warning: {warning}");
        return tokenizer;
    }

    public static Option<FileSystemInfo?> TokenizerOption() => new("--tokenizer")
    {
        Description = "Tokenizer: SentencePiece tokenizer.model, Hugging Face tokenizer.json, a .tiktoken file, or a folder with one (default: the model's folder).",
    };
}
