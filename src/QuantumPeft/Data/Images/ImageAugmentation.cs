namespace QuantumPeft.Data.Images;

/// <summary>
/// Training augmentation on decoded bytes: torchvision's RandomCrop(size, padding) (zero padding on every side, then a crop of the
/// original size at a uniform offset) and RandomHorizontalFlip(0.5). Every draw comes from one seed per example, so a run replays exactly.
/// </summary>
/// <param name="Crop">Random crop with padding.</param>
/// <param name="Padding">Pixels of zero padding on each side (torchvision's CIFAR recipe: 4).</param>
/// <param name="Flip">Horizontal flip with probability 0.5.</param>
public sealed record ImageAugmentation(bool Crop = true, int Padding = 4, bool Flip = true)
{
    /// <summary>The names <see cref="Parse"/> accepts, comma-separated.</summary>
    public static readonly IReadOnlyList<string> Names = ["none", "crop", "flip"];

    /// <summary>"none" (null), "crop", "flip", or "crop,flip".</summary>
    public static ImageAugmentation? Parse(string value, int padding = 4)
    {
        var parts = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => p.ToLowerInvariant()).ToList();
        var unknown = parts.FirstOrDefault(p => !Names.Contains(p));
        if (unknown is not null) throw new ArgumentException($"--augment '{value}': unknown '{unknown}' (valid: none, crop, flip, crop,flip).");
        if (parts.Count == 0 || parts.SequenceEqual(["none"])) return null;
        if (parts.Contains("none")) throw new ArgumentException($"--augment '{value}': 'none' cannot be combined.");
        return new ImageAugmentation(parts.Contains("crop"), padding, parts.Contains("flip"));
    }

    /// <summary>The seed of example <paramref name="index"/> of the training set in <paramref name="epoch"/> of a run seeded <paramref name="seed"/>.</summary>
    public static int SeedFor(long seed, int epoch, int index) => SeededOrder.Derive(SeededOrder.Derive(seed, epoch), index);

    /// <summary>The augmented image for <paramref name="seed"/> (the same seed, the same image).</summary>
    public ImageExample Apply(ImageExample image, int seed)
    {
        if (Padding < 0) throw new ArgumentOutOfRangeException(nameof(Padding), Padding, "padding must be >= 0.");
        var rng = new Random(seed);
        int h = image.Height, w = image.Width, ch = image.Channels;
        // Drawn in a fixed order (crop offsets, then flip) whether or not each is used, so turning one on leaves the other's draws alone.
        int top = rng.Next(2 * Padding + 1), left = rng.Next(2 * Padding + 1);
        bool flip = rng.NextDouble() < 0.5;
        if (!Crop) top = left = Padding;
        if (!Flip) flip = false;
        if (top == Padding && left == Padding && !flip) return image;
        var result = new byte[image.Pixels.Length];
        for (int y = 0; y < h; y++)
        {
            int sy = y + top - Padding;
            if (sy < 0 || sy >= h) continue;
            for (int x = 0; x < w; x++)
            {
                int sx = (flip ? w - 1 - x : x) + left - Padding;
                if (sx < 0 || sx >= w) continue;
                Array.Copy(image.Pixels, (sy * w + sx) * ch, result, (y * w + x) * ch, ch);
            }
        }
        return new ImageExample(result, h, w, ch, image.Label);
    }
}
