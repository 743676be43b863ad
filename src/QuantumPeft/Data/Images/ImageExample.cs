namespace QuantumPeft.Data.Images;

/// <summary>One labelled image, decoded: 8-bit pixels in height x width x channels order (HWC, as PIL and numpy hold them).</summary>
/// <remarks>Kept as bytes, not floats, so that 60,000 MNIST digits take 47 MB; the <see cref="ImageProcessor"/> turns batches into tensors.</remarks>
public sealed record ImageExample
{
    /// <summary>Pixels, row by row, each pixel's channels together (R, G, B for colour images).</summary>
    public byte[] Pixels { get; }

    /// <summary>Rows.</summary>
    public int Height { get; }

    /// <summary>Columns.</summary>
    public int Width { get; }

    /// <summary>1 (grayscale) or 3 (RGB).</summary>
    public int Channels { get; }

    /// <summary>The class index.</summary>
    public int Label { get; }

    /// <summary>Checks that the pixel count is height x width x channels.</summary>
    public ImageExample(byte[] pixels, int height, int width, int channels, int label)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (height < 1 || width < 1) throw new ArgumentException($"image size {height} x {width}: expected at least 1 x 1.", nameof(height));
        if (channels is not (1 or 3)) throw new ArgumentException($"an image has {channels} channels; expected 1 (grayscale) or 3 (RGB).", nameof(channels));
        if (pixels.Length != (long)height * width * channels)
            throw new ArgumentException($"an image of {height} x {width} x {channels} needs {(long)height * width * channels} bytes, got {pixels.Length}.", nameof(pixels));
        if (label < 0) throw new ArgumentOutOfRangeException(nameof(label), label, "a label is a class index (>= 0).");
        Pixels = pixels;
        Height = height;
        Width = width;
        Channels = channels;
        Label = label;
    }

    /// <summary>The byte of channel <paramref name="c"/> at row <paramref name="y"/>, column <paramref name="x"/>.</summary>
    public byte this[int y, int x, int c] => Pixels[(y * Width + x) * Channels + c];

    /// <summary>This image with <paramref name="channels"/> channels: grayscale to RGB repeats the value (PIL's convert("RGB")); RGB to grayscale uses PIL's convert("L") (ITU-R 601-2 luma, 16-bit fixed point).</summary>
    public ImageExample WithChannels(int channels)
    {
        if (channels == Channels) return this;
        int n = Height * Width;
        var result = new byte[n * channels];
        if (channels == 3)
            for (int i = 0; i < n; i++) result[3 * i] = result[3 * i + 1] = result[3 * i + 2] = Pixels[i];
        else if (channels == 1)
            for (int i = 0; i < n; i++)
                result[i] = (byte)((Pixels[3 * i] * 19595 + Pixels[3 * i + 1] * 38470 + Pixels[3 * i + 2] * 7471 + 0x8000) >> 16);
        else throw new ArgumentOutOfRangeException(nameof(channels), channels, "expected 1 or 3 channels.");
        return new ImageExample(result, Height, Width, channels, Label);
    }
}
