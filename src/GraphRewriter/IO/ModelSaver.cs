using Google.Protobuf;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Serialization;

namespace SparseOnnx.GraphRewriter.IO;

/// <summary>When the saver moves tensor bytes into an external data file.</summary>
public enum ExternalDataMode
{
    /// <summary>
    /// External when the model was loaded with external data or its tensors total more than
    /// <see cref="ModelSaver.AutoExternalThresholdBytes"/>; inline otherwise.
    /// </summary>
    Auto,

    /// <summary>Always write large tensors to an external data file.</summary>
    Always,

    /// <summary>Keep everything inside the model file (fails beyond protobuf's 2 GiB limit).</summary>
    Never,
}

/// <summary>How to save a model.</summary>
public sealed record SaveOptions
{
    /// <summary>When tensor data goes to an external file.</summary>
    public ExternalDataMode ExternalData { get; init; } = ExternalDataMode.Auto;

    /// <summary>Tensors smaller than this many bytes stay inline even when saving with external data.</summary>
    public long InlineThresholdBytes { get; init; } = 1024;

    /// <summary>External data file name, in the model's folder. Default: the model file name plus <c>.data</c>.</summary>
    public string? DataFileName { get; init; }

    /// <summary>
    /// Alignment of every tensor's offset in the external file. 64 KiB is a multiple of every platform's
    /// mmap granularity, so runtimes can map each tensor directly.
    /// </summary>
    public int Alignment { get; init; } = 65536;

    /// <summary>
    /// Keep tensors that are still in an external data file of the output model's folder where they are,
    /// referencing that file instead of copying the bytes. For rewrites that leave most weights untouched,
    /// this writes only the graph and the changed tensors. The output then depends on that file: delete or
    /// change it and the output breaks. Off by default.
    /// </summary>
    public bool ReuseExternalDataInOutputFolder { get; init; }

    /// <summary>
    /// External data files (absolute paths) that have a hard link in the output model's folder, by the link's file
    /// name: tensors stored in them are written referencing the link (the same bytes at the same offsets) instead
    /// of being copied. How calibration saves probes of a model loaded from elsewhere without copying its weights
    /// (ONNX Runtime only reads external data inside the model's folder). Reused tensors count in
    /// <see cref="SaveResult.ReusedTensors"/>.
    /// </summary>
    public IReadOnlyDictionary<string, string>? ExternalDataLinks { get; init; }
}

/// <summary>What a save wrote.</summary>
/// <param name="ModelPath">The model file.</param>
/// <param name="DataPath">The external data file, or null when everything is inline.</param>
/// <param name="ModelFileBytes">Size of the model file.</param>
/// <param name="ExternalBytes">Tensor bytes written to the external file (padding excluded).</param>
/// <param name="ExternalTensors">Number of tensors written to the new external data file.</param>
/// <param name="ReusedTensors">Number of tensors left referencing existing external data files (see <see cref="SaveOptions.ReuseExternalDataInOutputFolder"/>).</param>
public sealed record SaveResult(string ModelPath, string? DataPath, long ModelFileBytes, long ExternalBytes, int ExternalTensors, int ReusedTensors = 0);

/// <summary>
/// Saves models. The output never overwrites the input model or any file it reads, and never exists half
/// written: the data file and the model are written under temporary names in the target folder, flushed
/// to disk, then renamed into place (data first, so a visible model always finds its data).
/// </summary>
public static class ModelSaver
{
    /// <summary>Total tensor size above which <see cref="ExternalDataMode.Auto"/> chooses external data.</summary>
    public const long AutoExternalThresholdBytes = 1L << 30;

    // Inline models must stay below protobuf's 2 GiB message limit, with room for the graph itself.
    private const long MaxInlineTensorBytes = int.MaxValue - (64L << 20);

    /// <summary>Saves <paramref name="model"/> to <paramref name="path"/>.</summary>
    public static SaveResult Save(Model model, string path, SaveOptions? options = null)
    {
        options ??= new SaveOptions();
        if (options.Alignment < 1 || (options.Alignment & (options.Alignment - 1)) != 0)
            throw new ArgumentException($"Alignment must be a power of two, not {options.Alignment}.", nameof(options));
        if (options.InlineThresholdBytes < 0)
            throw new ArgumentException("InlineThresholdBytes must not be negative.", nameof(options));

        string modelPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(modelPath)!;
        string dataFileName = options.DataFileName ?? Path.GetFileName(modelPath) + ".data";
        if (dataFileName.IndexOfAny(['/', '\\']) >= 0 || dataFileName is "." or ".." || dataFileName.Length == 0)
            throw new ArgumentException($"DataFileName must be a plain file name, not '{dataFileName}'.", nameof(options));
        string dataPath = Path.Combine(directory, dataFileName);

        CheckDoesNotOverwriteInputs(model, modelPath, dataPath);
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelSaveException($"Could not create the output folder '{directory}': {e.Message}", e);
        }

