using Microsoft.ML.OnnxRuntime;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// A part of the saved probe (<see cref="ProbeModelBuilder"/>) cut out by <see cref="GraphCut"/> and opened in
/// ONNX Runtime: the embedding (graph inputs to the first block's input), one decoder block (the residual stream
/// before it to the one after it, with its probe outputs), or the head (the last block's output to the logits).
/// Saved next to the probe in the work folder, it references the same external data file, so a block's session
/// maps only that block's weights. Fed per batch: the hidden states cut at (from <see cref="HiddenStates"/>), the
/// decoder inputs the cut still reads (token ids, mask, positions, empty caches), the probe settings of the groups
/// inside it, and whatever inputs an extension of the cut (a training graph) added.
/// </summary>
internal sealed class ProbeCut : IDisposable
{
    private readonly InferenceSession _session;
    private readonly IReadOnlyDictionary<string, NodeMetadata> _inputs;
    private readonly HashSet<string> _inputNames;
    private readonly string _path;

    private ProbeCut(InferenceSession session, string probePath, string path, string? hiddenInput, IReadOnlyList<string> outputs, ProbeLayout layout)
    {
        ProbePath = probePath;
        _session = session;
        _path = path;
        _inputs = session.InputMetadata;
        _inputNames = _inputs.Keys.ToHashSet(StringComparer.Ordinal);
        HiddenInput = hiddenInput;
        Outputs = outputs;
        Layout = layout;
    }

    /// <summary>The saved probe this was cut from.</summary>
    public string ProbePath { get; }
    /// <summary>The residual-stream input cut at (null for the embedding).</summary>
    public string? HiddenInput { get; }
    /// <summary>The outputs kept.</summary>
    public IReadOnlyList<string> Outputs { get; }
    /// <summary>The probe's layout (the groups whose inputs this cut has are fed from settings).</summary>
    public ProbeLayout Layout { get; }

    /// <summary>
    /// Loads the probe at <paramref name="probePath"/>, keeps what computes <paramref name="outputs"/> from
    /// <paramref name="hiddenInput"/> (or from the graph inputs alone), lets <paramref name="extend"/> add to it,
    /// saves it as <paramref name="fileName"/> beside the probe and opens it.
    /// </summary>
    public static ProbeCut Open(string probePath, ProbeLayout layout, string? hiddenInput, IReadOnlyList<string> outputs, string fileName,
        int threads, ExecutionDevice device, string? cudaProviderLibrary, Action<Model>? extend = null, bool memoryArena = true, bool prepack = true)
    {
        string path = Path.Combine(Path.GetDirectoryName(probePath)!, fileName);
        using (var model = ModelLoader.Load(probePath))
        {
            GraphCut.Keep(model, hiddenInput is null ? [] : [hiddenInput], outputs);
            extend?.Invoke(model);
            if (File.Exists(path)) File.Delete(path);
            ModelSaver.Save(model, path, new SaveOptions { ExternalData = ExternalDataMode.Auto, ReuseExternalDataInOutputFolder = true });
        }
        try
        {
            var session = ProbeSession.OpenSession(path, threads, memoryArena, device, cudaProviderLibrary, out _, prepack);
            return new ProbeCut(session, probePath, path, hiddenInput, session.OutputMetadata.Keys.ToArray(), layout);
        }
        catch
        {
            Delete(path);
            throw;
        }
    }

