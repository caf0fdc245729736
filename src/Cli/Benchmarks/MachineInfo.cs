namespace SparseOnnx.Cli.Benchmarks;

/// <summary>What a benchmark ran on, read from the OS (Linux /proc and /sys; blanks elsewhere).</summary>
public sealed record MachineInfo(string Cpu, int LogicalCores, long L3CacheBytes, long MemoryBytes, string Os)
{
    public static MachineInfo Read()
    {
        string cpu = "unknown CPU";
        long memory = 0, l3 = 0;
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
            if (File.Exists("/proc/meminfo"))
                memory = long.Parse(File.ReadLines("/proc/meminfo").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
            l3 = ReadL3CacheBytes();
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException) { }
        return new MachineInfo(cpu, Environment.ProcessorCount, l3, memory, System.Runtime.InteropServices.RuntimeInformation.OSDescription);
    }

    /// <summary>The L3 size from sysfs, or from getconf (which asks the CPU) where sysfs lacks it; 0 when unknown.</summary>
    private static long ReadL3CacheBytes()
    {
        const string cacheFolder = "/sys/devices/system/cpu/cpu0/cache";
        if (Directory.Exists(cacheFolder))
            foreach (string index in Directory.GetDirectories(cacheFolder, "index*"))
                if (File.Exists(Path.Combine(index, "level")) && File.ReadAllText(Path.Combine(index, "level")).Trim() == "3")
                    return ParseSize(File.ReadAllText(Path.Combine(index, "size")).Trim());
        try
        {
            using var getconf = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("getconf", "LEVEL3_CACHE_SIZE")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (getconf is null) return 0;
            string text = getconf.StandardOutput.ReadToEnd().Trim();
            getconf.WaitForExit();
            return long.TryParse(text, out long bytes) ? bytes : 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return 0;
        }
    }

    private static long ParseSize(string text) => text.EndsWith('K') ? long.Parse(text[..^1]) * 1024
        : text.EndsWith('M') ? long.Parse(text[..^1]) * 1024 * 1024
        : long.Parse(text);

    public override string ToString() =>
        $"{Cpu}, {LogicalCores} logical cores, {(L3CacheBytes > 0 ? $"L3 {L3CacheBytes >> 20} MiB, " : "")}{MemoryBytes >> 30} GiB RAM, {Os}";
}
