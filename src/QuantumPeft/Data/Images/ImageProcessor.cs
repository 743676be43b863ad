using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Data.Images;

/// <summary>
/// What preprocessor_config.json says (Hugging Face's ViTImageProcessor and its relatives), with transformers' defaults for
/// every field a file leaves out: resize to 224 x 224 with bilinear resampling, rescale by 1/255, normalise with mean and std 0.5.
/// </summary>
/// <param name="DoResize">Resize before anything else.</param>
/// <param name="Height">Target height ("size": {"height", "width"}); null when the size is a shortest edge.</param>
/// <param name="Width">Target width.</param>
/// <param name="ShortestEdge">"size": {"shortest_edge"}: the short side becomes this, the long one keeps the aspect ratio (rounded down).</param>
/// <param name="Resample">Pillow's filter number: 2 bilinear, 3 bicubic (0 nearest, 1 lanczos, 4 box, 5 hamming).</param>
/// <param name="DoCenterCrop">Crop the centre to <paramref name="CropHeight"/> x <paramref name="CropWidth"/> after resizing.</param>
/// <param name="CropHeight">"crop_size" height.</param>
/// <param name="CropWidth">"crop_size" width.</param>
/// <param name="CropPct">ConvNeXt's (and so ResNet's) crop_pct: below 384 the short side is resized to shortest_edge / crop_pct, then the centre shortest_edge square is cropped.</param>
/// <param name="DoRescale">Multiply the bytes by <paramref name="RescaleFactor"/>.</param>
/// <param name="RescaleFactor">Usually 1/255.</param>
/// <param name="DoNormalize">Subtract <paramref name="ImageMean"/> and divide by <paramref name="ImageStd"/>, per channel.</param>
/// <param name="ImageMean">Per-channel mean.</param>
/// <param name="ImageStd">Per-channel standard deviation.</param>
/// <param name="ProcessorType">image_processor_type, kept so that a saved file means the same to transformers (ViTImageProcessor, ConvNextImageProcessor, ...).</param>
public sealed record ImageProcessorConfig(
    bool DoResize = true,
    int? Height = 224,
    int? Width = 224,
    int? ShortestEdge = null,
    int Resample = PilResize.Bilinear,
    bool DoCenterCrop = false,
    int? CropHeight = null,
    int? CropWidth = null,
    double? CropPct = null,
    bool DoRescale = true,
    double RescaleFactor = 1.0 / 255,
    bool DoNormalize = true,
    IReadOnlyList<double>? ImageMean = null,
    IReadOnlyList<double>? ImageStd = null,
    string ProcessorType = "ViTImageProcessor")
{
    /// <summary>transformers' IMAGENET_STANDARD_MEAN / STD (ViT's defaults).</summary>
    public static readonly IReadOnlyList<double> StandardMean = [0.5, 0.5, 0.5], StandardStd = [0.5, 0.5, 0.5];

    /// <summary>transformers' IMAGENET_DEFAULT_MEAN / STD (torchvision's ImageNet statistics).</summary>
    public static readonly IReadOnlyList<double> ImageNetMean = [0.485, 0.456, 0.406], ImageNetStd = [0.229, 0.224, 0.225];

    /// <summary>The mean in force (the file's, else ViT's default).</summary>
    public IReadOnlyList<double> Mean => ImageMean ?? StandardMean;

    /// <summary>The std in force.</summary>
    public IReadOnlyList<double> Std => ImageStd ?? StandardStd;
}

/// <summary>
/// Turns decoded images into the pixel values a vision model takes, as Hugging Face's ViTImageProcessor does: PIL's resize
/// (<see cref="PilResize"/>, exact to the byte), optional centre crop, rescale, normalise, channels first: a float32 tensor [B, C, H, W].
/// </summary>
public sealed class ImageProcessor
{
    /// <summary>The file name in model folders.</summary>
    public const string FileName = "preprocessor_config.json";

    /// <summary>The settings.</summary>
    public ImageProcessorConfig Config { get; }

    /// <summary>Where the settings came from (a file path, or a note saying they are defaults).</summary>
    public string Source { get; }

