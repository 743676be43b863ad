using System.Text.Json;
using QuantumPeft.Cli;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Data;
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Tests.Models;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Training;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Cli;

/// <summary>qpeft logits and merge on decoder and encoder folders, in-process.</summary>
[Collection("MiniLM")]
public sealed class DecoderCliTests(MiniLmFixture minilm) : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-dec-cli-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    static (int Code, string Output) Run(ICliCommand command, params string[] args) => CliCommandTests.Run(command, args);

    string Inputs(object value)
    {
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"inputs-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(value));
        return path;
    }

    static float[][] Rows(string output, string key)
    {
        using var doc = JsonDocument.Parse(output);
        var node = doc.RootElement.GetProperty(key);
        return node[0].ValueKind == JsonValueKind.Array
            ? node.EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray()
            : [node.EnumerateArray().Select(v => v.GetSingle()).ToArray()];
    }

    static double MaxDiff(float[] a, Tensor b) => a.Zip(b.data<float>().ToArray(), (x, y) => Math.Abs(x - y)).Max();

    [Fact]
    public void Logits_of_a_gpt2_folder_are_the_last_token_rows_single_and_padded()
    {
        using var model = TinyGpt2.Model();
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "gpt2"));
        using var _ = no_grad();

        var (code, output) = Run(new LogitsCommand(), "logits", "--model", folder, "--inputs", Inputs(new { input_ids = new[] { 5, 17, 3 } }), "--json");
        Assert.Equal(0, code);
        var single = Rows(output, "logits");
        Assert.Single(single);
        Assert.Equal(TinyGpt2.Vocab, single[0].Length);
        Assert.True(MaxDiff(single[0], model.Forward(TinyGpt2.Ids([5, 17, 3]))[0, -1]) < 1e-5);
        Assert.DoesNotContain("[[", output);   // one sequence in, one row out

        var padded = new { input_ids = new[] { new[] { 5, 17, 3, 0 }, new[] { 9, 8, 7, 6 } }, attention_mask = new[] { new[] { 1, 1, 1, 0 }, new[] { 1, 1, 1, 1 } } };
        (code, output) = Run(new LogitsCommand(), "logits", "--model", folder, "--inputs", Inputs(padded), "--json");
        Assert.Equal(0, code);
        var rows = Rows(output, "logits");
        Assert.Equal(2, rows.Length);
        Assert.True(MaxDiff(rows[0], model.Forward(TinyGpt2.Ids([5, 17, 3]))[0, -1]) < 1e-5);   // right padding: the last real token
        Assert.True(MaxDiff(rows[1], model.Forward(TinyGpt2.Ids([9, 8, 7, 6]))[0, -1]) < 1e-5);
    }

    [Fact]
    public void Logits_on_the_bundled_minilm_classifier_match_the_trainers_forward()
    {
        using var classifier = new TextClassifier(minilm.Folder, 2, new FineTuneSpec { Method = "lora", Rank = 2, Seed = 5 });
        using (no_grad())   // a trained-looking adapter: nonzero B
            foreach (var p in classifier.AdapterParameters) p.add_(randn_like(p) * 0.05);
        var adapter = Path.Combine(dir, "adapter");
        classifier.SaveAdapter(adapter);
        classifier.SetTraining(false);
        string[] texts = ["a wonderful, moving film", "the plot made no sense at all and the acting was worse"];
        Tensor expected;
        using (no_grad()) expected = classifier.Forward(texts.Select(t => new TextExample(t, null, 0)).ToList());

        using var encoded = minilm.Text.Encode(texts, maxLength: 128);
        long[][] ToRows(Tensor t) => Enumerable.Range(0, (int)t.shape[0]).Select(i => t[i].data<long>().ToArray()).ToArray();
        var inputs = Inputs(new { input_ids = ToRows(encoded.InputIds), attention_mask = ToRows(encoded.AttentionMask), token_type_ids = ToRows(encoded.TokenTypeIds) });
        var (code, output) = Run(new LogitsCommand(), "logits", "--model", "minilm", "--adapter", adapter, "--inputs", inputs, "--json");
        Assert.Equal(0, code);
        var rows = Rows(output, "logits");
        Assert.Equal(2, rows.Length);
        for (int i = 0; i < 2; i++) Assert.True(MaxDiff(rows[i], expected[i]) < 1e-5, $"row {i}");
        Assert.True(Math.Abs(rows[0][0] - rows[0][1]) > 1e-4);   // a head that tells the rows apart, not zeros
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("mistral")]
    [InlineData("qwen2")]
    public void Logits_of_llama_family_folders_and_of_their_base_model_class(string type)
    {
        var config = QuantumPeft.Tests.Models.Llama.TinyLlama.Config(type);
        var folder = Path.Combine(dir, type);
        QuantumPeft.Tests.Models.Llama.TinyLlama.Write(folder, config);
        var lm = CausalLMs.Load(folder);
        using var _ = no_grad();
        var ids = new long[] { 3, 9, 27, 4, 11 };
        var (code, output) = Run(new LogitsCommand(), "logits", "--model", folder, "--inputs", Inputs(new { input_ids = ids }), "--json");
        Assert.Equal(0, code);
        Assert.True(MaxDiff(Rows(output, "logits").Single(), lm.Forward(tensor(ids).unsqueeze(0))[0, -1]) < 1e-5);

        config["architectures"] = new[] { type switch { "mistral" => "MistralModel", "qwen2" => "Qwen2Model", _ => "LlamaModel" } };
        File.WriteAllText(Path.Combine(folder, "config.json"), QuantumPeft.Tests.Models.Llama.TinyLlama.Json(config));
        (code, output) = Run(new LogitsCommand(), "logits", "--model", folder, "--inputs", Inputs(new { input_ids = ids }), "--json");
        Assert.Equal(0, code);
        var hidden = Rows(output, "last_hidden_state");
        Assert.Equal(ids.Length, hidden.Length);
        Assert.True(MaxDiff(hidden[^1], lm.HiddenStates(tensor(ids).unsqueeze(0))[0, -1]) < 1e-5);
    }

    [Fact]
    public void A_merged_classifier_folder_without_vocab_txt_works_from_token_ids()
    {
        using var classifier = new TextClassifier(minilm.Folder, 3, new FineTuneSpec { Method = "quantum", Rank = 2, Seed = 9 });
        var merged = Path.Combine(dir, "merged");
        classifier.SaveMerged(merged);
        foreach (var f in new[] { "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            if (File.Exists(Path.Combine(merged, f))) File.Delete(Path.Combine(merged, f));
        classifier.SetTraining(false);
        Tensor expected;
        using (no_grad()) expected = classifier.Model.forward(tensor(new long[] { 101, 7592, 2088, 102 }).unsqueeze(0), null, null);
        var (code, output) = Run(new LogitsCommand(), "logits", "--model", merged, "--inputs", Inputs(new { input_ids = new[] { 101, 7592, 2088, 102 } }), "--json");
        Assert.Equal(0, code);
        var row = Rows(output, "logits").Single();
        Assert.Equal(3, row.Length);
        Assert.True(MaxDiff(row, expected[0]) < 1e-5);
    }

    [Fact]
    public void Logits_of_a_bare_encoder_are_its_last_hidden_state()
    {
        using var encoded = minilm.Text.Encode(["hello there"], maxLength: 16);
        var ids = encoded.InputIds[0].data<long>().ToArray();
        var (code, output) = Run(new LogitsCommand(), "logits", "--model", "minilm", "--inputs", Inputs(new { input_ids = ids }), "--json");
        Assert.Equal(0, code);
        var rows = Rows(output, "last_hidden_state");
        Assert.Equal(ids.Length, rows.Length);
        using var _ = no_grad();
        var hidden = minilm.Model.forward(tensor(ids).unsqueeze(0))[0];
        for (int t = 0; t < ids.Length; t++) Assert.True(MaxDiff(rows[t], hidden[t]) < 1e-4);
    }

    [Fact]
    public void Merge_of_a_gpt2_lora_writes_a_plain_folder_with_the_adapters_logits()
    {
        using var model = TinyGpt2.Model();
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "base"));
        File.WriteAllText(Path.Combine(folder, "generation_config.json"), """{"bos_token_id": 1, "eos_token_id": 2}""");
        var lm = CausalLMs.Load(folder);
        var peft = PeftModel.Inject(lm.Module, new LoraConfig { R = 2, LoraAlpha = 8, TargetModules = ModuleSelector.Parse("c_attn,c_fc"),
            InitLoraWeights = JsonSerializer.SerializeToElement(false), TaskType = "CAUSAL_LM" });
        var adapter = Path.Combine(dir, "lora");
        peft.Save(adapter);
        var ids = TinyGpt2.Ids([3, 1, 4, 1, 5, 9]);
        Tensor expected;
        using (no_grad()) expected = lm.Forward(ids);

        var merged = Path.Combine(dir, "merged");
        var (code, output) = Run(new MergeCommand(), "merge", "--model", folder, "--adapter", adapter, "--out", merged);
        Assert.Equal(0, code);
        Assert.Contains("into 4 layers", output);
        Assert.True(File.Exists(Path.Combine(merged, "generation_config.json")));
        var keys = QuantumPeft.Formats.Safetensors.SafetensorsFile.ReadHeader(Path.Combine(merged, "model.safetensors")).Entries.Select(e => e.Name).ToList();
        Assert.Contains("transformer.h.0.attn.c_attn.weight", keys);
        Assert.DoesNotContain(keys, k => k.Contains("lora") || k.Contains("base_layer") || k == "lm_head.weight");
        var plain = CausalLMs.Load(merged);
        using (no_grad()) Assert.True((plain.Forward(ids) - expected).abs().max().item<float>() < 1e-4);
    }

    [Fact]
    public void Bad_inputs_are_named()
    {
        using var model = TinyGpt2.Model();
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "gpt2"));
        var ragged = Inputs(new { input_ids = new[] { new[] { 1, 2, 3 }, new[] { 4, 5 } } });
        var e1 = Assert.Throws<InvalidDataException>(() => Run(new LogitsCommand(), "logits", "--model", folder, "--inputs", ragged, "--json"));
        Assert.Contains("different lengths", e1.Message);
        var outside = Inputs(new { input_ids = new[] { 1, 2, 400 } });
        var e2 = Assert.Throws<ArgumentException>(() => Run(new LogitsCommand(), "logits", "--model", folder, "--inputs", outside, "--json"));
        Assert.Contains("input_ids[0][2] = 400", e2.Message);
        var noIds = Inputs(new { ids = new[] { 1 } });
        var e3 = Assert.Throws<InvalidDataException>(() => Run(new LogitsCommand(), "logits", "--model", folder, "--inputs", noIds, "--json"));
        Assert.Contains("\"input_ids\"", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => Run(new LogitsCommand(), "logits", "--model", folder, "--inputs", ragged, "--dtype", "int8"));
        Assert.Contains("--dtype 'int8'", e4.Message);
    }
}

