using System.Text.Json;
using System.Text.Json.Nodes;
using QuantumPeft.Formats;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Onnx;
using static TorchSharp.torch;

namespace QuantumPeft.Models.ResNet;

/// <summary>The ImageNet ResNet of NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 (ML.NET's image featurizer), written as a Hugging Face folder.</summary>
/// <remarks>
/// The package's build step copies two graphs beside the application: DnnImageModels/ResNet18Onnx/ResNet18.onnx (a CNTK
/// export, featurizer without the 1000-class head) and DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx, which ML.NET
/// runs first on the extracted pixels (RGB planes, 0..255): it reorders the channels to BGR and subtracts a per-pixel
/// mean image. The import reads the network's weights by walking its graph (<see cref="OnnxResNetReader"/>), folds the
/// channel reorder into the stem convolution (exact, so the folder takes RGB as Hugging Face's ResNets do), and writes
/// the mean as preprocessor_config.json: rescale by 1/255, then normalise with mean = the mean image's channel averages / 255
/// and std = 1/255, which gives pixel - channel average on the 0..255 scale. A per-pixel mean has no place in a Hugging
/// Face image processor; what the channel average leaves out (up to about 13 of 255) is recorded in qpeft-import.json.
/// Despite its name, the network has three layers in its last stage (depths 2, 2, 2, 3: 15.9M parameters), which the
/// graph shows and config.json says.
/// </remarks>
public static class BundledResNet18
{
    /// <summary>The NuGet package the graphs come from, and its version (the one the library's project file downloads).</summary>
    public const string Package = "Microsoft.ML.DnnImageFeaturizer.ResNet18";
    public const string PackageVersion = "0.23.1";

    /// <summary>The network graph: beside the application (where this library's build copies it), else in the NuGet package cache.</summary>
    public static string OnnxPath => Locate(Path.Combine("ResNet18Onnx", "ResNet18.onnx"));

    /// <summary>The preprocessing graph, found as <see cref="OnnxPath"/> is.</summary>
    public static string PreprocessOnnxPath => Locate(Path.Combine("ResNetPrepOnnx", "ResNetPreprocess.onnx"));

    /// <summary>Opens one of the package's graphs, or says where it was expected and how to get it.</summary>
    public static Stream Open(string path) => File.Exists(path) ? File.OpenRead(path)
        : throw new FileNotFoundException(
            $"'{path}' not found: it comes from NuGet {Package} {PackageVersion}, which this library's build copies beside the application; " +
            $"an application that uses the packed library can add <PackageDownload Include=\"{Package}\" Version=\"[{PackageVersion}]\" /> to have it in the package cache.", path);

