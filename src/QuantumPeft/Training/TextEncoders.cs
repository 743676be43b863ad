using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Bert;
using QuantumPeft.Models.DebertaV2;
using QuantumPeft.Models.Roberta;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>Texts (and pair texts) to a model's inputs [B, T]: the shape of every encoder's Encode (<see cref="BertTextEncoder.Encode"/>).</summary>
public delegate BertBatch TextBatchEncoder(IReadOnlyList<string> texts, IReadOnlyList<string>? pairs, int maxLength, Device? device);

/// <summary>One encoder architecture as the text classifier sees it: its loader, saver, tokenizer, heads and target sets.</summary>
/// <param name="Name">Shown in messages ("BERT", "RoBERTa").</param>
/// <param name="ModelTypes">config.json model_type values of the architecture.</param>
/// <param name="Heads">The heads a classifier may have; the first is the one training uses.</param>
/// <param name="ForeignHead">The head of a file without qpeft_head (one transformers or peft wrote).</param>
/// <param name="HeadModules">Top-level modules of the head: trained by --method head, saved as modules_to_save, left out of all-linear.</param>
/// <param name="LabelsModule">The Linear whose weight rows are the labels (a saved adapter's label count is read from it).</param>
/// <param name="PaperTargets">The paper's (DeBERTaV3 / AdaLoRA) six matrices: query, key, value, attention output, intermediate, output.</param>
/// <param name="Ia3Targets">peft's default IA3 target modules for the architecture.</param>
/// <param name="Ia3Feedforward">peft's default IA3 feed-forward modules (scaled on their input).</param>
/// <param name="Tokenizer">The folder's tokenizer as a batch encoder.</param>
/// <param name="Load">(folder, labels, head, seed, log) to a classifier and its load report; a missing head is newly initialised.</param>
/// <param name="Save">(folder, model, head, tokenizer source) writes a Hugging Face sequence-classification folder.</param>
/// <param name="ReadHead">A model folder's saved (labels, head), or null for a base model.</param>
/// <param name="VocabSize">The folder's vocab_size (token ids are checked against it).</param>
/// <param name="LoadEncoder">The bare encoder of a folder (last hidden state), when the architecture offers it.</param>
/// <param name="SaveEncoder">(folder, bare encoder, tokenizer source) writes a base-model folder, when the architecture offers it.</param>
public sealed record TextEncoderArchitecture(
    string Name,
    IReadOnlyList<string> ModelTypes,
    IReadOnlyList<string> Heads,
    string ForeignHead,
    IReadOnlyList<string> HeadModules,
    string LabelsModule,
    string PaperTargets,
    string Ia3Targets,
    IReadOnlyList<string> Ia3Feedforward,
    Func<string, TextBatchEncoder> Tokenizer,
    Func<string, int, string, long, Action<string>?, (nn.Module<Tensor, Tensor?, Tensor?, Tensor> Model, HfLoadReport Report)> Load,
    Action<string, nn.Module<Tensor, Tensor?, Tensor?, Tensor>, string, string?> Save,
    Func<string, (int NumLabels, string Head)?> ReadHead,
    Func<string, int> VocabSize,
    Func<string, Device, nn.Module<Tensor, Tensor?, Tensor?, Tensor>>? LoadEncoder = null,
    Action<string, nn.Module<Tensor, Tensor?, Tensor?, Tensor>, string?>? SaveEncoder = null)
{
    /// <summary>The head training uses.</summary>
    public string DefaultHead => Heads[0];

    /// <summary>
    /// An architecture with one head (RoBERTa, DeBERTa-v2): its loader takes (folder, labels, seed, log), its saver (folder, model,
    /// tokenizer source); the label count of a saved folder is config.json's num_labels / id2label.
    /// </summary>
    public static TextEncoderArchitecture OneHead<TModel>(string name, IReadOnlyList<string> modelTypes, string head,
        Func<string, TextBatchEncoder> tokenizer, Func<string, int, long, Action<string>?, (TModel Model, HfLoadReport Report)> load,
        Action<string, TModel, string?> save, string paperTargets, IReadOnlyList<string> headModules, string labelsModule,
        string ia3Targets, IReadOnlyList<string> ia3Feedforward, Func<string, int> vocabSize,
        Func<string, Device, nn.Module<Tensor, Tensor?, Tensor?, Tensor>>? loadEncoder = null)
        where TModel : nn.Module<Tensor, Tensor?, Tensor?, Tensor> =>
        new(name, modelTypes, [head], head, headModules, labelsModule, paperTargets, ia3Targets, ia3Feedforward, tokenizer,
            (folder, labels, _, seed, log) => load(folder, labels, seed, log),
            (folder, model, _, copyFrom) => save(folder, (TModel)model, copyFrom),
            folder => TextEncoders.ReadNumLabels(folder) is { } n ? (n, head) : null,
            vocabSize, loadEncoder);
}