        bool external = options.ExternalData switch
        {
            ExternalDataMode.Always => true,
            ExternalDataMode.Never => false,
            _ => model.ExternalDataPaths.Count > 0 || TotalTensorBytes(model) > AutoExternalThresholdBytes,
        };
        var placement = new Placement(external, dataFileName, options.InlineThresholdBytes, options.Alignment,
            options.ReuseExternalDataInOutputFolder ? SafePaths.RealPath(directory) : null, options.ExternalDataLinks);
        var proto = new ProtoWriter(placement).WriteModel(model);
        if (placement.InlineBytes > MaxInlineTensorBytes)
            throw new ModelSaveException(
                $"The model's inline tensors total {placement.InlineBytes} bytes, more than one protobuf file can hold (2 GiB). " +
                "Save with external data.");

        string? tempData = null;
        string tempModel = TempName(directory, Path.GetFileName(modelPath));
        // The temporary files are registered so that an interrupted process removes them (ScratchPaths).
        using var modelScratch = ScratchPaths.Track(tempModel);
        IDisposable? dataScratch = null;
        try
        {
            if (placement.Entries.Count > 0)
            {
                tempData = TempName(directory, dataFileName);
                dataScratch = ScratchPaths.Track(tempData);
                WriteDataFile(tempData, placement);
            }
            long modelBytes;
            using (var stream = new FileStream(tempModel, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                using (var output = new CodedOutputStream(stream, leaveOpen: true)) proto.WriteTo(output);
                stream.Flush(flushToDisk: true);
                modelBytes = stream.Length;
            }
            if (tempData is not null) File.Move(tempData, dataPath, overwrite: true);
            tempData = null;
            File.Move(tempModel, modelPath, overwrite: true);
            return new SaveResult(modelPath, placement.Entries.Count > 0 ? dataPath : null, modelBytes,
                placement.Entries.Sum(e => e.Data.ByteLength), placement.Entries.Count, placement.ReusedTensors);
        }
        catch (Exception e) when (IsWriteFailure(e))
        {
            throw new ModelSaveException($"Could not save the model to '{path}': {e.Message}", e);
        }
        finally
        {
            TryDelete(tempModel);
            if (tempData is not null) TryDelete(tempData);
            dataScratch?.Dispose();
        }
    }

    /// <summary>
    /// Serializes <paramref name="model"/> into one in-memory ONNX file with every tensor inline
    /// (external data is read in). Throws when the result would exceed protobuf's 2 GiB limit.
    /// </summary>
    public static byte[] ToBytes(Model model)
    {
        var placement = new Placement(external: false, "", 0, 1);
        var proto = new ProtoWriter(placement).WriteModel(model);
        if (placement.InlineBytes > MaxInlineTensorBytes)
            throw new ModelSaveException(
                $"The model's tensors total {placement.InlineBytes} bytes, more than one protobuf file can hold (2 GiB).");
        return proto.ToByteArray();
    }

    /// <summary>
    /// Throws <see cref="ModelSaveException"/> when saving <paramref name="model"/> to <paramref name="path"/> would
    /// overwrite the input model or its external data, or write onto a folder: the checks <see cref="Save"/> makes
    /// first, for callers that want to fail before a long rewrite.
    /// </summary>
    public static void CheckTarget(Model model, string path, SaveOptions? options = null)
    {
        string modelPath = Path.GetFullPath(path);
        string dataFileName = options?.DataFileName ?? Path.GetFileName(modelPath) + ".data";
        CheckDoesNotOverwriteInputs(model, modelPath, Path.Combine(Path.GetDirectoryName(modelPath)!, dataFileName));
    }

