using QuantumPeft.Data.Images;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Data.Images;

/// <summary>PIL's resize to the byte, and the Hugging Face image processor's rescale, normalise and layout, on images written here.</summary>
public sealed class ImageProcessorTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-processor-" + Guid.NewGuid().ToString("N"));

    public ImageProcessorTests() => Directory.CreateDirectory(dir);

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    // The pattern the Pillow oracle below was made from: value (37y + 91x + 53c + 11yx) mod 256.
    static ImageExample Pattern(int h, int w) =>
        new(Enumerable.Range(0, h * w * 3).Select(i => (byte)((37 * (i / 3 / w) + 91 * (i / 3 % w) + 53 * (i % 3) + 11 * (i / 3 / w) * (i / 3 % w)) % 256)).ToArray(), h, w, 3, 0);

    // Expected bytes from Pillow 9.4.0 itself: Image.frombytes("RGB", (w, h), pattern).resize((ow, oh), resample=r).tobytes().
    [Theory]
    [InlineData(4, 4, 2, 2, 2, "5c81967f857688898f927970")]
    [InlineData(3, 5, 7, 4, 2, "174c8181b680568b55558abf1d528789ae885f855e6095af2e63989f979e7b737a82b77e3f74a9b680b5976196a4d94e50859e9e968b857d7273a85460959487ad62749a4f42775a669b907fb4546ea34332675c")]
    [InlineData(3, 5, 7, 4, 3, "083c8086c67e4d8d444a7ed60f468890ba895a83535a91be1e5c9bac9aa77b687b86c4813375aabf82b7955896a2e4494c8aa2a7958f88767675b24862999587b15e729c4a3a71586ca0917bbb4a6aaa3924585d")]
    [InlineData(9, 7, 4, 5, 1, "32729baa9d84627f7075b57d7582a48199b08f796c847a666d75849f7787949c866d687d7a906c6880928291a1674c5588959d9b7584aa8b4b9d7497")]
    [InlineData(9, 7, 4, 5, 5, "2e6393a8907d517d8a80b5746b8bab7a94b984827ea0635375758c987888a4a06a7d6078769e8e60798f6d90a046516c869396a5677ca49050a26d8d")]
    [InlineData(9, 7, 4, 5, 4, "13487da4998e34699e85ba6f568bc06fa4d97f89698e6d4d737d87ac8c6ccc81366f649992c77c766ba0598ec3164b809a8f849e5388a3984da75c91")]
    [InlineData(6, 6, 3, 9, 0, "255a8f8bc0f58bc0f5f1265bf1265b578cc1bdf22723588d23588d6fa4d9eb2055eb2055679cd1679cd1e3184d5f94c9db1045db1045b9ee234b80b54b80b5dd1247dd12476fa4d901366b93c8fd93c8fd")]
    [InlineData(5, 3, 2, 2, 3, "447b9ba5927a838faf7f866e")]
    public void ResizeEqualsPillowByteForByte(int h, int w, int oh, int ow, int resample, string expectedHex)
    {
        var image = Pattern(h, w);
        var resized = PilResize.Resize(image.Pixels, h, w, 3, oh, ow, resample);
        Assert.Equal(Convert.FromHexString(expectedHex), resized);
    }

    // The same at model sizes (MNIST to ViT's 224, a photo down to 224), compared by SHA-256 of Pillow 9.4.0's output bytes.
    [Theory]
    [InlineData(28, 28, 224, 224, 2, "53a93eb6f32685d09fe7b5c64aca9dc09c612394e6692b313ef628b56fb1cdf5")]
    [InlineData(375, 500, 224, 224, 2, "13027ea03d103cb2b6ea25fedb6ebe9447837c22a697c3c73ddfff110ef977d8")]
    [InlineData(40, 30, 13, 17, 3, "effd2b69ec16a7df4da0aed6dd3d2753fe2f5926be249e84e3fde1bb4bf0933b")]
    [InlineData(64, 48, 224, 224, 3, "2f8677f6bb993b8e937fe46e64d9904807ceeda8add8ec76fe3d0679ab521b9a")]
    public void LargeResizesEqualPillow(int h, int w, int oh, int ow, int resample, string sha256)
    {
        var resized = PilResize.Resize(Pattern(h, w).Pixels, h, w, 3, oh, ow, resample);
        Assert.Equal(sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(resized)));
    }

    // PIL's bilinear formula written out for one row, in doubles: weights (1 - |x - center + 0.5| / scale) over the window,
    // normalised, as 22-bit fixed point; sum + 2^21, shifted right by 22.
    static byte PlainBilinear(double[] row, int outIndex, int outSize)
    {
        double scale = (double)row.Length / outSize, fs = Math.Max(1, scale), support = fs;
        double center = (outIndex + 0.5) * scale;
        int lo = Math.Max(0, (int)(center - support + 0.5)), hi = Math.Min(row.Length, (int)(center + support + 0.5));
        var w = Enumerable.Range(lo, hi - lo).Select(x => Math.Max(0, 1 - Math.Abs((x - center + 0.5) / fs))).ToArray();
        double total = w.Sum();
        long acc = 1 << 21;
        for (int i = 0; i < w.Length; i++) acc += (long)(row[lo + i] * (int)(0.5 + w[i] / total * (1 << 22)));
        return (byte)Math.Clamp(acc >> 22, 0, 255);
    }

    [Fact]
    public void ADownscaleByTwoAveragesThreeNeighboursWithWeights3_3_1Over7()
    {
        // 4 -> 2: each output sees 3 inputs, weighted 0.75, 0.75, 0.25 (normalised: 3/7, 3/7, 1/7), the support doubled.
        var row = new byte[] { 0, 100, 200, 255 };
        var image = new ImageExample([.. row.SelectMany(v => new[] { v, v, v })], 1, 4, 3, 0);
        var resized = PilResize.Resize(image.Pixels, 1, 4, 3, 1, 2, PilResize.Bilinear);
        Assert.Equal(71, resized[0]);    // (0 x 3 + 100 x 3 + 200) / 7 = 71.4
        Assert.Equal(209, resized[3]);   // (100 + 200 x 3 + 255 x 3) / 7 = 209.3
        var doubles = row.Select(v => (double)v).ToArray();
        Assert.Equal(PlainBilinear(doubles, 0, 2), resized[0]);
        Assert.Equal(PlainBilinear(doubles, 1, 2), resized[3]);
        // An upscale 5 -> 7 of one row, against the plain formula.
        var five = new byte[] { 3, 250, 17, 128, 64 };
        var up = PilResize.Resize([.. five], 1, 5, 1, 1, 7, PilResize.Bilinear);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => PlainBilinear(five.Select(v => (double)v).ToArray(), i, 7)), up);
    }

    [Fact]
    public void TheProcessorResizesRescalesAndNormalisesARealPngChannelsFirst()
    {
        var png = Path.Combine(dir, "small.png");
        var source = Pattern(3, 5);
        ImageFiles.WritePng(source, png);
        File.WriteAllText(Path.Combine(dir, ImageProcessor.FileName), """
            { "do_resize": true, "size": {"height": 7, "width": 4}, "resample": 2, "do_rescale": true, "rescale_factor": 0.00392156862745098,
              "do_normalize": true, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.5], "image_processor_type": "ViTImageProcessor" }
            """);
        var processor = ImageProcessor.TryLoad(dir)!;
        var image = ImageFiles.Read(png);
        Assert.Equal(source.Pixels, image.Pixels);
        using var values = processor.Process([image, image], channels: 3, CPU);
        Assert.Equal(new long[] { 2, 3, 7, 4 }, values.shape);
        Assert.Equal(ScalarType.Float32, values.dtype);
        var resized = PilResize.Resize(source.Pixels, 3, 5, 3, 7, 4, PilResize.Bilinear);
        float[] mean = [0.5f, 0.4f, 0.3f], std = [0.2f, 0.25f, 0.5f];
        var data = values.data<float>().ToArray();
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 7; y++)
                for (int x = 0; x < 4; x++)
                {
                    float expected = ((float)(resized[(y * 4 + x) * 3 + c] / 255.0) - mean[c]) / std[c];
                    Assert.Equal(expected, data[c * 28 + y * 4 + x]);
                    Assert.Equal(expected, data[84 + c * 28 + y * 4 + x]);
                }
    }

    [Fact]
    public void DefaultsAreViTsForAFileAndImageNetsWithoutOne()
    {
        File.WriteAllText(Path.Combine(dir, ImageProcessor.FileName), "{}");
        var vit = ImageProcessor.TryLoad(dir)!.Config;
        Assert.Equal((224, 224, 2, true, true), (vit.Height!.Value, vit.Width!.Value, vit.Resample, vit.DoRescale, vit.DoNormalize));
        Assert.Equal([0.5, 0.5, 0.5], vit.Mean);
        var notes = new List<string>();
        var fallback = ImageProcessor.ForModel([Path.Combine(dir, "none")], null, 32, notes.Add);
        Assert.Equal([0.485, 0.456, 0.406], fallback.Config.Mean);
        Assert.Equal(32, fallback.Config.Height);
        Assert.Contains(notes, n => n.Contains("no preprocessor_config.json"));

        // Saved and read back, the settings are the same.
        var saved = Path.Combine(dir, "saved");
        fallback.WithSize(16).Save(saved);
        Assert.Equal(fallback.WithSize(16).Config with { ImageMean = null, ImageStd = null }, ImageProcessor.TryLoad(saved)!.Config with { ImageMean = null, ImageStd = null });
        Assert.Equal(fallback.Config.Std, ImageProcessor.TryLoad(saved)!.Config.Std);

        // ResNet's file (ConvNextImageProcessor): shortest edge and crop_pct, kept through a save.
        var resnet = Path.Combine(dir, "resnet");
        Directory.CreateDirectory(resnet);
        File.WriteAllText(Path.Combine(resnet, ImageProcessor.FileName), """
            {"crop_pct": 0.875, "do_normalize": true, "do_rescale": true, "do_resize": true, "image_mean": [0.485, 0.456, 0.406],
             "image_processor_type": "ConvNextImageProcessor", "image_std": [0.229, 0.224, 0.225], "resample": 3, "rescale_factor": 0.00392156862745098,
             "size": {"shortest_edge": 224}}
            """);
        var convnext = ImageProcessor.TryLoad(resnet)!;
        Assert.Equal((224, 3, 0.875, "ConvNextImageProcessor"), (convnext.Config.ShortestEdge!.Value, convnext.Config.Resample, convnext.Config.CropPct!.Value, convnext.Config.ProcessorType));
        Assert.Equal((224, 224), convnext.OutputSize(480, 640));
        var copy = Path.Combine(dir, "resnet-copy");
        convnext.Save(copy);
        var reread = ImageProcessor.TryLoad(copy)!.Config;
        Assert.Equal((convnext.Config.ShortestEdge, convnext.Config.CropPct, convnext.Config.ProcessorType, convnext.Config.Height), (reread.ShortestEdge, reread.CropPct, reread.ProcessorType, reread.Height));
        Assert.Equal(convnext.Config.Mean, reread.Mean);
    }

    [Fact]
    public void GrayscaleBecomesThreeEqualChannelsAndShortestEdgeKeepsTheAspect()
    {
        var gray = new ImageExample(Enumerable.Range(0, 30).Select(i => (byte)(i * 8)).ToArray(), 5, 6, 1, 0);
        var processor = new ImageProcessor(new ImageProcessorConfig(Height: 4, Width: 4));
        using var values = processor.Process([gray], channels: 3);
        Assert.Equal(new long[] { 1, 3, 4, 4 }, values.shape);
        Assert.Equal(0, (values[0, 0] - values[0, 1]).abs().max().item<float>());
        Assert.Equal(0, (values[0, 0] - values[0, 2]).abs().max().item<float>());
        // RGB to grayscale (a model of one channel) uses PIL's luma weights.
        var rgb = new ImageExample([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30], 2, 2, 3, 0).WithChannels(1);
        Assert.Equal(new byte[] { 76, 150, 29, (byte)((10 * 19595 + 20 * 38470 + 30 * 7471 + 0x8000) >> 16) }, rgb.Pixels);

        var edge = new ImageProcessor(new ImageProcessorConfig(Height: null, Width: null, ShortestEdge: 4));
        Assert.Equal((4, 6), edge.OutputSize(6, 9));    // 4 x 9 / 6 = 6
        Assert.Equal((7, 4), edge.OutputSize(11, 6));   // 4 x 11 / 6 = 7.3, rounded down
        var convnext = new ImageProcessor(new ImageProcessorConfig(Height: null, Width: null, ShortestEdge: 224, CropPct: 0.875));
        Assert.Equal((224, 224), convnext.OutputSize(300, 400));
        Assert.Equal((384, 384), new ImageProcessor(new ImageProcessorConfig(Height: null, Width: null, ShortestEdge: 384, CropPct: 0.875)).OutputSize(300, 400));
        Assert.Equal((224, 224, 3), (convnext.Geometry(Pattern(300, 400)).Height, convnext.Geometry(Pattern(300, 400)).Width, 3));
    }

    [Fact]
    public void AugmentationIsSeededAndIsTorchvisionsPaddedCropAndFlip()
    {
        var image = Pattern(6, 5);
        var aug = new ImageAugmentation(Crop: true, Padding: 2, Flip: true);
        int seed = ImageAugmentation.SeedFor(42, epoch: 3, index: 17);
        Assert.Equal(aug.Apply(image, seed).Pixels, aug.Apply(image, seed).Pixels);
        var distinct = Enumerable.Range(0, 40).Select(i => Convert.ToHexString(aug.Apply(image, i).Pixels)).Distinct().Count();
        Assert.True(distinct > 10, $"only {distinct} different crops in 40 seeds");

        // Flip only: the mirror image, exactly.
        var flipOnly = new ImageAugmentation(Crop: false, Flip: true);
        var flipped = Enumerable.Range(0, 20).Select(i => flipOnly.Apply(image, i)).First(r => !r.Pixels.SequenceEqual(image.Pixels));
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 5; x++)
                for (int c = 0; c < 3; c++) Assert.Equal(image[y, 4 - x, c], flipped[y, x, c]);

        // Crop only: a shifted copy with zeros where the padding shows, the shift in [-2, 2].
        var cropOnly = new ImageAugmentation(Crop: true, Padding: 2, Flip: false);
        for (int s = 0; s < 10; s++)
        {
            var cropped = cropOnly.Apply(image, s);
            var shifts = (from dy in Enumerable.Range(-2, 5) from dx in Enumerable.Range(-2, 5)
                          where Enumerable.Range(0, 6).All(y => Enumerable.Range(0, 5).All(x => Enumerable.Range(0, 3).All(c =>
                              cropped[y, x, c] == (y + dy is >= 0 and < 6 && x + dx is >= 0 and < 5 ? image[y + dy, x + dx, c] : 0))))
                          select (dy, dx)).ToList();
            Assert.NotEmpty(shifts);
        }
        Assert.Null(ImageAugmentation.Parse("none"));
        Assert.Equal(new ImageAugmentation(true, 4, true), ImageAugmentation.Parse("crop,flip"));
        Assert.Contains("unknown 'rotate'", Assert.Throws<ArgumentException>(() => ImageAugmentation.Parse("crop,rotate")).Message);
    }
}
