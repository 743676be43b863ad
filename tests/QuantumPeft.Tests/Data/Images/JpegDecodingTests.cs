using QuantumPeft.Data.Images;

namespace QuantumPeft.Tests.Data.Images;

/// <summary>JPEG files decode to exactly the bytes Pillow (what Hugging Face's image processors call) gives, for 4:2:0 and 4:4:4 chroma.</summary>
public sealed class JpegDecodingTests
{
    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Data", "Images", "Fixtures", name);

    [Theory]
    [InlineData("a420")]
    [InlineData("a444")]
    public void Decoded_pixels_equal_pillows(string name)
    {
        var image = ImageFiles.Read(Fixture(name + ".jpg"));
        Assert.Equal((64, 96, 3), (image.Height, image.Width, image.Channels));
        var pillow = File.ReadAllBytes(Fixture(name + ".rgb"));
        Assert.Equal(pillow.Length, image.Pixels.Length);
        int mismatches = pillow.Where((b, i) => image.Pixels[i] != b).Count();
        Assert.Equal(0, mismatches);
    }

    [Fact]
    public void A_truncated_jpeg_is_named_as_truncated()
    {
        var bytes = File.ReadAllBytes(Fixture("a420.jpg"));
        var path = Path.Combine(Path.GetTempPath(), "qpeft-truncated-" + Guid.NewGuid().ToString("N") + ".jpg");
        try
        {
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            var e = Assert.Throws<InvalidDataException>(() => ImageFiles.Read(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("truncated", e.Message);
        }
        finally { File.Delete(path); }
    }
}
