using System.Text.RegularExpressions;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>
/// The fallback when structure is not conclusive: exporters usually leave the module path in node names
/// (<c>/model/layers.3/self_attn/q_proj/MatMul</c>), weight names (<c>transformer.h.3.attn.c_attn.weight</c>) or
/// node metadata. Names are hints only: they never override what the structure decided.
/// </summary>
internal static partial class NameHints
{
    private static readonly (Regex Pattern, ProjectionKind Kind)[] KindPatterns =
    [
        (Token("qkv_proj|query_key_value|c_attn|qkv|wqkv|in_proj|qkv_linear"), ProjectionKind.Qkv),
        (Token("gate_up_proj|gate_up|w13|fc1_gate_up"), ProjectionKind.GateUp),
        (Token("q_proj|query|wq|to_q|q_lin|q"), ProjectionKind.Q),
        (Token("k_proj|key|wk|to_k|k_lin|k"), ProjectionKind.K),
        (Token("v_proj|value|wv|to_v|v_lin|v"), ProjectionKind.V),
        (new Regex(@"(^|[/._])(o_proj|out_proj|wo|to_out|attn[/._]c_proj|attention[/._]dense|self_attn[/._]dense|attention[/._]output[/._]dense|dense_attn)([/._]|$)", RegexOptions.IgnoreCase), ProjectionKind.O),
        (Token("gate_proj|w1|wi_0|gate"), ProjectionKind.Gate),
        (Token("up_proj|w3|wi_1|c_fc|fc1|dense_h_to_4h|fc_in|intermediate[/._]dense"), ProjectionKind.Up),
        (new Regex(@"(^|[/._])(down_proj|w2|fc2|dense_4h_to_h|fc_out|mlp[/._]c_proj|mlp[/._]dense_4h_to_h|output[/._]dense)([/._]|$)", RegexOptions.IgnoreCase), ProjectionKind.Down),
        (Token("lm_head|embed_out|output_layer"), ProjectionKind.LmHead),
    ];

    private static Regex Token(string alternatives) =>
        new($@"(^|[/._])({alternatives})([/._]|$)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    [GeneratedRegex(@"(?:^|[/._])(?:layers?|h|blocks?|decoder[._]layers?|encoder[._]layers?|transformer[._]layers?)[/._](\d{1,5})(?:[/._]|$)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex LayerPattern();

    /// <summary>The texts names may be read from: node name, weight name, node metadata values.</summary>
    private static IEnumerable<string> Names(Projection p)
    {
        if (!string.IsNullOrEmpty(p.Node.Name)) yield return p.Node.Name;
        yield return p.Weight.Name;
        foreach (var (_, value) in p.Node.MetadataProps) yield return value;
    }

    /// <summary>The kind the names suggest, when they suggest exactly one.</summary>
    public static ProjectionKind? KindFromNames(Projection p)
    {
        var kinds = new HashSet<ProjectionKind>();
        foreach (string name in Names(p))
            foreach (var (pattern, kind) in KindPatterns)
                if (pattern.IsMatch(name))
                {
                    kinds.Add(kind);
                    break; // the first (most specific) pattern that matches a name wins for that name
                }
        return kinds.Count == 1 ? kinds.Single() : null;
    }

    /// <summary>The layer number the names suggest, when they agree on one.</summary>
    public static int? LayerFromNames(Projection p)
    {
        var layers = Names(p).Select(n => LayerPattern().Match(n)).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).Distinct().ToList();
        return layers.Count == 1 ? layers[0] : null;
    }

    /// <summary>Fills kind and layer from names where structure left them unknown.</summary>
    public static void Apply(GraphContext context)
    {
        foreach (var projection in context.Projections)
        {
            if (projection.KindSource == KindSource.None && KindFromNames(projection) is { } kind)
            {
                projection.Kind = kind;
                projection.KindSource = KindSource.NameHint;
                projection.Reason = (projection.Reason is null ? "" : projection.Reason + "; ") + "kind taken from its name";
            }
            if (projection.Layer is null && projection.Kind != ProjectionKind.LmHead && LayerFromNames(projection) is { } layer)
                projection.Layer = layer;
        }
    }
}
