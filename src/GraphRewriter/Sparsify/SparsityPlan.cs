using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>
/// One projection's entry in a <see cref="SparsityPlan"/>: how sparse to make it, and the spontaneous-neuron
/// values to add after it. A projection is named by its node (and, for subgraphs, its graph path as
/// <c>sparseonnx inspect</c> prints it); the kind, layer and feature counts, when given, are checked against
/// the model so a plan made for another model is refused.
/// </summary>
public sealed record PlanEntry
{
    /// <summary>The projection's node name (or <c>OpType-&gt;output</c> for unnamed nodes, as the report writes it).</summary>
    public required string Node { get; init; }

    /// <summary>The graph path (<c>main</c>, <c>main/&lt;node&gt;/then_branch</c>); null matches the node in every graph.</summary>
    public string? Graph { get; init; }

    /// <summary>Expected kind (short name), checked when given.</summary>
    public string? Kind { get; init; }

    /// <summary>Expected layer, checked when given.</summary>
    public int? Layer { get; init; }

    /// <summary>Expected K, checked when given.</summary>
    public long? InFeatures { get; init; }

    /// <summary>Expected N, checked when given.</summary>
    public long? OutFeatures { get; init; }

    /// <summary>Entries kept per token (top-k); exclusive with <see cref="Threshold"/>.</summary>
    public long? K { get; init; }

    /// <summary>Magnitude threshold; exclusive with <see cref="K"/>.</summary>
    public float? Threshold { get; init; }

    /// <summary>The spontaneous-neuron vector [N], or null for none (zeros are then used, unless disabled).</summary>
    public float[]? Spontaneous { get; init; }
}

/// <summary>
/// Per-projection sparsity settings and spontaneous-neuron values, as the calibration pass writes them and
/// <c>sparseonnx sparsify --plan</c> reads them: a JSON file plus a binary file of float32 vectors beside it
/// (format: docs/plan-format.md).
/// </summary>
public sealed class SparsityPlan
{
    /// <summary>The value of the JSON's <c>format</c> field.</summary>
    public const string FormatName = "sparseonnx-plan";

    /// <summary>The format version this code reads and writes.</summary>
    public const int FormatVersion = 1;

    private const long MaxDataBytes = 1L << 30;

    /// <summary>Creates a plan.</summary>
    public SparsityPlan(IEnumerable<PlanEntry> projections, string? calibrationSource = null)
        : this(projections, calibrationSource, "the plan") { }

    private SparsityPlan(IEnumerable<PlanEntry> projections, string? calibrationSource, string where)
    {
        Projections = projections.ToList();
        CalibrationSource = calibrationSource;
        Check(Projections, where);
    }

    /// <summary>What the values were calibrated on (free text: data, token count, model); recorded as provenance.</summary>
    public string? CalibrationSource { get; }

    /// <summary>The entries, in file order.</summary>
    public IReadOnlyList<PlanEntry> Projections { get; }

    /// <summary>The file the plan was loaded from, when it was.</summary>
    public string? SourcePath { get; private init; }

    /// <summary>Name of the binary file that <see cref="Save"/> writes beside <paramref name="planPath"/>.</summary>
    public static string DataFileNameFor(string planPath) => Path.GetFileNameWithoutExtension(planPath) + ".spontaneous.bin";

