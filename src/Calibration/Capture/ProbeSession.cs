using Microsoft.ML.OnnxRuntime;
using SparseOnnx.CustomOps;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Calibration.Capture;

/// <summary>The outputs of one probe run over a batch of windows, valid only during the callback.</summary>
public sealed class ProbeBatch
{
    private readonly IReadOnlyList<string> _names;
    private readonly IReadOnlyList<OrtValue> _values;

    internal ProbeBatch(int firstWindow, int windows, int length, IReadOnlyList<string> names, IReadOnlyList<OrtValue> values)
    {
        FirstWindow = firstWindow;
        Windows = windows;
        Length = length;
        _names = names;
        _values = values;
    }

    /// <summary>Index of the batch's first window in the list that was run.</summary>
    public int FirstWindow { get; }
    /// <summary>Windows in the batch.</summary>
    public int Windows { get; }
    /// <summary>Tokens per window.</summary>
    public int Length { get; }

    /// <summary>
    /// A requested output as float32: a span over ONNX Runtime's buffer, or for a float16 or bfloat16 model's tensor
    /// over its widened copy (do not keep it past the callback).
    /// </summary>
    public ReadOnlySpan<float> Floats(string name)
    {
        int index = IndexOf(name);
        _widened ??= new float[]?[_values.Count];
        return ProbeElements.AsFloats(_values[index], ref _widened[index]);
    }

    private float[]?[]? _widened;

    /// <summary>The shape of a requested output.</summary>
    public long[] Shape(string name) => _values[IndexOf(name)].GetTensorTypeAndShape().Shape;

    private int IndexOf(string name)
    {
        for (int i = 0; i < _names.Count; i++) if (_names[i] == name) return i;
        throw new ArgumentException($"'{name}' was not requested from this run.", nameof(name));
    }
}

