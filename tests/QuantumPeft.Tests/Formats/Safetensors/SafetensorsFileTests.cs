using System.Buffers.Binary;
using System.Text;
using QuantumPeft.Formats.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Formats.Safetensors;

public sealed class SafetensorsFileTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-st-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string PathFor(string name) => Path.Combine(_dir, name);

    /// <summary>Writes a file byte by byte in the published layout, independently of the writer under test.</summary>
    static byte[] RawFile(string headerJson, byte[] data, int? claimedHeaderLength = null)
    {
        var json = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(claimedHeaderLength ?? json.Length));
        json.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + json.Length);
        return bytes;
    }

    static byte[] Floats(params float[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    [Fact]
    public void ReadsAHandWrittenFileInThePublishedLayout()
    {
        var path = PathFor("hand.safetensors");
        File.WriteAllBytes(path, RawFile(
            """{"__metadata__":{"format":"pt"},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""",
            [.. Floats(1.5f, -2f), .. BitConverter.GetBytes(42L)]));
        var (tensors, metadata) = SafetensorsFile.ReadWithMetadata(path);
        Assert.Equal("pt", metadata["format"]);
        Assert.Equal(new[] { 1.5f, -2f }, tensors["a"].data<float>().ToArray());
        Assert.Equal(42L, tensors["b"].item<long>());
    }

    [Fact]
    public void RoundTripIsExactForEveryDtypeAndKeepsMetadata()
    {
        var path = PathFor("rt.safetensors");
        var g = new Generator(7);
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = randn([3, 4], generator: g),
            ["f64"] = randn([5], dtype: float64, generator: g),
            ["f16"] = randn([2, 2], generator: g).to(float16),
            ["bf16"] = randn([2, 3], generator: g).to(bfloat16),
            ["i64"] = arange(6, dtype: int64).reshape(2, 3),
            ["i32"] = tensor(new[] { -1, 2, 3 }),
            ["i8"] = tensor(new sbyte[] { -128, 0, 127 }),
            ["u8"] = tensor(new byte[] { 0, 255 }),
            ["bool"] = tensor(new[] { true, false, true }),
            ["empty"] = zeros(0, 3),
            ["scalar"] = tensor(3.25f),
        };
        SafetensorsFile.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var (back, metadata) = SafetensorsFile.ReadWithMetadata(path);
        Assert.Equal("pt", metadata["format"]);
        Assert.Equal(tensors.Keys.Order(), back.Keys.Order());
        foreach (var (name, t) in tensors)
        {
            Assert.Equal(t.dtype, back[name].dtype);
            Assert.Equal(t.shape, back[name].shape);
            Assert.True(t.equal(back[name]).all().item<bool>(), $"tensor {name} differs after a round trip");
        }
        // The data section starts 8-byte aligned, as the reference writer leaves it.
        Assert.Equal(0, SafetensorsFile.ReadHeader(path).DataOffset % 8);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void ReadsSelectedTensorsOnly()
    {
        var path = PathFor("sel.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["x"] = ones(2), ["y"] = zeros(3) });
        var some = SafetensorsFile.Read(path, ["y"]);
        Assert.Single(some);
        Assert.Equal(new long[] { 3 }, some["y"].shape);
        var e = Assert.Throws<KeyNotFoundException>(() => SafetensorsFile.Read(path, ["z"]));
        Assert.Contains("'z'", e.Message);
    }

    [Theory]
    [InlineData("short", "shorter than the 8-byte header length")]
    [InlineData("header-past-end", "runs past the end")]
    [InlineData("huge-header", "exceeds")]
    [InlineData("bad-json", "not well-formed JSON")]
    [InlineData("not-object", "not a JSON object")]
    [InlineData("unknown-dtype", "unknown dtype 'F8'")]
    [InlineData("shape-mismatch", "needs 12 bytes but its data_offsets span 8")]
    [InlineData("overlap", "overlaps")]
    [InlineData("hole", "hole")]
    [InlineData("data-past-end", "runs past the end of the 8-byte data section")]
    [InlineData("trailing", "the data section has 12 bytes but the tensors cover 8")]
    [InlineData("negative-dim", "invalid dimension")]
    [InlineData("bad-offsets", "invalid data_offsets")]
    [InlineData("bad-metadata", "__metadata__ value 'n' is not a string")]
    public void CorruptOrHostileFilesAreRejectedWithAClearMessage(string kind, string expected)
    {
        var data8 = Floats(1, 2);
        byte[] bytes = kind switch
        {
            "short" => [1, 2, 3],
            "header-past-end" => RawFile("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", data8, claimedHeaderLength: 5000),
            "huge-header" => RawFile("{}", [], claimedHeaderLength: int.MaxValue),
            "bad-json" => RawFile("""{"a":{"dtype":"F32",""", data8),
            "not-object" => RawFile("[1,2]", []),
            "unknown-dtype" => RawFile("""{"a":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}}""", data8),
            "shape-mismatch" => RawFile("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", data8),
            "overlap" => RawFile("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", data8),
            "hole" => RawFile("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", data8),
            "data-past-end" => RawFile("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", data8),
            "trailing" => RawFile("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", Floats(1, 2, 3)),
            "negative-dim" => RawFile("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", data8),
            "bad-offsets" => RawFile("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""", data8),
            "bad-metadata" => RawFile("""{"__metadata__":{"n":1}}""", []),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var path = PathFor(kind + ".safetensors");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Read(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void TruncatingAValidFileAnywhereIsDetected()
    {
        var path = PathFor("full.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["w"] = randn(4, 4), ["b"] = randn(4) });
        var full = File.ReadAllBytes(path);
        foreach (var cut in new[] { 4, 8, 20, full.Length / 2, full.Length - 1 })
        {
            var truncated = PathFor($"cut{cut}.safetensors");
            File.WriteAllBytes(truncated, full[..cut]);
            Assert.Throws<InvalidDataException>(() => SafetensorsFile.Read(truncated));
        }
    }

    [Fact]
    public void MissingFileNamesThePath()
    {
        var path = PathFor("nope.safetensors");
        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Read(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AFailedWriteLeavesThePreviousFileIntact()
    {
        var path = PathFor("keep.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["w"] = ones(2) });
        var before = File.ReadAllBytes(path);
        // Complex tensors cannot be stored: the write fails before the rename.
        Assert.Throws<ArgumentException>(() => SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["w"] = ones(2), ["z"] = zeros(2, dtype: complex64) }));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }
}
