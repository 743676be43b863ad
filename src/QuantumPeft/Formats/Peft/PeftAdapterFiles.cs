using QuantumPeft.Formats.Safetensors;
using static TorchSharp.torch;

namespace QuantumPeft.Formats.Peft;

/// <summary>The tensors, metadata and config text of one adapter folder.</summary>
public sealed record PeftAdapterContents(string Directory, string ConfigJson, Dictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>Path of adapter_config.json (for messages).</summary>
    public string ConfigPath => Path.Combine(Directory, PeftAdapterFiles.ConfigFileName);
}

/// <summary>peft's adapter folder on disk: <c>adapter_config.json</c> + <c>adapter_model.safetensors</c>.</summary>
/// <remarks>
/// Keys are those of peft's <c>get_peft_model_state_dict</c>: <c>base_model.model.&lt;module path&gt;.&lt;suffix&gt;</c>
/// with the adapter name removed, e.g. <c>base_model.model.encoder.layer.0.attention.self.query.lora_A.weight</c>;
/// a module in modules_to_save is saved under its own path, e.g. <c>base_model.model.classifier.weight</c>.
/// The safetensors <c>__metadata__</c> holds {"format": "pt"} (what peft writes) plus
/// "qpeft_module_shapes": a JSON object module path -> [out_features, in_features], so that a folder can be
/// checked against a model and converted without one. Both files are written to a temporary name, then renamed.
/// </remarks>
public static class PeftAdapterFiles
{
    /// <summary>peft's config file name.</summary>
    public const string ConfigFileName = "adapter_config.json";

    /// <summary>peft's weights file name.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>The prefix peft's PeftModel puts before every module path.</summary>
    public const string KeyPrefix = "base_model.model.";

    /// <summary>Metadata key of the module shapes (JSON object path -> [out, in]).</summary>
    public const string ShapesMetadataKey = "qpeft_module_shapes";

    /// <summary>The file key of <paramref name="suffix"/> (e.g. "lora_A.weight") on the module at <paramref name="modulePath"/>.</summary>
    public static string Key(string modulePath, string suffix) => $"{KeyPrefix}{modulePath}.{suffix}";

    /// <summary>Writes both files into <paramref name="directory"/> (created if needed); <paramref name="extraMetadata"/> joins the safetensors metadata.</summary>
    /// <remarks>
    /// A new (or empty) folder is built under a temporary name and renamed into place, so a failed or killed write leaves
    /// no half adapter behind. An existing folder, which may hold other files (peft's README.md), has each file replaced
    /// atomically instead.
    /// </remarks>
    public static void Write(string directory, string configJson, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, (int Out, int In)>? moduleShapes = null, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        var metadata = new Dictionary<string, string>();
        foreach (var (k, v) in extraMetadata ?? new Dictionary<string, string>()) metadata[k] = v;
        metadata["format"] = "pt";
        if (moduleShapes is { Count: > 0 })
            metadata[ShapesMetadataKey] = System.Text.Json.JsonSerializer.Serialize(
                moduleShapes.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => new[] { p.Value.Out, p.Value.In }));
        void WriteFiles(string into)
        {
            SafetensorsFile.Write(Path.Combine(into, WeightsFileName), tensors, metadata);
            TestHooks.Reach("adapter:between-files");
            AtomicFile.WriteAllText(Path.Combine(into, ConfigFileName), configJson.TrimEnd() + "\n");
        }
        if (System.IO.Directory.Exists(directory) && System.IO.Directory.EnumerateFileSystemEntries(directory).Any()) WriteFiles(directory);
        else AtomicFolder.Write(directory, WriteFiles, overwrite: true);
    }

    /// <summary>Reads both files of an adapter folder.</summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">A file is missing (the message says which, and whether a .bin was found instead).</exception>
    /// <exception cref="InvalidDataException">The safetensors file is corrupt.</exception>
    public static PeftAdapterContents Read(string directory, Device? device = null)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"Adapter folder not found: {directory}");
        var configPath = Path.Combine(directory, ConfigFileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"Adapter folder {directory} has no {ConfigFileName}.", configPath);
        var weightsPath = Path.Combine(directory, WeightsFileName);
        if (!File.Exists(weightsPath))
        {
            var bin = Path.Combine(directory, "adapter_model.bin");
            throw new FileNotFoundException(File.Exists(bin)
                ? $"Adapter folder {directory} has adapter_model.bin (pickle) but not {WeightsFileName}; convert it to safetensors (peft: save_pretrained(..., safe_serialization=True))."
                : $"Adapter folder {directory} has no {WeightsFileName}.", weightsPath);
        }
        Dictionary<string, Tensor> tensors;
        IReadOnlyDictionary<string, string> metadata;
        try { (tensors, metadata) = SafetensorsFile.ReadWithMetadata(weightsPath, device); }
        catch (Exception e) when (e is not InvalidDataException and not FileNotFoundException)
        {
            throw new InvalidDataException($"{weightsPath}: not a readable safetensors file ({e.Message}).", e);
        }
        return new PeftAdapterContents(directory, File.ReadAllText(configPath), tensors, metadata);
    }

    /// <summary>The module shapes recorded in the metadata, or null when absent (e.g. a folder written by peft).</summary>
    public static Dictionary<string, (int Out, int In)>? ModuleShapes(IReadOnlyDictionary<string, string> metadata, string source)
    {
        if (!metadata.TryGetValue(ShapesMetadataKey, out var json)) return null;
        try
        {
            var raw = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int[]?>>(json)
                ?? throw new InvalidDataException($"{source}: metadata {ShapesMetadataKey} is null; expected an object module path -> [out, in].");
            return raw.ToDictionary(p => p.Key, p => p.Value is [var o, var i] && o > 0 && i > 0 ? (o, i)
                : throw new InvalidDataException($"{source}: metadata {ShapesMetadataKey} entry '{p.Key}' must be [out, in] (two positive integers)."));
        }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{source}: metadata {ShapesMetadataKey} is not valid JSON ({e.Message}).", e); }
    }
}
