using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace QuantumPeft.Data.Images;

/// <summary>Decodes PNG and JPEG files (with ImageSharp) into RGB <see cref="ImageExample"/>s, as PIL's Image.open(...).convert("RGB") gives them.</summary>
/// <remarks>Grayscale files come out with the value repeated in R, G and B; an alpha channel is dropped, not composited (as convert("RGB") does).</remarks>
public static class ImageFiles
{
    /// <summary>The file extensions read from image folders (case-insensitive).</summary>
    public static readonly IReadOnlyList<string> Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary>The most pixels a file may have (100 megapixels).</summary>
    public const long MaxPixels = 100_000_000;

    /// <summary>True when the path ends in one of <see cref="Extensions"/>.</summary>
    public static bool IsImage(string path) => Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>The pixels of an image file as 3-channel HWC bytes with <paramref name="label"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a decodable image, or is larger than <see cref="MaxPixels"/> (the message names it).</exception>
    public static ImageExample Read(string path, int label = 0)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"image file not found: '{path}'.", path);
        Image<Rgb24> image;
        try
        {
            // The header first: a crafted file can claim a size whose pixels would not fit in memory.
            var info = Image.Identify(path) ?? throw new UnknownImageFormatException("no image format recognised");
            if ((long)info.Width * info.Height > MaxPixels)
                throw new InvalidDataException($"{path}: {info.Width} x {info.Height} pixels, more than the {MaxPixels:N0} an image may have here.");
            image = Image.Load<Rgb24>(path);
        }
        catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException or NotSupportedException or ImageFormatException)
        {
            // ImageSharp's message can list its decoders over several lines; the first says what went wrong.
            var reason = e.Message.Split('\n', 2)[0].Trim().TrimEnd('.', ':');
            throw new InvalidDataException($"{path}: not a readable image ({reason}); expected a PNG or JPEG file.", e);
        }
        using (image)
        {
            var pixels = new byte[image.Width * image.Height * 3];
            image.CopyPixelDataTo(pixels);
            return new ImageExample(pixels, image.Height, image.Width, 3, label);
        }
    }

    /// <summary>Writes an example as a PNG (RGB or 8-bit grayscale), lossless, so that reading it back gives the same bytes.</summary>
    public static void WritePng(ImageExample example, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        if (example.Channels == 1)
        {
            using var gray = Image.LoadPixelData<L8>(example.Pixels, example.Width, example.Height);
            gray.SaveAsPng(path);
        }
        else
        {
            using var rgb = Image.LoadPixelData<Rgb24>(example.Pixels, example.Width, example.Height);
            rgb.SaveAsPng(path);
        }
    }
}
