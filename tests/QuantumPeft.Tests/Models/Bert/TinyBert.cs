using QuantumPeft.Models.Bert;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Bert;

/// <summary>A tiny BERT config and inputs for fast tests.</summary>
static class TinyBert
{
    public static BertConfig Config(string act = "gelu") => new()
    {
        VocabSize = 50, HiddenSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 24,
        MaxPositionEmbeddings = 32, TypeVocabSize = 2, HiddenAct = act, HiddenDropoutProb = 0.1, AttentionProbsDropoutProb = 0.1,
    };

    /// <summary>Two rows: the first 7 tokens long, the second 4 tokens then padding.</summary>
    public static (Tensor Ids, Tensor Mask, Tensor Types) Batch()
    {
        var ids = tensor(new long[,] { { 2, 11, 12, 13, 3, 14, 3 }, { 2, 21, 22, 3, 0, 0, 0 } });
        var mask = tensor(new long[,] { { 1, 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 0, 0, 0 } });
        var types = tensor(new long[,] { { 0, 0, 0, 0, 0, 1, 1 }, { 0, 0, 0, 0, 0, 0, 0 } });
        return (ids, mask, types);
    }

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
