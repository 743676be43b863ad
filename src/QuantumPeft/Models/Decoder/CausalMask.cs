using static TorchSharp.torch;

namespace QuantumPeft.Models.Decoder;

/// <summary>The additive attention mask of a causal decoder: causal order, padding and an optional sliding window.</summary>
/// <remarks>
/// Query t of this call sits at absolute index past + t; it may attend key j when j &lt;= past + t, the key is not padding,
/// and (with a sliding window W) past + t - j &lt; W, as transformers' masking does. Hidden entries get the dtype's lowest
/// finite value (transformers' eager convention), not -inf, so a row with every key hidden (a left-padding query) stays
/// finite and cannot turn values into NaN through 0 * inf.
/// </remarks>
public static class CausalMask
{
    /// <summary>
    /// The mask [B, 1, T, past + T] to add to attention scores, or null when nothing needs hiding (one new token, no
    /// padding, no window). <paramref name="attentionMask"/> is [B, past + T] of 0/1 or null (no padding).
    /// </summary>
    public static Tensor? Build(Tensor? attentionMask, long batch, long queryLength, long pastLength, int? slidingWindow,
        ScalarType dtype, Device device)
    {
        long total = pastLength + queryLength;
        if (attentionMask is not null && (attentionMask.ndim != 2 || attentionMask.shape[0] != batch || attentionMask.shape[1] != total))
            throw new ArgumentException(
                $"attention_mask has shape [{string.Join(", ", attentionMask.shape)}]; expected [batch {batch}, past + new tokens {total}].", nameof(attentionMask));
        bool padded = attentionMask is not null && attentionMask.min().item<long>() == 0;
        bool windowed = slidingWindow is { } w && total > w;
        if (queryLength == 1 && !padded && !windowed) return null;

        using var scope = NewDisposeScope();
        var q = arange(pastLength, total, dtype: ScalarType.Int64, device: device).unsqueeze(1);   // [T, 1] absolute query index
        var k = arange(total, dtype: ScalarType.Int64, device: device).unsqueeze(0);              // [1, S] key index
        var visible = k.le(q);
        if (slidingWindow is { } window) visible = visible.logical_and((q - k).lt(window));
        var allowed = visible.unsqueeze(0).unsqueeze(0);                                          // [1, 1, T, S]
        if (padded) allowed = allowed.logical_and(attentionMask!.to(device).ne(0).unsqueeze(1).unsqueeze(1));
        allowed = allowed.expand(batch, 1, queryLength, total);
        var lowest = dtype switch
        {
            ScalarType.Float16 => -65504.0,
            ScalarType.BFloat16 => -3.3895313892515355e38,
            ScalarType.Float64 => double.MinValue,
            _ => float.MinValue,
        };
        var mask = zeros(batch, 1, queryLength, total, dtype: dtype, device: device).masked_fill(allowed.logical_not(), lowest);
        return mask.MoveToOuterDisposeScope();
    }

    /// <summary>transformers' generation positions for a padded batch: cumsum(mask) - 1, with 1 at padding (all of [B, S]).</summary>
    public static Tensor PositionsFromMask(Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var m = attentionMask.to(ScalarType.Int64);
        var positions = m.cumsum(-1) - 1;
        return positions.masked_fill(m.eq(0), 1).MoveToOuterDisposeScope();
    }
}