/// <summary>The text encoders the classifier, the trainer and the CLI load, by config.json's model_type: one entry per architecture folder.</summary>
public static class TextEncoders
{
    /// <summary>The CLI name of the paper's target set (--targets paper): each architecture's six matrices (<see cref="TextEncoderArchitecture.PaperTargets"/>).</summary>
    public const string PaperTargetsShorthand = "paper";

    /// <summary>BERT: two heads, transformers' pooler (the default: a merged folder predicts the same in transformers) and mean pooling.</summary>
    public static TextEncoderArchitecture Bert { get; } = new("BERT", BertConfig.SupportedModelTypes,
        [BertForSequenceClassification.PoolerHead, BertForSequenceClassification.MeanHead], BertForSequenceClassification.PoolerHead,
        ["classifier"], "classifier", "query,key,value,attention.output.dense,intermediate.dense,output.dense",
        "key,value,output.dense", ["output.dense"],
        folder => BertTextEncoder.FromFolder(folder).Encode,
        (folder, labels, head, seed, log) => HfBertLoader.LoadForSequenceClassification(folder, labels, head, seed, log: log),
        (folder, model, _, copyFrom) => HfBertLoader.Save(folder, (BertForSequenceClassification)model, copyFrom),
        HfBertLoader.ReadClassifierHead,
        folder => HfBertLoader.LoadConfig(folder).VocabSize,
        (folder, device) => HfBertLoader.LoadModel(folder, device),
        (folder, encoder, copyFrom) => HfBertLoader.Save(folder, (BertModel)encoder, copyFrom));

    /// <summary>RoBERTa and XLM-R: one head, RobertaClassificationHead (classifier.dense, classifier.out_proj).</summary>
    public static TextEncoderArchitecture Roberta { get; } = TextEncoderArchitecture.OneHead<RobertaForSequenceClassification>("RoBERTa",
        BertConfig.RobertaModelTypes, RobertaForSequenceClassification.ClassificationHead,
        folder => RobertaTextEncoder.FromFolder(folder).Encode,
        (folder, labels, seed, log) => HfRobertaLoader.LoadForSequenceClassification(folder, labels, seed, log: log),
        (folder, model, copyFrom) => HfRobertaLoader.Save(folder, model, copyFrom),
        "query,key,value,attention.output.dense,intermediate.dense,output.dense", ["classifier"], "classifier.out_proj",
        "key,value,output.dense", ["output.dense"],
        folder => HfRobertaLoader.LoadConfig(folder).VocabSize,
        (folder, device) => HfRobertaLoader.LoadModelWithReport(folder, device).Model);