/// <summary>qpeft generate's contract on GPT-2 folders, with and without a tokenizer and an adapter.</summary>
public sealed class GenerateCliTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-generate-cli-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    static (int Code, string Output) Run(params string[] args) => CliCommandTests.Run(new GenerateCommand(), ["generate", .. args]);

    static long[] Greedy(ICausalLM model, long[] prompt, int steps)
    {
        using var _ = no_grad();
        var ids = prompt.ToList();
        for (int i = 0; i < steps; i++)
            ids.Add(model.Forward(tensor(ids.ToArray()).unsqueeze(0))[0, -1].argmax().item<long>());
        return ids.Skip(prompt.Length).ToArray();
    }

    [Fact]
    public void Input_ids_contract_gives_greedy_tokens_of_the_full_forward()
    {
        using var model = TinyGpt2.Model();
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "gpt2"));
        var (code, output) = Run("--model", folder, "--input-ids", "5,17,3", "--max-new-tokens", "20", "--min-new-tokens", "20", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal([5L, 17, 3], doc.RootElement.GetProperty("input_ids").EnumerateArray().Select(v => v.GetInt64()));
        var generated = doc.RootElement.GetProperty("generated_ids").EnumerateArray().Select(v => v.GetInt64()).ToArray();
        Assert.Equal(Greedy(model, [5, 17, 3], 20), generated);
        Assert.False(doc.RootElement.TryGetProperty("text", out _));   // no tokenizer in the folder

        // Beam search runs through the same contract and reports its score; sampling with a seed repeats itself.
        var (_, beams) = Run("--model", folder, "--input-ids", "5,17,3", "--max-new-tokens", "6", "--num-beams", "3", "--json");
        using var beamDoc = JsonDocument.Parse(beams);
        Assert.Equal(6, beamDoc.RootElement.GetProperty("generated_ids").GetArrayLength());
        Assert.True(beamDoc.RootElement.GetProperty("sequence_scores").GetSingle() <= 0);   // a mean log-probability
        var s1 = Run("--model", folder, "--input-ids", "5,17,3", "--do-sample", "--seed", "4", "--json").Output;
        var s2 = Run("--model", folder, "--input-ids", "5,17,3", "--do-sample", "--seed", "4", "--json").Output;
        Assert.Equal(s1, s2);
    }

    [Fact]
    public void Prompt_is_tokenized_and_the_generated_text_decoded()
    {
        var eos = QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallEndOfText;
        using var model = TinyGpt2.Model(vocab: eos + 1, eos: eos);
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "gpt2-tok"));
        QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.WriteGpt2(folder, QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallVocab(),
            QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallMerges);
        var tokenizer = QuantumPeft.Data.Tokenizers.ModelTokenizer.Load(folder);
        var (code, output) = Run("--model", folder, "--prompt", "hello world", "--max-new-tokens", "8", "--min-new-tokens", "8", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var input = doc.RootElement.GetProperty("input_ids").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        Assert.Equal(tokenizer.Encode("hello world"), input);
        var generated = doc.RootElement.GetProperty("generated_ids").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        Assert.Equal(Greedy(model, input.Select(i => (long)i).ToArray(), 8).Select(i => (int)i), generated);
        Assert.Equal(tokenizer.Decode(generated), doc.RootElement.GetProperty("text").GetString());
    }

    [Fact]
    public void Adapter_generation_equals_the_merged_folders()
    {
        using var model = TinyGpt2.Model();
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "base"));
        var lm = CausalLMs.Load(folder);
        PeftModel.Inject(lm.Module, new LoraConfig { R = 2, LoraAlpha = 16, TargetModules = ModuleSelector.Parse("c_attn[q,v],c_fc"),
            InitLoraWeights = JsonSerializer.SerializeToElement(false) }).Save(Path.Combine(dir, "lora"));
        var merged = Path.Combine(dir, "merged");
        Assert.Equal(0, CliCommandTests.Run(new MergeCommand(), "merge", "--model", folder, "--adapter", Path.Combine(dir, "lora"), "--out", merged).Code);
        string[] common = ["--input-ids", "1,2,3,4", "--max-new-tokens", "12", "--min-new-tokens", "12", "--json"];
        var withAdapter = Run(["--model", folder, "--adapter", Path.Combine(dir, "lora"), .. common]).Output;
        var fromMerged = Run(["--model", merged, .. common]).Output;
        var plain = Run(["--model", folder, .. common]).Output;
        Assert.Equal(fromMerged, withAdapter);
        Assert.NotEqual(plain, withAdapter);
    }

    [Fact]
    public void Bad_requests_are_named()
    {
        using var model = TinyGpt2.Model();
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "gpt2"));
        Assert.Contains("--input-ids 5,17,3 or as --prompt", Assert.Throws<ArgumentException>(() => Run("--model", folder)).Message);
        Assert.Contains("has none; give --input-ids", Assert.Throws<ArgumentException>(() => Run("--model", folder, "--prompt", "hi")).Message);
        Assert.Contains("'x'", Assert.Throws<ArgumentException>(() => Run("--model", folder, "--input-ids", "1,x")).Message);
        Assert.Contains("outside the vocabulary", Assert.Throws<ArgumentException>(() => Run("--model", folder, "--input-ids", "1,99")).Message);
        Assert.Contains("--top-p", Assert.Throws<ArgumentException>(() => Run("--model", folder, "--input-ids", "1", "--do-sample", "--top-p", "0")).Message);
        Assert.Contains("exceeds the model's 32 positions", Assert.Throws<ArgumentException>(() => Run("--model", folder, "--input-ids", "1,2", "--max-new-tokens", "40")).Message);
        Assert.Contains("not a causal LM", Assert.Throws<ArgumentException>(() => Run("--model", "minilm", "--input-ids", "1")).Message);
    }
}

