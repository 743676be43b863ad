using QuantumPeft.Models.Shapes;
using QuantumPeft.Stiefel;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;

namespace QuantumPeft.Tests.Tuners;

public sealed class FolderShapesTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-shapes-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, true); }

    string Config(string name, string json)
    {
        var folder = Path.Combine(dir, name);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), json);
        return folder;
    }

    [Fact]
    public void Config_only_folders_of_the_papers_models_give_the_papers_table()
    {
        var gpt2Medium = Config("gpt2-medium", """{"model_type": "gpt2", "n_embd": 1024, "n_layer": 24, "n_head": 16, "n_positions": 1024, "vocab_size": 50257}""");
        var mistral = Config("mistral", """{"model_type": "mistral", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32, "intermediate_size": 14336}""");
        foreach (var (folder, paper) in new[] { (gpt2Medium, PaperModels.Gpt2Medium), (mistral, PaperModels.Mistral7B) })
        {
            var mine = ParameterTable.Rows(FolderShapes.FromFolder(folder));
            var theirs = ParameterTable.Rows(paper);
            Assert.Equal(theirs.Select(r => (r.Method, r.Rank, r.Layers, r.TrainableParams)), mine.Select(r => (r.Method, r.Rank, r.Layers, r.TrainableParams)));
        }
    }

    [Fact]
    public void A_real_shaped_deberta_v3_base_config_gives_the_papers_table_and_the_hand_count()
    {
        // microsoft/deberta-v3-base's config.json (the keys that matter here, as save_pretrained writes them).
        var folder = Config("deberta-v3-base", """
            {"model_type": "deberta-v2", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
             "relative_attention": true, "position_buckets": 256, "norm_rel_ebd": "layer_norm", "share_att_key": true,
             "pos_att_type": ["p2c", "c2p"], "max_relative_positions": -1, "position_biased_input": false, "vocab_size": 128100}
            """);
        var mine = ParameterTable.Rows(FolderShapes.FromFolder(folder));
        var theirs = ParameterTable.Rows(PaperModels.DebertaV3Base);
        Assert.Equal(theirs.Select(r => (r.Method, r.Rank, r.Layers, r.TrainableParams)), mine.Select(r => (r.Method, r.Rank, r.Layers, r.TrainableParams)));
        // LoRA r = 8 on the six matrices of 12 layers, by hand: 12 x 8 x (4 x (768 + 768) + 2 x (768 + 3072)) = 1,327,104.
        var shape = FolderShapes.FromFolder(folder);
        Assert.Equal(1_327_104, shape.Layers * shape.Targets.Sum(m => LoraBranch.CountParameters(m.InFeatures, m.OutFeatures, 8)));
        // DeBERTa-v2 (own position projections) adds pos_key_proj and pos_query_proj to all-linear only.
        var v2 = Config("deberta-v2-xlarge", """{"model_type": "deberta-v2", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 256, "share_att_key": false, "pos_att_type": "p2c|c2p"}""");
        Assert.Equal(8, FolderShapes.FromFolder(v2, "all-linear").Targets.Count);
        Assert.Equal(6, FolderShapes.FromFolder(v2).Targets.Count);
    }

    [Fact]
    public void All_linear_counts_equal_the_injected_models_report()
    {
        using var model = TinyGpt2.Model();
        var folder = TinyGpt2.Write(model, Path.Combine(dir, "tiny"));
        var rows = ParameterTable.Rows(FolderShapes.FromFolder(folder, "all-linear"));
        var lora4 = rows.Single(r => r.Method == "lora" && r.Rank == 4);
        var pauli = rows.Single(r => r.Method == "quantum_pauli" && r.Rank == 4 && r.Layers == 2);

        using var a = TinyGpt2.Model();
        Assert.Equal(lora4.TrainableParams, PeftModel.Inject(a, new LoraConfig { R = 4, TargetModules = ModuleSelector.AllLinear }).Report().AdapterParams);
        using var b = TinyGpt2.Model();
        var quantum = new QuantumPeftConfig { R = 4, TargetModules = ModuleSelector.AllLinear, Map = StiefelMapKind.Pauli, Layers = 2 };
        Assert.Equal(pauli.TrainableParams, PeftModel.Inject(b, quantum).Report().AdapterParams);

        // The paper's GPT-2 targets are the q and v thirds: c_attn[q,v] on the real model counts the same.
        var qv = ParameterTable.Rows(FolderShapes.FromFolder(folder)).Single(r => r.Method == "lora" && r.Rank == 4);
        using var c = TinyGpt2.Model();
        Assert.Equal(qv.TrainableParams, PeftModel.Inject(c, new LoraConfig { R = 4, TargetModules = ModuleSelector.Parse("c_attn[q,v]") }).Report().AdapterParams);
    }

    [Fact]
    public void Unknown_types_and_target_sets_are_named()
    {
        var folder = Config("t5", """{"model_type": "t5"}""");
        Assert.Contains("model_type 't5'", Assert.Throws<NotSupportedException>(() => FolderShapes.FromFolder(folder)).Message);
        Assert.Contains("--targets 'qkv'", Assert.Throws<ArgumentException>(() => FolderShapes.FromFolder(folder, "qkv")).Message);
        var partial = Config("llama", """{"model_type": "llama", "hidden_size": 64}""");
        Assert.Contains("num_attention_heads is missing", Assert.Throws<InvalidDataException>(() => FolderShapes.FromFolder(partial)).Message);
    }
}
