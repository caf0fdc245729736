using System.CommandLine;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.Cli.Commands;

/// <summary>The options of the commands that write a rewritten model (sparsify, prune): where its data goes, and JSON output.</summary>
internal static class RewriteOutputOptions
{
    public static Option<ExternalDataMode> External() => new("--external")
    {
        Description = "auto: external data when the input had it or its tensors exceed 1 GiB; always; never.",
        DefaultValueFactory = _ => ExternalDataMode.Auto,
    };

    public static Option<bool> Json() => new("--json") { Description = "Print a JSON report instead of tables." };
}
