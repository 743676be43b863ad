using System.Text.Json;
using System.Text.Json.Nodes;
using QuantumPeft.Data.Images;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Data.Images;

/// <summary>A tiny image classifier (flatten, two Linear layers, a Linear head named classifier), registered as model_type "tiny-image".</summary>
sealed class TinyImageNet : nn.Module<Tensor, Tensor>
{
    // Typed as Module<Tensor, Tensor> so that adapters can replace them.
    readonly nn.Module<Tensor, Tensor> embed, dense, classifier;

    public TinyImageNet(int inFeatures, int hidden, int numLabels) : base(nameof(TinyImageNet))
    {
        embed = nn.Linear(inFeatures, hidden);
        dense = nn.Linear(hidden, hidden);
        classifier = nn.Linear(hidden, numLabels);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixelValues)
    {
        using var h = nn.functional.relu(embed.forward(pixelValues.flatten(1)));
        using var g = nn.functional.relu(dense.forward(h));
        return classifier.forward(g);
    }
}

/// <summary>The <see cref="IImageClassifier"/> of <see cref="TinyImageNet"/>, with a Hugging Face-style folder (config.json + model.safetensors).</summary>
sealed class TinyImageModel : IImageClassifier
{
    public const string Type = "tiny-image";

    readonly TinyImageNet net;
    readonly int hidden;

    TinyImageModel(TinyImageNet net, int numLabels, int channels, int imageSize, int hidden)
    {
        this.net = net;
        NumLabels = numLabels;
        NumChannels = channels;
        ImageSize = imageSize;
        this.hidden = hidden;
    }

    public string ModelType => Type;
    public nn.Module Module => net;
    public int NumLabels { get; }
    public int NumChannels { get; }
    public int? ImageSize { get; }
    public IReadOnlyList<string> HeadModules => ["classifier"];
    public Tensor Logits(Tensor pixelValues) => net.forward(pixelValues);

    /// <summary>Registers the architecture with <see cref="ImageClassifiers"/> (idempotent).</summary>
    public static void Register() => ImageClassifiers.Register([Type], Load);

    /// <summary>Writes a randomly initialised model folder (and, when given, a preprocessor_config.json).</summary>
    public static string WriteFolder(string folder, int numLabels, int channels = 3, int imageSize = 8, int hidden = 16, long seed = 0, ImageProcessor? processor = null)
    {
        Register();
        torch.manual_seed(seed);
        using var model = new TinyImageModel(new TinyImageNet(channels * imageSize * imageSize, hidden, numLabels), numLabels, channels, imageSize, hidden);
        model.Save(folder);
        processor?.Save(folder);
        return folder;
    }

    static (IImageClassifier, HfLoadReport) Load(string folder, ImageLoadOptions options)
    {
        var config = JsonNode.Parse(File.ReadAllText(HfCheckpoint.ConfigPath(folder)))!.AsObject();
        int saved = config["num_labels"]!.GetValue<int>(), channels = config["num_channels"]!.GetValue<int>();
        int size = config["image_size"]!.GetValue<int>(), hidden = config["hidden_size"]!.GetValue<int>();
        int labels = options.NumLabels ?? saved;
        torch.manual_seed(options.Seed);
        var net = new TinyImageNet(channels * size * size, hidden, labels);
        var weights = SafetensorsFile.Read(Path.Combine(folder, HfCheckpoint.SafetensorsWeights));
        List<string> loaded = [], fresh = [];
        using (no_grad())
            foreach (var (name, t) in net.state_dict())
            {
                if (name.StartsWith("classifier.", StringComparison.Ordinal) && labels != saved) { fresh.Add(name); continue; }
                t.copy_(weights[name]);
                loaded.Add(name);
            }
        foreach (var w in weights.Values) w.Dispose();
        if (fresh.Count > 0) (options.Log ?? Console.Error.WriteLine)($"note: newly initialised: {string.Join(", ", fresh)}");
        net.to(options.Device ?? CPU);
        return (new TinyImageModel(net, labels, channels, size, hidden), new HfLoadReport(folder, loaded, [], fresh, [], []));
    }

    public void Save(string folder, string? copyFilesFrom = null)
    {
        Directory.CreateDirectory(folder);
        var config = new JsonObject
        {
            ["model_type"] = Type, ["architectures"] = new JsonArray("TinyImageForImageClassification"), ["num_labels"] = NumLabels,
            ["num_channels"] = NumChannels, ["image_size"] = ImageSize, ["hidden_size"] = hidden,
        };
        File.WriteAllText(Path.Combine(folder, HfCheckpoint.ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var state = net.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu());
        SafetensorsFile.Write(Path.Combine(folder, HfCheckpoint.SafetensorsWeights), state);
        if (copyFilesFrom is not null && File.Exists(Path.Combine(copyFilesFrom, ImageProcessor.FileName)))
            File.Copy(Path.Combine(copyFilesFrom, ImageProcessor.FileName), Path.Combine(folder, ImageProcessor.FileName), overwrite: true);
    }

    public void Dispose() => net.Dispose();
}
