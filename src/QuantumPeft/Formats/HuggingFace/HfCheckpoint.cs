using System.Collections;
using System.Text.Json;
using QuantumPeft.Formats.Safetensors;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace QuantumPeft.Formats.HuggingFace;

/// <summary>The files of a Hugging Face model folder and how to read its weights, whatever their layout.</summary>
/// <remarks>
/// Weight layouts, in the order transformers prefers them: <c>model.safetensors</c>; a sharded
/// <c>model.safetensors.index.json</c> whose weight_map names the shard of every tensor; <c>pytorch_model.bin</c>
/// (a PyTorch zip of pickled tensors); a sharded <c>pytorch_model.bin.index.json</c>.
/// </remarks>
public static class HfCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string SafetensorsWeights = "model.safetensors";
    public const string SafetensorsIndex = "model.safetensors.index.json";
    public const string PytorchWeights = "pytorch_model.bin";
    public const string PytorchIndex = "pytorch_model.bin.index.json";
    public const string Vocabulary = "vocab.txt";
    public const string TokenizerConfig = "tokenizer_config.json";

    /// <summary>The files any of which holds a model's weights, in the order they are looked for.</summary>
    public static readonly IReadOnlyList<string> WeightFiles = [SafetensorsWeights, SafetensorsIndex, PytorchWeights, PytorchIndex];

    /// <summary>The path of the folder's config.json; throws naming the path when the folder or the file is missing.</summary>
    public static string ConfigPath(string folder)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"model folder not found: '{folder}' (expected a Hugging Face model folder with {ConfigFile} and weights).");
        var path = Path.Combine(folder, ConfigFile);
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"no {ConfigFile} in '{folder}': expected a Hugging Face model folder ({ConfigFile} plus {string.Join(", ", WeightFiles)}).", path);
        return path;
    }

    /// <summary>config.json's model_type (null when absent), which picks the architecture; throws for a missing folder or config, or invalid JSON.</summary>
    public static string? ReadModelType(string folder)
    {
        var path = ConfigPath(folder);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("model_type", out var t) && t.ValueKind == JsonValueKind.String
                ? t.GetString() : null;
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
    }

    /// <summary>The weights file (or index) the folder will be read from; throws naming the folder and the expected names.</summary>
    public static string WeightsPath(string folder)
    {
        foreach (var name in WeightFiles)
        {
            var path = Path.Combine(folder, name);
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException(
            $"no weights in '{folder}': expected one of {string.Join(", ", WeightFiles)}.", Path.Combine(folder, SafetensorsWeights));
    }

    /// <summary>Reads every weight tensor of the folder (on the CPU unless <paramref name="device"/> says otherwise). The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> ReadWeights(string folder, Device? device = null)
    {
        var path = WeightsPath(folder);
        return Path.GetFileName(path) switch
        {
            SafetensorsWeights => SafetensorsFile.Read(path, device),
            SafetensorsIndex => ReadSharded(folder, path, shard => SafetensorsFile.Read(shard, device)),
            PytorchWeights => ReadPytorch(path, device),
            _ => ReadSharded(folder, path, shard => ReadPytorch(shard, device)),
        };
    }

    /// <summary>The weight_map of a sharded checkpoint's index file: tensor name to shard file name.</summary>
    public static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{indexPath}' has no \"weight_map\" object (expected {{\"weight_map\": {{tensor name: shard file}}}}).");
            var result = new Dictionary<string, string>();
            foreach (var entry in map.EnumerateObject())
            {
                var shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()! : "";
                // A shard is a file beside the index, never a path that could reach elsewhere.
                if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or "..")
                    throw new InvalidDataException($"'{indexPath}': tensor '{entry.Name}' maps to '{shard}', which is not a file name beside the index.");
                result[entry.Name] = shard;
            }
            return result;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{indexPath}' is not valid JSON ({e.Message}).", e);
        }
    }

    static Dictionary<string, Tensor> ReadSharded(string folder, string indexPath, Func<string, Dictionary<string, Tensor>> readShard)
    {
        var weightMap = ReadWeightMap(indexPath);
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var shard in weightMap.Values.Distinct().Order(StringComparer.Ordinal))
            {
                var shardPath = Path.Combine(folder, shard);
                if (!File.Exists(shardPath))
                    throw new FileNotFoundException($"shard '{shard}' named by '{indexPath}' is missing: expected '{shardPath}'.", shardPath);
                var tensors = readShard(shardPath);
                foreach (var (name, tensor) in tensors)
                {
                    // The index is the authority on which shard owns a tensor; a stray copy elsewhere is dropped.
                    if (weightMap.TryGetValue(name, out var owner) && owner == shard) result[name] = tensor;
                    else tensor.Dispose();
                }
            }
            var absent = weightMap.Keys.Where(k => !result.ContainsKey(k)).ToList();
            if (absent.Count > 0)
                throw new InvalidDataException($"'{indexPath}' lists tensors its shards do not hold: {string.Join(", ", absent.Take(10))}{(absent.Count > 10 ? ", ..." : "")}.");
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    static Dictionary<string, Tensor> ReadPytorch(string path, Device? device)
    {
        Hashtable table;
        try { table = PyTorchUnpickler.UnpickleStateDict(path); }
        catch (Exception e) when (e is not FileNotFoundException)
        {
            throw new InvalidDataException($"'{path}' is not a readable PyTorch state dict ({e.Message}).", e);
        }
        var result = new Dictionary<string, Tensor>();
        foreach (DictionaryEntry entry in table)
        {
            if (entry.Key is not string name || entry.Value is not Tensor tensor) continue;
            if (device is null || device.type == TorchSharp.DeviceType.CPU) { result[name] = tensor; continue; }
            result[name] = tensor.to(device);
            tensor.Dispose();
        }
        return result;
    }
}