    /// <summary>
    /// Runs windows <paramref name="first"/> .. + <paramref name="count"/> of <paramref name="windows"/> in batches of
    /// <paramref name="batchSize"/>, the hidden states read from <paramref name="states"/> (its window i is window i of
    /// <paramref name="windows"/>), and hands each batch's <paramref name="outputs"/> to <paramref name="reduce"/>.
    /// <paramref name="batchInputs"/> (first window, count) adds the inputs an extension declared; they are disposed after the batch.
    /// </summary>
    public void Run(IReadOnlyList<int[]> windows, HiddenStates? states, int batchSize, ProbeSettings settings, IReadOnlyList<string> outputs,
        Action<ProbeBatch> reduce, int first = 0, int count = -1, Func<int, int, IReadOnlyList<(string Name, OrtValue Value)>>? batchInputs = null,
        Action<int>? progress = null)
    {
        if (settings.Layout != Layout) throw new ArgumentException("The settings belong to another probe.", nameof(settings));
        if (count < 0) count = windows.Count - first;
        if (HiddenInput is not null && states is null) throw new ArgumentNullException(nameof(states), "This cut reads hidden states.");
        if (states is not null && states.Windows != windows.Count) throw new ArgumentException($"{states.Windows} hidden states for {windows.Count} windows.", nameof(states));
        int length = windows[0].Length;
        var fixedNames = new List<string>();
        var fixedValues = new List<OrtValue>();
        // One buffer for every batch's hidden states, the stream's own (HiddenStates.BatchBuffer): a fresh array per batch,
        // then per run (megabytes, on the large-object heap), piled up as garbage faster than the GC collected it.
        var hidden = states?.BatchBuffer(Math.Min(batchSize, count));
        try
        {
            ProbeSession.AddSettings(settings, fixedNames, fixedValues, _inputNames);
            for (int start = first; start < first + count; start += batchSize)
            {
                int batch = Math.Min(batchSize, first + count - start);
                RunBatch(windows, states, hidden, start, batch, length, fixedNames, fixedValues, outputs, reduce, batchInputs);
                progress?.Invoke(start + batch - first);
            }
        }
        finally
        {
            foreach (var value in fixedValues) value.Dispose();
        }
    }

    private void RunBatch(IReadOnlyList<int[]> windows, HiddenStates? states, float[]? hidden, int first, int batch, int length, List<string> fixedNames,
        List<OrtValue> fixedValues, IReadOnlyList<string> outputs, Action<ProbeBatch> reduce,
        Func<int, int, IReadOnlyList<(string Name, OrtValue Value)>>? batchInputs)
    {
        var names = new List<string>(fixedNames);
        var values = new List<OrtValue>(fixedValues);
        var owned = new List<OrtValue>();
        void Add(string name, OrtValue value)
        {
            names.Add(name);
            values.Add(value);
            owned.Add(value);
        }
        try
        {
            if (batchInputs is not null)
                foreach (var (name, value) in batchInputs(first, batch)) Add(name, value);
            if (HiddenInput is not null)
            {
                int floats = states!.FloatsPerWindow;
                for (int b = 0; b < batch; b++) states.Read(first + b, hidden!.AsSpan(b * floats, floats));
                Add(HiddenInput, ProbeElements.Tensor(hidden!.AsMemory(0, batch * floats), [batch, length, states.Hidden], _inputs[HiddenInput].ElementDataType));
            }
            var (mask, positions) = DecoderInputs.ForWindows(batch, length);
            foreach (var name in _inputNames.Except(names).ToArray())
            {
                switch (name)
                {
                    case "input_ids":
                        var ids = new long[batch * length];
                        for (int b = 0; b < batch; b++)
                            for (int t = 0; t < length; t++) ids[b * length + t] = windows[first + b][t];
                        Add(name, OrtValue.CreateTensorValueFromMemory(ids, [batch, length]));
                        break;
                    case "attention_mask":
                        Add(name, OrtValue.CreateTensorValueFromMemory(mask, [batch, length]));
                        break;
                    case "position_ids":
                        Add(name, OrtValue.CreateTensorValueFromMemory(positions, [batch, length]));
                        break;
                    case var _ when name.StartsWith("past_key_values.", StringComparison.Ordinal):
                        var meta = _inputs[name];
                        if (meta.Dimensions.Length != 4 || meta.Dimensions[1] <= 0 || meta.Dimensions[3] <= 0)
                            throw new CalibrationModelException($"'{name}' is not [batch, kv_heads, past_length, head_dim] with fixed heads and head size");
                        Add(name, OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, meta.ElementDataType,
                            [batch, meta.Dimensions[1], 0, meta.Dimensions[3]]));
                        break;
                    default:
                        throw new CalibrationModelException($"a block cut out of the model reads '{name}', which sequential calibration does not know how to feed");
                }
            }
            using var runOptions = new RunOptions();
            using var results = _session.Run(runOptions, names, values, outputs);
            reduce(new ProbeBatch(first, batch, length, outputs, results.ToArray()));
        }
        finally
        {
            foreach (var value in owned) value.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _session.Dispose();
        Delete(_path);
    }

    private static void Delete(string path)
    {
        if (File.Exists(path)) File.Delete(path);
        if (File.Exists(path + ".data")) File.Delete(path + ".data");
    }
}
