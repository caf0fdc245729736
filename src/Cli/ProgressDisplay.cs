using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace SparseOnnx.Cli;

/// <summary>How progress is shown (<c>--progress</c>).</summary>
internal enum ProgressStyle
{
    /// <summary>A live bar when standard error is a terminal, plain lines when it is a file or a pipe.</summary>
    Auto,

    /// <summary>Plain lines, one per stage and one at least every 30 s, with the time left in the stage.</summary>
    Plain,

    /// <summary>The live bar, wherever standard error goes.</summary>
    Rich,

    /// <summary>Nothing.</summary>
    None,
}

/// <summary>
/// Progress bars for long-running commands, drawn on standard error so that standard output (tables, JSON,
/// generated text) stays clean: a live bar when standard error is a terminal, plain lines (one per stage, and
/// one at least every 30 s, each with the elapsed time and an estimate of what is left of its stage) when it
/// is a file or a pipe, so a log shows how far the work is. <c>--progress plain|rich|none</c> overrides that.
/// </summary>
internal static class ProgressDisplay
{
    private static readonly AsyncLocal<ProgressStyle> CurrentStyle = new();

    /// <summary>The style of the command being run (set by <see cref="CommandRunner"/> from <c>--progress</c>).</summary>
    public static ProgressStyle Style
    {
        get => CurrentStyle.Value;
        set => CurrentStyle.Value = value;
    }

    /// <summary>The option's name; every command accepts it (it is recursive on the root command).</summary>
    public const string OptionName = "--progress";

    /// <summary>The <c>--progress</c> option, for the root command.</summary>
    public static Option<string> CreateOption()
    {
        var option = new Option<string>(OptionName)
        {
            Description = "How long commands show progress on stderr: auto (a live bar on a terminal, plain lines in a log), " +
                "plain (one line per stage and at least every 30 s, with elapsed time and what is left of the stage), rich (the live bar), or none.",
            DefaultValueFactory = _ => "auto",
            Recursive = true,
        };
        option.AcceptOnlyFromAmong("auto", "plain", "rich", "none");
        return option;
    }

    /// <summary>The style an option value names.</summary>
    public static ProgressStyle Parse(string? value) => value switch
    {
        "plain" => ProgressStyle.Plain,
        "rich" => ProgressStyle.Rich,
        "none" => ProgressStyle.None,
        _ => ProgressStyle.Auto,
    };

    /// <summary>A bar's handle: set how far the work is, out of a total, and what it is doing now.</summary>
    internal interface IBar
    {
        void Update(double done, double total, string? description = null);
    }

    /// <summary>Runs <paramref name="work"/> with a bar titled <paramref name="description"/>.</summary>
    public static T Run<T>(TextWriter error, string description, Func<IBar, T> work)
    {
        var style = Style;
        bool processError = ReferenceEquals(error, Console.Error);
        if (style == ProgressStyle.None || (style == ProgressStyle.Auto && !processError)) return work(new SilentBar());
        if (style == ProgressStyle.Plain || (style == ProgressStyle.Auto && Console.IsErrorRedirected))
        {
            var plain = new PlainBar(error, description);
            T done = work(plain);
            plain.Finish();
            return done;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(error) });
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

    /// <summary>The bar a log gets (what <see cref="Run"/> uses when stderr is redirected), for tests; <paramref name="clock"/> replaces the stopwatch.</summary>
    internal static IBar PlainFor(TextWriter error, string title, Func<TimeSpan>? clock = null) => new PlainBar(error, title, clock);

    private sealed class SilentBar : IBar
    {
        public void Update(double done, double total, string? description = null) { }
    }

    /// <summary>
    /// Lines for a log: "[  41 s]  23%  Report: Calibrating at 50%: greedy allocation (about 2 min left)". The
    /// estimate extrapolates the current stage's rate (done / total since the stage began), from 10 s and 1% in.
    /// </summary>
    private sealed class PlainBar : IBar
    {
        private static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);
        private readonly TextWriter _error;
        private readonly string _title;
        private readonly Func<TimeSpan> _clock;
        private string? _stage;
        private TimeSpan _last = TimeSpan.Zero;  // the title line, printed at the start
        private TimeSpan _stageStart = TimeSpan.Zero;

        public PlainBar(TextWriter error, string title, Func<TimeSpan>? clock = null)
        {
            _error = error;
            _title = title;
            if (clock is null)
            {
                var watch = System.Diagnostics.Stopwatch.StartNew();
                clock = () => watch.Elapsed;
            }
            _clock = clock;
            _error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{0,5:0} s]    0%  {title}"));
            _error.Flush();
        }

        public void Update(double done, double total, string? description = null)
        {
            var now = _clock();
            bool newStage = description is not null && description != _stage;
            if (!newStage && now - _last < Interval) return;
            if (newStage)
            {
                _stage = description;
                _stageStart = now;
            }
            _last = now;
            double fraction = total > 0 ? Math.Clamp(done / total, 0, 1) : 0;
            _error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{now.TotalSeconds,5:0} s] {100 * fraction,4:0}%  {_title}{(_stage is null ? "" : ": " + _stage)}{Remaining(now - _stageStart, fraction)}"));
            _error.Flush();
        }

        public void Finish()
        {
            _error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{_clock().TotalSeconds,5:0} s]  100%  {_title}: done"));
            _error.Flush();
        }

        private static string Remaining(TimeSpan inStage, double fraction)
        {
            if (inStage < TimeSpan.FromSeconds(10) || fraction < 0.01 || fraction >= 1) return "";
            double seconds = inStage.TotalSeconds * (1 - fraction) / fraction;
            string left = seconds < 90 ? $"{seconds:0} s" : seconds < 90 * 60 ? $"{seconds / 60:0} min" : $"{seconds / 3600:0.0} h";
            return string.Create(CultureInfo.InvariantCulture, $" (about {left} left)");
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
