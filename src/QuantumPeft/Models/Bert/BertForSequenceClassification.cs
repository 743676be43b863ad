using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Bert;

/// <summary>A BERT encoder with a classification (or, for one label, regression) head: Hugging Face's BertForSequenceClassification.</summary>
/// <remarks>
/// Two heads: "pooler" is Hugging Face's (pooler dense + tanh on [CLS], dropout, classifier); "mean" mean-pools
/// the last hidden state over the attention mask, then dropout and classifier, and has no pooler parameters,
/// which keeps the trainable head tiny when the backbone is frozen. State-dict names: bert.*, classifier.*.
/// </remarks>
public sealed class BertForSequenceClassification : nn.Module<Tensor, Tensor?, Tensor?, Tensor>
{
    /// <summary>Hugging Face's head: pooler + dropout + classifier.</summary>
    public const string PoolerHead = "pooler";

    /// <summary>Masked mean of the last hidden state + dropout + classifier (no pooler parameters).</summary>
    public const string MeanHead = "mean";

    /// <summary>The head names <see cref="Head"/> accepts.</summary>
    public static readonly IReadOnlyList<string> Heads = [PoolerHead, MeanHead];

    /// <summary>Returns <paramref name="head"/> when it is one of <see cref="Heads"/>; otherwise names <paramref name="source"/> (the file it came from).</summary>
    /// <exception cref="InvalidDataException">An unknown head.</exception>
    public static string RequireKnownHead(string head, string source) => Heads.Contains(head) ? head
        : throw new InvalidDataException($"{source} '{head}' is not a known head (valid: {string.Join(", ", Heads)}).");

    private readonly BertModel bert;
    private readonly Dropout dropout;
    private nn.Module<Tensor, Tensor> classifier;

    /// <summary>The encoder (state-dict prefix "bert.").</summary>
    public BertModel Bert => bert;

    /// <summary>The architecture of the encoder.</summary>
    public BertConfig Config => bert.Config;

    /// <summary>Number of outputs; 1 means regression.</summary>
    public int NumLabels { get; }

    /// <summary>"mean" or "pooler".</summary>
    public string Head { get; }

    /// <summary>Builds a randomly initialised model (Hugging Face's initialisation, from <paramref name="seed"/>).</summary>
    public BertForSequenceClassification(BertConfig config, int numLabels, string head = PoolerHead, long seed = 0)
        : base(nameof(BertForSequenceClassification))
    {
        if (numLabels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), numLabels, "num_labels must be at least 1 (1 = regression).");
        if (!Heads.Contains(head)) throw new ArgumentException($"unknown head '{head}' (valid: {string.Join(", ", Heads)}).", nameof(head));
        NumLabels = numLabels;
        Head = head;
        bert = new BertModel(config, addPoolingLayer: head == PoolerHead, seed: seed);
        dropout = nn.Dropout(config.ClassifierDropout ?? config.HiddenDropoutProb);
        classifier = nn.Linear(config.HiddenSize, numLabels);
        RegisterComponents();
        // A separate stream for the head, so its initial weights do not depend on the size of the encoder.
        BertInit.Apply(classifier, config, seed + 1);
    }

    /// <summary>input ids, attention mask, token type ids [B, T] to logits [B, num_labels].</summary>
    public override Tensor forward(Tensor inputIds, Tensor? attentionMask, Tensor? tokenTypeIds)
    {
        var hidden = bert.call(inputIds, attentionMask, tokenTypeIds);
        var features = Head == PoolerHead ? bert.Pool(hidden) : BertPooling.MeanPool(hidden, attentionMask);
        return classifier.call(dropout.call(features));
    }

    /// <summary>Loads a Hugging Face BERT folder (base or task checkpoint) and adds a head; a missing classifier is initialised from <paramref name="seed"/>.</summary>
    public static BertForSequenceClassification FromPretrained(string folder, int numLabels, string head = PoolerHead, long seed = 0, Device? device = null) =>
        HfBertLoader.LoadForSequenceClassification(folder, numLabels, head, seed, device).Model;
}
