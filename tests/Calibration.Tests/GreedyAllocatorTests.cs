using SparseOnnx.Calibration.Allocation;

namespace SparseOnnx.Calibration.Tests;

public class GreedyAllocatorTests
{
    // A block whose output error grows with each group's sparsity at its own rate: cost_g · s_g².
    private static Func<double[], double> Quadratic(params double[] cost) => s => s.Select((v, i) => cost[i] * v * v).Sum();

    [Fact]
    public void Allocate_GivesMoreSparsityToTheCheaperGroup_AndLandsOnTheWeightedTarget()
    {
        var groups = new[] { new AllocationCandidate(300), new AllocationCandidate(100), new AllocationCandidate(600) };
        var trace = new List<AllocationStep>();
        var s = GreedyAllocator.Allocate(groups, 0.5, 0.05, Quadratic(1, 10, 4), trace);

        double average = (300 * s[0] + 100 * s[1] + 600 * s[2]) / 1000;
        Assert.Equal(0.5, average, 9);
        Assert.True(s[0] > s[2] && s[2] > s[1], $"expected cheap > medium > expensive, got {string.Join(", ", s)}");
        Assert.NotEmpty(trace);
        Assert.All(s, v => Assert.InRange(v, 0, 0.95));
    }

    [Fact]
    public void Allocate_BeatsUniform_OnTheErrorItMinimises()
    {
        var groups = new[] { new AllocationCandidate(256), new AllocationCandidate(256), new AllocationCandidate(1024) };
        var error = Quadratic(1, 3, 2);
        var greedy = GreedyAllocator.Allocate(groups, 0.6, 0.05, error);
        Assert.True(error(greedy) < error([0.6, 0.6, 0.6]), $"greedy {error(greedy)} vs uniform {error([0.6, 0.6, 0.6])}");
    }

    [Fact]
    public void Allocate_RespectsEachGroupsMaximum_AndRefusesAnUnreachableTarget()
    {
        var groups = new[] { new AllocationCandidate(100, 0.5), new AllocationCandidate(100, 0.9) };
        var s = GreedyAllocator.Allocate(groups, 0.7, 0.1, Quadratic(0.01, 100));
        Assert.Equal(0.5, s[0], 9);
        Assert.Equal(0.9, s[1], 9);
        Assert.Throws<ArgumentOutOfRangeException>(() => GreedyAllocator.Allocate(groups, 0.71, 0.1, Quadratic(1, 1)));
        Assert.Equal(new double[2], GreedyAllocator.Allocate(groups, 0, 0.1, Quadratic(1, 1)));
    }

    [Fact]
    public void LazySearch_FindsTheExhaustiveAllocation_OnAnAdditiveError_WithFewerMeasurements()
    {
        var groups = new[] { new AllocationCandidate(300), new AllocationCandidate(100), new AllocationCandidate(600), new AllocationCandidate(200) };
        var error = Quadratic(1, 10, 4, 2);
        int exhaustiveCalls = 0, lazyCalls = 0;
        var exhaustive = GreedyAllocator.Allocate(groups, 0.6, 0.05, s => { exhaustiveCalls++; return error(s); });
        var lazy = GreedyAllocator.Allocate(groups, 0.6, 0.05, s => { lazyCalls++; return error(s); }, search: new GreedySearch { Lazy = true });

        Assert.Equal(exhaustive, lazy);
        Assert.True(lazyCalls < exhaustiveCalls * 0.6, $"lazy measured {lazyCalls} times, exhaustive {exhaustiveCalls}");
    }

    [Fact]
    public void Search_StartsEveryGroupAtItsStart_AndNeverMeasuresBelowIt()
    {
        var groups = new[] { new AllocationCandidate(300), new AllocationCandidate(100, 0.2), new AllocationCandidate(600) };
        var measured = new List<double[]>();
        var error = Quadratic(1, 10, 4);
        var s = GreedyAllocator.Allocate(groups, 0.5, 0.05, v => { measured.Add((double[])v.Clone()); return error(v); },
            search: new GreedySearch { Start = 0.3, Lazy = true });

        // The first measurement is the start itself; the group whose maximum is below the start starts at its maximum.
        Assert.Equal(new[] { 0.3, 0.2, 0.3 }, measured[0]);
        Assert.All(measured, v => Assert.True(v[0] >= 0.3 - 1e-12 && v[2] >= 0.3 - 1e-12, string.Join(", ", v)));
        Assert.Equal(0.5, (300 * s[0] + 100 * s[1] + 600 * s[2]) / 1000, 9);
        Assert.Throws<ArgumentOutOfRangeException>(() => GreedyAllocator.Allocate(groups, 0.5, 0.05, error, search: new GreedySearch { Start = 0.6 }));
    }
}
