using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;

namespace SparseOnnx.Cli.Benchmarks;

/// <summary>
/// Times one-input sessions against each other in one process: a few unmeasured runs each, then every iteration
/// runs every session once, in an order that rotates from one iteration to the next, so that none always runs
/// right after another (which would hand it the other's cache state or clock). bench-op's fp32/fp16/bf16 and
/// quantized benchmarks share it.
/// </summary>
internal static class InterleavedTimer
{
    private const int WarmupRuns = 3;

    /// <summary>
    /// Milliseconds of each run of each session (input "A", cycling through <paramref name="inputs"/>),
    /// <paramref name="iterations"/> per session, in the sessions' order.
    /// </summary>
    public static List<double>[] Time(IReadOnlyList<InferenceSession> sessions, IReadOnlyList<OrtValue> inputs, int iterations)
    {
        using var runOptions = new RunOptions();
        double Run(InferenceSession session, int i)
        {
            var feed = new Dictionary<string, OrtValue> { ["A"] = inputs[i % inputs.Count] };
            var watch = Stopwatch.StartNew();
            using var result = session.Run(runOptions, feed, session.OutputNames);
            return watch.Elapsed.TotalMilliseconds;
        }
        for (int w = 0; w < WarmupRuns; w++)
            foreach (var session in sessions) Run(session, w);
        var times = sessions.Select(_ => new List<double>(iterations)).ToArray();
        for (int i = 0; i < iterations; i++)
            for (int j = 0; j < sessions.Count; j++)
            {
                int s = (i + j) % sessions.Count;
                times[s].Add(Run(sessions[s], i));
            }
        return times;
    }

    /// <summary>The median (the mean of the two middle values for an even count).</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
