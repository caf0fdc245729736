namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>The role a dense projection plays in a transformer block.</summary>
public enum ProjectionKind
{
    /// <summary>Not recognised by structure or name.</summary>
    Unknown,

    /// <summary>Attention query projection.</summary>
    Q,

    /// <summary>Attention key projection.</summary>
    K,

    /// <summary>Attention value projection.</summary>
    V,

    /// <summary>Fused query/key/value projection (one weight, output split three ways).</summary>
    Qkv,

    /// <summary>Attention output projection (reads attention's result, feeds the residual).</summary>
    O,

    /// <summary>Gated MLP: the projection that goes through the activation.</summary>
    Gate,

    /// <summary>MLP up projection (the linear branch of a gated MLP, or the first layer of a plain MLP).</summary>
    Up,

    /// <summary>Fused gate and up projection (one weight, output split in two).</summary>
    GateUp,

    /// <summary>MLP down projection (back to the hidden size).</summary>
    Down,

    /// <summary>The output head producing logits.</summary>
    LmHead,
}

/// <summary>Names of projection kinds as the CLI and JSON write them.</summary>
public static class ProjectionKindNames
{
    /// <summary>The short name: q k v o gate up down qkv gate_up lm_head unknown.</summary>
    public static string ToShortName(this ProjectionKind kind) => kind switch
    {
        ProjectionKind.Q => "q",
        ProjectionKind.K => "k",
        ProjectionKind.V => "v",
        ProjectionKind.Qkv => "qkv",
        ProjectionKind.O => "o",
        ProjectionKind.Gate => "gate",
        ProjectionKind.Up => "up",
        ProjectionKind.GateUp => "gate_up",
        ProjectionKind.Down => "down",
        ProjectionKind.LmHead => "lm_head",
        _ => "unknown",
    };

    /// <summary>Parses a short name; throws on an unknown one.</summary>
    public static ProjectionKind Parse(string name) =>
        Enum.GetValues<ProjectionKind>().FirstOrDefault(k => k.ToShortName() == name) is var kind && kind.ToShortName() == name
            ? kind
            : throw new ArgumentException($"Unknown projection kind '{name}'; expected one of q, k, v, o, gate, up, down, qkv, gate_up, lm_head.");
}
