using Spectre.Console;

namespace SparseOnnx.Cli;

/// <summary>
/// Progress bars for long-running commands, drawn on standard error so that standard output (tables, JSON,
/// generated text) stays clean: a live bar when standard error is a terminal, plain lines (one per stage, and
/// one at least every 30 s) when it is a file or a pipe, so a log shows how far the work is.
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
        bool processError = ReferenceEquals(error, Console.Error);
        if (processError && Console.IsErrorRedirected)
        {
            var plain = new PlainBar(error, description);
            T done = work(plain);
            plain.Finish();
            return done;
        }
        if (!processError) return work(new SilentBar());
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

    /// <summary>The bar a log gets (what <see cref="Run"/> uses when stderr is redirected), for tests.</summary>
    internal static IBar PlainFor(TextWriter error, string title) => new PlainBar(error, title);

    private sealed class SilentBar : IBar
    {
        public void Update(double done, double total, string? description = null) { }
    }

    /// <summary>Lines for a log: "[  41 s]  23%  Report: Calibrating at 50%: greedy allocation".</summary>
    private sealed class PlainBar : IBar
    {
        private static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);
        private readonly TextWriter _error;
        private readonly string _title;
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
        private string? _stage;
        private TimeSpan _last = TimeSpan.Zero;  // the title line, printed at the start

        public PlainBar(TextWriter error, string title)
        {
            _error = error;
            _title = title;
            _error.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"[{0,5:0} s]    0%  {title}"));
        }

        public void Update(double done, double total, string? description = null)
        {
            var now = _clock.Elapsed;
            bool newStage = description is not null && description != _stage;
            if (!newStage && now - _last < Interval) return;
            if (description is not null) _stage = description;
            _last = now;
            double percent = total > 0 ? Math.Clamp(100 * done / total, 0, 100) : 0;
            _error.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"[{now.TotalSeconds,5:0} s] {percent,4:0}%  {_title}{(_stage is null ? "" : ": " + _stage)}"));
            _error.Flush();
        }

        public void Finish()
        {
            _error.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"[{_clock.Elapsed.TotalSeconds,5:0} s]  100%  {_title}: done"));
            _error.Flush();
        }
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