/// <summary>qpeft create-model writes folders that every decoder command reads.</summary>
public sealed class CreateModelCliTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-create-model-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("mistral")]
    [InlineData("qwen2")]
    public void Written_folders_load_with_the_sizes_asked_for(string type)
    {
        var folder = Path.Combine(dir, type);
        var (code, output) = CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", type, "--layers", "3", "--hidden", "32", "--vocab", "77", "--out", folder);
        Assert.Equal(0, code);
        Assert.Contains("3 layers", output);
        var lm = CausalLMs.Load(folder);
        Assert.Equal(type, lm.Info.ModelType);
        Assert.Equal(77, lm.Info.VocabSize);
        Assert.Equal(3, lm.Info.NumLayers);
        // A non-empty --out is kept without --force.
        var e = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", type, "--out", folder));
        Assert.Contains("--force", e.Message);
        Assert.Equal(77, CausalLMs.Load(folder).Info.VocabSize);
    }

    [Fact]
    public void Unknown_type_is_named()
    {
        var e = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", "t5", "--out", Path.Combine(dir, "x")));
        Assert.Contains("--type 't5'", e.Message);
    }
}

/// <summary>qpeft train on a generation task (a causal LM through the one trainer), in-process.</summary>
public sealed class TrainGenerationCliTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-train-gen-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    [Fact]
    public void E2e_from_a_data_dir_trains_a_gpt2_adapter_and_writes_results()
    {
        var eos = QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallEndOfText;
        using var model = TinyGpt2.Model(vocab: eos + 1, eos: eos);
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "gpt2"));
        QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.WriteGpt2(folder, QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallVocab(),
            QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallMerges);
        var data = Path.Combine(dir, "e2e");
        Directory.CreateDirectory(data);
        var csv = "mr,ref\n\"name[A], food[B]\",A serves B.\n\"name[C], food[D]\",C has D.\n\"name[A], food[B]\",B at A.\n";
        foreach (var f in E2eNlg.Files) File.WriteAllText(Path.Combine(data, f), csv);
        var outDir = Path.Combine(dir, "run");
        var (code, output) = CliCommandTests.Run(new TrainCommand(), "train", "--task", "e2e", "--data-dir", data, "--model", folder, "--method", "lora",
            "--max-steps", "3", "--batch-size", "2", "--num-beams", "2", "--max-new-tokens", "4", "--out", outDir);
        Assert.Equal(0, code);
        Assert.Contains("saved:", output);   // (the coloured summary goes through Spectre's own console)
        using var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")));
        Assert.Equal("e2e", results.RootElement.GetProperty("task").GetString());
        Assert.Equal("c_attn[q,v]", results.RootElement.GetProperty("targets").GetString());   // the LoRA paper's GPT-2 targets
        Assert.Equal(32, results.RootElement.GetProperty("alpha").GetDouble());
        Assert.Equal(2 * TinyGpt2.Layers * LoraBranch.CountParameters(16, 16, 4), results.RootElement.GetProperty("adapter_params").GetInt64());
        Assert.True(results.RootElement.GetProperty("test_metrics").GetProperty("perplexity").GetDouble() > 1);
        Assert.True(File.Exists(Path.Combine(outDir, "adapter", "adapter_config.json")));
        Assert.True(File.Exists(Path.Combine(outDir, "metrics.jsonl")));
    }

    [Fact]
    public void A_task_that_does_not_fit_the_model_is_named()
    {
        var e = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new TrainCommand(), "train", "--task", "e2e", "--model", "minilm", "--out", Path.Combine(dir, "x")));
        Assert.Contains("trains a causal LM", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new TrainCommand(), "train", "--task", "e2e", "--model", TinyGpt2.Write(TinyGpt2.Model(), Path.Combine(dir, "m")), "--out", Path.Combine(dir, "y")));
        Assert.Contains("--data-dir", e2.Message);
    }
}