    /// <summary>DeBERTa-v2 / v3: one head, ContextPooler + classifier (modules_to_save pooler and classifier).</summary>
    public static TextEncoderArchitecture DebertaV2 { get; } = TextEncoderArchitecture.OneHead<DebertaV2ForSequenceClassification>("DeBERTa-v2",
        [DebertaV2Config.DebertaV2ModelType], "classifier",
        folder => DebertaV2TextEncoder.FromFolder(folder).Encode,
        (folder, labels, seed, log) => HfDebertaV2Loader.LoadForSequenceClassification(folder, labels, seed, log),
        (folder, model, copyFrom) => HfDebertaV2Loader.Save(folder, model, copyFrom),
        string.Join(",", DebertaV2ForSequenceClassification.PaperTargetModules), DebertaV2ForSequenceClassification.HeadModules, "classifier",
        "key_proj,value_proj,output.dense", ["output.dense"],
        folder => HfDebertaV2Loader.LoadConfig(folder).VocabSize,
        (folder, device) => HfDebertaV2Loader.LoadModel(folder, device));

    // One line per architecture folder.
    static readonly List<TextEncoderArchitecture> architectures = [Bert, Roberta, DebertaV2];

    /// <summary>Every model_type a text classifier folder may have.</summary>
    public static IReadOnlyList<string> ModelTypes => architectures.SelectMany(a => a.ModelTypes).ToList();

    /// <summary>Adds an architecture (for one defined outside this library); a model_type already known is an error.</summary>
    public static void Register(TextEncoderArchitecture architecture)
    {
        var taken = architecture.ModelTypes.FirstOrDefault(t => ModelTypes.Contains(t));
        if (taken is not null) throw new ArgumentException($"model_type '{taken}' already has a text encoder.", nameof(architecture));
        architectures.Add(architecture);
    }

    /// <summary>True when the folder's config.json names a text encoder this library loads.</summary>
    public static bool IsTextEncoder(string folder) => HfCheckpoint.ReadModelType(folder) is { } t && ModelTypes.Contains(t);

    /// <summary>The architecture of a model folder, by its config.json's model_type.</summary>
    /// <exception cref="NotSupportedException">The model_type is not a text encoder this library knows (the message lists them).</exception>
    public static TextEncoderArchitecture For(string folder)
    {
        var type = HfCheckpoint.ReadModelType(folder);
        // Configs written before transformers 3 carry no model_type; BERT's reader knows them by their architectures.
        if (type is null) return Bert;
        return architectures.FirstOrDefault(a => a.ModelTypes.Contains(type))
            ?? throw new NotSupportedException(
                $"{HfCheckpoint.ConfigPath(folder)}: model_type '{type}' is not a supported text encoder (supported: {string.Join(", ", ModelTypes)}).");
    }

    /// <summary>num_labels, the size of id2label, or 2 (transformers' default) for a *ForSequenceClassification architecture; null for a base model.</summary>
    public static int? ReadNumLabels(string folder)
    {
        var path = HfCheckpoint.ConfigPath(folder);
        using var doc = ReadConfig(path);
        var root = doc.RootElement;
        if (root.TryGetProperty("num_labels", out var n) && n.ValueKind == System.Text.Json.JsonValueKind.Number) return n.GetInt32();
        if (root.TryGetProperty("id2label", out var ids) && ids.ValueKind == System.Text.Json.JsonValueKind.Object) return ids.EnumerateObject().Count();
        return root.TryGetProperty("architectures", out var a) && a.ValueKind == System.Text.Json.JsonValueKind.Array
            && a.EnumerateArray().Any(x => x.GetString()?.EndsWith("ForSequenceClassification", StringComparison.Ordinal) == true) ? 2 : null;
    }

    /// <summary>config.json's vocab_size.</summary>
    public static int ReadVocabSize(string folder)
    {
        var path = HfCheckpoint.ConfigPath(folder);
        using var doc = ReadConfig(path);
        return doc.RootElement.TryGetProperty("vocab_size", out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number ? v.GetInt32()
            : throw new InvalidDataException($"{path}: vocab_size is missing.");
    }

    static System.Text.Json.JsonDocument ReadConfig(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config.json not found: expected a Hugging Face model config at '{path}'.", path);
        try { return System.Text.Json.JsonDocument.Parse(File.ReadAllText(path)); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
    }
}
