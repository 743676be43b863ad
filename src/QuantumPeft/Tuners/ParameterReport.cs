using System.Globalization;
using System.Text;

namespace QuantumPeft.Tuners;

/// <summary>One row of the per-module parameter table.</summary>
/// <param name="Module">Dotted path of the module.</param>
/// <param name="Kind">"lora", "quantum_peft" or "modules_to_save".</param>
/// <param name="InFeatures">Input features of the adapted Linear; in * kh * kw for a Conv2d, whose kernel the adapter sees as a matrix (0 for modules_to_save).</param>
/// <param name="OutFeatures">Output features of the adapted Linear (0 for modules_to_save).</param>
/// <param name="Params">Adapter numbers on this layer (or all parameters of a saved module).</param>
/// <param name="QuantizedBits">Size in bits when quantized, else null.</param>
/// <param name="PercentOfModel">100 * Params / all parameters of the model.</param>
/// <param name="Layer">"conv2d 3x3 (64 -> 128)" for an adapted Conv2d; null for a Linear (and modules_to_save).</param>
/// <remarks>The counts are the branches' own parameters; they equal the methods' formulas with in = in * kh * kw on a Conv2d
/// (<see cref="Lora.LoraBranch.CountParameters"/>: r (in * kh * kw + out); <see cref="Quantum.QuantumPeftConfig.CountParameters"/>:
/// angles(U, out) + angles(V, in * kh * kw) + K).</remarks>
public sealed record ModuleParameterRow(string Module, string Kind, int InFeatures, int OutFeatures, long Params, long? QuantizedBits, double PercentOfModel, string? Layer = null);

/// <summary>The numbers the trainer writes to results.json, and peft's one-line summary.</summary>
/// <param name="AdapterName">The active adapter.</param>
/// <param name="PeftType">Its method ("LORA", "QUANTUM_PEFT").</param>
/// <param name="AdapterParams">Numbers in the active adapter's branches (LoRA A/B; angles of U and V plus lambda).</param>
/// <param name="OtherTrainableParams">Numbers in modules_to_save (e.g. the classifier head).</param>
/// <param name="TrainableParams">All parameters with requires_grad (AdapterParams + OtherTrainableParams while training; 0 after an inference-mode load).</param>
/// <param name="TotalParams">All parameters of the model, base, adapters and heads (peft's "all params").</param>
/// <param name="TrainablePercent">100 * TrainableParams / TotalParams.</param>
/// <param name="AdapterFloatBits">AdapterParams * 32.</param>
/// <param name="AdapterQuantizedBits">Sum over adapted layers of #angles * b_angle + K * b_lambda when every layer is quantized, else null.</param>
/// <param name="Modules">Per-module rows: adapted layers, then modules_to_save.</param>
public sealed record ParameterReport(
    string AdapterName, string PeftType,
    long AdapterParams, long OtherTrainableParams, long TrainableParams, long TotalParams, double TrainablePercent,
    long AdapterFloatBits, long? AdapterQuantizedBits, IReadOnlyList<ModuleParameterRow> Modules)
{
    /// <summary>peft's print_trainable_parameters line.</summary>
    public string Summary => string.Create(CultureInfo.InvariantCulture,
        $"trainable params: {TrainableParams:N0} || all params: {TotalParams:N0} || trainable%: {TrainablePercent:F4}");

    /// <summary>The summary, the split into adapter and other trainable numbers, sizes, and the per-module table (Markdown).</summary>
    public string ToTable()
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(Summary);
        var quantized = AdapterQuantizedBits is { } qb ? FormattableString.Invariant($", {qb:N0} bits quantized") : "";
        sb.AppendLine(FormattableString.Invariant($"adapter '{AdapterName}' ({PeftType}): {AdapterParams:N0} params ({AdapterFloatBits:N0} bits as float32{quantized}); other trainable (heads): {OtherTrainableParams:N0}"));
        sb.AppendLine();
        sb.AppendLine("| module | kind | in | out | params | % of model | bits (quantized) |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var r in Modules)
            sb.AppendLine(string.Create(inv, $"| {r.Module} | {r.Kind}{(r.Layer is { } layer ? $" ({layer})" : "")} | {(r.InFeatures > 0 ? r.InFeatures.ToString(inv) : "")} | {(r.OutFeatures > 0 ? r.OutFeatures.ToString(inv) : "")} | {r.Params:N0} | {r.PercentOfModel:F4} | {(r.QuantizedBits is { } b ? b.ToString("N0", inv) : "")} |"));
        sb.AppendLine(string.Create(inv, $"| **total** | | | | {AdapterParams + OtherTrainableParams:N0} | {100.0 * (AdapterParams + OtherTrainableParams) / Math.Max(1, TotalParams):F4} | {(AdapterQuantizedBits is { } t ? t.ToString("N0", inv) : "")} |"));
        return sb.ToString();
    }

    public override string ToString() => Summary;
}