/// <summary>qpeft bench step on a causal-LM folder: the same loop as for BERT, on the gloss task.</summary>
public sealed class BenchStepDecoderTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-bench-step-dec-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    [Fact]
    public void Times_quantum_against_lora_on_q_and_v_of_a_gpt2()
    {
        var eos = QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallEndOfText;
        using var model = TinyGpt2.Model(vocab: eos + 1, eos: eos);
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "gpt2"));
        QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.WriteGpt2(folder, QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallVocab(),
            QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter.SmallMerges);
        var outDir = Path.Combine(dir, "bench");
        var (code, output) = CliCommandTests.Run(new BenchStepCommand(), "step", "--model", folder, "--rank", "2", "--steps", "1", "--rounds", "1", "--batch-size", "2", "--out", outDir);
        Assert.Equal(0, code);
        var csv = File.ReadAllLines(Path.Combine(outDir, "step.csv"));
        Assert.Equal(3, csv.Length);
        // q and v thirds of c_attn in both layers: LoRA r = 2 on four 16 x 16 maps.
        Assert.Contains(csv, l => l.StartsWith("lora,2," + 4 * LoraBranch.CountParameters(16, 16, 2) + ",", StringComparison.Ordinal));
        Assert.Contains("U and V of all 4 adapted layers", output);
    }
}

