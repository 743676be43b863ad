using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.DebertaV2;

/// <summary>DeBERTa's ContextPooler: dropout on the first token's hidden state, dense, pooler_hidden_act.</summary>
public sealed class ContextPooler : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> dense;
    private readonly Dropout dropout;
    private readonly Func<Tensor, Tensor> activation;

    public ContextPooler(DebertaV2Config config) : base(nameof(ContextPooler))
    {
        int size = config.PoolerHiddenSize ?? config.HiddenSize;
        dense = nn.Linear(size, size);
        dropout = nn.Dropout(config.PoolerDropout);
        activation = Layers.Activations.Get(config.PoolerHiddenAct, "pooler_hidden_act");
        RegisterComponents();
    }

    /// <summary>last hidden state [B, T, H] to the pooled output [B, H].</summary>
    public override Tensor forward(Tensor lastHidden) => activation(dense.call(dropout.call(lastHidden[.., 0])));
}

/// <summary>A DeBERTa-v2 / v3 encoder with a classification (or, for one label, regression) head: Hugging Face's DebertaV2ForSequenceClassification.</summary>
/// <remarks>
/// State-dict names: deberta.*, pooler.dense.*, classifier.*. The head is the ContextPooler then dropout (cls_dropout, else
/// hidden_dropout_prob) then the classifier. peft's SEQ_CLS task saves only "classifier" (its classifier_module_names are
/// classifier and score), so the pooler, new in a pre-training checkpoint such as deberta-v3-base, stays at its random start
/// unless modules_to_save also names "pooler"; <see cref="HeadModules"/> names both.
/// </remarks>
public sealed class DebertaV2ForSequenceClassification : nn.Module<Tensor, Tensor?, Tensor?, Tensor>
{
    /// <summary>The head's module names, for modules_to_save and head-only training: the classifier and the ContextPooler.</summary>
    public static readonly IReadOnlyList<string> HeadModules = ["classifier", "pooler"];

    /// <summary>
    /// The paper's DeBERTaV3 target set (AdaLoRA's six matrices per layer: query, key, value, attention output, intermediate,
    /// output) as target_modules suffixes; "output.dense" also matches attention.output.dense, which is in the set anyway.
    /// </summary>
    public static readonly IReadOnlyList<string> PaperTargetModules = ["query_proj", "key_proj", "value_proj", "attention.output.dense", "intermediate.dense", "output.dense"];

    private readonly DebertaV2Model deberta;
    private readonly ContextPooler pooler;
    private readonly Dropout dropout;
    private nn.Module<Tensor, Tensor> classifier;

    /// <summary>The encoder (state-dict prefix "deberta.").</summary>
    public DebertaV2Model Deberta => deberta;

    /// <summary>The architecture of the encoder.</summary>
    public DebertaV2Config Config => deberta.Config;

    /// <summary>Number of outputs; 1 means regression.</summary>
    public int NumLabels { get; }

    /// <summary>Builds a randomly initialised model (Hugging Face's initialisation): the encoder from <paramref name="seed"/>, the head from seed + 1.</summary>
    public DebertaV2ForSequenceClassification(DebertaV2Config config, int numLabels, long seed = 0) : base(nameof(DebertaV2ForSequenceClassification))
    {
        if (numLabels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), numLabels, "num_labels must be at least 1 (1 = regression).");
        NumLabels = numLabels;
        deberta = new DebertaV2Model(config, seed);
        pooler = new ContextPooler(config);
        classifier = nn.Linear(config.HiddenSize, numLabels);
        dropout = nn.Dropout(config.ClsDropout ?? config.HiddenDropoutProb);
        RegisterComponents();
        // A separate stream for the head, so its initial weights do not depend on the size of the encoder.
        DebertaV2Init.Apply(pooler, config, seed + 1);
        DebertaV2Init.Apply(classifier, config, seed + 2);
    }

    /// <summary>input ids, attention mask, token type ids [B, T] (mask and types may be null) to logits [B, num_labels].</summary>
    public override Tensor forward(Tensor inputIds, Tensor? attentionMask, Tensor? tokenTypeIds)
    {
        using var hidden = deberta.call(inputIds, attentionMask, tokenTypeIds);
        using var pooled = pooler.call(hidden);
        return classifier.call(dropout.call(pooled));
    }

    /// <summary>Loads a Hugging Face DeBERTa-v2 / v3 folder (base or task checkpoint); a missing or differently sized head starts from <paramref name="seed"/>.</summary>
    public static DebertaV2ForSequenceClassification FromPretrained(string folder, int numLabels, long seed = 0, Device? device = null) =>
        HfDebertaV2Loader.LoadForSequenceClassification(folder, numLabels, seed, device: device).Model;
}
