using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Passes;

/// <summary>What one pass did.</summary>
/// <param name="Changed">Whether the pass modified the model.</param>
/// <param name="Messages">Human-readable notes: what it rewrote, what it skipped and why. The library never prints them.</param>
public record PassResult(bool Changed, IReadOnlyList<string> Messages)
{
    /// <summary>A result for a pass that changed nothing.</summary>
    public static PassResult Unchanged(params string[] messages) => new(false, messages);

    /// <summary>A result for a pass that changed the model.</summary>
    public static PassResult Modified(params string[] messages) => new(true, messages);
}

/// <summary>
/// A model transformation with a stated contract: <see cref="Run"/> either completes and reports whether
/// it changed anything, or throws and leaves the model for the caller to discard.
/// </summary>
public interface IPass
{
    /// <summary>Short name, used in reports and errors.</summary>
    string Name { get; }

    /// <summary>Runs the pass on <paramref name="model"/> in place.</summary>
    PassResult Run(Model model);
}

/// <summary>What a pass with a report of its own did: <see cref="PassResult"/> and that report.</summary>
/// <param name="Changed">Whether the pass modified the model.</param>
/// <param name="Messages">Human-readable notes, as for <see cref="PassResult"/>.</param>
/// <param name="Report">The pass's account of its work (for <see cref="Sparsify.SparsifyPass"/>, every projection rewritten or skipped).</param>
public sealed record PassResult<TReport>(bool Changed, IReadOnlyList<string> Messages, TReport Report) : PassResult(Changed, Messages);

/// <summary>A pass that returns a typed report with its result (run in a <see cref="PassPipeline"/>, the report is in its <see cref="PassReport"/>).</summary>
public interface IPass<TReport> : IPass
{
    /// <summary>Runs the pass on <paramref name="model"/> in place.</summary>
    new PassResult<TReport> Run(Model model);

    PassResult IPass.Run(Model model) => Run(model);
}

/// <summary>One pass's entry in a pipeline report.</summary>
public sealed record PassReport(string PassName, PassResult Result);

/// <summary>A pass failed inside a pipeline; says which passes had already run.</summary>
public sealed class PassFailedException : SparseOnnxException
{
    /// <summary>Creates the exception.</summary>
    public PassFailedException(string failedPass, IReadOnlyList<PassReport> completed, Exception inner)
        : base($"Pass '{failedPass}' failed after {(completed.Count == 0 ? "no other passes" : string.Join(", ", completed.Select(r => r.PassName)))} ran: {inner.Message}", inner)
    {
        FailedPass = failedPass;
        Completed = completed;
    }

    /// <summary>The pass that threw.</summary>
    public string FailedPass { get; }

    /// <summary>Passes that completed before it, with their results.</summary>
    public IReadOnlyList<PassReport> Completed { get; }
}

/// <summary>Runs passes in the stated order and reports each one's result.</summary>
public sealed class PassPipeline
{
    private readonly List<IPass> _passes;

    /// <summary>Creates a pipeline that runs <paramref name="passes"/> in this order.</summary>
    public PassPipeline(params IPass[] passes) => _passes = passes.ToList();

    /// <summary>The passes, in run order.</summary>
    public IReadOnlyList<IPass> Passes => _passes;

    /// <summary>
    /// Runs every pass. When one throws, wraps the error in a <see cref="PassFailedException"/> naming it and
    /// the passes that ran before it; the model is then in an unspecified state and must not be saved.
    /// </summary>
    public IReadOnlyList<PassReport> Run(Model model)
    {
        var reports = new List<PassReport>();
        foreach (var pass in _passes)
        {
            PassResult result;
            try
            {
                result = pass.Run(model);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new PassFailedException(pass.Name, reports.ToArray(), e);
            }
            reports.Add(new PassReport(pass.Name, result));
        }
        return reports;
    }
}
