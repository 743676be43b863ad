using System.Text.Json;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Bert;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Roberta;

/// <summary>Loads and saves RoBERTa (and XLM-R) models as Hugging Face folders (config.json + safetensors / sharded / pytorch_model.bin).</summary>
public static class HfRobertaLoader
{
    // Never worth a warning: a buffer older checkpoints saved, and the masked-LM head of base checkpoints (roberta-base has lm_head.*).
    static readonly string[] AlwaysIgnored = ["embeddings.position_ids", "embeddings.token_type_ids", "lm_head."];

    /// <summary>RobertaConfig's pad_token_id when config.json has none (BertConfig's default, 0, is RoBERTa's &lt;s&gt;).</summary>
    public const int DefaultPadTokenId = 1;

    /// <summary>Reads and validates the folder's config.json: model_type roberta or xlm-roberta.</summary>
    public static BertConfig LoadConfig(string folder)
    {
        var path = HfCheckpoint.ConfigPath(folder);
        var config = BertConfig.Load(path, BertConfig.RobertaModelTypes);
        bool hasPad;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            hasPad = doc.RootElement.TryGetProperty("pad_token_id", out _);
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
        return hasPad ? config : config with { PadTokenId = DefaultPadTokenId };
    }

    /// <summary>Loads the encoder alone (a base checkpoint, names embeddings.* / roberta.embeddings.*), without a pooler; warnings go to <paramref name="log"/> (stderr by default).</summary>
    public static (BertModel Model, HfLoadReport Report) LoadModelWithReport(string folder, Device? device = null, Action<string>? log = null)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var model = new BertModel(config, addPoolingLayer: false);
            var report = HfStateDict.Load(model, weights, folder, new HfLoadOptions("roberta.", IgnoredUnexpected: [.. AlwaysIgnored, "pooler.", "classifier."]), log);
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Loads a folder into a sequence classifier. From a base checkpoint the classification head starts from <paramref name="seed"/>;
    /// that is expected, not an error. A base checkpoint's pooler (roberta-base has one) is not part of this model and is ignored.
    /// </summary>
    public static (RobertaForSequenceClassification Model, HfLoadReport Report) LoadForSequenceClassification(string folder, int numLabels,
        long seed = 0, Device? device = null, Action<string>? log = null)
    {
        var config = LoadConfig(folder);
        var weights = HfCheckpoint.ReadWeights(folder);
        try
        {
            var model = new RobertaForSequenceClassification(config, numLabels, seed);
            var options = new HfLoadOptions("roberta.", ExpectedMissing: ["classifier."], IgnoredUnexpected: [.. AlwaysIgnored, "roberta.pooler.", "pooler."]);
            var report = HfStateDict.Load(model, weights, folder, options, log);
            return (MoveTo(model, device), report);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>Saves a classifier as a task checkpoint folder (names roberta.*, classifier.*) that transformers' RobertaForSequenceClassification reads.</summary>
    public static void Save(string folder, RobertaForSequenceClassification model, string? copyTokenizerFrom = null, long? maxShardBytes = null)
    {
        var labels = Enumerable.Range(0, model.NumLabels).ToDictionary(i => i.ToString(), i => $"LABEL_{i}");
        var architecture = model.Config.ModelType == "xlm-roberta" ? "XLMRobertaForSequenceClassification" : nameof(RobertaForSequenceClassification);
        var extra = model.Config.Extra is null ? new Dictionary<string, JsonElement>() : new Dictionary<string, JsonElement>(model.Config.Extra);
        extra["architectures"] = JsonSerializer.SerializeToElement(new[] { architecture });
        extra["id2label"] = JsonSerializer.SerializeToElement(labels);
        extra["label2id"] = JsonSerializer.SerializeToElement(labels.ToDictionary(p => p.Value, p => int.Parse(p.Key)));
        extra["num_labels"] = JsonSerializer.SerializeToElement(model.NumLabels);
        if (model.NumLabels == 1) extra["problem_type"] = JsonSerializer.SerializeToElement("regression");
        var config = model.Config with { Extra = extra };
        config.Validate("config", BertConfig.RobertaModelTypes);
        HfFolderWriter.Write(folder, config.ToJson(), model.state_dict(), maxShardBytes, copyTokenizerFrom);
    }

    static T MoveTo<T>(T model, Device? device) where T : nn.Module =>
        device is null || device.type == DeviceType.CPU ? model : model.to(device);
}
