using System.Buffers.Binary;
using System.IO.Compression;

namespace QuantumPeft.Data.Images;

/// <summary>
/// The IDX files of MNIST and Fashion-MNIST, gzipped or not: a big-endian header (magic 2051 for images with count, rows and
/// columns; 2049 for labels with count), then one unsigned byte per pixel or label.
/// </summary>
public static class IdxFile
{
    /// <summary>The magic number of an image file (unsigned bytes, 3 dimensions).</summary>
    public const int ImageMagic = 2051;

    /// <summary>The magic number of a label file (unsigned bytes, 1 dimension).</summary>
    public const int LabelMagic = 2049;

    /// <summary>The images of an idx3 file: count x rows x columns bytes.</summary>
    /// <exception cref="InvalidDataException">Another magic number, or a file that ends before its last image (naming the record).</exception>
    public static (byte[] Pixels, int Count, int Rows, int Columns) ReadImages(string path)
    {
        var (header, data) = Read(path, ImageMagic, 3);
        int count = header[0], rows = header[1], cols = header[2];
        if (rows < 1 || cols < 1) throw new InvalidDataException($"{path}: images of {rows} x {cols}; expected at least 1 x 1.");
        int size = rows * cols;
        if (data.Length < (long)count * size)
            throw new InvalidDataException($"{path}: truncated: the header promises {count} images of {rows} x {cols}, but image {data.Length / size + 1} " +
                $"ends past the end of the file ({data.Length} pixel bytes, {(long)count * size} expected).");
        return (data.Length == (long)count * size ? data : data[..(count * size)], count, rows, cols);
    }

    /// <summary>The labels of an idx1 file.</summary>
    /// <exception cref="InvalidDataException">Another magic number, or a file that ends before its last label (naming the record).</exception>
    public static byte[] ReadLabels(string path)
    {
        var (header, data) = Read(path, LabelMagic, 1);
        int count = header[0];
        if (data.Length < count)
            throw new InvalidDataException($"{path}: truncated: the header promises {count} labels, but label {data.Length + 1} is past the end of the file.");
        return data.Length == count ? data : data[..count];
    }

    /// <summary>The images of an image file with the labels of a label file, checked to be as many.</summary>
    public static List<ImageExample> ReadExamples(string imagesPath, string labelsPath)
    {
        var (pixels, count, rows, cols) = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath);
        if (labels.Length != count)
            throw new InvalidDataException($"{labelsPath} has {labels.Length} labels but {imagesPath} has {count} images; expected the pair of one split.");
        int size = rows * cols;
        return Enumerable.Range(0, count).Select(i => new ImageExample(pixels[(i * size)..((i + 1) * size)], rows, cols, 1, labels[i])).ToList();
    }

    // The dimension sizes after the magic, and the rest of the (decompressed) file.
    static (int[] Dimensions, byte[] Data) Read(string path, int magic, int dimensions)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: '{path}'.", path);
        byte[] bytes;
        try
        {
            using var file = File.OpenRead(path);
            bool gzip = file.Length >= 2 && file.ReadByte() == 0x1f && file.ReadByte() == 0x8b;
            file.Position = 0;
            using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            bytes = memory.ToArray();
        }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: not a readable gzip file ({e.Message}); expected an IDX file, gzipped or not.", e); }
        catch (EndOfStreamException e) { throw new InvalidDataException($"{path}: truncated gzip stream; expected an IDX file, gzipped or not.", e); }
        int headerBytes = 4 * (1 + dimensions);
        if (bytes.Length < headerBytes)
            throw new InvalidDataException($"{path}: truncated: {bytes.Length} bytes, shorter than the {headerBytes}-byte IDX header.");
        int found = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (found != magic)
            throw new InvalidDataException($"{path}: magic number {found}; expected {magic} ({(magic == ImageMagic ? "an idx3 image file" : "an idx1 label file")}).");
        var dims = Enumerable.Range(0, dimensions).Select(d => BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * d))).ToArray();
        if (dims.Any(d => d < 0)) throw new InvalidDataException($"{path}: negative dimension in the header ({string.Join(" x ", dims)}).");
        return (dims, bytes[headerBytes..]);
    }
}
