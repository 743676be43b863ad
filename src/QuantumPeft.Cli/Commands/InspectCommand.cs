using System.CommandLine;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Vision;
using QuantumPeft.Tuners;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft inspect DIR</c>: what an adapter folder holds (config, tensors, shapes, counts), read without a model.</summary>
public sealed class InspectCommand : ICliCommand
{
    public Command Build()
    {
        var dir = new Argument<string>("dir") { Description = "An adapter folder (adapter_config.json + adapter_model.safetensors), or an image classifier folder." };
        var cmd = new Command("inspect", "Show what an adapter folder holds.");
        cmd.Arguments.Add(dir);
        cmd.SetAction(parse =>
        {
            var folder = Path.GetFullPath(parse.GetValue(dir)!);
            if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"adapter folder not found: '{folder}'.");
            var configPath = Path.Combine(folder, "adapter_config.json");
            if (!File.Exists(configPath) && File.Exists(Path.Combine(folder, "config.json")) && ImageClassifiers.IsImageClassifier(folder))
                return InspectImageModel(folder);
            var weightsPath = Path.Combine(folder, "adapter_model.safetensors");
            if (!File.Exists(configPath)) throw new FileNotFoundException($"'{folder}' has no adapter_config.json (expected an adapter folder in peft's layout).", configPath);
            var warnings = new List<string>();
            var config = PeftConfig.Load(configPath, warnings);
            foreach (var w in warnings) Console.Error.WriteLine($"warning: {w}");
            var header = SafetensorsFile.ReadHeader(weightsPath);

            Console.WriteLine($"adapter: {folder}");
            Console.WriteLine($"peft_type: {config.PeftType}");
            Console.WriteLine($"base_model_name_or_path: {config.BaseModelNameOrPath ?? "(none)"}");
            foreach (var (k, v) in header.Metadata.Where(kv => kv.Key is "format" or Training.TextClassifier.HeadMetadataKey)) Console.WriteLine($"metadata {k}: {v}");
            Console.WriteLine();
            Console.WriteLine("| tensor | dtype | shape | numbers |");
            Console.WriteLine("|---|---|---|---:|");
            long total = 0;
            foreach (var e in header.Entries.OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                long n = e.Shape.Aggregate(1L, (a, b) => a * b);
                total += n;
                Console.WriteLine($"| {e.Name} | {e.DType} | [{string.Join(", ", e.Shape)}] | {n:N0} |");
            }
            Console.WriteLine();
            Console.WriteLine($"{header.Entries.Count} tensors, {total:N0} numbers, {new FileInfo(weightsPath).Length:N0} bytes");
            return 0;
        });
        return cmd;
    }

    /// <summary>What an image classifier folder holds: its architecture, head, input and processor, and its parameters by top-level module.</summary>
    static int InspectImageModel(string folder)
    {
        var (model, report) = ImageClassifiers.LoadWithReport(folder, new ImageLoadOptions(Log: _ => { }));
        using (model)
        {
            var processor = Data.Images.ImageProcessor.TryLoad(folder);
            Console.WriteLine($"image classifier: {folder}");
            Console.WriteLine($"model_type: {model.ModelType}");
            Console.WriteLine($"classes: {model.NumLabels} || channels: {model.NumChannels} || image size: {model.ImageSize?.ToString() ?? "any"} || head modules: {string.Join(", ", model.HeadModules)}");
            Console.WriteLine($"image processor: {processor?.Source ?? $"none ({Data.Images.ImageProcessor.FileName} missing: defaults at the image size, ImageNet mean and std)"}");
            if (!report.IsClean) Console.WriteLine($"load: {report.Missing.Count} missing, {report.Unexpected.Count} unexpected tensor(s)");
            Console.WriteLine();
            Console.WriteLine("| module | tensors | numbers |");
            Console.WriteLine("|---|---:|---:|");
            var parameters = model.Module.named_parameters().ToList();
            foreach (var group in parameters.GroupBy(p => p.name.Split('.')[0]))
                Console.WriteLine($"| {group.Key} | {group.Count()} | {group.Sum(p => p.parameter.numel()):N0} |");
            Console.WriteLine();
            Console.WriteLine($"{parameters.Count} tensors, {parameters.Sum(p => p.parameter.numel()):N0} numbers");
        }
        return 0;
    }
}