    /// <summary>Wraps settings; checks them.</summary>
    public ImageProcessor(ImageProcessorConfig config, string source = "settings")
    {
        Config = config ?? throw new ArgumentNullException(nameof(config));
        Source = source;
        if (config.DoResize && config.ShortestEdge is null && (config.Height is not > 0 || config.Width is not > 0))
            throw new ArgumentException($"{source}: \"size\" needs height and width (or shortest_edge), each at least 1.");
        if (config.ShortestEdge is < 1) throw new ArgumentException($"{source}: shortest_edge {config.ShortestEdge}; expected at least 1.");
        if (config.DoCenterCrop && (config.CropHeight is not > 0 || config.CropWidth is not > 0))
            throw new ArgumentException($"{source}: do_center_crop needs \"crop_size\" with height and width.");
        if (config.CropPct is <= 0 or > 1) throw new ArgumentException($"{source}: crop_pct {config.CropPct}; expected a share in (0, 1].");
        PilResize.Filter(config.Resample == PilResize.Nearest ? PilResize.Bilinear : config.Resample);
        if (config.Std.Any(s => s == 0)) throw new ArgumentException($"{source}: image_std has a 0; expected positive values.");
    }

    /// <summary>The processor for a folder without preprocessor_config.json: <paramref name="size"/> squared, bilinear, 1/255, ImageNet mean and std.</summary>
    public static ImageProcessor Default(int size) =>
        new(new ImageProcessorConfig(Height: size, Width: size, ImageMean: ImageProcessorConfig.ImageNetMean, ImageStd: ImageProcessorConfig.ImageNetStd),
            $"defaults (no {FileName}: {size} x {size}, bilinear, rescale 1/255, ImageNet mean and std)");

    /// <summary>The folder's preprocessor_config.json, or null when it has none.</summary>
    public static ImageProcessor? TryLoad(string folder)
    {
        var path = Path.Combine(folder, FileName);
        return File.Exists(path) ? Load(path) : null;
    }

    /// <summary>
    /// The processor a model folder is used with: the first folder of <paramref name="folders"/> that has preprocessor_config.json
    /// (an adapter folder written by training first, then the model's), else <see cref="Default"/> at <paramref name="fallbackSize"/>
    /// (the model's image size; 224 when it has none), reported to <paramref name="log"/>. <paramref name="imageSize"/> replaces the size.
    /// </summary>
    public static ImageProcessor ForModel(IEnumerable<string?> folders, int? imageSize, int? fallbackSize, Action<string>? log = null)
    {
        var found = folders.Where(f => f is not null).Select(f => TryLoad(f!)).FirstOrDefault(p => p is not null);
        if (found is null)
        {
            var processor = Default(imageSize ?? fallbackSize ?? 224);
            log?.Invoke($"note: image processor: {processor.Source}.");
            return processor;
        }
        return imageSize is { } s ? found.WithSize(s) : found;
    }

