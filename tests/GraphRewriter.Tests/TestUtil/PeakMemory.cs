namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

/// <summary>
/// Measures this process's peak resident memory over a region of code, using Linux's resettable
/// high-water mark (<c>/proc/self/clear_refs</c>, <c>VmHWM</c>). Run such tests in a collection that
/// does not run in parallel with others, or their allocations count too.
/// </summary>
public static class PeakMemory
{
    public static bool IsSupported => OperatingSystem.IsLinux() && File.Exists("/proc/self/clear_refs");

    /// <summary>Runs <paramref name="action"/> and returns how far the peak resident set rose above the resident set before it.</summary>
    public static long MeasureGrowthBytes(Action action) => Measure(action).GrowthBytes;

    /// <summary>Runs <paramref name="action"/>; returns the resident set before it, its peak during it, and the growth.</summary>
    public static (long BeforeBytes, long PeakBytes, long GrowthBytes) Measure(Action action)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current VmRSS
        long before = ReadStatusKb("VmRSS");
        action();
        long peak = ReadStatusKb("VmHWM");
        return (before * 1024, peak * 1024, (peak - before) * 1024);
    }

    private static long ReadStatusKb(string field)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]);
        throw new InvalidOperationException($"/proc/self/status has no {field}.");
    }
}