    private static void CheckDoesNotOverwriteInputs(Model model, string modelPath, string dataPath)
    {
        if (string.Equals(Path.GetFullPath(modelPath), Path.GetFullPath(dataPath), StringComparison.Ordinal))
            throw new ModelSaveException($"The external data file cannot have the model's own name ('{modelPath}').");
        foreach (string target in new[] { modelPath, dataPath })
        {
            if (Directory.Exists(target)) throw new ModelSaveException($"Cannot save to '{target}': it is a folder.");
            var inputs = new List<string>(model.ExternalDataPaths);
            if (model.SourcePath is not null) inputs.Add(model.SourcePath);
            foreach (string input in inputs)
                if (SafePaths.SameFile(target, input))
                    throw new ModelSaveException(
                        $"Refusing to write '{target}': it is {(input == model.SourcePath ? "the input model" : "external data of the input model")}. " +
                        "Choose another output path.");
        }
    }

    /// <summary>
    /// A failed write: IO errors (a full disk), permissions, and a file larger than the file system or the
    /// process may write (EFBIG: FAT32's 4 GiB, RLIMIT_FSIZE), which .NET reports as an out-of-range length.
    /// </summary>
    internal static bool IsWriteFailure(Exception e) =>
        e is IOException or UnauthorizedAccessException || e is ArgumentOutOfRangeException { ParamName: "value" };

    private static long TotalTensorBytes(Model model) =>
        model.AllGraphs().SelectMany(g => g.Initializers).Sum(v => v.ConstValue!.Data is StringTensorData ? 0 : v.ConstValue.Data.ByteLength);

    private static void WriteDataFile(string path, Placement placement)
    {
        var buffer = new byte[4 << 20];
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1);
        stream.SetLength(placement.End);
        foreach (var entry in placement.Entries)
        {
            stream.Position = entry.Offset;
            using var source = entry.Data.OpenRead();
            long remaining = entry.Data.ByteLength;
            while (remaining > 0)
            {
                int read = source.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining));
                if (read == 0) throw new IOException($"Tensor '{entry.Name}' ended {remaining} bytes early while copying.");
                stream.Write(buffer, 0, read);
                remaining -= read;
            }
        }
        stream.Flush(flushToDisk: true);
    }

    private static string TempName(string directory, string fileName) =>
        Path.Combine(directory, $".{fileName}.{Guid.NewGuid():N}.tmp");

    private static void TryDelete(string path)
    {
        try
        {
            if (File.Exists(path)) File.Delete(path);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Decides inline or external per tensor and lays external tensors out at aligned offsets.</summary>
    private sealed class Placement : ITensorPlacement
    {
        private readonly bool _external;
        private readonly string _location;
        private readonly long _threshold;
        private readonly long _alignment;

        private readonly string? _reuseFolder;

        private readonly IReadOnlyDictionary<string, string>? _links;

        public Placement(bool external, string location, long threshold, long alignment, string? reuseFolder = null,
            IReadOnlyDictionary<string, string>? links = null)
        {
            _external = external;
            _location = location;
            _threshold = threshold;
            _alignment = alignment;
            _reuseFolder = reuseFolder;
            _links = links;
        }

        /// <summary>Tensors left in existing external files (by reference) and their total bytes.</summary>
        public int ReusedTensors { get; private set; }

        public List<(string Name, TensorData Data, long Offset)> Entries { get; } = new();

        public long End { get; private set; }

        public long InlineBytes { get; private set; }

        public ExternalPlacement? Place(Tensor tensor, TensorRole role)
        {
            long length = tensor.Data.ByteLength;
            // Attribute tensors (Constant nodes) stay inline unless they were external already: runtimes
            // handle external initializers everywhere, external attributes less reliably.
            bool eligible = role == TensorRole.Initializer || tensor.Data is ExternalTensorData;
            if (!_external || !eligible || length < _threshold)
            {
                InlineBytes += length;
                return null;
            }
            if (_links is not null && tensor.Data is ExternalTensorData linked && _links.TryGetValue(linked.FilePath, out var link) && link != _location)
            {
                ReusedTensors++;
                return new ExternalPlacement(link, linked.Offset, linked.Length);
            }
            if (_reuseFolder is not null && tensor.Data is ExternalTensorData existing
                && string.Equals(Path.GetDirectoryName(existing.FilePath), _reuseFolder, StringComparison.Ordinal)
                && Path.GetFileName(existing.FilePath) != _location)
            {
                ReusedTensors++;
                return new ExternalPlacement(Path.GetFileName(existing.FilePath), existing.Offset, existing.Length);
            }
            long offset = (End + _alignment - 1) / _alignment * _alignment;
            Entries.Add((tensor.Name, tensor.Data, offset));
            End = offset + length;
            return new ExternalPlacement(_location, offset, length);
        }
    }
}
