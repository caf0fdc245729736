using Spectre.Console;

namespace SparseOnnx.Cli;

/// <summary>
/// Progress bars for long-running commands, drawn on standard error so that standard output (tables, JSON,
/// generated text) stays clean; drawn only when standard error is a terminal.
/// </summary>
internal static class ProgressDisplay
{
    /// <summary>A bar's handle: set how far the work is, out of a total, and what it is doing now.</summary>
    internal interface IBar
    {
        void Update(double done, double total, string? description = null);
    }

    /// <summary>Runs <paramref name="work"/> with a bar titled <paramref name="description"/>.</summary>
    public static T Run<T>(TextWriter error, string description, Func<IBar, T> work)
    {
        bool terminal = ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected;
        if (!terminal) return work(new SilentBar());
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape(description), maxValue: 1);
                result = work(new SpectreBar(task));
                task.Value = task.MaxValue;
            });
        return result;
    }

    private sealed class SilentBar : IBar
    {
        public void Update(double done, double total, string? description = null) { }
    }

    private sealed class SpectreBar(ProgressTask task) : IBar
    {
        public void Update(double done, double total, string? description = null)
        {
            if (total > 0 && task.MaxValue != total) task.MaxValue = total;
            task.Value = done;
            if (description is not null) task.Description = Markup.Escape(description);
        }
    }

    /// <summary>An <see cref="IProgress{T}"/> that reports on the calling thread (Progress&lt;T&gt; would post to the pool).</summary>
    public sealed class Immediate<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
