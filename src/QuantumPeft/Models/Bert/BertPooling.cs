using static TorchSharp.torch;

namespace QuantumPeft.Models.Bert;

/// <summary>Sentence-level pooling of a last hidden state: masked mean (sentence-transformers) and L2 normalisation.</summary>
public static class BertPooling
{
    /// <summary>The mean of the token vectors [B, T, H] over the positions where <paramref name="attentionMask"/> [B, T] is 1, giving [B, H].</summary>
    public static Tensor MeanPool(Tensor lastHidden, Tensor? attentionMask)
    {
        if (attentionMask is null) return lastHidden.mean([1]);
        using var scope = NewDisposeScope();
        var weights = attentionMask.to(lastHidden.dtype).unsqueeze(-1);
        // The clamp keeps an all-padding row at zero instead of 0/0, as sentence-transformers does.
        var summed = (lastHidden * weights).sum(1);
        var counts = weights.sum(1).clamp_min(1e-9);
        return (summed / counts).MoveToOuterDisposeScope();
    }

    /// <summary>Rows scaled to unit L2 norm (cosine similarity becomes a dot product).</summary>
    public static Tensor Normalize(Tensor embeddings) => nn.functional.normalize(embeddings, p: 2, dim: -1);

    /// <summary>The cosine-similarity matrix [N, N] of N embeddings [N, H].</summary>
    public static Tensor CosineSimilarity(Tensor embeddings)
    {
        using var unit = Normalize(embeddings);
        return unit.matmul(unit.t());
    }
}
