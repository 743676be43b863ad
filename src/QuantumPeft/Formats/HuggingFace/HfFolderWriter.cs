using System.Text.Json;
using QuantumPeft.Formats.Safetensors;
using static TorchSharp.torch;

namespace QuantumPeft.Formats.HuggingFace;

/// <summary>Writes a Hugging Face model folder: config.json and model.safetensors (or shards with an index), plus tokenizer files.</summary>
public static class HfFolderWriter
{
    /// <summary>Files copied from a source folder so the written folder tokenizes (and generates) like the original.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles =
        [HfCheckpoint.Vocabulary, HfCheckpoint.TokenizerConfig, "tokenizer.json", "special_tokens_map.json", "vocab.json", "merges.txt",
         "tokenizer.model", "spm.model", "added_tokens.json", "generation_config.json"];

    /// <summary>
    /// Writes <paramref name="configJson"/> as config.json and <paramref name="tensors"/> as model.safetensors, or,
    /// when <paramref name="maxShardBytes"/> is given and the tensors exceed it, as model-0000i-of-0000n.safetensors
    /// shards with model.safetensors.index.json (as transformers' save_pretrained does). Each file is written to a
    /// temporary name and renamed. Weight files of another layout left in the folder are removed, so the folder
    /// never holds two disagreeing copies.
    /// </summary>
    public static void Write(string folder, string configJson, IReadOnlyDictionary<string, Tensor> tensors,
        long? maxShardBytes = null, string? copyTokenizerFrom = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (maxShardBytes is <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), maxShardBytes, "shard size must be positive.");
        Directory.CreateDirectory(folder);
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        var shards = Shard(tensors, maxShardBytes ?? long.MaxValue);

        var written = new HashSet<string>();
        if (shards.Count == 1)
        {
            SafetensorsFile.Write(Path.Combine(folder, HfCheckpoint.SafetensorsWeights), tensors, metadata);
            written.Add(HfCheckpoint.SafetensorsWeights);
        }
        else
        {
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < shards.Count; i++)
            {
                var name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                SafetensorsFile.Write(Path.Combine(folder, name), shards[i], metadata);
                foreach (var key in shards[i].Keys) weightMap[key] = name;
                written.Add(name);
            }
            long total = tensors.Values.Sum(ByteSize);
            var index = new { metadata = new { total_size = total }, weight_map = weightMap };
            AtomicFile.WriteAllText(Path.Combine(folder, HfCheckpoint.SafetensorsIndex), JsonSerializer.Serialize(index, new JsonSerializerOptions { WriteIndented = true }));
            written.Add(HfCheckpoint.SafetensorsIndex);
        }
        RemoveStaleWeights(folder, written);
        AtomicFile.WriteAllText(Path.Combine(folder, HfCheckpoint.ConfigFile), configJson);

        if (copyTokenizerFrom is not null && Path.GetFullPath(copyTokenizerFrom) != Path.GetFullPath(folder))
            foreach (var file in TokenizerFiles)
            {
                var from = Path.Combine(copyTokenizerFrom, file);
                if (File.Exists(from)) AtomicFile.WriteAllBytes(Path.Combine(folder, file), File.ReadAllBytes(from));
            }
    }

    // Greedy in name order, like transformers: a new shard starts when the next tensor would overflow this one.
    static List<Dictionary<string, Tensor>> Shard(IReadOnlyDictionary<string, Tensor> tensors, long maxBytes)
    {
        var shards = new List<Dictionary<string, Tensor>> { new() };
        long size = 0;
        foreach (var name in tensors.Keys.Order(StringComparer.Ordinal))
        {
            long bytes = ByteSize(tensors[name]);
            if (size > 0 && size + bytes > maxBytes)
            {
                shards.Add(new());
                size = 0;
            }
            shards[^1][name] = tensors[name];
            size += bytes;
        }
        return shards;
    }

    static long ByteSize(Tensor t) => t.numel() * t.element_size();

    static void RemoveStaleWeights(string folder, HashSet<string> written)
    {
        var stale = HfCheckpoint.WeightFiles.Select(f => Path.Combine(folder, f)).ToList();
        stale.AddRange(Directory.EnumerateFiles(folder, "model-*-of-*.safetensors"));
        stale.AddRange(Directory.EnumerateFiles(folder, "pytorch_model-*-of-*.bin"));
        foreach (var path in stale)
            if (!written.Contains(Path.GetFileName(path)) && File.Exists(path)) File.Delete(path);
    }
}