/// <summary>An adapter written by Python's peft for transformers' BertForSequenceClassification (pooler head, SEQ_CLS) through qpeft logits.</summary>
public sealed class PeftSeqClsLogitsTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-peft-seqcls-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    [Fact]
    public void A_peft_seq_cls_lora_gives_the_logits_of_the_hand_merged_pooler_classifier()
    {
        var baseDir = Path.Combine(dir, "bert");
        using (var bert = new BertModel(QuantumPeft.Tests.Models.Bert.TinyBert.Config(), addPoolingLayer: true, seed: 11))
            HfBertLoader.Save(baseDir, bert);
        var adapter = Path.Combine(dir, "adapter");
        Directory.CreateDirectory(adapter);
        // adapter_config.json as peft writes it for a SEQ_CLS LoRA (its task model lists both head names it knows).
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), """
        {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "bert-tiny", "bias": "none", "fan_in_fan_out": false,
         "inference_mode": true, "init_lora_weights": true, "layers_pattern": null, "layers_to_transform": null, "lora_alpha": 8,
         "lora_dropout": 0.1, "modules_to_save": ["classifier", "score"], "peft_type": "LORA", "r": 2, "rank_pattern": {},
         "revision": null, "target_modules": ["query", "value"], "task_type": "SEQ_CLS", "use_dora": false, "use_rslora": false}
        """);
        manual_seed(5);
        var tensors = new Dictionary<string, Tensor>();
        var delta = new Dictionary<string, Tensor>();
        for (int l = 0; l < 2; l++)
            foreach (var proj in new[] { "query", "value" })
            {
                var path = $"bert.encoder.layer.{l}.attention.self.{proj}";
                var a = randn(2, 16) * 0.3; var b = randn(16, 2) * 0.3;
                tensors[$"base_model.model.{path}.lora_A.weight"] = a;
                tensors[$"base_model.model.{path}.lora_B.weight"] = b;
                delta[path + ".weight"] = b.matmul(a) * 4.0;   // lora_alpha / r
            }
        var classifierW = randn(3, 16) * 0.5; var classifierB = randn(3) * 0.1;
        tensors["base_model.model.classifier.weight"] = classifierW;
        tensors["base_model.model.classifier.bias"] = classifierB;
        QuantumPeft.Formats.Safetensors.SafetensorsFile.Write(Path.Combine(adapter, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });

        // transformers' model by hand: the base folder with the pooler head, the LoRA updates merged, the saved classifier.
        var (reference, _) = HfBertLoader.LoadForSequenceClassification(baseDir, 3, BertForSequenceClassification.PoolerHead);
        using (no_grad())
        {
            var sd = reference.state_dict();
            foreach (var (k, d) in delta) sd[k].add_(d);
            sd["classifier.weight"].copy_(classifierW);
            sd["classifier.bias"].copy_(classifierB);
        }
        reference.eval();
        var ids = new long[] { 2, 11, 12, 13, 3 };
        Tensor expected;
        using (no_grad()) expected = reference.forward(tensor(ids).unsqueeze(0), null, null)[0];

        var inputs = Path.Combine(dir, "in.json");
        File.WriteAllText(inputs, JsonSerializer.Serialize(new { input_ids = ids }));
        var (code, output) = CliCommandTests.Run(new LogitsCommand(), "logits", "--model", baseDir, "--adapter", adapter, "--inputs", inputs, "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var row = doc.RootElement.GetProperty("logits").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(3, row.Length);
        for (int i = 0; i < 3; i++) Assert.Equal(expected[i].item<float>(), row[i], 4);
    }
}
