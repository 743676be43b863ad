namespace QuantumPeft.Data.Images;

/// <summary>
/// Image.resize of Pillow on 8-bit images, to the byte: what Hugging Face's image processors call. Separable convolution,
/// horizontal pass first (into an 8-bit image), then vertical; when downscaling, the filter's support grows by the scale
/// (antialiasing); each output pixel's weights are normalised to sum 1, then turned into 22-bit fixed point, and sums are
/// rounded (half up) and clipped to 0..255.
/// </summary>
/// <remarks>Pillow's resampling filters by its numbers: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming.</remarks>
public static class PilResize
{
    /// <summary>Pillow's resampling filter numbers.</summary>
    public const int Nearest = 0, Lanczos = 1, Bilinear = 2, Bicubic = 3, Box = 4, Hamming = 5;

    // 32 bits less 8 for the value and 2 for filters whose partial sums leave 0..1.
    const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Resizes HWC bytes of <paramref name="channels"/> channels to <paramref name="outHeight"/> x <paramref name="outWidth"/>.</summary>
    public static byte[] Resize(byte[] pixels, int height, int width, int channels, int outHeight, int outWidth, int resample = Bilinear)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.Length != height * width * channels) throw new ArgumentException($"{pixels.Length} bytes for a {height} x {width} x {channels} image.", nameof(pixels));
        if (outHeight < 1 || outWidth < 1) throw new ArgumentOutOfRangeException(nameof(outHeight), $"output size {outHeight} x {outWidth}: expected at least 1 x 1.");
        if (resample == Nearest) return ResizeNearest(pixels, height, width, channels, outHeight, outWidth);
        var (filter, support) = Filter(resample);
        if (outHeight == height && outWidth == width) return (byte[])pixels.Clone();

        var current = pixels;
        int h = height, w = width;
        if (outWidth != width)
        {
            var (bounds, k, ksize) = Coefficients(width, outWidth, filter, support);
            var next = new byte[h * outWidth * channels];
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < outWidth; xx++)
                {
                    int xmin = bounds[2 * xx], count = bounds[2 * xx + 1];
                    for (int c = 0; c < channels; c++)
                    {
                        int sum = 1 << (PrecisionBits - 1);
                        for (int x = 0; x < count; x++) sum += current[(y * w + xmin + x) * channels + c] * k[xx * ksize + x];
                        next[(y * outWidth + xx) * channels + c] = Clip8(sum);
                    }
                }
            current = next;
            w = outWidth;
        }
        if (outHeight != height)
        {
            var (bounds, k, ksize) = Coefficients(height, outHeight, filter, support);
            var next = new byte[outHeight * w * channels];
            for (int yy = 0; yy < outHeight; yy++)
            {
                int ymin = bounds[2 * yy], count = bounds[2 * yy + 1];
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < channels; c++)
                    {
                        int sum = 1 << (PrecisionBits - 1);
                        for (int y = 0; y < count; y++) sum += current[((ymin + y) * w + x) * channels + c] * k[yy * ksize + y];
                        next[(yy * w + x) * channels + c] = Clip8(sum);
                    }
            }
            current = next;
        }
        return current;
    }

    static byte Clip8(int sum) => (byte)Math.Clamp(sum >> PrecisionBits, 0, 255);

    /// <summary>
    /// Per output index: the first input index and the count of inputs (bounds), and the fixed-point weights (ksize per output).
    /// The window is centred at (i + 0.5) x scale; weights are filter((x - center + 0.5) / filterscale), normalised to sum 1.
    /// </summary>
    internal static (int[] Bounds, int[] Weights, int KSize) Coefficients(int inSize, int outSize, Func<double, double> filter, double filterSupport)
    {
        double scale = (double)inSize / outSize;
        double filterscale = Math.Max(scale, 1.0);
        double support = filterSupport * filterscale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[2 * outSize];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ss = 1.0 / filterscale;
            // C's (int) cast truncates toward zero; both values are >= -0.5 here, so truncation is what Pillow gets.
            int xmin = Math.Max(0, (int)(center - support + 0.5));
            int xmax = Math.Min(inSize, (int)(center + support + 0.5)) - xmin;
            double total = 0;
            for (int x = 0; x < xmax; x++) { k[x] = filter((x + xmin - center + 0.5) * ss); total += k[x]; }
            for (int x = 0; x < ksize; x++)
            {
                double v = x < xmax ? (total != 0 ? k[x] / total : k[x]) : 0;
                weights[xx * ksize + x] = v < 0 ? (int)(-0.5 + v * (1 << PrecisionBits)) : (int)(0.5 + v * (1 << PrecisionBits));
            }
            bounds[2 * xx] = xmin;
            bounds[2 * xx + 1] = xmax;
        }
        return (bounds, weights, ksize);
    }

    /// <summary>Pillow's filter and its support (in input pixels at scale 1) for a resampling number.</summary>
    internal static (Func<double, double> Filter, double Support) Filter(int resample) => resample switch
    {
        Bilinear => (x => Math.Abs(x) < 1 ? 1 - Math.Abs(x) : 0, 1.0),
        Bicubic => (BicubicFilter, 2.0),
        Box => (x => x > -0.5 && x <= 0.5 ? 1 : 0, 0.5),
        Hamming => (HammingFilter, 1.0),
        Lanczos => (x => x >= -3 && x < 3 ? Sinc(x) * Sinc(x / 3) : 0, 3.0),
        _ => throw new ArgumentOutOfRangeException(nameof(resample), resample, "resample must be one of Pillow's filters: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming."),
    };

    static double BicubicFilter(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    static double HammingFilter(double x)
    {
        x = Math.Abs(x);
        if (x == 0) return 1;
        if (x >= 1) return 0;
        x *= Math.PI;
        // Pillow writes the constants as floats (0.54f, 0.46f).
        return Math.Sin(x) / x * (0.54f + 0.46f * Math.Cos(x));
    }

    static double Sinc(double x) => x == 0 ? 1 : Math.Sin(x * Math.PI) / (x * Math.PI);

    // Pillow's nearest resize is an affine scale (ImagingScaleAffine): the source coordinate starts at scale / 2 and grows by
    // scale per pixel, added up in doubles and truncated, so 0.5 x 2/3 + 4 x 2/3 lands just below 3 and picks pixel 2.
    static byte[] ResizeNearest(byte[] pixels, int height, int width, int channels, int outHeight, int outWidth)
    {
        static int[] Sources(int inSize, int outSize)
        {
            double step = (double)inSize / outSize, at = step * 0.5;
            var result = new int[outSize];
            for (int i = 0; i < outSize; i++, at += step) result[i] = Math.Clamp((int)at, 0, inSize - 1);
            return result;
        }
        var rows = Sources(height, outHeight);
        var cols = Sources(width, outWidth);
        var result = new byte[outHeight * outWidth * channels];
        for (int y = 0; y < outHeight; y++)
            for (int x = 0; x < outWidth; x++)
                Array.Copy(pixels, (rows[y] * width + cols[x]) * channels, result, (y * outWidth + x) * channels, channels);
        return result;
    }
}