    /// <summary>This processor resizing to <paramref name="size"/> x <paramref name="size"/> (no shortest-edge rule, no crop: as ViTImageProcessor does).</summary>
    public ImageProcessor WithSize(int size)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "image size must be at least 1.");
        return new ImageProcessor(Config with { DoResize = true, Height = size, Width = size, ShortestEdge = null, DoCenterCrop = false, CropPct = null, ProcessorType = "ViTImageProcessor" },
            $"{Source}, resized to {size} x {size}");
    }

    /// <summary>Reads a preprocessor_config.json.</summary>
    /// <exception cref="InvalidDataException">Not JSON, or a field of the wrong kind (the message names the file and the field).</exception>
    public static ImageProcessor Load(string path)
    {
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object."); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
        try
        {
            var d = new ImageProcessorConfig();
            int? height = d.Height, width = d.Width, shortest = null;
            if (o["size"] is JsonObject size)
            {
                height = size["height"]?.GetValue<int>();
                width = size["width"]?.GetValue<int>();
                shortest = size["shortest_edge"]?.GetValue<int>();
                if (shortest is not null && height is null) width = null;
            }
            else if (o["size"] is JsonValue v) height = width = v.GetValue<int>();   // old files: one number for a square
            int? cropH = null, cropW = null;
            if (o["crop_size"] is JsonObject crop) { cropH = crop["height"]?.GetValue<int>(); cropW = crop["width"]?.GetValue<int>(); }
            else if (o["crop_size"] is JsonValue cv) cropH = cropW = cv.GetValue<int>();
            var config = new ImageProcessorConfig(
                DoResize: o["do_resize"]?.GetValue<bool>() ?? d.DoResize, Height: height, Width: width, ShortestEdge: shortest,
                Resample: o["resample"]?.GetValue<int>() ?? d.Resample,
                DoCenterCrop: o["do_center_crop"]?.GetValue<bool>() ?? false, CropHeight: cropH, CropWidth: cropW,
                CropPct: o["crop_pct"]?.GetValue<double>(),
                DoRescale: o["do_rescale"]?.GetValue<bool>() ?? d.DoRescale, RescaleFactor: o["rescale_factor"]?.GetValue<double>() ?? d.RescaleFactor,
                DoNormalize: o["do_normalize"]?.GetValue<bool>() ?? d.DoNormalize,
                ImageMean: Numbers(o["image_mean"]), ImageStd: Numbers(o["image_std"]),
                ProcessorType: o["image_processor_type"]?.GetValue<string>() ?? d.ProcessorType);
            return new ImageProcessor(config, path);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: a field has the wrong kind of value ({e.Message}); expected transformers' preprocessor_config.json.", e);
        }
        catch (ArgumentException e) { throw new InvalidDataException(e.Message, e); }
    }

    static IReadOnlyList<double>? Numbers(JsonNode? node) => node switch
    {
        null => null,
        JsonArray a => a.Select(x => x!.GetValue<double>()).ToList(),
        JsonValue v => [v.GetValue<double>()],
        _ => throw new FormatException("image_mean and image_std are numbers or lists of numbers"),
    };

    /// <summary>Writes the settings as preprocessor_config.json into <paramref name="folder"/> (as transformers' ViTImageProcessor would).</summary>
    public void Save(string folder)
    {
        var c = Config;
        var o = new JsonObject
        {
            ["image_processor_type"] = c.ProcessorType,
            ["do_resize"] = c.DoResize,
            ["size"] = c.ShortestEdge is { } e ? new JsonObject { ["shortest_edge"] = e } : new JsonObject { ["height"] = c.Height, ["width"] = c.Width },
            ["resample"] = c.Resample,
            ["do_rescale"] = c.DoRescale,
            ["rescale_factor"] = c.RescaleFactor,
            ["do_normalize"] = c.DoNormalize,
            ["image_mean"] = new JsonArray(c.Mean.Select(x => (JsonNode)x).ToArray()),
            ["image_std"] = new JsonArray(c.Std.Select(x => (JsonNode)x).ToArray()),
        };
        if (c.DoCenterCrop) { o["do_center_crop"] = true; o["crop_size"] = new JsonObject { ["height"] = c.CropHeight, ["width"] = c.CropWidth }; }
        if (c.CropPct is { } pct) o["crop_pct"] = pct;
        Directory.CreateDirectory(folder);
        Formats.AtomicFile.WriteAllText(Path.Combine(folder, FileName), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>The output height and width for an input of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public (int Height, int Width) OutputSize(int height, int width)
    {
        var (h, w) = ResizedSize(height, width);
        return Config.DoCenterCrop ? (Config.CropHeight!.Value, Config.CropWidth!.Value)
            : Config.CropPct is not null && Config.ShortestEdge is { } e && e < 384 ? (e, e) : (h, w);
    }

    (int Height, int Width) ResizedSize(int height, int width)
    {
        var c = Config;
        if (!c.DoResize) return (height, width);
        if (c.ShortestEdge is not { } edge) return (c.Height!.Value, c.Width!.Value);
        // ConvNeXt's rule (crop_pct): from 384 up, a plain square resize; below, the short side to edge / crop_pct, then the centre square.
        if (c.CropPct is not null && edge >= 384) return (edge, edge);
        int target = c.CropPct is { } pct ? (int)(edge / pct) : edge;
        int shortSide = Math.Min(height, width), longSide = Math.Max(height, width);
        int newLong = (int)((long)target * longSide / shortSide);
        return height <= width ? (target, newLong) : (newLong, target);
    }

    /// <summary>One image's bytes after the resize and the crop (HWC, <paramref name="image"/>'s channels): what PIL holds before the float steps.</summary>
    public ImageExample Geometry(ImageExample image)
    {
        var (h, w) = ResizedSize(image.Height, image.Width);
        var pixels = image.Pixels;
        if (h != image.Height || w != image.Width) pixels = PilResize.Resize(pixels, image.Height, image.Width, image.Channels, h, w, Config.Resample);
        var (oh, ow) = OutputSize(image.Height, image.Width);
        if (oh != h || ow != w) pixels = CenterCrop(pixels, h, w, image.Channels, oh, ow);
        return new ImageExample(pixels, oh, ow, image.Channels, image.Label);
    }

    // transformers' center_crop: top = (h - crop_h) // 2, left = (w - crop_w) // 2, zero padding where the crop is larger.
    static byte[] CenterCrop(byte[] pixels, int h, int w, int channels, int oh, int ow)
    {
        var result = new byte[oh * ow * channels];
        int top = (int)Math.Floor((h - oh) / 2.0), left = (int)Math.Floor((w - ow) / 2.0);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
            {
                int sy = y + top, sx = x + left;
                if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
                Array.Copy(pixels, (sy * w + sx) * channels, result, (y * ow + x) * channels, channels);
            }
        return result;
    }

    /// <summary>
    /// Pixel values [B, <paramref name="channels"/>, H, W] (float32, on <paramref name="device"/>): each image converted to the
    /// model's channels (grayscale to RGB as PIL's convert("RGB")), resized and cropped in bytes, then rescaled and normalised in float32.
    /// </summary>
    /// <remarks>Mean and std have one value per channel, or one for all; a one-channel model given three uses their average.</remarks>
    /// <exception cref="ArgumentException">The images come out at different sizes (no resize), or mean/std do not fit the channels.</exception>
    public Tensor Process(IReadOnlyList<ImageExample> images, int channels, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("no images to process.", nameof(images));
        var c = Config;
        // A grayscale model under RGB statistics (ImageNet's defaults) takes their average.
        float[] Per(IReadOnlyList<double> values, string name) => values.Count == channels ? values.Select(v => (float)v).ToArray()
            : values.Count == 1 ? Enumerable.Repeat((float)values[0], channels).ToArray()
            : channels == 1 ? [(float)values.Average()]
            : throw new ArgumentException($"{Source}: {name} has {values.Count} values for a model of {channels} channel(s).");
        var mean = Per(c.Mean, "image_mean");
        var std = Per(c.Std, "image_std");
        var first = Geometry(images[0].WithChannels(channels));
        int h = first.Height, w = first.Width, plane = h * w;
        var values = new float[images.Count * channels * plane];
        for (int b = 0; b < images.Count; b++)
        {
            var image = b == 0 ? first : Geometry(images[b].WithChannels(channels));
            if (image.Height != h || image.Width != w)
                throw new ArgumentException($"image {b + 1} of the batch is {image.Height} x {image.Width} after processing, image 1 is {h} x {w}; turn do_resize on or give images of one size.");
            int at = b * channels * plane;
            for (int i = 0; i < plane; i++)
                for (int ch = 0; ch < channels; ch++)
                {
                    // transformers rescales in float64 and stores float32, then normalises in float32.
                    float v = c.DoRescale ? (float)(image.Pixels[i * channels + ch] * c.RescaleFactor) : image.Pixels[i * channels + ch];
                    if (c.DoNormalize) v = (v - mean[ch]) / std[ch];
                    values[at + ch * plane + i] = v;
                }
        }
        return torch.tensor(values, [images.Count, channels, h, w], dtype: ScalarType.Float32, device: device ?? CPU);
    }
}
