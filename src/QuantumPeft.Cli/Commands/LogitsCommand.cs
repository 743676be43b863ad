using System.CommandLine;
using System.Text.Json;
using QuantumPeft.Models;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Vision;
using QuantumPeft.Training;
using QuantumPeft.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft logits</c>: a model's raw outputs for given token ids, for checks against transformers and peft.</summary>
/// <remarks>
/// Contract: <c>qpeft logits --model DIR [--adapter DIR] --inputs FILE.json --json</c> prints <c>{"logits": ...}</c>: for a causal
/// LM the logits at each sequence's last token (the last 1 of its attention_mask), over the full vocabulary; for a classifier one
/// row per sequence; a single sequence in gives a single row out. A folder without a head (a bare BertModel, GPT2Model,
/// LlamaModel) prints <c>{"last_hidden_state": ...}</c> ([T, H] per sequence) instead. An image classifier takes
/// <c>--image FILE</c> (repeatable; the folder's image processor runs, and the logits keep their batch dimension: [[...]]) or
/// <c>--inputs FILE.json</c> with <c>"pixel_values"</c> ([B, C, H, W], or [C, H, W] for one image and one row out), which skips the processor.
/// </remarks>
public sealed class LogitsCommand : ICliCommand
{
    // Base-model classes: their folders have no head, so the output is the last hidden state, as transformers' AutoModel gives.
    static readonly string[] BaseDecoderClasses = ["GPT2Model", "LlamaModel", "MistralModel", "Qwen2Model"];

    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "minilm, or a Hugging Face model folder (BERT, RoBERTa, GPT-2, LLaMA, Mistral, Qwen2).", Required = true };
        var adapter = new Option<string?>("--adapter") { Description = "An adapter folder (peft's layout) to apply." };
        var inputs = new Option<string?>("--inputs") { Description = "JSON file: {\"input_ids\": [..] or [[..], ..], \"attention_mask\": ..., \"token_type_ids\": ...}; image models: {\"pixel_values\": [B, C, H, W]}." };
        var images = new Option<string[]>("--image") { Description = "Image models: an image file (PNG or JPEG; repeatable), run through the folder's image processor." };
        var imageSize = new Option<int?>("--image-size") { Description = "Image models: resize to this square side (default: the adapter's, then the model's preprocessor_config.json)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (the only output format; kept for the contract)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = "Decoder weights: float32, float16 or bfloat16.", DefaultValueFactory = _ => "float32" };

        var cmd = new Command("logits", "Print a model's logits (or last hidden state) for token ids read from a JSON file.");
        foreach (var o in new Option[] { model, adapter, inputs, json, device, dtype, images, imageSize }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            var dt = DecoderLoadOptions.ParseDType(parse.GetValue(dtype)!);
            var folder = ModelResolver.Resolve(parse.GetValue(model)!);
            var adapterDir = parse.GetValue(adapter) is { } a ? Path.GetFullPath(a) : null;
            if (ImageClassifiers.IsImageClassifier(folder))
            {
                Console.WriteLine(ImageLogits(folder, adapterDir, parse.GetValue(images) ?? [], parse.GetValue(inputs), parse.GetValue(imageSize), dev));
                return 0;
            }
            var batch = TokenBatch.Load(parse.GetValue(inputs) ?? throw new ArgumentException("--inputs FILE.json is required (token ids); --image is for image classifiers."));
            var (key, values) = CausalLMs.IsCausalLM(folder)
                ? Decoder(folder, adapterDir, batch, new DecoderLoadOptions(dev, dt))
                : Encoder(folder, adapterDir, batch, dev);
            Console.WriteLine(Serialize(key, values, batch.Single));
            return 0;
        });
        return cmd;
    }

    static (string Key, Tensor Values) Decoder(string folder, string? adapterDir, TokenBatch batch, DecoderLoadOptions options)
    {
        var lm = CausalLMs.Load(folder, options);
        batch.CheckIds(lm.Info.VocabSize, $"'{folder}'");
        if (adapterDir is not null) PeftModel.Load(lm.Module, adapterDir);
        lm.Module.eval();
        using var _ = no_grad();
        var dev = options.Device ?? CPU;
        var ids = batch.Ids(dev);
        var mask = batch.Mask(dev);
        if (ArchitectureOf(folder) is { } arch && BaseDecoderClasses.Contains(arch))
            return ("last_hidden_state", lm.HiddenStates(ids, mask).to(ScalarType.Float32).cpu());
        var logits = lm.Forward(ids, mask);
        var last = tensor(batch.LastPositions(), device: dev);
        var rows = logits[arange(batch.Count, device: dev), last];
        return ("logits", rows.cpu());
    }

    // Straight from the weights (no tokenizer needed): a classifier when the adapter or the folder holds one, else the bare encoder.
    static (string Key, Tensor Values) Encoder(string folder, string? adapterDir, TokenBatch batch, Device dev)
    {
        using var _ = no_grad();
        var arch = TextEncoders.For(folder);
        batch.CheckIds(arch.VocabSize(folder), $"'{folder}'");
        var (ids, mask, types) = (batch.Ids(dev), batch.Mask(dev), batch.Types(dev));
        (int NumLabels, string Head)? head = adapterDir is not null
            ? (TextClassifier.AdapterHasHead(adapterDir, folder) ? TextClassifier.ReadAdapterHead(adapterDir, folder) : null)
            : arch.ReadHead(folder);
        if (head is { } h)
        {
            using var classifier = adapterDir is not null
                ? arch.Load(folder, h.NumLabels, h.Head, 0, m => { if (!m.StartsWith("note:", StringComparison.Ordinal)) Console.Error.WriteLine(m); }).Model
                : TextClassifier.LoadSavedClassifier(folder).Model;
            if (adapterDir is not null) PeftModel.Load(classifier, adapterDir);
            classifier.to(dev);
            classifier.eval();
            return ("logits", classifier.forward(ids, mask, types).cpu());
        }
        var load = arch.LoadEncoder ?? throw new NotSupportedException($"'{folder}' ({arch.Name}) has no classifier head, and its bare encoder is not offered: give a classifier folder or an adapter with its head.");
        using var encoder = load(folder, dev);
        if (adapterDir is not null) PeftModel.Load(encoder, adapterDir);
        encoder.eval();
        return ("last_hidden_state", encoder.forward(ids, mask, types).cpu());
    }

    /// <summary>{"logits": ...} of an image classifier for image files (processed) or pixel_values (as given).</summary>
    static string ImageLogits(string folder, string? adapterDir, string[] imageFiles, string? inputsFile, int? imageSize, Device dev)
    {
        if ((imageFiles.Length > 0) == (inputsFile is not null))
            throw new ArgumentException($"--model '{folder}' is an image classifier: give --image FILE (one or more) or --inputs FILE.json with \"pixel_values\", one of the two.");
        using var classifier = adapterDir is not null
            ? ImageClassifierFineTuner.FromAdapter(folder, adapterDir, dev, imageSize)
            : ImageClassifierFineTuner.FromModelFolder(folder, dev, imageSize);
        classifier.SetTraining(false);
        using var _ = no_grad();
        if (inputsFile is null)
        {
            var examples = imageFiles.Select(f => Data.Images.ImageFiles.Read(Path.GetFullPath(f))).ToList();
            return Serialize("logits", classifier.Logits(examples).cpu(), single: false);
        }
        var (pixels, single) = ReadPixelValues(inputsFile, classifier.Model.NumChannels);
        using (pixels)
        using (var onDevice = pixels.to(dev))
            return Serialize("logits", classifier.Model.Logits(onDevice).cpu(), single);
    }

    /// <summary>"pixel_values" of a JSON file as a float32 tensor [B, C, H, W]; single when the file gave one image [C, H, W].</summary>
    internal static (Tensor Pixels, bool Single) ReadPixelValues(string path, int channels)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"inputs file not found: '{full}'.", full);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(full)); }
        catch (JsonException e) { throw new InvalidDataException($"{full}: not valid JSON ({e.Message}).", e); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("pixel_values", out var root))
                throw new InvalidDataException($"{full}: expected an object with \"pixel_values\" ([B, C, H, W] nested lists of numbers) for an image classifier.");
            var shape = new List<long>();
            for (var e = root; e.ValueKind == JsonValueKind.Array; e = e[0])
            {
                shape.Add(e.GetArrayLength());
                if (e.GetArrayLength() == 0) throw new InvalidDataException($"{full}: pixel_values has an empty list.");
            }
            if (shape.Count is not (3 or 4))
                throw new InvalidDataException($"{full}: pixel_values has {shape.Count} dimension(s); expected [B, C, H, W] (or [C, H, W] for one image).");
            var values = new List<float>();
            void Walk(JsonElement e, int dim)
            {
                if (dim == shape.Count)
                {
                    if (e.ValueKind != JsonValueKind.Number) throw new InvalidDataException($"{full}: pixel_values holds a {e.ValueKind} where a number belongs.");
                    values.Add(e.GetSingle());
                    return;
                }
                if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != shape[dim])
                    throw new InvalidDataException($"{full}: pixel_values is ragged: dimension {dim} should have {shape[dim]} entries everywhere.");
                foreach (var x in e.EnumerateArray()) Walk(x, dim + 1);
            }
            Walk(root, 0);
            bool single = shape.Count == 3;
            if (single) shape.Insert(0, 1);
            if (shape[1] != channels)
                throw new InvalidDataException($"{full}: pixel_values has {shape[1]} channel(s); the model takes {channels}.");
            return (tensor(values.ToArray(), shape.ToArray(), dtype: ScalarType.Float32), single);
        }
    }

    static string? ArchitectureOf(string folder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "config.json")));
        return doc.RootElement.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0 ? a[0].GetString() : null;
    }

    /// <summary>{"key": nested lists}; the batch dimension is dropped for a single input sequence.</summary>
    internal static string Serialize(string key, Tensor values, bool single)
    {
        var t = values.to(ScalarType.Float32).contiguous();
        if (single) t = t[0];
        var data = t.data<float>().ToArray();
        var shape = t.shape;
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WritePropertyName(key);
            int offset = 0;
            void Write(int dim)
            {
                w.WriteStartArray();
                for (long i = 0; i < shape[dim]; i++)
                    if (dim == shape.Length - 1) w.WriteNumberValue(data[offset++]);
                    else Write(dim + 1);
                w.WriteEndArray();
            }
            Write(0);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
