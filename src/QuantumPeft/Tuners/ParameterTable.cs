using System.Globalization;
using System.Text;
using QuantumPeft.Models.Shapes;
using QuantumPeft.Stiefel;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;

namespace QuantumPeft.Tuners;

/// <summary>One row of the parameter table: trainable numbers of one method on one model's target matrices.</summary>
/// <param name="Model">Model id (e.g. "deberta-v3-base").</param>
/// <param name="Method">"lora", "quantum_pauli" or "quantum_taylor".</param>
/// <param name="Rank">LoRA r or Quantum-PEFT K.</param>
/// <param name="Layers">The Pauli circuit's L; null where it does not apply (LoRA, Taylor).</param>
/// <param name="Targets">Label of the adapted matrices.</param>
/// <param name="TrainableParams">Adapter numbers in the whole model (heads not counted).</param>
/// <param name="RatioToLora">LoRA's count at the same rank divided by this count (how many times fewer).</param>
/// <param name="PerLayerParams">Adapter numbers in one transformer layer.</param>
public sealed record ParameterTableRow(string Model, string Method, int Rank, int? Layers, string Targets, long TrainableParams, double RatioToLora, long PerLayerParams);

/// <summary>The paper's parameter tables from real layer shapes and the methods' own count formulas (no duplicated logic).</summary>
/// <remarks>
/// LoRA counts come from <see cref="LoraBranch.CountParameters"/> (r (in + out) per matrix); Quantum-PEFT counts from
/// <see cref="QuantumPeftConfig.CountParameters"/>, i.e. <see cref="StiefelMaps.CountParameters"/> for U and V plus K.
/// Classifier heads are not counted (they are the same for every method).
/// </remarks>
public static class ParameterTable
{
    /// <summary>The CSV header (further columns may follow these six).</summary>
    public const string CsvHeader = "model,method,rank,layers,targets,trainable_params";

    /// <summary>LoRA r = 1, 4, 8; Quantum-PEFT Pauli K = 1, 4, 8 with L = 1, 2, 3; Quantum-PEFT Taylor K = 1, 4, 8.</summary>
    public static IReadOnlyList<ParameterTableRow> Rows(ModelShape model)
    {
        int[] ranks = [1, 4, 8];
        var rows = new List<ParameterTableRow>();
        long Lora(int r) => model.Targets.Sum(t => LoraBranch.CountParameters(t.InFeatures, t.OutFeatures, r));
        long Quantum(QuantumPeftConfig c) => model.Targets.Sum(t => c.CountParameters(t.InFeatures, t.OutFeatures));
        ParameterTableRow Row(string method, int rank, int? layers, long perLayer) =>
            new(model.Id, method, rank, layers, model.TargetsLabel, perLayer * model.Layers, (double)Lora(rank) / perLayer, perLayer);

        foreach (var r in ranks) rows.Add(Row("lora", r, null, Lora(r)));
        foreach (var k in ranks)
            foreach (var l in new[] { 1, 2, 3 })
                rows.Add(Row("quantum_pauli", k, l, Quantum(new QuantumPeftConfig { R = k, Map = StiefelMapKind.Pauli, Layers = l })));
        foreach (var k in ranks) rows.Add(Row("quantum_taylor", k, null, Quantum(new QuantumPeftConfig { R = k, Map = StiefelMapKind.Taylor })));
        return rows;
    }

    /// <summary>The same methods and ranks on Conv2d layers (e.g. <see cref="ConvLayers.Conv2ds"/> of a CNN), each kernel counted as the
    /// out x (in * kh * kw) matrix the adapters see: LoRA r (in * kh * kw + out), Quantum-PEFT angles(U, out) + angles(V, in * kh * kw) + K.
    /// The whole model is one "layer": <see cref="ParameterTableRow.PerLayerParams"/> equals the total.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A rank exceeds some layer's min(out, in * kh * kw).</exception>
    public static IReadOnlyList<ParameterTableRow> ConvRows(string modelId, IReadOnlyList<(string Path, Conv2dShape Conv)> convs)
    {
        if (convs.Count == 0) throw new ArgumentException($"{modelId} has no Conv2d layer to count.", nameof(convs));
        int[] ranks = [1, 4, 8];
        var label = $"conv2d ({convs.Count} layers)";
        var rows = new List<ParameterTableRow>();
        long Lora(int r) => convs.Sum(c => LoraBranch.CountParameters(c.Conv.MatrixIn, c.Conv.OutChannels, r));
        long Quantum(QuantumPeftConfig c) => convs.Sum(t => c.CountParameters(t.Conv.MatrixIn, t.Conv.OutChannels));
        ParameterTableRow Row(string method, int rank, int? layers, long count) => new(modelId, method, rank, layers, label, count, (double)Lora(rank) / count, count);
        foreach (var r in ranks) rows.Add(Row("lora", r, null, Lora(r)));
        foreach (var k in ranks)
            foreach (var l in new[] { 1, 2, 3 })
                rows.Add(Row("quantum_pauli", k, l, Quantum(new QuantumPeftConfig { R = k, Map = StiefelMapKind.Pauli, Layers = l })));
        foreach (var k in ranks) rows.Add(Row("quantum_taylor", k, null, Quantum(new QuantumPeftConfig { R = k, Map = StiefelMapKind.Taylor })));
        return rows;
    }

