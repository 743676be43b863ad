using QuantumPeft.Formats.HuggingFace;

namespace QuantumPeft.Models;

/// <summary>Turns a --model argument (a bundled model's name or a folder path) into a Hugging Face model folder.</summary>
public static class ModelResolver
{
    /// <summary>Names that mean the bundled all-MiniLM-L6-v2.</summary>
    public static readonly IReadOnlyList<string> MiniLmAliases =
        ["minilm", BundledModels.MiniLmName, "sentence-transformers/" + BundledModels.MiniLmName];

    /// <summary>Names that mean the bundled ImageNet ResNet (ML.NET's ResNet18 featurizer, no classifier head).</summary>
    public static readonly IReadOnlyList<string> ResNet18Aliases = [BundledModels.ResNet18Name, "resnet-18"];

    /// <summary>
    /// "minilm" (or all-MiniLM-L6-v2) -> the bundled model's cache folder, imported on first use; a folder -> itself
    /// (full path) after checking it has config.json; anything else -> an ArgumentException listing the choices.
    /// </summary>
    public static string Resolve(string modelNameOrPath)
    {
        if (string.IsNullOrWhiteSpace(modelNameOrPath))
            throw new ArgumentException("no model given: use 'minilm' (bundled all-MiniLM-L6-v2) or a path to a Hugging Face model folder.", nameof(modelNameOrPath));
        if (MiniLmAliases.Contains(modelNameOrPath, StringComparer.OrdinalIgnoreCase)) return BundledModels.EnsureMiniLm();
        if (ResNet18Aliases.Contains(modelNameOrPath, StringComparer.OrdinalIgnoreCase)) return BundledModels.EnsureResNet18();
        if (Directory.Exists(modelNameOrPath))
        {
            HfCheckpoint.ConfigPath(modelNameOrPath);
            return Path.GetFullPath(modelNameOrPath);
        }
        if (File.Exists(modelNameOrPath))
            throw new ArgumentException($"'{modelNameOrPath}' is a file; --model takes a model folder (with config.json) or 'minilm'.", nameof(modelNameOrPath));
        throw new ArgumentException(
            $"unknown model '{modelNameOrPath}': not a bundled model and no such folder. Choices: 'minilm' (bundled all-MiniLM-L6-v2), 'resnet18' (bundled ImageNet ResNet), " +
            "or a path to a Hugging Face model folder (config.json + model.safetensors); models are not downloaded.", nameof(modelNameOrPath));
    }
}
