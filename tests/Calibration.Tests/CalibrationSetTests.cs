using SparseOnnx.Calibration.Data;

namespace SparseOnnx.Calibration.Tests;

public class CalibrationSetTests
{
    [Fact]
    public void FromTokens_CutsDisjointWindows_Deterministically()
    {
        var stream = Enumerable.Range(0, 1000).ToArray();
        var options = new CalibrationSetOptions { SequenceLength = 10, Samples = 30, ValidationSamples = 20, Seed = 5 };
        var a = CalibrationSet.FromTokens(stream, options, "numbers");
        var b = CalibrationSet.FromTokens(stream, options, "numbers");

        Assert.Equal(30, a.Calibration.Count);
        Assert.Equal(20, a.Validation.Count);
        Assert.Equal(a.Calibration.SelectMany(w => w), b.Calibration.SelectMany(w => w));
        var starts = a.Calibration.Concat(a.Validation).Select(w => w[0]).ToList();
        Assert.Equal(starts.Count, starts.Distinct().Count());
        Assert.All(a.Calibration.Concat(a.Validation), w => Assert.Equal(Enumerable.Range(w[0], 10), w));
        Assert.All(starts, s => Assert.Equal(0, s % 10));
        // Another seed draws other windows.
        var c = CalibrationSet.FromTokens(stream, options with { Seed = 6 }, "numbers");
        Assert.NotEqual(a.Calibration.Select(w => w[0]), c.Calibration.Select(w => w[0]));
    }

    [Fact]
    public void FromTokens_TooLittleText_SaysHowMuchThereIsAndWasAskedFor()
    {
        var e = Assert.Throws<CalibrationDataException>(() => CalibrationSet.FromTokens(new int[500], new CalibrationSetOptions
            { SequenceLength = 100, Samples = 4, ValidationSamples = 2 }, "short.txt"));
        Assert.Contains("500 tokens", e.Message);
        Assert.Contains("5 windows", e.Message);
        Assert.Contains("4 calibration + 2 validation", e.Message);
    }
}