    /// <summary>Reads a plan and its spontaneous values. Throws <see cref="InvalidPlanException"/> naming the problem.</summary>
    public static SparsityPlan Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new InvalidPlanException($"Plan file '{path}' not found.");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(full), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidPlanException($"Plan '{path}' is not valid JSON: {e.Message}", e);
        }
        if (root is not JsonObject plan) throw new InvalidPlanException($"Plan '{path}' must be a JSON object.");
        string where = $"plan '{path}'";
        if (Text(plan, "format", where) != FormatName)
            throw new InvalidPlanException($"{Capitalized(where)} is not a SparseOnnx plan (its \"format\" is not \"{FormatName}\").");
        long version = Integer(plan, "version", where) ?? throw new InvalidPlanException($"{Capitalized(where)} has no \"version\".");
        if (version != FormatVersion)
            throw new InvalidPlanException($"{Capitalized(where)} has format version {version}; this SparseOnnx reads version {FormatVersion}.");

        string? calibration = plan["calibration"] switch
        {
            null => null,
            JsonObject o => o["source"] is JsonValue v && v.TryGetValue(out string? s) ? s : o.ToJsonString(),
            JsonValue v when v.TryGetValue(out string? s) => s,
            _ => throw new InvalidPlanException($"{Capitalized(where)}: \"calibration\" must be an object or a string."),
        };

        byte[]? data = null;
        if (Text(plan, "spontaneous_data", where) is { } dataLocation)
            data = ReadData(Path.GetDirectoryName(full)!, dataLocation, where);

        if (plan["projections"] is not JsonArray entries)
            throw new InvalidPlanException($"{Capitalized(where)} has no \"projections\" array.");
        var result = new List<PlanEntry>();
        for (int i = 0; i < entries.Count; i++)
        {
            string at = $"{where}, projections[{i}]";
            if (entries[i] is not JsonObject e) throw new InvalidPlanException($"{Capitalized(at)} must be an object.");
            string node = Text(e, "node", at) is { Length: > 0 } n ? n : throw new InvalidPlanException($"{Capitalized(at)} has no \"node\".");
            at = $"{where}, projection '{node}'";
            float[]? spontaneous = null;
            if (e["spontaneous"] is { } s)
            {
                if (s is not JsonObject range) throw new InvalidPlanException($"{Capitalized(at)}: \"spontaneous\" must be an object with offset and count.");
                if (data is null) throw new InvalidPlanException($"{Capitalized(at)} has spontaneous values but the plan names no \"spontaneous_data\" file.");
                spontaneous = Slice(data, Integer(range, "offset", at), Integer(range, "count", at), at);
            }
            float? threshold = e["threshold"] is null ? null : (float)Number(e, "threshold", at);
            result.Add(new PlanEntry
            {
                Node = node,
                Graph = Text(e, "graph", at),
                Kind = Text(e, "kind", at),
                Layer = (int?)Integer(e, "layer", at),
                InFeatures = Integer(e, "in_features", at),
                OutFeatures = Integer(e, "out_features", at),
                K = Integer(e, "k", at),
                Threshold = threshold,
                Spontaneous = spontaneous,
            });
        }
        return new SparsityPlan(result, calibration, where) { SourcePath = full };
    }

    /// <summary>
    /// Writes the plan to <paramref name="path"/> and its spontaneous values to <see cref="DataFileNameFor"/> beside
    /// it, each file atomically (data first, so a visible plan always finds its data). Returns the same plan with
    /// <see cref="SourcePath"/> set to that file, so a rewrite from it records where it can be re-made from without
    /// reading it back.
    /// </summary>
    public SparsityPlan Save(string path)
    {
        string full = Path.GetFullPath(path);
        string dataName = DataFileNameFor(full);
        var data = new MemoryStream();
        var entries = new JsonArray();
        foreach (var p in Projections)
        {
            var entry = new JsonObject { ["node"] = p.Node };
            if (p.Graph is not null) entry["graph"] = p.Graph;
            if (p.Kind is not null) entry["kind"] = p.Kind;
            if (p.Layer is not null) entry["layer"] = p.Layer;
            if (p.InFeatures is not null) entry["in_features"] = p.InFeatures;
            if (p.OutFeatures is not null) entry["out_features"] = p.OutFeatures;
            if (p.K is not null) entry["k"] = p.K;
            if (p.Threshold is not null) entry["threshold"] = p.Threshold;
            if (p.Spontaneous is not null)
            {
                entry["spontaneous"] = new JsonObject { ["offset"] = data.Length, ["count"] = p.Spontaneous.Length };
                var bytes = new byte[p.Spontaneous.Length * 4];
                for (int i = 0; i < p.Spontaneous.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), p.Spontaneous[i]);
                data.Write(bytes);
            }
            entries.Add(entry);
        }
        var root = new JsonObject { ["format"] = FormatName, ["version"] = FormatVersion };
        if (CalibrationSource is not null) root["calibration"] = new JsonObject { ["source"] = CalibrationSource };
        if (data.Length > 0) root["spontaneous_data"] = dataName;
        root["projections"] = entries;
        if (data.Length > 0) AtomicFile.Write(Path.Combine(Path.GetDirectoryName(full)!, dataName), s => data.WriteTo(s));
        AtomicFile.Write(full, s => s.Write(System.Text.Encoding.UTF8.GetBytes(root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n")));
        return new SparsityPlan(Projections, CalibrationSource) { SourcePath = full };
    }

    private static void Check(IReadOnlyList<PlanEntry> entries, string where)
    {
        var seen = new HashSet<(string, string?)>();
        foreach (var e in entries)
        {
            string at = $"{where}, projection '{e.Node}'";
            if (string.IsNullOrEmpty(e.Node)) throw new InvalidPlanException($"{Capitalized(where)} has an entry without a node name.");
            if (!seen.Add((e.Node, e.Graph))) throw new InvalidPlanException($"{Capitalized(at)} appears twice.");
            if (e.K is not null && e.Threshold is not null)
                throw new InvalidPlanException($"{Capitalized(at)} gives both k and threshold; give one.");
            if (e.K is < 1) throw new InvalidPlanException($"{Capitalized(at)}: k must be at least 1, not {e.K}.");
            if (e.Threshold is { } t && !(t >= 0 && float.IsFinite(t)))
                throw new InvalidPlanException($"{Capitalized(at)}: threshold must be a finite number ≥ 0, not {t}.");
            if (e.Spontaneous is { } s && s.Any(v => !float.IsFinite(v)))
                throw new InvalidPlanException($"{Capitalized(at)}: the spontaneous values contain NaN or infinity.");
            if (e.Spontaneous is { } v2 && e.OutFeatures is { } n && v2.Length != n)
                throw new InvalidPlanException($"{Capitalized(at)}: {v2.Length} spontaneous values for {n} output features.");
        }
    }

    private static byte[] ReadData(string planDirectory, string location, string where)
    {
        if (location.Length == 0 || Path.IsPathRooted(location) || location.Split('/', '\\').Any(p => p == ".."))
            throw new InvalidPlanException(
                $"{Capitalized(where)}: \"spontaneous_data\" must be a path relative to the plan's folder, without '..', not '{location}'.");
        string realDirectory = SafePaths.RealPath(planDirectory);
        string candidate = Path.GetFullPath(Path.Combine(realDirectory, location));
        if (!File.Exists(candidate)) throw new InvalidPlanException($"{Capitalized(where)}: spontaneous data file '{location}' not found.");
        if (!SafePaths.IsInside(SafePaths.RealPath(candidate), realDirectory))
            throw new InvalidPlanException($"{Capitalized(where)}: spontaneous data file '{location}' lies outside the plan's folder.");
        long length = new FileInfo(candidate).Length;
        if (length > MaxDataBytes)
            throw new InvalidPlanException($"{Capitalized(where)}: spontaneous data file '{location}' is {length} bytes; more than a plan needs.");
        return File.ReadAllBytes(candidate);
    }

    private static float[] Slice(byte[] data, long? offset, long? count, string where)
    {
        if (offset is not { } o || count is not { } c)
            throw new InvalidPlanException($"{Capitalized(where)}: \"spontaneous\" needs \"offset\" and \"count\".");
        if (o < 0 || c < 1 || o % 4 != 0 || o + c * 4 > data.Length)
            throw new InvalidPlanException(
                $"{Capitalized(where)}: spontaneous values at offset {o}, count {c} do not fit the {data.Length}-byte data file " +
                "(offsets are multiples of 4; values are float32).");
        var values = new float[c];
        for (int i = 0; i < c; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan((int)o + i * 4, 4));
        return values;
    }

    private static string? Text(JsonObject o, string key, string where) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        _ => throw new InvalidPlanException($"{Capitalized(where)}: \"{key}\" must be a string."),
    };

    private static long? Integer(JsonObject o, string key, string where)
    {
        if (o[key] is null) return null;
        if (o[key] is JsonValue v && v.TryGetValue(out long l)) return l;
        if (o[key] is JsonValue d && d.TryGetValue(out double x) && x == Math.Floor(x) && Math.Abs(x) < 1e15) return (long)x;
        throw new InvalidPlanException($"{Capitalized(where)}: \"{key}\" must be an integer, not {o[key]!.ToJsonString()}.");
    }

    private static double Number(JsonObject o, string key, string where) =>
        o[key] is JsonValue v && v.TryGetValue(out double d) ? d
        : throw new InvalidPlanException($"{Capitalized(where)}: \"{key}\" must be a number, not {o[key]?.ToJsonString() ?? "null"}.");

    private static string Capitalized(string s) => s.Length == 0 ? s : char.ToUpper(s[0], CultureInfo.InvariantCulture) + s[1..];
}
