namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// One residual-stream tensor per window ([length, hidden] floats each), as sequential calibration carries
/// them from block to block: in memory while they fit the budget it is given, otherwise in a file of the work
/// folder (written once per block, read back batch by batch), so the memory they take does not grow with the
/// number of windows. GPTQ keeps the same tensors on the GPU; a 2-core machine with a large model keeps them
/// on disk.
/// </summary>
public sealed class HiddenStates : IDisposable
{
    private readonly float[][]? _memory;
    private readonly FileStream? _file;
    private readonly string? _path;
    private readonly byte[]? _buffer;

    private HiddenStates(int windows, int length, int hidden, float[][]? memory, FileStream? file, string? path)
    {
        Windows = windows;
        Length = length;
        Hidden = hidden;
        _memory = memory;
        _file = file;
        _path = path;
        if (file is not null) _buffer = new byte[FloatsPerWindow * sizeof(float)];
    }

    /// <summary>Windows held.</summary>
    public int Windows { get; }
    /// <summary>Tokens per window.</summary>
    public int Length { get; }
    /// <summary>Values per token.</summary>
    public int Hidden { get; }
    /// <summary>Floats one window holds.</summary>
    public int FloatsPerWindow => Length * Hidden;
    /// <summary>Whether the tensors live in a file rather than in memory.</summary>
    public bool OnDisk => _file is not null;

    /// <summary>
    /// Room for <paramref name="windows"/> × <paramref name="length"/> × <paramref name="hidden"/> floats: in memory
    /// when they take at most <paramref name="budgetBytes"/>, else in a new file <paramref name="fileName"/> in <paramref name="folder"/>.
    /// </summary>
    public static HiddenStates Create(int windows, int length, int hidden, long budgetBytes, string folder, string fileName)
    {
        if (windows < 1 || length < 1 || hidden < 1) throw new ArgumentOutOfRangeException(nameof(windows), "Hidden states need at least one window, token and value.");
        if ((long)length * hidden > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(length), "One window's hidden states exceed the largest array.");
        long bytes = (long)windows * length * hidden * sizeof(float);
        if (bytes <= budgetBytes)
            return new HiddenStates(windows, length, hidden, Enumerable.Range(0, windows).Select(_ => new float[length * hidden]).ToArray(), null, null);
        string path = Path.Combine(folder, fileName);
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
        file.SetLength(bytes);
        return new HiddenStates(windows, length, hidden, null, file, path);
    }

    /// <summary>Stores window <paramref name="window"/>.</summary>
    public void Write(int window, ReadOnlySpan<float> values)
    {
        Check(window, values.Length);
        if (_memory is not null) { values.CopyTo(_memory[window]); return; }
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).CopyTo(_buffer);
        _file!.Position = (long)window * _buffer!.Length;
        _file.Write(_buffer, 0, _buffer.Length);
    }

    /// <summary>Reads window <paramref name="window"/> into <paramref name="destination"/>.</summary>
    public void Read(int window, Span<float> destination)
    {
        Check(window, destination.Length);
        if (_memory is not null) { _memory[window].CopyTo(destination); return; }
        _file!.Position = (long)window * _buffer!.Length;
        _file.ReadExactly(_buffer, 0, _buffer.Length);
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(_buffer).CopyTo(destination);
    }

    /// <summary>
    /// A buffer for <paramref name="windows"/> windows of these states, owned by this stream and reused by every run
    /// that reads it: a fresh one per run (64 MB per batch on the 1B model) was large-object garbage that the GC let
    /// pile up, block after block, to a gigabyte.
    /// </summary>
    internal float[] BatchBuffer(int windows)
    {
        long length = (long)windows * FloatsPerWindow;
        if (_batch is null || _batch.LongLength < length) _batch = new float[length];
        return _batch;
    }

    private float[]? _batch;

    /// <summary>Windows <paramref name="first"/> .. <paramref name="first"/> + <paramref name="count"/> − 1, one after another, in a new array.</summary>
    public float[] ReadBatch(int first, int count)
    {
        var values = new float[(long)count * FloatsPerWindow];
        for (int i = 0; i < count; i++) Read(first + i, values.AsSpan(i * FloatsPerWindow, FloatsPerWindow));
        return values;
    }

    /// <summary>Stores consecutive windows from <paramref name="values"/>, starting at <paramref name="first"/>.</summary>
    public void WriteBatch(int first, ReadOnlySpan<float> values)
    {
        if (values.Length % FloatsPerWindow != 0) throw new ArgumentException($"{values.Length} values are not whole windows of {FloatsPerWindow}.", nameof(values));
        for (int i = 0; i < values.Length / FloatsPerWindow; i++) Write(first + i, values.Slice(i * FloatsPerWindow, FloatsPerWindow));
    }

    private void Check(int window, int length)
    {
        if ((uint)window >= (uint)Windows) throw new ArgumentOutOfRangeException(nameof(window), $"Window {window} is not in [0, {Windows}).");
        if (length != FloatsPerWindow) throw new ArgumentException($"A window holds {FloatsPerWindow} values ({Length} × {Hidden}), not {length}.");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _file?.Dispose();  // DeleteOnClose removes it
        if (_path is not null && File.Exists(_path)) File.Delete(_path);
    }
}
