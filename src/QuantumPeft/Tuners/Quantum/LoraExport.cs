using QuantumPeft.Formats.Peft;
using QuantumPeft.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.Quantum;

/// <summary>What <see cref="LoraExport.Export"/> wrote.</summary>
public sealed record LoraExportResult(string Directory, int Modules, int Rank, long LoraParams, long QuantumParams);

/// <summary>Converts a saved Quantum-PEFT adapter into the exactly equivalent LoRA adapter (spec section 1).</summary>
/// <remarks>
/// For each module: B = s U diag(lambda) (out x K), A = V^T (K x in), written with r = lora_alpha = K so that LoRA's
/// scaling is 1 and B A = s U diag(lambda) V^T, the Quantum-PEFT update. modules_to_save tensors are copied unchanged.
/// Needs no model: the module shapes come from the file's "qpeft_module_shapes" metadata.
/// </remarks>
public static class LoraExport
{
    /// <summary>Reads the Quantum-PEFT folder <paramref name="quantumDirectory"/> and writes a LoRA folder to <paramref name="outDirectory"/>.</summary>
    public static LoraExportResult Export(string quantumDirectory, string outDirectory, ICollection<string>? warnings = null)
    {
        var files = PeftAdapterFiles.Read(quantumDirectory);
        var config = PeftConfig.FromJson(files.ConfigJson, warnings, files.ConfigPath) as QuantumPeftConfig
            ?? throw new InvalidDataException($"{files.ConfigPath}: peft_type is not {QuantumPeftConfig.TypeName}; only Quantum-PEFT adapters are exported to LoRA.");
        var weightsPath = Path.Combine(quantumDirectory, PeftAdapterFiles.WeightsFileName);
        var shapes = PeftAdapterFiles.ModuleShapes(files.Metadata, weightsPath)
            ?? throw new InvalidDataException($"{weightsPath}: no \"{PeftAdapterFiles.ShapesMetadataKey}\" metadata, so the layer shapes are unknown (was it written by this library?).");
        var infixes = PeftRegistry.Get(QuantumPeftConfig.TypeName).KeyInfixes;

        var output = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        long quantumParams = 0, loraParams = 0;
        using (no_grad())
            foreach (var (path, (o, i)) in shapes.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var prefix = PeftAdapterFiles.KeyPrefix + path + ".";
                var state = files.Tensors.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal) && infixes.Any(x => p.Key[prefix.Length..].StartsWith(x, StringComparison.Ordinal)))
                    .ToDictionary(p => p.Key[prefix.Length..], p => p.Value);
                using var branch = new QuantumBranch(i, o, config, 0, 0);
                branch.ImportState(state, prefix);
                var (b, a) = branch.ToLora();
                output[PeftAdapterFiles.Key(path, "lora_A.weight")] = a.cpu().contiguous();
                output[PeftAdapterFiles.Key(path, "lora_B.weight")] = b.cpu().contiguous();
                used.UnionWith(state.Keys.Select(k => prefix + k));
                quantumParams += branch.ParameterCount;
                loraParams += LoraBranch.CountParameters(i, o, config.R);
            }
        foreach (var (key, t) in files.Tensors.Where(p => !used.Contains(p.Key))) output[key] = t; // modules_to_save

        var lora = new LoraConfig
        {
            R = config.R, LoraAlpha = config.R, LoraDropout = config.Dropout,
            TargetModules = ModuleSelector.Of(shapes.Keys.Order(StringComparer.Ordinal).ToArray()),
            ModulesToSave = config.ModulesToSave, BaseModelNameOrPath = config.BaseModelNameOrPath,
            Revision = config.Revision, TaskType = config.TaskType, InferenceMode = true,
        };
        PeftAdapterFiles.Write(outDirectory, lora.ToJson(), output, shapes);
        return new LoraExportResult(outDirectory, shapes.Count, config.R, loraParams, quantumParams);
    }
}
