using QuantumPeft.Models.Shapes;
using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Quantum;

namespace QuantumPeft.Tests.Tuners;

public class ParameterTableTests
{
    private static ParameterTableRow Find(string model, string method, int rank, int? layers = null) =>
        ParameterTable.PaperRows().Single(r => r.Model == model && r.Method == method && r.Rank == rank && r.Layers == layers);

    [Fact]
    public void LoraSanityNumbersMatchThePaper()
    {
        Assert.Equal(1_327_104, Find("deberta-v3-base", "lora", 8).TrainableParams);
        Assert.Equal(393_216, Find("gpt2-medium", "lora", 4).TrainableParams); // the paper's 0.35M: see params.md
        Assert.Equal(12 * 2 * 8 * (768 + 768), Find("vit-base-patch16-224", "lora", 8).TrainableParams);
        Assert.Equal(32 * 4 * (4096 + 4096 + 4096 + 1024), Find("mistral-7b", "lora", 4).TrainableParams);
    }

    [Fact]
    public void PauliCountsFollowTheSpecFormula()
    {
        // Spec: N = 1024, L = 1: 28 angles per factor; a 1024 x 1024 weight at K = 4 trains 28 + 28 + 4 = 60.
        var gpt = Find("gpt2-medium", "quantum_pauli", 4, 1);
        Assert.Equal(24 * 2 * 60, gpt.TrainableParams);
        Assert.Equal(393_216.0 / (24 * 2 * 60), gpt.RatioToLora, 6);
        // Mistral v_proj 4096 -> 1024: angles(1024) + angles(4096) + K; L = 2: (2L + 1) log2 N - 2L.
        var m = Find("mistral-7b", "quantum_pauli", 8, 2);
        Assert.Equal(32 * ((5 * 12 - 4) * 2 + 8 + (5 * 10 - 4) + (5 * 12 - 4) + 8), m.TrainableParams);
        // The table uses the maps' own count (one source of truth).
        var cfg = new QuantumPeftConfig { R = 4, Map = StiefelMapKind.Pauli, Layers = 3 };
        Assert.Equal(12 * PaperModels.DebertaV3Base.Targets.Sum(t => StiefelMaps.CountParameters(t.OutFeatures, 4, cfg.StiefelU) + StiefelMaps.CountParameters(t.InFeatures, 4, cfg.StiefelV) + 4),
            Find("deberta-v3-base", "quantum_pauli", 4, 3).TrainableParams);
    }

    [Fact]
    public void TableHasEveryRowAndTheExactHeader()
    {
        var rows = ParameterTable.PaperRows();
        Assert.Equal(4 * (3 + 9 + 3), rows.Count);
        var csv = ParameterTable.ToCsv(rows).Split('\n');
        Assert.StartsWith("model,method,rank,layers,targets,trainable_params", csv[0]);
        Assert.Contains("deberta-v3-base,lora,8,,query+key+value+attention_output+intermediate+output,1327104,1.00,110592", csv);
        Assert.All(rows.Where(r => r.Method == "quantum_pauli"), r => Assert.True(r.RatioToLora > 5, $"{r.Model} K={r.Rank} L={r.Layers}"));
        Assert.Contains("## mistral-7b", ParameterTable.ToMarkdown(rows));
        Assert.Equal(["lora", "quantum_pauli", "quantum_taylor"], rows.Select(r => r.Method).Distinct().Order());
        Assert.Equal(["deberta-v3-base", "gpt2-medium", "mistral-7b", "vit-base-patch16-224"], rows.Select(r => r.Model).Distinct().Order());
    }
}
