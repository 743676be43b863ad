using static TorchSharp.torch;

namespace QuantumPeft.Models.Bert;

/// <summary>A sentence encoder in the sentence-transformers manner: BERT, masked mean pooling, optional L2 normalisation.</summary>
public sealed class BertForSentenceEmbedding : nn.Module<Tensor, Tensor?, Tensor?, Tensor>
{
    private readonly BertModel bert;

    /// <summary>The encoder (state-dict prefix "bert.").</summary>
    public BertModel Bert => bert;

    /// <summary>Whether embeddings are scaled to unit length.</summary>
    public bool NormalizeEmbeddings { get; }

    public BertForSentenceEmbedding(BertModel bert, bool normalize = true) : base(nameof(BertForSentenceEmbedding))
    {
        this.bert = bert;
        NormalizeEmbeddings = normalize;
        RegisterComponents();
    }

    /// <summary>input ids, attention mask, token type ids [B, T] to sentence embeddings [B, H].</summary>
    public override Tensor forward(Tensor inputIds, Tensor? attentionMask, Tensor? tokenTypeIds)
    {
        using var hidden = bert.call(inputIds, attentionMask, tokenTypeIds);
        var pooled = BertPooling.MeanPool(hidden, attentionMask);
        if (!NormalizeEmbeddings) return pooled;
        using (pooled) return BertPooling.Normalize(pooled);
    }

    /// <summary>Loads a Hugging Face BERT folder as a sentence encoder (the pooler, if any, is not used).</summary>
    public static BertForSentenceEmbedding FromPretrained(string folder, bool normalize = true, Device? device = null) =>
        new(HfBertLoader.LoadModel(folder, device, addPoolingLayer: false), normalize);
}
