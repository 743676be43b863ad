using static TorchSharp.torch;

namespace QuantumPeft.Models.Decoder;

/// <summary>The past keys and values of every attention layer of a decoder, grown by each cached forward call (transformers' DynamicCache).</summary>
/// <remarks>
/// Tensors are [batch, kv_heads, cached tokens, head_dim]. The cache owns what it stores: stored tensors are detached
/// from every dispose scope, so a generation loop may wrap each step in <c>NewDisposeScope()</c>; a replaced tensor is
/// disposed when the next one is stored. Use the cache under <c>no_grad()</c>: it keeps no autograd history alive.
/// </remarks>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] keys;
    private readonly Tensor?[] values;

    /// <summary>An empty cache for a model with <paramref name="layers"/> attention layers.</summary>
    public KvCache(int layers)
    {
        if (layers < 1) throw new ArgumentOutOfRangeException(nameof(layers), layers, "a decoder has at least one layer.");
        keys = new Tensor?[layers];
        values = new Tensor?[layers];
    }

    /// <summary>Number of attention layers.</summary>
    public int Layers => keys.Length;

    /// <summary>Tokens cached so far (the first layer's; every layer holds the same count after a full forward).</summary>
    public long Length => keys[0]?.shape[2] ?? 0;

    /// <summary>The cached keys and values of <paramref name="layer"/>, or nulls when nothing is cached yet.</summary>
    public (Tensor? Keys, Tensor? Values) Get(int layer) => (keys[layer], values[layer]);

    /// <summary>Appends this step's keys and values (dim 2) to layer <paramref name="layer"/> and returns the whole past plus present.</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        var (oldK, oldV) = (keys[layer], values[layer]);
        var newK = oldK is null ? k.detach().clone() : cat([oldK, k.detach()], 2);
        var newV = oldV is null ? v.detach().clone() : cat([oldV, v.detach()], 2);
        keys[layer] = newK.DetachFromDisposeScope();
        values[layer] = newV.DetachFromDisposeScope();
        oldK?.Dispose();
        oldV?.Dispose();
        return (keys[layer]!, values[layer]!);
    }

    /// <summary>Keeps batch rows <paramref name="batchIndex"/> (in that order) in every layer, as beam search does after each step.</summary>
    public void Reorder(Tensor batchIndex)
    {
        for (int i = 0; i < keys.Length; i++)
        {
            if (keys[i] is null) continue;
            var index = batchIndex.to(keys[i]!.device);
            var k = keys[i]!.index_select(0, index).DetachFromDisposeScope();
            var v = values[i]!.index_select(0, index).DetachFromDisposeScope();
            keys[i]!.Dispose();
            values[i]!.Dispose();
            keys[i] = k;
            values[i] = v;
        }
    }

    /// <summary>Frees every cached tensor.</summary>
    public void Dispose()
    {
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i]?.Dispose();
            values[i]?.Dispose();
            keys[i] = values[i] = null;
        }
    }
}