/// <summary>
/// The capture engine: the probe model (<see cref="ProbeModelBuilder"/>) saved to a work folder and opened in
/// ONNX Runtime once; each <see cref="Run"/> feeds windows in batches with the given settings and hands each
/// batch's requested outputs to a reducer, then frees them. Memory is bounded by one batch's outputs,
/// whatever the number of windows.
/// </summary>
public sealed class ProbeSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly DecoderSignature _signature;
    private readonly HashSet<string> _inputs;

    private ProbeSession(InferenceSession session, DecoderSignature signature, ProbeLayout layout, string modelPath)
    {
        _session = session;
        _signature = signature;
        Layout = layout;
        ModelPath = modelPath;
        _inputs = session.InputMetadata.Keys.ToHashSet();
    }

    /// <summary>What the probe exposes.</summary>
    public ProbeLayout Layout { get; }

    /// <summary>The saved probe model.</summary>
    public string ModelPath { get; }

    /// <summary>Where the probe runs (<see cref="ExecutionDevice.Auto"/> resolved).</summary>
    public ExecutionDevice Device { get; private init; }

    /// <summary>What saving it wrote: the tensors it copied and those it left referencing the source's data.</summary>
    public SaveResult Saved { get; private init; } = null!;

    /// <summary>The logits output's name.</summary>
    public string Logits => _signature.Logits;

    /// <summary>Vocabulary size from the logits' declared shape, or -1 when the model leaves it symbolic.</summary>
    public long Vocabulary => _signature.Vocabulary;

    /// <summary>
    /// Saves <paramref name="probe"/> (instrumented by <see cref="ProbeModelBuilder"/>) as <c>probe.onnx</c> in
    /// <paramref name="workFolder"/> (large weights go to an external data file there) and opens it.
    /// </summary>
    public static ProbeSession Open(Model probe, ProbeLayout layout, string workFolder, int threads, string fileName = "probe.onnx", bool memoryArena = true,
        ExecutionDevice device = ExecutionDevice.Cpu, string? cudaProviderLibrary = null, IReadOnlyDictionary<string, string>? externalDataLinks = null)
    {
        Directory.CreateDirectory(workFolder);
        string path = Path.Combine(workFolder, fileName);
        // External data linked into the work folder (SourceStaging) or already there is referenced, not copied.
        var saved = ModelSaver.Save(probe, path, SaveOptionsFor(externalDataLinks));
        var session = OpenSession(path, threads, memoryArena, device, cudaProviderLibrary, out var used);
        try
        {
            return new ProbeSession(session, DecoderSignature.Discover(session, path), layout, path) { Saved = saved, Device = used };
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>How probes are saved in the work folder: external data referenced where it is already there or linked there, not copied.</summary>
    internal static SaveOptions SaveOptionsFor(IReadOnlyDictionary<string, string>? externalDataLinks) => new()
    {
        ExternalData = ExternalDataMode.Auto,
        ReuseExternalDataInOutputFolder = true,
        ExternalDataLinks = externalDataLinks,
    };

    /// <summary>Opens a saved probe (or a part of one) as every calibration session is opened.</summary>
    internal static InferenceSession OpenSession(string path, int threads, bool memoryArena, ExecutionDevice device, string? cudaProviderLibrary,
        out ExecutionDevice used, bool prepack = true)
    {
        using var options = new SessionOptions
        {
            // Basic optimizations only: the probe's outputs are intermediate values that fusions would otherwise absorb.
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            EnableCpuMemArena = memoryArena,
        };
        // Prepacking copies each MatMul weight into MLAS's layout while the original is still held: for a head
        // read once per held-out stream, the 1 GB lm_head of a 1B model briefly took 2 GB for little gain.
        if (!prepack) options.AddSessionConfigEntry("session.disable_prepacking", "1");
        options.RegisterSparseOnnxOps();
        used = ExecutionProviders.Apply(options, device, cudaProviderLibrary);
        try
        {
            return new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException e) when (used == ExecutionDevice.Cpu && e.Message.Contains("Could not find an implementation", StringComparison.Ordinal))
        {
            // Most often a bfloat16 model: the CPU provider has float16 fallbacks but no bfloat16 kernels.
            throw new CalibrationModelException($"ONNX Runtime's CPU provider cannot run it ({e.Message.Trim()}); a bfloat16 model runs on the CUDA provider " +
                "(--device cuda), or calibrate its float32 or float16 export and apply the plan to it");
        }
    }

    /// <summary>The probe inputs <paramref name="settings"/> set (every group's selection and every projection's vector), created for one run.</summary>
    internal static void AddSettings(ProbeSettings settings, List<string> names, List<OrtValue> values, IReadOnlySet<string>? only = null)
    {
        foreach (var group in settings.Layout.Groups)
        {
            if (only is null || only.Contains(group.SelectionInput))
            {
                names.Add(group.SelectionInput);
                values.Add(settings.Layout.Mode == SparsityMode.Threshold
                    ? OrtValue.CreateTensorValueFromMemory(new[] { settings.Threshold(group) }, [])
                    : OrtValue.CreateTensorValueFromMemory(new[] { settings.K(group) }, [1]));
            }
            foreach (var projection in group.Members)
            {
                if (only is not null && !only.Contains(projection.CompensationInput)) continue;
                names.Add(projection.CompensationInput);
                values.Add(OrtValue.CreateTensorValueFromMemory(settings.Compensation(projection) ?? new float[projection.OutFeatures], [projection.OutFeatures]));
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="windows"/> (each a sequence of token ids, all the same length) in batches of
    /// <paramref name="batchSize"/> with <paramref name="settings"/>, fetching <paramref name="outputs"/>, and calls
    /// <paramref name="reduce"/> with each batch in order. <paramref name="progress"/> receives windows done.
    /// <paramref name="batchInputs"/> feeds inputs a derived model added (a training graph's parameters and
    /// references), given the batch's first window and size; its values are disposed after the batch.
    /// </summary>
    public void Run(IReadOnlyList<int[]> windows, int batchSize, ProbeSettings settings, IReadOnlyList<string> outputs,
        Action<ProbeBatch> reduce, Action<int>? progress = null, Func<int, int, IReadOnlyList<(string Name, OrtValue Value)>>? batchInputs = null)
    {
        if (settings.Layout != Layout) throw new ArgumentException("The settings belong to another probe.", nameof(settings));
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), "The batch size must be at least 1.");
        if (windows.Count == 0) return;
        int length = windows[0].Length;
        if (windows.Any(w => w.Length != length)) throw new ArgumentException("Windows must all have the same length.", nameof(windows));

        var fixedValues = new List<OrtValue>();
        var fixedNames = new List<string>();
        try
        {
            AddSettings(settings, fixedNames, fixedValues);
            for (int first = 0; first < windows.Count; first += batchSize)
            {
                int batch = Math.Min(batchSize, windows.Count - first);
                RunBatch(windows, first, batch, length, fixedNames, fixedValues, outputs, reduce, batchInputs);
                progress?.Invoke(first + batch);
            }
        }
        finally
        {
            foreach (var value in fixedValues) value.Dispose();
        }
    }

    /// <summary>One output over all <paramref name="windows"/>, batch after batch, concatenated.</summary>
    public float[] Capture(IReadOnlyList<int[]> windows, int batchSize, ProbeSettings settings, string output)
    {
        // One array of the final size: a growing list held up to twice the result while it doubled, then copied it
        // (a large vocabulary's logits over the held-out windows are a gigabyte).
        float[]? values = null;
        Run(windows, batchSize, settings, [output], batch =>
        {
            var floats = batch.Floats(output);
            long perWindow = floats.Length / batch.Windows;
            values ??= new float[checked(perWindow * windows.Count)];
            floats.CopyTo(values.AsSpan(checked((int)(batch.FirstWindow * perWindow)), floats.Length));
        });
        return values ?? [];
    }

    private void RunBatch(IReadOnlyList<int[]> windows, int first, int batch, int length, List<string> fixedNames, List<OrtValue> fixedValues,
        IReadOnlyList<string> outputs, Action<ProbeBatch> reduce, Func<int, int, IReadOnlyList<(string Name, OrtValue Value)>>? batchInputs)
    {
        var names = new List<string>(fixedNames);
        var values = new List<OrtValue>(fixedValues);
        var owned = new List<OrtValue>();
        try
        {
            if (batchInputs is not null)
                foreach (var (name, value) in batchInputs(first, batch))
                {
                    owned.Add(value);
                    names.Add(name);
                    values.Add(value);
                }
            var ids = new long[batch * length];
            for (int b = 0; b < batch; b++)
                for (int t = 0; t < length; t++) ids[b * length + t] = windows[first + b][t];
            var (mask, positions) = DecoderInputs.ForWindows(batch, length);
            DecoderInputs.Add(_signature, ids, mask, positions, batch, length, past: null, (name, value, own) =>
            {
                names.Add(name);
                values.Add(value);
                if (own) owned.Add(value);
            });
            var missing = _inputs.Except(names).ToList();
            if (missing.Count > 0)
                throw new CalibrationModelException($"the probe has inputs calibration does not know how to feed: {string.Join(", ", missing)}");
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
    public void Dispose() => _session.Dispose();
}
