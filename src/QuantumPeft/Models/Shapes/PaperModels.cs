namespace QuantumPeft.Models.Shapes;

/// <summary>One adaptable weight matrix of a transformer layer: its name in the checkpoint and its shape (out x in).</summary>
public sealed record LinearShape(string Name, int InFeatures, int OutFeatures);

/// <summary>The layer shapes of a model, with the matrices the paper's baselines adapt in every layer. Shapes only, no weights.</summary>
/// <param name="Id">Model column of the parameter tables (e.g. "deberta-v3-base").</param>
/// <param name="HubId">The Hugging Face hub id of the checkpoint.</param>
/// <param name="Layers">Number of transformer layers.</param>
/// <param name="Hidden">Hidden size.</param>
/// <param name="Targets">The adapted matrices of one layer, repeated in each of <paramref name="Layers"/> layers.</param>
/// <param name="TargetsLabel">Short label of the target set for tables.</param>
/// <param name="Note">How the targets are counted.</param>
public sealed record ModelShape(string Id, string HubId, int Layers, int Hidden, IReadOnlyList<LinearShape> Targets, string TargetsLabel, string Note);

/// <summary>The four models of the Quantum-PEFT paper's experiments (spec section 6), with their baselines' target matrices.</summary>
public static class PaperModels
{
    /// <summary>DeBERTaV3-base: 12 layers, hidden 768, intermediate 3072; AdaLoRA's six matrices per layer.</summary>
    public static ModelShape DebertaV3Base { get; } = new("deberta-v3-base", "microsoft/deberta-v3-base", 12, 768,
        [
            new("attention.self.query_proj", 768, 768), new("attention.self.key_proj", 768, 768), new("attention.self.value_proj", 768, 768),
            new("attention.output.dense", 768, 768), new("intermediate.dense", 768, 3072), new("output.dense", 3072, 768),
        ], "query+key+value+attention_output+intermediate+output",
        "All six matrices of every layer, as AdaLoRA (and the paper's LoRA baseline).");

    /// <summary>GPT-2 Medium: 24 layers, hidden 1024. c_attn is one fused Conv1D 1024 -> 3072 (q, k, v); "query and value"
    /// as in the LoRA paper means its q and v slices, counted as two independent 1024 x 1024 maps per layer.</summary>
    public static ModelShape Gpt2Medium { get; } = new("gpt2-medium", "gpt2-medium", 24, 1024,
        [new("attn.c_attn[q]", 1024, 1024), new("attn.c_attn[v]", 1024, 1024)], "query+value",
        "c_attn is a fused 1024 -> 3072 Conv1D; q and v are its first and third 1024-column slices, each adapted as its own 1024 x 1024 matrix.");

    /// <summary>ViT-B/16 (google/vit-base-patch16-224): 12 layers, hidden 768; query and value.</summary>
    public static ModelShape VitBase { get; } = new("vit-base-patch16-224", "google/vit-base-patch16-224", 12, 768,
        [new("attention.attention.query", 768, 768), new("attention.attention.value", 768, 768)], "query+value",
        "Query and value of every layer.");

    /// <summary>Mistral-7B: 32 layers, hidden 4096, grouped-query attention (8 KV heads): q_proj 4096 -> 4096, v_proj 4096 -> 1024.</summary>
    public static ModelShape Mistral7B { get; } = new("mistral-7b", "mistralai/Mistral-7B-v0.1", 32, 4096,
        [new("self_attn.q_proj", 4096, 4096), new("self_attn.v_proj", 4096, 1024)], "query+value",
        "q_proj 4096 -> 4096 and v_proj 4096 -> 1024 (GQA) of every layer.");

    /// <summary>The four, in the paper's order.</summary>
    public static IReadOnlyList<ModelShape> All { get; } = [DebertaV3Base, Gpt2Medium, VitBase, Mistral7B];

    /// <summary>Looks a model up by its table id.</summary>
    public static ModelShape Get(string id) => All.FirstOrDefault(m => m.Id == id)
        ?? throw new ArgumentException($"Unknown paper model '{id}'; known: {string.Join(", ", All.Select(m => m.Id))}.", nameof(id));
}
