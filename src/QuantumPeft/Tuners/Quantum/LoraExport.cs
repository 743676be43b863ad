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
/// scaling is 1 and B A = s U diag(lambda) V^T, the Quantum-PEFT update. A fused-parts layer (c_attn[q,v]) becomes one LoRA of
/// rank parts x K on the whole layer, so that peft, which has no parts form, reads the result. modules_to_save tensors are copied unchanged.
/// Needs no model: the module shapes come from the file's "qpeft_module_shapes" metadata.
/// A Conv2d layer (named with its kernel in the "qpeft_conv2d_kernels" metadata) becomes peft's LoRA Conv2d adapter: A = V^T as
/// [K, in, kh, kw] (lora_A, a convolution with the base layer's kernel) and B = s U diag(lambda) as [out, K, 1, 1] (lora_B, 1 x 1).
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
        var kernels = PeftModel.ReadConvKernels(files.Metadata, weightsPath);

        var output = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        long quantumParams = 0, loraParams = 0;
        var ranks = new HashSet<int>();
        using (no_grad())
            foreach (var (path, (o, i)) in shapes.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var prefix = PeftAdapterFiles.KeyPrefix + path + ".";
                Dictionary<string, Tensor> StateOf(string partPrefix) => files.Tensors
                    .Where(p => p.Key.StartsWith(prefix + partPrefix, StringComparison.Ordinal) && infixes.Any(x => p.Key[(prefix.Length + partPrefix.Length)..].StartsWith(x, StringComparison.Ordinal)))
                    .ToDictionary(p => p.Key[(prefix.Length + partPrefix.Length)..], p => p.Value);
                // A fused-parts layer (c_attn[q,v]) becomes one LoRA on the whole layer of rank parts x K: A stacks the parts'
                // V^T, B puts each part's s U diag(lambda) in its rows and columns, zero elsewhere; B A is the same update.
                var parts = FusedPartsBranch.QkvParts.Where(p => StateOf(p + ".").Count > 0).ToList();
                var pieces = parts.Count == 0 ? [("", o)] : parts.Select(p => (p + ".", o / FusedPartsBranch.QkvParts.Count)).ToList();
                var aBlocks = new List<Tensor>();
                var b = zeros(o, pieces.Count * config.R);
                foreach (var (index, (partPrefix, rows)) in pieces.Index())
                {
                    var state = StateOf(partPrefix);
                    using var branch = new QuantumBranch(i, rows, config, 0, 0);
                    branch.ImportState(state, prefix + partPrefix);
                    var (pb, pa) = branch.ToLora();
                    aBlocks.Add(pa);
                    var rowStart = parts.Count == 0 ? 0 : FusedPartsBranch.PartIndex(parts[index]) * rows;
                    b.narrow(0, rowStart, rows).narrow(1, index * config.R, config.R).copy_(pb);
                    used.UnionWith(state.Keys.Select(k => prefix + partPrefix + k));
                    quantumParams += branch.ParameterCount;
                }
                var rank = pieces.Count * config.R;
                ranks.Add(rank);
                var a = cat(aBlocks, 0);
                if (kernels.TryGetValue(path, out var kernel))
                {
                    if (kernel.InChannels * kernel.KernelH * kernel.KernelW != i)
                        throw new InvalidDataException($"{weightsPath}: the Conv2d '{path}' has kernel [{kernel.InChannels}, {kernel.KernelH}, {kernel.KernelW}] in the metadata but {i} input features in its shapes.");
                    a = a.reshape(rank, kernel.InChannels, kernel.KernelH, kernel.KernelW);
                    b = b.reshape(o, rank, 1, 1);
                }
                output[PeftAdapterFiles.Key(path, "lora_A.weight")] = a.cpu().contiguous();
                output[PeftAdapterFiles.Key(path, "lora_B.weight")] = b.cpu().contiguous();
                loraParams += LoraBranch.CountParameters(i, o, rank);
            }
        if (ranks.Count > 1)
            throw new InvalidDataException($"{weightsPath}: its layers need LoRA ranks {string.Join(" and ", ranks.Order())} (fused-part layers take parts x K); " +
                "one LoRA config holds one rank, so export adapters whose layers all have the same parts.");
        var loraRank = ranks.Count == 1 ? ranks.Single() : config.R;
        foreach (var (key, t) in files.Tensors.Where(p => !used.Contains(p.Key))) output[key] = t; // modules_to_save

        var lora = new LoraConfig
        {
            R = loraRank, LoraAlpha = loraRank, LoraDropout = config.Dropout,
            TargetModules = ModuleSelector.Of(shapes.Keys.Order(StringComparer.Ordinal).ToArray()),
            ModulesToSave = config.ModulesToSave, BaseModelNameOrPath = config.BaseModelNameOrPath,
            Revision = config.Revision, TaskType = config.TaskType, InferenceMode = true,
        };
        // Our metadata travels with the weights (the head a classifier was trained with, conv kernels, label counts); the shapes are written anew.
        var metadata = files.Metadata.Where(m => m.Key != "format" && m.Key != PeftAdapterFiles.ShapesMetadataKey).ToDictionary(m => m.Key, m => m.Value);
        PeftAdapterFiles.Write(outDirectory, lora.ToJson(), output, shapes, metadata);
        return new LoraExportResult(outDirectory, shapes.Count, loraRank, loraParams, quantumParams);
    }
}
