using QuantumPeft.Models.Shapes;
using QuantumPeft.Models.Vision;
using QuantumPeft.Models.Vit;
using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;

namespace QuantumPeft.Tests.Models.Vit;

/// <summary>The params table's ViT row agrees with a real config.json, and the counts from a config equal those of an injected model.</summary>
public sealed class ViTShapesTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-vit-shapes-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // google/vit-base-patch16-224's config.json (its 1000-entry id2label / label2id left out: they do not change shapes).
    const string VitBase224 = """
        {
          "architectures": ["ViTForImageClassification"],
          "attention_probs_dropout_prob": 0.0,
          "hidden_act": "gelu",
          "hidden_dropout_prob": 0.0,
          "hidden_size": 768,
          "image_size": 224,
          "initializer_range": 0.02,
          "intermediate_size": 3072,
          "layer_norm_eps": 1e-12,
          "model_type": "vit",
          "num_attention_heads": 12,
          "num_channels": 3,
          "num_hidden_layers": 12,
          "patch_size": 16,
          "qkv_bias": true,
          "torch_dtype": "float32",
          "transformers_version": "4.13.0.dev0"
        }
        """;

    [Fact]
    public void The_paper_row_equals_the_real_vit_base_config()
    {
        var folder = Path.Combine(_dir, "vit-base-patch16-224");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), VitBase224);
        Assert.Equal(768, ViTConfig.Load(Path.Combine(folder, "config.json")).HiddenSize);
        var mine = ParameterTable.Rows(FolderShapes.FromFolder(folder));
        var paper = ParameterTable.Rows(PaperModels.VitBase);
        Assert.Equal(paper.Select(r => (r.Method, r.Rank, r.Layers, r.TrainableParams)), mine.Select(r => (r.Method, r.Rank, r.Layers, r.TrainableParams)));
        // LoRA rank 8 on query and value of 12 layers: 12 * 2 * 8 * (768 + 768).
        Assert.Equal(294_912, mine.Single(r => r.Method == "lora" && r.Rank == 8).TrainableParams);
    }

    [Fact]
    public void Counts_from_config_equal_the_injected_models_report()
    {
        var folder = TinyViT.Write(Path.Combine(_dir, "tiny"), TinyViT.Config(), TinyViT.Weights());
        foreach (var targets in FolderShapes.TargetSets)
        {
            var rows = ParameterTable.Rows(FolderShapes.FromFolder(folder, targets));
            var selector = targets == "paper" ? ModuleSelector.Of("query", "value") : ModuleSelector.AllLinear;
            using var a = ImageClassifiers.Load(folder, new ImageLoadOptions(Log: _ => { }));
            Assert.Equal(rows.Single(r => r.Method == "lora" && r.Rank == 4).TrainableParams,
                PeftModel.Inject(a.Module, new LoraConfig { R = 4, TargetModules = selector }).Report().AdapterParams);
            using var b = ImageClassifiers.Load(folder, new ImageLoadOptions(Log: _ => { }));
            var quantum = new QuantumPeftConfig { R = 4, TargetModules = selector, Map = StiefelMapKind.Pauli, Layers = 2 };
            Assert.Equal(rows.Single(r => r.Method == "quantum_pauli" && r.Rank == 4 && r.Layers == 2).TrainableParams,
                PeftModel.Inject(b.Module, quantum).Report().AdapterParams);
        }
    }
}
