using Microsoft.ML.OnnxRuntime;

namespace SparseOnnx.Runtime.Inference;

/// <summary>
/// Builds a decoder's inputs for one call, by the names of its <see cref="DecoderSignature"/>: token ids, the
/// attention mask and positions when the model has them, the merged decoder's branch flag, and each layer's
/// past key/value (given, or empty tensors for a fresh sequence). Shared by every caller that runs a decoder
/// (<see cref="DecoderRun"/>, calibration's probe), so they feed a model the same way.
/// </summary>
public static class DecoderInputs
{
    /// <summary>
    /// Calls <paramref name="add"/>(name, value, owned) for every input. Values marked owned were created here and
    /// are the caller's to dispose; past values from <paramref name="past"/> (a present's name → its value) are not.
    /// </summary>
    public static void Add(DecoderSignature signature, long[] ids, long[] mask, long[] positions, int batch, int length,
        Func<string, OrtValue>? past, Action<string, OrtValue, bool> add)
    {
        add(signature.InputIds, OrtValue.CreateTensorValueFromMemory(ids, [batch, length]), true);
        if (signature.AttentionMask is { } maskName)
            add(maskName, OrtValue.CreateTensorValueFromMemory(mask, [batch, mask.Length / batch]), true);
        if (signature.PositionIds is { } positionName)
            add(positionName, OrtValue.CreateTensorValueFromMemory(positions, [batch, length]), true);
        if (signature.UseCacheBranch is { } branchName)
            add(branchName, OrtValue.CreateTensorValueFromMemory(new[] { past is not null }, [1]), true);
        foreach (var layer in signature.Layers)
        {
            if (past is not null)
            {
                add(layer.PastKey, past(layer.PresentKey), false);
                add(layer.PastValue, past(layer.PresentValue), false);
            }
            else
            {
                long[] empty = [batch, signature.KvHeads, 0, signature.HeadDim];
                add(layer.PastKey, OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, signature.KvType, empty), true);
                add(layer.PastValue, OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, signature.KvType, empty), true);
            }
        }
    }

    /// <summary>The mask (all ones) and positions (0..length-1 in every row) of <paramref name="batch"/> fresh windows.</summary>
    public static (long[] Mask, long[] Positions) ForWindows(int batch, int length)
    {
        var positions = new long[(long)batch * length];
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < length; t++) positions[(long)b * length + t] = t;
        var mask = new long[positions.Length];
        Array.Fill(mask, 1L);
        return (mask, positions);
    }
}
