using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Vision;
using static TorchSharp.torch;

namespace QuantumPeft.Models.ResNet;

/// <summary>A ResNet folder as an <see cref="IImageClassifier"/>: ResNetForImageClassification with the folder it came from.</summary>
public sealed class ResNetImageClassifier : IImageClassifier
{
    /// <summary>The model (state-dict names resnet.*, classifier.1.*).</summary>
    public ResNetForImageClassification Model { get; }

    /// <summary>The folder the weights came from (its preprocessor_config.json is copied on save); null for a model built in memory.</summary>
    public string? SourceFolder { get; }

    /// <summary>Wraps a model; <paramref name="sourceFolder"/> is where its preprocessor_config.json lives.</summary>
    public ResNetImageClassifier(ResNetForImageClassification model, string? sourceFolder = null)
    {
        Model = model;
        SourceFolder = sourceFolder;
    }

    /// <summary>Loads a ResNet folder (<see cref="HfResNetLoader.LoadForImageClassification"/>) with the load report.</summary>
    public static (ResNetImageClassifier Model, HfLoadReport Report) LoadWithReport(string folder, ImageLoadOptions? options = null)
    {
        options ??= new ImageLoadOptions();
        var (model, report) = HfResNetLoader.LoadForImageClassification(folder, options.NumLabels, options.Seed, options.Device, options.Log);
        return (new ResNetImageClassifier(model, Path.GetFullPath(folder)), report);
    }

    public string ModelType => "resnet";
    public nn.Module Module => Model;
    public int NumLabels => Model.NumLabels;
    public int NumChannels => Model.Config.NumChannels;
    public int? ImageSize => Model.Config.ImageSize;

    /// <summary>["classifier"]: Flatten + Linear on the pooled features.</summary>
    public IReadOnlyList<string> HeadModules { get; } = ["classifier"];

    /// <summary>When BatchNorm layers update their running statistics in training mode (by default: only those whose weights train).</summary>
    public BatchNormStatistics BatchNormStatistics { get => Model.BatchNormStatistics; set => Model.BatchNormStatistics = value; }

    public Tensor Logits(Tensor pixelValues) => Model.call(pixelValues);

    /// <summary>The pooled backbone features [B, hidden_sizes[-1]] (the classifier's input).</summary>
    public Tensor Features(Tensor pixelValues) => Model.ResNet.Features(pixelValues);

    public void Save(string folder, string? copyFilesFrom = null) => HfResNetLoader.Save(folder, Model, copyFilesFrom ?? SourceFolder);

    public void Dispose() => Model.Dispose();
}
