using System.Runtime.InteropServices;
using SkiaSharp;

namespace QuantumPeft.Data.Images;

/// <summary>Decodes PNG and JPEG files (with SkiaSharp) into RGB <see cref="ImageExample"/>s, as PIL's Image.open(...).convert("RGB") gives them.</summary>
/// <remarks>
/// Grayscale files come out with the value repeated in R, G and B; an alpha channel is dropped, not composited (as convert("RGB")
/// does); no colour-profile conversion and no EXIF rotation (PIL applies neither unless asked). SkiaSharp (the native Skia that
/// ScottPlot already brings) rather than a managed decoder: its JPEG decoder is libjpeg-turbo, PIL's, and the registry notes flaws of
/// the managed one with crafted files. A truncated file is an error, as in PIL (whose default refuses truncated images).
/// </remarks>
public static class ImageFiles
{
    /// <summary>The file extensions read from image folders (case-insensitive).</summary>
    public static readonly IReadOnlyList<string> Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary>The most pixels a file may have (100 megapixels).</summary>
    public const long MaxPixels = 100_000_000;

    /// <summary>True when the path ends in one of <see cref="Extensions"/>.</summary>
    public static bool IsImage(string path) => Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>The pixels of an image file as 3-channel HWC bytes with <paramref name="label"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a decodable image, is truncated, or is larger than <see cref="MaxPixels"/> (the message names it).</exception>
    public static ImageExample Read(string path, int label = 0)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"image file not found: '{path}'.", path);
        using var codec = SKCodec.Create(path, out var opened)
            ?? throw new InvalidDataException($"{path}: not a readable image ({Reason(opened)}); expected a PNG or JPEG file.");
        var info = codec.Info;
        // The header first: a crafted file can claim a size whose pixels would not fit in memory.
        if (info.Width < 1 || info.Height < 1 || (long)info.Width * info.Height > MaxPixels)
            throw new InvalidDataException($"{path}: {info.Width} x {info.Height} pixels; an image here has at least 1 and at most {MaxPixels:N0}.");
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[target.BytesSize];
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        SKCodecResult decoded;
        try { decoded = codec.GetPixels(target, handle.AddrOfPinnedObject()); }
        finally { handle.Free(); }
        if (decoded != SKCodecResult.Success)
            throw new InvalidDataException($"{path}: not a readable image ({Reason(decoded)}); expected a complete PNG or JPEG file.");
        var pixels = new byte[info.Width * info.Height * 3];
        for (int i = 0, o = 0; o < pixels.Length; i += 4, o += 3)
        {
            pixels[o] = rgba[i];
            pixels[o + 1] = rgba[i + 1];
            pixels[o + 2] = rgba[i + 2];
        }
        return new ImageExample(pixels, info.Height, info.Width, 3, label);
    }

    static string Reason(SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput => "the file is truncated",
        SKCodecResult.InvalidInput or SKCodecResult.ErrorInInput => "its data is corrupt",
        SKCodecResult.Unimplemented => "an unsupported format",
        _ => result.ToString(),
    };

    /// <summary>Writes an example as a PNG (RGB or 8-bit grayscale), lossless, so that reading it back gives the same bytes; under a temporary name, then renamed.</summary>
    public static void WritePng(ImageExample example, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        bool gray = example.Channels == 1;
        var info = new SKImageInfo(example.Width, example.Height, gray ? SKColorType.Gray8 : SKColorType.Rgba8888, gray ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        var bytes = gray ? example.Pixels : new byte[example.Width * example.Height * 4];
        if (!gray)
            for (int i = 0, o = 0; i < example.Pixels.Length; i += 3, o += 4)
            {
                bytes[o] = example.Pixels[i];
                bytes[o + 1] = example.Pixels[i + 1];
                bytes[o + 2] = example.Pixels[i + 2];
                bytes[o + 3] = 255;
            }
        var handle = GCHandle.Alloc(bytes, GCHandleType.Pinned);
        try
        {
            using var pixmap = new SKPixmap(info, handle.AddrOfPinnedObject(), info.RowBytes);
            using var data = pixmap.Encode(SKEncodedImageFormat.Png, 100)
                ?? throw new InvalidOperationException($"PNG encoding of a {example.Width} x {example.Height} image failed.");
            Formats.AtomicFile.WriteAllBytes(path, data.ToArray());
        }
        finally { handle.Free(); }
    }
}
