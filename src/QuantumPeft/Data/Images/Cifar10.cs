namespace QuantumPeft.Data.Images;

/// <summary>
/// CIFAR-10 in its official binary format (cifar-10-binary.tar.gz, extracted): data_batch_1.bin .. data_batch_5.bin and
/// test_batch.bin, each a run of 3,073-byte records (a label byte, then the 32 x 32 red, green and blue planes, row by row),
/// and batches.meta.txt with the class names one per line. Not reachable here: users name the folder.
/// </summary>
public static class Cifar10
{
    /// <summary>Image side in pixels.</summary>
    public const int Side = 32;

    /// <summary>Bytes of one record: the label, then 3 planes of 32 x 32.</summary>
    public const int RecordBytes = 1 + 3 * Side * Side;

    /// <summary>The training batches, in order.</summary>
    public static readonly IReadOnlyList<string> TrainFiles = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];

    /// <summary>The test batch.</summary>
    public const string TestFile = "test_batch.bin";

    /// <summary>The class names file.</summary>
    public const string MetaFile = "batches.meta.txt";

    /// <summary>The folder the official archive extracts to.</summary>
    public const string ArchiveFolder = "cifar-10-batches-bin";

    /// <summary>The fixed seed of the validation hold-out (changing it changes every published figure).</summary>
    public const int SplitSeed = 20251201;

    /// <summary>
    /// The task from <paramref name="dataDir"/> (the folder holding the .bin files, or its parent holding cifar-10-batches-bin/):
    /// 45,000 train, 5,000 validation (seeded, from the training batches) and 10,000 test images for the full set.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">A batch file is missing (the message names it and the folder).</exception>
    /// <exception cref="InvalidDataException">A truncated file or a label out of range (naming the file and the record).</exception>
    public static ImageTask Load(string dataDir)
    {
        var folder = Resolve(dataDir);
        var classes = ReadClassNames(folder);
        var train = TrainFiles.SelectMany(f => ReadBatch(Path.Combine(folder, f), classes.Count)).ToList();
        var test = ReadBatch(Path.Combine(folder, TestFile), classes.Count);
        return ImageTask.WithHeldOutValidation("cifar10", classes, train, test, SplitSeed);
    }

    /// <summary>The folder that holds the batch files: <paramref name="dataDir"/> itself or its cifar-10-batches-bin/.</summary>
    public static string Resolve(string dataDir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDir);
        var full = Path.GetFullPath(dataDir);
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException($"CIFAR-10 folder not found: '{full}' (expected the extracted cifar-10-binary.tar.gz: {ArchiveFolder}/ with {string.Join(", ", TrainFiles)}, {TestFile}, {MetaFile}).");
        var nested = Path.Combine(full, ArchiveFolder);
        var folder = File.Exists(Path.Combine(full, TrainFiles[0])) || !Directory.Exists(nested) ? full : nested;
        foreach (var f in TrainFiles.Append(TestFile))
            if (!File.Exists(Path.Combine(folder, f)))
                throw new FileNotFoundException($"CIFAR-10 folder '{folder}' has no {f} (expected the binary version's {string.Join(", ", TrainFiles)}, {TestFile} and {MetaFile}).", Path.Combine(folder, f));
        return folder;
    }

    /// <summary>The class names of batches.meta.txt (its non-empty lines); the standard ten when the file is absent.</summary>
    public static IReadOnlyList<string> ReadClassNames(string folder)
    {
        var path = Path.Combine(folder, MetaFile);
        if (!File.Exists(path)) return ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
        var names = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        if (names.Count < 2) throw new InvalidDataException($"{path}: {names.Count} class name(s); expected one per line (10 for CIFAR-10).");
        return names;
    }

    /// <summary>Every record of one batch file as an RGB image (planes interleaved into HWC).</summary>
    /// <exception cref="InvalidDataException">The file is empty, ends inside a record, or holds a label of <paramref name="numLabels"/> or more.</exception>
    public static List<ImageExample> ReadBatch(string path, int numLabels = 10)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"CIFAR-10 batch file not found: '{path}'.", path);
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new InvalidDataException($"{path}: empty; expected records of {RecordBytes} bytes (a label and 3 x 32 x 32 pixels).");
        if (bytes.Length % RecordBytes != 0)
            throw new InvalidDataException($"{path}: truncated: record {bytes.Length / RecordBytes + 1} has {bytes.Length % RecordBytes} of its {RecordBytes} bytes " +
                $"({bytes.Length} bytes in all, not a multiple of {RecordBytes}); expected CIFAR-10's binary version.");
        const int plane = Side * Side;
        var result = new List<ImageExample>(bytes.Length / RecordBytes);
        for (int r = 0; r < bytes.Length / RecordBytes; r++)
        {
            int at = r * RecordBytes;
            int label = bytes[at];
            if (label >= numLabels)
                throw new InvalidDataException($"{path}: record {r + 1} has label {label}; expected 0..{numLabels - 1} (is this CIFAR-100 or another format?).");
            var hwc = new byte[3 * plane];
            for (int i = 0; i < plane; i++)
                for (int c = 0; c < 3; c++) hwc[3 * i + c] = bytes[at + 1 + c * plane + i];
            result.Add(new ImageExample(hwc, Side, Side, 3, label));
        }
        return result;
    }
}
