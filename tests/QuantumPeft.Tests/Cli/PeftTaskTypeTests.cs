using System.Text.Json;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using QuantumPeft.Training;
using QuantumPeft.Tuners;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Cli;

/// <summary>Adapters peft writes for each task type on BERT (FEATURE_EXTRACTION on BertModel, SEQ_CLS on the classifier), and the head rules of issue 16.</summary>
public sealed class PeftTaskTypeTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-peft-tasks-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    // A FEATURE_EXTRACTION LoRA as peft saves it for a bare BertModel: keys base_model.model.encoder... (no "bert."), no classifier.
    (string Base, string Adapter, Dictionary<string, Tensor> Delta) FeatureExtractionAdapter()
    {
        var baseDir = Path.Combine(dir, "bert");
        using (var bert = new BertModel(QuantumPeft.Tests.Models.Bert.TinyBert.Config(), addPoolingLayer: true, seed: 11))
            HfBertLoader.Save(baseDir, bert);
        var adapter = Path.Combine(dir, "fe-adapter");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), """
        {"base_model_name_or_path": "bert-tiny", "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
         "lora_alpha": 8, "lora_dropout": 0.0, "modules_to_save": null, "peft_type": "LORA", "r": 2, "target_modules": ["query", "value"],
         "task_type": "FEATURE_EXTRACTION", "use_dora": false, "use_rslora": false}
        """);
        manual_seed(3);
        var tensors = new Dictionary<string, Tensor>();
        var delta = new Dictionary<string, Tensor>();
        for (int l = 0; l < 2; l++)
            foreach (var proj in new[] { "query", "value" })
            {
                var path = $"encoder.layer.{l}.attention.self.{proj}";
                var a = randn(2, 16) * 0.3; var b = randn(16, 2) * 0.3;
                tensors[$"base_model.model.{path}.lora_A.weight"] = a;
                tensors[$"base_model.model.{path}.lora_B.weight"] = b;
                delta[path + ".weight"] = b.matmul(a) * 4.0;   // lora_alpha / r
            }
        SafetensorsFile.Write(Path.Combine(adapter, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        return (baseDir, adapter, delta);
    }

    static float[][] Hidden(string output)
    {
        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.GetProperty("last_hidden_state").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
    }

    [Fact]
    public void A_feature_extraction_adapter_merges_into_the_plain_base_folder_and_logits_apply_it()
    {
        var (baseDir, adapter, delta) = FeatureExtractionAdapter();
        var inputs = Path.Combine(dir, "in.json");
        File.WriteAllText(inputs, JsonSerializer.Serialize(new { input_ids = new long[] { 2, 11, 12, 13, 3 } }));

        // The base model by hand with the updates merged: the reference.
        Tensor expected;
        using (var reference = HfBertLoader.LoadModel(baseDir))
        {
            using (no_grad()) foreach (var (k, d) in delta) reference.state_dict()[k].add_(d);
            reference.eval();
            using (no_grad()) expected = reference.forward(tensor(new long[] { 2, 11, 12, 13, 3 }).unsqueeze(0), null, null)[0];
        }

        var (code, output) = CliCommandTests.Run(new LogitsCommand(), "logits", "--model", baseDir, "--adapter", adapter, "--inputs", inputs, "--json");
        Assert.Equal(0, code);
        var withAdapter = Hidden(output);
        Assert.Equal(5, withAdapter.Length);
        for (int t = 0; t < 5; t++) for (int h = 0; h < 16; h++) Assert.Equal(expected[t, h].item<float>(), withAdapter[t][h], 4);

        var merged = Path.Combine(dir, "merged");
        (code, output) = CliCommandTests.Run(new MergeCommand(), "merge", "--model", baseDir, "--adapter", adapter, "--out", merged);
        Assert.Equal(0, code);
        Assert.Contains("no classifier: the bare encoder", output);
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(merged, "config.json"))))
            Assert.Equal("BertModel", config.RootElement.GetProperty("architectures")[0].GetString());
        (code, output) = CliCommandTests.Run(new LogitsCommand(), "logits", "--model", merged, "--inputs", inputs, "--json");
        Assert.Equal(0, code);
        var fromMerged = Hidden(output);
        for (int t = 0; t < 5; t++) for (int h = 0; h < 16; h++) Assert.Equal(withAdapter[t][h], fromMerged[t][h], 4);
    }

    [Fact]
    public void A_prefix_mismatch_names_an_expected_and_a_found_key()
    {
        var (baseDir, adapter, _) = FeatureExtractionAdapter();
        // The encoder-only adapter given to a classifier, whose modules are named bert.encoder...: one clear error.
        var (classifier, _) = HfBertLoader.LoadForSequenceClassification(baseDir, 2, BertForSequenceClassification.PoolerHead);
        var e = Assert.Throws<InvalidDataException>(() => PeftModel.Load(classifier, adapter));
        Assert.Contains("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight", e.Message);
        Assert.Contains("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight", e.Message);
    }

    [Fact]
    public void Classifiers_default_to_transformers_pooler_head_and_a_mean_head_is_never_written_as_a_transformers_folder()
    {
        var minilm = ModelResolver.Resolve("minilm");
        using (var pooler = new TextClassifier(minilm, 2, new FineTuneSpec { Method = "quantum", Rank = 2, Targets = "query,value" }, maxLength: 16))
        {
            Assert.Equal(BertForSequenceClassification.PoolerHead, pooler.Head);
            // Adapters record the bundled model by its hub name, as peft users expect.
            var adapterDir = Path.Combine(dir, "pooler-adapter");
            pooler.SaveAdapter(adapterDir);
            using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapterDir, "adapter_config.json")));
            Assert.Equal("sentence-transformers/all-MiniLM-L6-v2", config.RootElement.GetProperty("base_model_name_or_path").GetString());
            // export-lora keeps the head the classifier was trained with.
            var lora = Path.Combine(dir, "exported");
            Assert.Equal(0, CliCommandTests.Run(new ExportLoraCommand(), "export-lora", "--adapter", adapterDir, "--out", lora).Code);
            Assert.Equal(BertForSequenceClassification.PoolerHead, SafetensorsFile.ReadHeader(Path.Combine(lora, "adapter_model.safetensors")).Metadata[TextClassifier.HeadMetadataKey]);
        }
        using (var mean = new TextClassifier(minilm, 2, new FineTuneSpec { Method = "lora", Rank = 2, Targets = "query,value", Head = "mean" }, maxLength: 16))
        {
            Assert.Equal(BertForSequenceClassification.MeanHead, mean.Head);
            var e = Assert.Throws<InvalidOperationException>(() => mean.SaveMerged(Path.Combine(dir, "merged-mean")));
            Assert.Contains("transformers' BertForSequenceClassification has no such head", e.Message);
            Assert.False(Directory.Exists(Path.Combine(dir, "merged-mean")));
        }
        var head = Assert.Throws<ArgumentException>(() => new TextClassifier(minilm, 2, new FineTuneSpec { Method = "head", Head = "mean" }, maxLength: 16));
        Assert.Contains("transformers has no mean-pooling head", head.Message);
        Assert.Contains("valid: pooler, mean", Assert.Throws<ArgumentException>(() => new TextClassifier(minilm, 2, new FineTuneSpec { Method = "lora", Head = "max" }, maxLength: 16)).Message);
    }
}
