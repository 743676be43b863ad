using QuantumPeft.Models.Bert;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Roberta;

// RoBERTa is BERT's encoder with two differences, both carried by the config (model_type roberta or xlm-roberta):
// position ids start after the padding index and skip padding (BertConfig.PositionsFromPadding), and there is one
// token type. So the encoder is BertModel itself, registered under RoBERTa's name "roberta"; only the head is RoBERTa's own.

/// <summary>RoBERTa's classification head on the first (&lt;s&gt;) token: dropout, dense, tanh, dropout, out_proj (state-dict names classifier.dense, classifier.out_proj).</summary>
public sealed class RobertaClassificationHead : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly Dropout dropout;
    private nn.Module<Tensor, Tensor> out_proj;

    public RobertaClassificationHead(BertConfig config, int numLabels) : base(nameof(RobertaClassificationHead))
    {
        dense = nn.Linear(config.HiddenSize, config.HiddenSize);
        dropout = nn.Dropout(config.ClassifierDropout ?? config.HiddenDropoutProb);
        out_proj = nn.Linear(config.HiddenSize, numLabels);
        RegisterComponents();
    }

    /// <summary>last hidden state [B, T, H] to logits [B, num_labels].</summary>
    public override Tensor forward(Tensor lastHidden)
    {
        var x = dropout.call(lastHidden[.., 0]);
        x = dense.call(x).tanh();
        return out_proj.call(dropout.call(x));
    }
}

/// <summary>A RoBERTa (or XLM-R) encoder with its classification head: Hugging Face's RobertaForSequenceClassification (names roberta.*, classifier.*).</summary>
public sealed class RobertaForSequenceClassification : nn.Module<Tensor, Tensor?, Tensor?, Tensor>
{
    /// <summary>The one head RoBERTa has (its classification head); recorded as qpeft_head in saved files.</summary>
    public const string ClassificationHead = "classifier";

    private readonly BertModel roberta;
    private readonly RobertaClassificationHead classifier;

    /// <summary>The encoder (state-dict prefix "roberta."): BERT's layers with RoBERTa's position ids.</summary>
    public BertModel Roberta => roberta;

    /// <summary>The architecture of the encoder.</summary>
    public BertConfig Config => roberta.Config;

    /// <summary>Number of outputs; 1 means regression.</summary>
    public int NumLabels { get; }

    /// <summary>Builds a randomly initialised model (Hugging Face's initialisation, from <paramref name="seed"/>); the config must be a RoBERTa one.</summary>
    public RobertaForSequenceClassification(BertConfig config, int numLabels, long seed = 0) : base(nameof(RobertaForSequenceClassification))
    {
        if (numLabels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), numLabels, "num_labels must be at least 1 (1 = regression).");
        config.Validate("config", BertConfig.RobertaModelTypes);
        NumLabels = numLabels;
        // transformers builds RobertaForSequenceClassification without the pooler (add_pooling_layer=False).
        roberta = new BertModel(config, addPoolingLayer: false, seed: seed);
        classifier = new RobertaClassificationHead(config, numLabels);
        RegisterComponents();
        // A separate stream for the head, so its initial weights do not depend on the size of the encoder.
        BertInit.Apply(classifier, config, seed + 1);
    }

    /// <summary>input ids, attention mask (null = all tokens) and token type ids (null = all 0) [B, T] to logits [B, num_labels].</summary>
    public override Tensor forward(Tensor inputIds, Tensor? attentionMask, Tensor? tokenTypeIds) =>
        classifier.call(roberta.call(inputIds, attentionMask, tokenTypeIds));
}
