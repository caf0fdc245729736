using SparseOnnx.Pruning.Importance;

namespace SparseOnnx.Pruning.Tests;

public class KeySelectionTests
{
    [Fact]
    public void GlobalAllocationRemovesTheLowestScoresAcrossLayers()
    {
        double[]?[] scores = [[5, 1, 4, 0.5], [3, 2, 6, 7]];
        var result = KeySelection.Select(scores, [4, 4], ratio: 0.375, Allocation.Global, minKeptFraction: 0);
        // 3 of 8 removed: scores 0.5 and 1 in layer 0, 2 in layer 1.
        Assert.Equal([0, 2], result.Kept[0]);
        Assert.Equal([0, 2, 3], result.Kept[1]);
        Assert.Equal(2, result.Threshold);
    }

    [Fact]
    public void UniformAllocationTakesTheSameShareFromEveryPrunedLayer()
    {
        double[]?[] scores = [[5, 1, 4, 0.5], [3, 2, 6, 7], null];
        var result = KeySelection.Select(scores, [4, 4, 4], ratio: 4.0 / 12, Allocation.Uniform, minKeptFraction: 0);
        Assert.Equal([0, 2], result.Kept[0]);
        Assert.Equal([2, 3], result.Kept[1]);
        Assert.Equal([0, 1, 2, 3], result.Kept[2]); // kept whole, but counted in the total
        Assert.Null(result.Threshold);
    }

    [Fact]
    public void TheFloorStopsALayerFromBeingEmptiedAndTheRestGoesElsewhere()
    {
        double[]?[] scores = [[0.1, 0.2, 0.3, 0.4], [9, 8, 7, 6]];
        var result = KeySelection.Select(scores, [4, 4], ratio: 0.5, Allocation.Global, minKeptFraction: 0.5);
        Assert.Equal([2, 3], result.Kept[0]);
        Assert.Equal([0, 1], result.Kept[1]);
    }

    [Fact]
    public void TooLargeARatioForThePrunedLayersIsRefused()
    {
        double[]?[] scores = [[1, 2, 3, 4], null];
        var error = Assert.Throws<ArgumentException>(() => KeySelection.Select(scores, [4, 4], ratio: 0.5, Allocation.Global, minKeptFraction: 0.25));
        Assert.Contains("can give up only 3", error.Message);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void RatiosOutsideTheOpenUnitIntervalAreRefused(double ratio) =>
        Assert.Throws<ArgumentException>(() => KeySelection.Select([[1.0, 2.0]], [2], ratio, Allocation.Global, 0));
}
