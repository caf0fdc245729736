using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Capture;

/// <summary>
/// What the probe's inputs are set to for one pass: per group a threshold (threshold mode) or k (top-k mode),
/// per projection an optional compensation vector. Starts dense: thresholds below every magnitude, k = K.
/// </summary>
public sealed class ProbeSettings
{
    private readonly ProbeLayout _layout;
    private readonly float[] _thresholds;
    private readonly long[] _k;
    private readonly Dictionary<string, float[]> _compensation = new();

    /// <summary>Dense settings for <paramref name="layout"/>.</summary>
    public ProbeSettings(ProbeLayout layout)
    {
        _layout = layout;
        _thresholds = new float[layout.Groups.Count];
        Array.Fill(_thresholds, -1f);
        _k = layout.Groups.Select(g => g.InFeatures).ToArray();
    }

    /// <summary>The layout these settings are for.</summary>
    public ProbeLayout Layout => _layout;

    /// <summary>A copy that can be changed independently.</summary>
    public ProbeSettings Clone()
    {
        var copy = new ProbeSettings(_layout);
        _thresholds.CopyTo(copy._thresholds, 0);
        _k.CopyTo(copy._k, 0);
        foreach (var (name, vector) in _compensation) copy._compensation[name] = vector;
        return copy;
    }

    /// <summary>A copy with the compensation vectors of these settings and the thresholds and k of <paramref name="selection"/>.</summary>
    public ProbeSettings WithSelectionOf(ProbeSettings selection)
    {
        if (selection._layout != _layout) throw new ArgumentException("The settings belong to another probe.", nameof(selection));
        var copy = Clone();
        selection._thresholds.CopyTo(copy._thresholds, 0);
        selection._k.CopyTo(copy._k, 0);
        return copy;
    }

    /// <summary>Sets <paramref name="group"/>'s threshold and k to those of <paramref name="source"/> (settings of the same probe).</summary>
    public void CopySelection(ProbeGroup group, ProbeSettings source)
    {
        if (source._layout != _layout) throw new ArgumentException("The settings belong to another probe.", nameof(source));
        _thresholds[group.Index] = source._thresholds[group.Index];
        _k[group.Index] = source._k[group.Index];
    }

    /// <summary>Makes group <paramref name="group"/> dense again.</summary>
    public void SetDense(ProbeGroup group)
    {
        _thresholds[group.Index] = -1f;
        _k[group.Index] = group.InFeatures;
    }

    /// <summary>Threshold mode: keep |x| &gt; <paramref name="threshold"/>.</summary>
    public void SetThreshold(ProbeGroup group, float threshold)
    {
        if (_layout.Mode != SparsityMode.Threshold) throw new InvalidOperationException("The probe selects by top-k; set k.");
        _thresholds[group.Index] = threshold;
    }

    /// <summary>Top-k mode: keep the <paramref name="k"/> largest magnitudes per token.</summary>
    public void SetK(ProbeGroup group, long k)
    {
        if (_layout.Mode != SparsityMode.TopK) throw new InvalidOperationException("The probe selects by threshold; set a threshold.");
        if (k < 1 || k > group.InFeatures) throw new ArgumentOutOfRangeException(nameof(k), $"k must be in [1, {group.InFeatures}], not {k}.");
        _k[group.Index] = k;
    }

    /// <summary>Sets (or with null removes) the compensation vector added after <paramref name="projection"/>.</summary>
    public void SetCompensation(ProbeProjection projection, float[]? vector)
    {
        if (vector is null) { _compensation.Remove(projection.CompensationInput); return; }
        if (vector.Length != projection.OutFeatures)
            throw new ArgumentException($"A compensation vector for {projection.Node} needs {projection.OutFeatures} values, not {vector.Length}.");
        _compensation[projection.CompensationInput] = vector;
    }

    /// <summary>The compensation vector of <paramref name="projection"/>, or null.</summary>
    public float[]? Compensation(ProbeProjection projection) => _compensation.GetValueOrDefault(projection.CompensationInput);

    internal float Threshold(ProbeGroup group) => _thresholds[group.Index];
    internal long K(ProbeGroup group) => _k[group.Index];
}
