using QuantumPeft.Formats.HuggingFace;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Vision;

/// <summary>An image classification model (ViT, ResNet, ...) as the trainer and the CLI see it.</summary>
/// <remarks>
/// Implementations wrap an <see cref="nn.Module"/> whose state-dict names are the Hugging Face checkpoint names
/// (vit.encoder.layer.0.attention.attention.query..., resnet.encoder.stages.0...), so that adapters injected into
/// <see cref="Module"/> are saved under peft's keys (base_model.model.vit...).
/// </remarks>
public interface IImageClassifier : IDisposable
{
    /// <summary>config.json's model_type ("vit", "resnet").</summary>
    string ModelType { get; }

    /// <summary>The module itself (for adapters, state dicts, device moves, train/eval).</summary>
    nn.Module Module { get; }

    /// <summary>Outputs of the head (classes).</summary>
    int NumLabels { get; }

    /// <summary>Channels the model expects (3 for RGB checkpoints).</summary>
    int NumChannels { get; }

    /// <summary>The image side the checkpoint was trained at (config.json's image_size; 224 for ImageNet ResNets), or null when any size works.</summary>
    int? ImageSize { get; }

    /// <summary>Top-level modules that form the head (trained with head-only fine-tuning, saved as modules_to_save): e.g. ["classifier"].</summary>
    IReadOnlyList<string> HeadModules { get; }

    /// <summary>Logits [B, num_labels] (float32) for pixel values [B, C, H, W] (float32, already processed: resized, rescaled, normalised).</summary>
    Tensor Logits(Tensor pixelValues);

    /// <summary>Writes the model (its current weights) as a Hugging Face folder (config.json + model.safetensors), copying preprocessor_config.json from <paramref name="copyFilesFrom"/>.</summary>
    void Save(string folder, string? copyFilesFrom = null);
}

/// <summary>How to load an image classifier folder.</summary>
/// <param name="NumLabels">The head's classes; null keeps the checkpoint's (id2label). A different count gets a newly initialised head.</param>
/// <param name="Seed">Seed of newly initialised tensors.</param>
/// <param name="Device">Where the model goes (CPU when null).</param>
/// <param name="Log">Receives load notes (newly initialised tensors, ignored keys); stderr when null.</param>
public sealed record ImageLoadOptions(int? NumLabels = null, long Seed = 0, Device? Device = null, Action<string>? Log = null);

/// <summary>The image classification architectures this library loads, by config.json's model_type: one line per architecture folder.</summary>
public static class ImageClassifiers
{
    sealed record Architecture(IReadOnlyList<string> ModelTypes, Func<string, ImageLoadOptions, (IImageClassifier Model, HfLoadReport Report)> Load);

    // One line per architecture folder (Models/Vit, Models/ResNet).
    static readonly List<Architecture> architectures =
    [
        new(Vit.ViTConfig.SupportedModelTypes, Vit.HfViTLoader.Load),
        new(ResNet.ResNetConfig.SupportedModelTypes, (folder, options) => ResNet.ResNetImageClassifier.LoadWithReport(folder, options)),
    ];

    /// <summary>Adds an architecture at run time (tests register tiny models); a model_type already known is left as it is.</summary>
    internal static void Register(IReadOnlyList<string> modelTypes, Func<string, ImageLoadOptions, (IImageClassifier Model, HfLoadReport Report)> load)
    {
        lock (architectures)
            if (!modelTypes.Any(ModelTypes.Contains)) architectures.Add(new Architecture(modelTypes, load));
    }

    /// <summary>Every model_type an image classifier folder may have.</summary>
    public static IReadOnlyList<string> ModelTypes => architectures.SelectMany(a => a.ModelTypes).ToList();

    /// <summary>True when the folder's config.json names an image architecture this library loads.</summary>
    public static bool IsImageClassifier(string folder) => HfCheckpoint.ReadModelType(folder) is { } t && ModelTypes.Contains(t);

    /// <summary>Loads an image classifier folder (config.json + safetensors, sharded safetensors or pytorch_model.bin).</summary>
    /// <exception cref="NotSupportedException">The model_type is not an image architecture this library knows (the message lists them).</exception>
    public static (IImageClassifier Model, HfLoadReport Report) LoadWithReport(string folder, ImageLoadOptions? options = null)
    {
        var type = HfCheckpoint.ReadModelType(folder);
        var arch = architectures.FirstOrDefault(a => type is not null && a.ModelTypes.Contains(type))
            ?? throw new NotSupportedException(
                $"{HfCheckpoint.ConfigPath(folder)}: model_type '{type ?? "(none)"}' is not a supported image classifier (supported: {string.Join(", ", ModelTypes)}).");
        return arch.Load(folder, options ?? new ImageLoadOptions());
    }

    /// <summary>The layers adapted unless the user names others: ViT's query and value (the LoRA / FourierFT ViT recipes), every convolution of a CNN.</summary>
    public static string DefaultTargets(string folder) => HfCheckpoint.ReadModelType(folder) switch
    {
        "vit" => "query,value",
        "resnet" => Tuners.ModuleSelector.AllConvShorthand,
        _ => Tuners.ModuleSelector.AllLinearShorthand,
    };

    /// <summary><see cref="LoadWithReport"/> without the report.</summary>
    public static IImageClassifier Load(string folder, ImageLoadOptions? options = null) => LoadWithReport(folder, options).Model;
}