    /// <summary>Rows of all four paper models.</summary>
    public static IReadOnlyList<ParameterTableRow> PaperRows() => PaperModels.All.SelectMany(Rows).ToList();

    /// <summary>CSV with <see cref="CsvHeader"/> then ratio_to_lora and per_layer_params.</summary>
    public static string ToCsv(IEnumerable<ParameterTableRow> rows)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder(CsvHeader + ",ratio_to_lora,per_layer_params\n");
        foreach (var r in rows)
            sb.Append(inv, $"{r.Model},{r.Method},{r.Rank},{r.Layers?.ToString(inv) ?? ""},{r.Targets},{r.TrainableParams},{r.RatioToLora:F2},{r.PerLayerParams}\n");
        return sb.ToString();
    }

    /// <summary>Markdown: one table per model (the paper's four unless <paramref name="models"/> says otherwise), with the shapes and notes.</summary>
    public static string ToMarkdown(IReadOnlyList<ParameterTableRow> rows, IReadOnlyList<ModelShape>? models = null)
    {
        var inv = CultureInfo.InvariantCulture;
        bool paper = models is null;
        models ??= PaperModels.All;
        var sb = new StringBuilder(paper ? "# Trainable parameters of the paper's models\n\n" : "# Trainable parameters\n\n");
        sb.AppendLine("Counted from the real layer shapes (no weights) with each method's own formula: LoRA r (in + out) per matrix;");
        sb.AppendLine("Quantum-PEFT angles(U) + angles(V) + K per matrix from `StiefelMaps.CountParameters` (Pauli: (2L + 1) log2 N - 2L for");
        sb.AppendLine("N = 2^n; qudits for N = 3 * 2^m). Heads are not counted. `ratio` = LoRA at the same rank / this method.\n");
        foreach (var model in models)
        {
            var mine = rows.Where(r => r.Model == model.Id).ToList();
            if (mine.Count == 0) continue;
            sb.AppendLine(string.Create(inv, $"## {model.Id} ({model.HubId}): {model.Layers} layers, hidden {model.Hidden}"));
            sb.AppendLine();
            sb.AppendLine("Targets per layer: " + string.Join(", ", model.Targets.Select(t => string.Create(inv, $"{t.Name} ({t.InFeatures} -> {t.OutFeatures})"))) + ". " + model.Note);
            sb.AppendLine();
            sb.AppendLine("| method | rank | L | trainable params | per layer | ratio to LoRA |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var r in mine)
                sb.AppendLine(string.Create(inv, $"| {r.Method} | {r.Rank} | {r.Layers?.ToString(inv) ?? ""} | {r.TrainableParams:N0} | {r.PerLayerParams:N0} | {r.RatioToLora:F1} |"));
            sb.AppendLine();
        }
        if (!paper) return sb.ToString();
        sb.AppendLine("Note: the paper quotes 0.35M for GPT-2 Medium LoRA r = 4 on query and value (a figure taken from the LoRA paper's table);");
        sb.AppendLine("r (in + out) on the two 1024 x 1024 slices in 24 layers gives 393,216 (0.39M), which is also 2 x (48 matrices) x 1024 x 4.");
        sb.AppendLine("We could not reproduce 0.35M from any q/v target set at r = 4 and report the count from the shapes. DeBERTaV3-base LoRA");
        sb.AppendLine("r = 8 on all six matrices gives 1,327,104, as the paper states.");
        return sb.ToString();
    }
}
