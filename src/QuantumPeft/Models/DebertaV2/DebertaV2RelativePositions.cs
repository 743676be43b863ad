using static TorchSharp.torch;

namespace QuantumPeft.Models.DebertaV2;

/// <summary>DeBERTa's relative positions: query position minus key position, log-bucketed beyond half the bucket count.</summary>
/// <remarks>
/// Written as modeling_deberta_v2.py's build_relative_position and make_log_bucket_position, in float32 as there, so the
/// ceil of the log ratio falls the same way: distances inside (-mid, mid) and at exactly ±mid stay as they are; a larger
/// distance d becomes sign(d) * (mid + ceil(log(|d| / mid) / log((max_position - 1) / mid) * (mid - 1))), mid = buckets / 2.
/// </remarks>
public static class DebertaV2RelativePositions
{
    /// <summary>The [1, querySize, keySize] int64 relative positions; bucketed when both <paramref name="bucketSize"/> and <paramref name="maxPosition"/> are above 0.</summary>
    public static Tensor Build(long querySize, long keySize, int bucketSize, int maxPosition, Device? device = null)
    {
        using var scope = NewDisposeScope();
        var q = arange(querySize, dtype: ScalarType.Int64, device: device);
        var k = arange(keySize, dtype: ScalarType.Int64, device: device);
        var rel = q.unsqueeze(1) - k.unsqueeze(0);
        if (bucketSize > 0 && maxPosition > 0) rel = LogBucket(rel, bucketSize, maxPosition);
        return rel.to(ScalarType.Int64).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>make_log_bucket_position: int64 distances to their (float32) bucketed values.</summary>
    public static Tensor LogBucket(Tensor relativePos, int bucketSize, int maxPosition)
    {
        using var scope = NewDisposeScope();
        var sign = relativePos.sign();
        int mid = bucketSize / 2;
        var inside = relativePos.lt(mid).logical_and(relativePos.gt(-mid));
        var absPos = where(inside, full_like(relativePos, mid - 1), relativePos.abs());
        // torch.log(torch.tensor((max_position - 1) / mid)): the ratio in double, rounded once to float32, its log in float32.
        var logSpan = tensor((float)((maxPosition - 1) / (double)mid), device: relativePos.device).log();
        var logPos = (absPos.to(ScalarType.Float32) / mid).log().div(logSpan).mul(mid - 1).ceil().add(mid);
        var bucketPos = where(absPos.le(mid), relativePos.to(ScalarType.Float32), logPos * sign.to(ScalarType.Float32));
        return bucketPos.MoveToOuterDisposeScope();
    }
}
