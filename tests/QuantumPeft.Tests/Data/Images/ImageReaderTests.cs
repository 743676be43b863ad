using System.Buffers.Binary;
using System.IO.Compression;
using QuantumPeft.Data.Images;

namespace QuantumPeft.Tests.Data.Images;

/// <summary>The CIFAR-10, IDX and image-folder readers on small files written here in the exact formats, whole and broken.</summary>
public sealed class ImageReaderTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-images-" + Guid.NewGuid().ToString("N"));

    public ImageReaderTests() => Directory.CreateDirectory(dir);

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    // One CIFAR record: the label, then the R, G and B planes; pixel (y, x) of channel c is (label + 7c + 3y + 5x) mod 256.
    static byte[] CifarRecord(int label)
    {
        var r = new byte[Cifar10.RecordBytes];
        r[0] = (byte)label;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) r[1 + c * 1024 + y * 32 + x] = (byte)((label + 7 * c + 3 * y + 5 * x) % 256);
        return r;
    }

    string WriteCifar(int perBatch = 3, int test = 2)
    {
        var folder = Path.Combine(dir, "cifar", Cifar10.ArchiveFolder);
        Directory.CreateDirectory(folder);
        int label = 0;
        foreach (var f in Cifar10.TrainFiles)
            File.WriteAllBytes(Path.Combine(folder, f), Enumerable.Range(0, perBatch).SelectMany(_ => CifarRecord(label++ % 10)).ToArray());
        File.WriteAllBytes(Path.Combine(folder, Cifar10.TestFile), Enumerable.Range(0, test).SelectMany(i => CifarRecord(9 - i)).ToArray());
        File.WriteAllText(Path.Combine(folder, Cifar10.MetaFile), "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
        return Path.Combine(dir, "cifar");
    }

    [Fact]
    public void Cifar10ReadsThePlanesIntoRgbPixelsAndHoldsOutValidation()
    {
        var task = Cifar10.Load(WriteCifar());   // the parent of cifar-10-batches-bin, as the archive extracts
        Assert.Equal(10, task.NumLabels);
        Assert.Equal("truck", task.ClassNames[9]);
        // 15 training records: round(1.5) = 2 held out for validation.
        Assert.Equal(13, task.Train.Count);
        Assert.Equal(2, task.Validation.Count);
        Assert.Equal(2, task.Test.Count);
        var first = task.Test[0];
        Assert.Equal(9, first.Label);
        Assert.Equal((32, 32, 3), (first.Height, first.Width, first.Channels));
        foreach (var (y, x) in new[] { (0, 0), (5, 17), (31, 31) })
            for (int c = 0; c < 3; c++) Assert.Equal((byte)((9 + 7 * c + 3 * y + 5 * x) % 256), first[y, x, c]);
        Assert.Equal(Enumerable.Range(0, 15).Select(i => i % 10).Order(), task.Train.Concat(task.Validation).Select(e => e.Label).Order());
    }

    [Fact]
    public void Cifar10NamesTheTruncatedFileAndRecordAndTheMissingFolder()
    {
        var root = WriteCifar();
        var batch = Path.Combine(root, Cifar10.ArchiveFolder, "data_batch_3.bin");
        File.WriteAllBytes(batch, File.ReadAllBytes(batch)[..(2 * Cifar10.RecordBytes + 100)]);
        var e = Assert.Throws<InvalidDataException>(() => Cifar10.Load(root));
        Assert.Contains("data_batch_3.bin", e.Message);
        Assert.Contains("record 3", e.Message);
        Assert.Contains("100 of its 3073 bytes", e.Message);

        File.Delete(Path.Combine(root, Cifar10.ArchiveFolder, Cifar10.TestFile));
        var missing = Assert.Throws<FileNotFoundException>(() => Cifar10.Load(root));
        Assert.Contains(Cifar10.TestFile, missing.Message);

        var wrong = Path.Combine(dir, "no-such-dir");
        var notFound = Assert.Throws<DirectoryNotFoundException>(() => ImageTasks.Load("cifar10", wrong));
        Assert.Contains(wrong, notFound.Message);
        Assert.Contains("--data-dir", Assert.Throws<ArgumentException>(() => ImageTasks.Load("cifar10", null)).Message);
    }

    static byte[] Idx(int magic, int[] dims, byte[] data)
    {
        var header = new byte[4 * (1 + dims.Length)];
        BinaryPrimitives.WriteInt32BigEndian(header, magic);
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), dims[i]);
        return [.. header, .. data];
    }

    static byte[] Gzip(byte[] data)
    {
        using var memory = new MemoryStream();
        using (var gz = new GZipStream(memory, CompressionLevel.Fastest)) gz.Write(data);
        return memory.ToArray();
    }

    string WriteIdx(string name, int train, int test, bool gzip)
    {
        var folder = Path.Combine(dir, name);
        Directory.CreateDirectory(folder);
        void Pair(string images, string labels, int n, int offset)
        {
            var pixels = Enumerable.Range(0, n * 4 * 3).Select(i => (byte)((i * 11 + offset) % 256)).ToArray();   // 4 rows x 3 columns
            var l = Enumerable.Range(0, n).Select(i => (byte)((i + offset) % 10)).ToArray();
            byte[] Maybe(byte[] b) => gzip ? Gzip(b) : b;
            string Name(string f) => gzip ? f + ".gz" : f;
            File.WriteAllBytes(Path.Combine(folder, Name(images)), Maybe(Idx(IdxFile.ImageMagic, [n, 4, 3], pixels)));
            File.WriteAllBytes(Path.Combine(folder, Name(labels)), Maybe(Idx(IdxFile.LabelMagic, [n], l)));
        }
        Pair(MnistTasks.TrainImages, MnistTasks.TrainLabels, train, 0);
        Pair(MnistTasks.TestImages, MnistTasks.TestLabels, test, 5);
        return folder;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IdxFilesPlainOrGzippedGiveTheirPixelsAndLabels(bool gzip)
    {
        var task = MnistTasks.Load("fashion-mnist", WriteIdx("idx", train: 20, test: 6, gzip));
        Assert.Equal(18 + 2, task.Train.Count + task.Validation.Count);
        Assert.Equal(2, task.Validation.Count);
        Assert.Equal(6, task.Test.Count);
        Assert.Equal("Ankle boot", task.ClassNames[9]);
        var t = task.Test[2];
        Assert.Equal((4, 3, 1, 7), (t.Height, t.Width, t.Channels, t.Label));
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 3; x++) Assert.Equal((byte)(((2 * 12 + y * 3 + x) * 11 + 5) % 256), t[y, x, 0]);
    }

    [Fact]
    public void IdxErrorsNameTheFileAndTheRecord()
    {
        var folder = WriteIdx("bad", train: 5, test: 3, gzip: false);
        var images = Path.Combine(folder, MnistTasks.TrainImages);
        File.WriteAllBytes(images, File.ReadAllBytes(images)[..(16 + 2 * 12 + 5)]);
        var e = Assert.Throws<InvalidDataException>(() => MnistTasks.Load("mnist", folder));
        Assert.Contains(images, e.Message);
        Assert.Contains("image 3", e.Message);

        var labels = Path.Combine(folder, MnistTasks.TestLabels);
        File.WriteAllBytes(labels, Idx(IdxFile.ImageMagic, [3], [1, 2, 3]));
        var magic = Assert.Throws<InvalidDataException>(() => IdxFile.ReadLabels(labels));
        Assert.Contains("magic number 2051; expected 2049", magic.Message);

        File.WriteAllBytes(labels, Idx(IdxFile.LabelMagic, [3], [1]));
        var shortLabels = Assert.Throws<InvalidDataException>(() => IdxFile.ReadLabels(labels));
        Assert.Contains("label 2", shortLabels.Message);
    }

    static ImageExample Pattern(int h, int w, int seed, int label = 0)
    {
        var rng = new Random(seed);
        var pixels = new byte[h * w * 3];
        rng.NextBytes(pixels);
        return new ImageExample(pixels, h, w, 3, label);
    }

    [Fact]
    public void AnImageFolderDecodesPngsExactlyAndSplitsEachClass()
    {
        var root = Path.Combine(dir, "folder");
        var written = new Dictionary<string, ImageExample>();
        foreach (var (cls, n) in new[] { ("cat", 10), ("dog", 5) })
            for (int i = 0; i < n; i++)
            {
                var image = Pattern(5, 7, written.Count);
                var path = Path.Combine(root, cls, $"{i:D2}.png");
                ImageFiles.WritePng(image, path);
                written[path] = image;
            }
        var task = ImageFolder.Load(root);
        Assert.Equal(["cat", "dog"], task.ClassNames);
        // cat: 10 -> 8 / 1 / 1; dog: 5 -> 4 / 1 (round 0.5 up) / 0 -> at least 1 test: 3 / 1 / 1.
        Assert.Equal(8 + 3, task.Train.Count);
        Assert.Equal(2, task.Validation.Count);
        Assert.Equal(2, task.Test.Count);
        var all = task.Train.Concat(task.Validation).Concat(task.Test).ToList();
        Assert.Equal(10, all.Count(e => e.Label == 0));
        // PNG is lossless: every decoded image is one of those written, byte for byte.
        foreach (var e in all) Assert.Contains(written.Values, w => w.Pixels.AsSpan().SequenceEqual(e.Pixels) && (w.Height, w.Width) == (e.Height, e.Width));

        // A grayscale PNG decodes to RGB with the value repeated (PIL's convert("RGB")).
        var gray = new ImageExample([0, 50, 100, 255], 2, 2, 1, 0);
        var grayPath = Path.Combine(dir, "gray.png");
        ImageFiles.WritePng(gray, grayPath);
        var read = ImageFiles.Read(grayPath);
        Assert.Equal(3, read.Channels);
        Assert.Equal(new byte[] { 0, 0, 0, 50, 50, 50, 100, 100, 100, 255, 255, 255 }, read.Pixels);
    }

    [Fact]
    public void BadImageFoldersGetOneLineErrorsNamingThePath()
    {
        var root = Path.Combine(dir, "bad");
        ImageFiles.WritePng(Pattern(3, 3, 1), Path.Combine(root, "cat", "a.png"));
        var one = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(root));
        Assert.Contains("one class ('cat')", one.Message);

        Directory.CreateDirectory(Path.Combine(root, "dog"));
        File.WriteAllText(Path.Combine(root, "dog", "notes.txt"), "no images here");
        var empty = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(root));
        Assert.Contains(Path.Combine(root, "dog"), empty.Message);
        Assert.Contains("has no images", empty.Message);

        var corrupt = Path.Combine(root, "dog", "broken.png");
        File.WriteAllBytes(corrupt, [0x89, 0x50, 0x4E, 0x47, 1, 2, 3, 4, 5]);
        var bad = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(root));
        Assert.Contains(corrupt, bad.Message);
        Assert.DoesNotContain("\n", bad.Message);

        // A PNG whose header claims 20,000 x 20,000 pixels is refused before any pixel is allocated.
        var bomb = Path.Combine(dir, "bomb.png");
        ImageFiles.WritePng(Pattern(1, 1, 2), bomb);
        var bytes = File.ReadAllBytes(bomb);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), 20000);   // IHDR width, after the signature, length and type
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), 20000);   // IHDR height
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(29), Crc32(bytes.AsSpan(12, 17)));
        File.WriteAllBytes(bomb, bytes);
        var huge = Assert.Throws<InvalidDataException>(() => ImageFiles.Read(bomb));
        Assert.Contains("20000 x 20000 pixels", huge.Message);

        var missing = Path.Combine(dir, "nowhere");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => ImageTasks.Load("images", missing)).Message);
        Assert.Contains("no label folders", Assert.Throws<InvalidDataException>(() => ImageFolder.Load(Directory.CreateDirectory(Path.Combine(dir, "flat")).FullName)).Message);
    }

    // PNG's chunk CRC (ISO 3309, reflected polynomial 0xEDB88320) over the chunk type and data.
    static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    [Fact]
    public void RealMnistAndFashionMnistAreFetchedWithAllTenClasses()
    {
        foreach (var name in MnistTasks.Names)
        {
            var task = MnistTasks.Load(name);
            Assert.Equal(60000, task.Train.Count + task.Validation.Count);
            Assert.Equal(5000, task.Validation.Count);
            Assert.Equal(10000, task.Test.Count);
            Assert.Equal((28, 28, 1), (task.Test[0].Height, task.Test[0].Width, task.Test[0].Channels));
            Assert.Equal(Enumerable.Range(0, 10), task.Train.Select(e => e.Label).Distinct().Order());
            Assert.Equal(Enumerable.Range(0, 10), task.Test.Select(e => e.Label).Distinct().Order());
            // Real digits and clothes: mostly black background, some bright strokes.
            var mean = task.Test.Take(100).Average(e => e.Pixels.Average(b => (double)b));
            Assert.InRange(mean, 20, 100);
        }
    }
}
