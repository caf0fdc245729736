using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.GraphRewriter.GenAi;

/// <summary>
/// An onnxruntime-genai model folder: <c>genai_config.json</c>, the ONNX files it names, the tokenizer files beside
/// it, and, for a model with SparseOnnx ops, a copy of the op library. What genai requires of it (read from
/// onnxruntime-genai's <c>src/config.cpp</c> and <c>src/models/model.cpp</c>, and checked against genai 0.20):
/// file names in the config are relative to the config's folder and never contain <c>..</c>; the tokenizer is read
/// from that folder (or <c>model.tokenizer_dir</c>); <c>custom_ops_library</c> must resolve to a file inside the
/// model folder, an execution provider's library folder or the working directory, after following symbolic links, so the
/// folder carries a real copy of the library and names it by its file name.
/// </summary>
public static class GenAiFolder
{
    /// <summary>The file genai reads its configuration from, in the model folder.</summary>
    public const string ConfigFileName = "genai_config.json";

    /// <summary>The <c>genai_config.json</c> beside <paramref name="modelPath"/>, or null when there is none.</summary>
    public static string? ConfigBeside(string modelPath)
    {
        string path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelPath))!, ConfigFileName);
        return File.Exists(path) ? path : null;
    }

    /// <summary>Reads a genai_config.json (comments and trailing commas allowed); throws <see cref="GenAiConfigException"/> when it is not a JSON object.</summary>
    public static JsonObject ReadConfig(string path)
    {
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions
            {
                CommentHandling = JsonCommentHandling.Skip,
                AllowTrailingCommas = true,
            });
            return node as JsonObject ?? throw new GenAiConfigException($"'{path}' is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new GenAiConfigException($"'{path}' is not valid JSON: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GenAiConfigException($"Cannot read '{path}': {e.Message}", e);
        }
    }

    /// <summary>The config as genai's builder writes it: indented by four spaces, UTF-8 without a byte-order mark, a final newline.</summary>
    public static byte[] Serialize(JsonObject config) =>
        new UTF8Encoding(false).GetBytes(config.ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 4 }) + "\n");

    /// <summary>
    /// <paramref name="path"/> relative to <paramref name="folder"/> with forward slashes, as genai reads a file name, or null when it
    /// lies outside the folder (genai refuses <c>..</c>).
    /// </summary>
    public static string? RelativeInside(string folder, string path)
    {
        string relative = Path.GetRelativePath(Path.GetFullPath(folder), Path.GetFullPath(path));
        if (Path.IsPathRooted(relative) || relative == "." || relative.Split('/', '\\').Contains("..")) return null;
        return relative.Replace('\\', '/');
    }
}

/// <summary>A file copied into a genai folder.</summary>
/// <param name="Source">The file copied.</param>
/// <param name="FileName">Its name in the folder.</param>
/// <param name="Role">What it is for the folder: <c>op library</c> or <c>tokenizer</c>.</param>
public sealed record GenAiFileCopy(string Source, string FileName, string Role);

/// <summary>What writing a genai folder update wrote.</summary>
/// <param name="ConfigPath">The config written.</param>
/// <param name="Copied">The files copied into the folder, each with its role.</param>
public sealed record GenAiFolderWriteResult(string ConfigPath, IReadOnlyList<GenAiFileCopy> Copied);

/// <summary>
/// A genai_config.json to write into a folder with the files it needs copied beside it. Nothing is written until
/// <see cref="Write"/>, which copies the files first and the config last, each under a temporary name renamed
/// into place, so a config that genai can see always finds its files and a failure leaves no partial file.
/// </summary>
public sealed class GenAiFolderUpdate
{
    internal GenAiFolderUpdate(string configPath, JsonObject config, IReadOnlyList<GenAiFileCopy> copies, IReadOnlyList<string> notes)
    {
        ConfigPath = configPath;
        Config = config;
        Copies = copies;
        Notes = notes;
    }

    /// <summary>Where the config goes.</summary>
    public string ConfigPath { get; }

    /// <summary>The config to write.</summary>
    public JsonObject Config { get; }

    /// <summary>Files to copy beside it.</summary>
    public IReadOnlyList<GenAiFileCopy> Copies { get; }

    /// <summary>What the user should know: where values came from, what was left as genai's default.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Copies the files and writes the config. Throws <see cref="ModelSaveException"/> when a write fails (nothing half-written stays).</summary>
    public GenAiFolderWriteResult Write()
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(ConfigPath))!;
        Directory.CreateDirectory(folder);
        var copied = new List<GenAiFileCopy>();
        foreach (var copy in Copies)
        {
            string target = Path.Combine(folder, copy.FileName);
            if (File.Exists(target) && SafePaths.SameFile(copy.Source, target)) continue;
            AtomicFile.Write(target, stream =>
            {
                using var source = File.OpenRead(copy.Source);
                source.CopyTo(stream);
            });
            copied.Add(copy);
        }
        byte[] bytes = GenAiFolder.Serialize(Config);
        AtomicFile.Write(ConfigPath, stream => stream.Write(bytes));
        return new GenAiFolderWriteResult(Path.GetFullPath(ConfigPath), copied);
    }
}

/// <summary>A genai_config.json could not be read or written as asked; the message says why.</summary>
public class GenAiConfigException : SparseOnnxException
{
    /// <summary>Creates the exception.</summary>
    public GenAiConfigException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>The model does not fit onnxruntime-genai's decoder contract; <see cref="Problems"/> lists every reason.</summary>
public sealed class GenAiContractException : GenAiConfigException
{
    /// <summary>Creates the exception for <paramref name="modelPath"/>.</summary>
    public GenAiContractException(string modelPath, IReadOnlyList<string> problems)
        : base($"'{modelPath}' does not fit onnxruntime-genai's decoder contract:" + string.Concat(problems.Select(p => "\n  - " + p))) =>
        Problems = problems;

    /// <summary>Why the model does not fit.</summary>
    public IReadOnlyList<string> Problems { get; }
}