    // An application built with the library's project has the files beside it; one that uses the packed library finds
    // them in the package cache ($NUGET_PACKAGES, else ~/.nuget/packages) once the package has been restored.
    static string Locate(string relative)
    {
        var beside = Path.Combine(AppContext.BaseDirectory, "DnnImageModels", relative);
        if (File.Exists(beside)) return beside;
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } root ? root
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var cached = Path.Combine(cache, Package.ToLowerInvariant(), PackageVersion, "tools", "DnnImageModels", relative);
        return File.Exists(cached) ? cached : beside;
    }

    /// <summary>Writes the folder (config.json, model.safetensors, preprocessor_config.json, the import marker), then loads it back and requires every tensor to fit.</summary>
    internal static ModelImportResult Write(string folder, string markerFile, int importVersion)
    {
        OnnxResNetImport import;
        OnnxImagePreprocessing preprocessing;
        using (var prep = Open(PreprocessOnnxPath)) preprocessing = ReadPreprocessing(prep);
        using (preprocessing)
        {
            using (var onnx = Open(OnnxPath)) import = OnnxResNetReader.Read(onnx, "ResNet18.onnx");
            try
            {
                if (preprocessing.ChannelOrder.Count != import.Config["num_channels"]!.GetValue<long>())
                    throw new InvalidDataException($"ResNetPreprocess.onnx reorders {preprocessing.ChannelOrder.Count} channels but ResNet18.onnx takes {import.Config["num_channels"]}.");
                const string stem = "resnet.embedder.embedder.convolution.weight";
                var raw = import.Weights[stem];
                import.Weights[stem] = OnnxResNetReader.FoldChannelOrder(raw, preprocessing.ChannelOrder);
                raw.Dispose();

                var config = import.Config;
                config["_name_or_path"] = $"{Package} {PackageVersion} (ResNet18.onnx)";
                HfFolderWriter.Write(folder, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), import.Weights);
                AtomicFile.WriteAllText(Path.Combine(folder, HfResNetLoader.PreprocessorConfig),
                    PreprocessorJson(import.ImageSize, preprocessing.ChannelMean).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

                // Loading it back is the check that the names and shapes are exactly a ResNetModel's.
                var messages = new List<string>();
                var (model, report) = HfResNetLoader.LoadModelWithReport(folder, log: messages.Add);
                long parameters;
                using (model) parameters = model.parameters().Sum(p => p.numel());
                if (!report.IsClean || report.Ignored.Count > 0 || report.Loaded.Count != import.Weights.Count)
                    throw new InvalidDataException(
                        $"the imported ResNet does not match a ResNetModel exactly: missing [{string.Join(", ", report.Missing)}], " +
                        $"unexpected [{string.Join(", ", report.Unexpected.Concat(report.Ignored))}], loaded {report.Loaded.Count} of {import.Weights.Count}.");

                AtomicFile.WriteAllText(Path.Combine(folder, markerFile), JsonSerializer.Serialize(new
                {
                    importer_version = importVersion,
                    source = $"NuGet {Package} {PackageVersion} (ResNet18.onnx, ResNetPreprocess.onnx)",
                    tensors = import.Weights.Count,
                    parameters,
                    initializers = import.Accounting,
                    preprocessing = new
                    {
                        channel_order = $"ResNetPreprocess.onnx feeds the network input channels [{string.Join(", ", preprocessing.ChannelOrder)}] of the RGB image (BGR); folded into {stem}, so the folder takes RGB",
                        mean = "ResNetPreprocess.onnx subtracts a per-pixel mean image (0..255 scale); preprocessor_config.json uses its channel averages",
                        channel_mean_rgb = preprocessing.ChannelMean,
                        mean_image_max_deviation = preprocessing.MaxDeviation,
                        resize = "ML.NET resizes before the graphs; the folder says 224 x 224 bilinear",
                    },
                }, new JsonSerializerOptions { WriteIndented = true }));
                return new ModelImportResult(folder, import.Weights.Count, parameters, import.Accounting);
            }
            finally
            {
                foreach (var t in import.Weights.Values) t.Dispose();
            }
        }
    }

    static OnnxImagePreprocessing ReadPreprocessing(Stream stream) => OnnxResNetReader.ReadPreprocessing(stream, "ResNetPreprocess.onnx");

    /// <summary>
    /// A ViTImageProcessor config whose output is pixel - mean on the 0..255 scale, RGB: resize to the graph's size,
    /// rescale by 1/255, normalise with mean / 255 and std 1/255.
    /// </summary>
    public static JsonObject PreprocessorJson(int imageSize, IReadOnlyList<double> channelMean255) => new()
    {
        ["image_processor_type"] = "ViTImageProcessor",
        ["do_resize"] = true,
        ["size"] = new JsonObject { ["height"] = imageSize, ["width"] = imageSize },
        // PIL's BILINEAR.
        ["resample"] = 2,
        ["do_rescale"] = true,
        ["rescale_factor"] = 1.0 / 255,
        ["do_normalize"] = true,
        ["image_mean"] = new JsonArray(channelMean255.Select(m => (JsonNode)(m / 255)).ToArray()),
        ["image_std"] = new JsonArray(channelMean255.Select(_ => (JsonNode)(1.0 / 255)).ToArray()),
    };
}
