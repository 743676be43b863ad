namespace QuantumPeft.Data.Images;

/// <summary>
/// A folder of labelled images in the layout users have (torchvision's ImageFolder): root/&lt;label&gt;/*.png|jpg|jpeg, the classes
/// being the sub-folder names in ordinal order. Split 80/10/10 per class (seeded), unless the root holds train/ and test/ (and
/// optionally val/ or validation/) folders of that layout, which are then used as they are (validation held out from train when absent).
/// </summary>
public static class ImageFolder
{
    /// <summary>The fixed seed of the splits.</summary>
    public const int SplitSeed = 20251201;

    /// <summary>Per-class shares of train and validation when the root is one labelled folder; the rest is test.</summary>
    public const double TrainFraction = 0.8, ValidationFraction = 0.1;

    /// <summary>The task "images" from <paramref name="root"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="InvalidDataException">No label folders, a label folder without images, a single class, or an undecodable image (naming it).</exception>
    public static ImageTask Load(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        var full = Path.GetFullPath(root);
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException($"image folder not found: '{full}' (expected ROOT/<label>/*.png|jpg|jpeg, one sub-folder per class).");
        var trainDir = Path.Combine(full, "train");
        var testDir = Path.Combine(full, "test");
        if (Directory.Exists(trainDir) && Directory.Exists(testDir))
        {
            var classes = ClassNames(trainDir);
            var train = ReadSplit(trainDir, classes);
            var test = ReadSplit(testDir, classes);
            var valDir = new[] { "val", "validation" }.Select(v => Path.Combine(full, v)).FirstOrDefault(Directory.Exists);
            return valDir is null
                ? ImageTask.WithHeldOutValidation("images", classes, train, test, SplitSeed)
                : new ImageTask("images", classes, train, ReadSplit(valDir, classes), test);
        }
        var names = ClassNames(full);
        var all = ReadSplit(full, names);
        List<ImageExample> tr = [], va = [], te = [];
        foreach (var group in all.GroupBy(e => e.Label).OrderBy(g => g.Key))
        {
            var items = SeededOrder.Shuffle(group.ToList(), SeededOrder.Derive(SplitSeed, group.Key));
            // Every class keeps at least one training image; validation and test take theirs only when there are enough.
            int nVal = items.Count >= 3 ? Math.Max(1, (int)Math.Round(items.Count * ValidationFraction, MidpointRounding.AwayFromZero)) : 0;
            int nTest = items.Count >= 3 ? Math.Max(1, items.Count - nVal - (int)Math.Round(items.Count * TrainFraction, MidpointRounding.AwayFromZero)) : 0;
            int nTrain = items.Count - nVal - nTest;
            tr.AddRange(items.Take(nTrain));
            va.AddRange(items.Skip(nTrain).Take(nVal));
            te.AddRange(items.Skip(nTrain + nVal));
        }
        if (va.Count == 0 || te.Count == 0)
            throw new InvalidDataException($"image folder '{full}' has too few images to split ({all.Count}); expected at least 3 per class, or train/ and test/ folders.");
        return new ImageTask("images", names, SeededOrder.Shuffle(tr, SeededOrder.Derive(SplitSeed, 1001)),
            SeededOrder.Shuffle(va, SeededOrder.Derive(SplitSeed, 1002)), SeededOrder.Shuffle(te, SeededOrder.Derive(SplitSeed, 1003)));
    }

    /// <summary>The class names of a labelled folder: its sub-folders in ordinal order (at least two).</summary>
    public static IReadOnlyList<string> ClassNames(string folder)
    {
        var names = Directory.EnumerateDirectories(folder).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')).Select(n => n!)
            .Order(StringComparer.Ordinal).ToList();
        if (names.Count == 0)
            throw new InvalidDataException($"image folder '{folder}' has no label folders; expected {folder}/<label>/*.png|jpg|jpeg, one sub-folder per class.");
        if (names.Count == 1)
            throw new InvalidDataException($"image folder '{folder}' has one class ('{names[0]}'); classification needs at least two label folders.");
        return names;
    }

    // Every image of every class folder, in file-name order (a label folder without images is an error).
    static List<ImageExample> ReadSplit(string folder, IReadOnlyList<string> classes)
    {
        var found = ClassNames(folder);
        var unknown = found.Except(classes).ToList();
        if (unknown.Count > 0)
            throw new InvalidDataException($"'{folder}' has label folder(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))} that the training folder lacks (classes: {string.Join(", ", classes)}).");
        var result = new List<ImageExample>();
        foreach (var name in found)
        {
            var dir = Path.Combine(folder, name);
            var files = Directory.EnumerateFiles(dir).Where(ImageFiles.IsImage).Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new InvalidDataException($"label folder '{dir}' has no images (expected {string.Join(", ", ImageFiles.Extensions)} files).");
            int label = classes.ToList().IndexOf(name);
            result.AddRange(files.Select(f => ImageFiles.Read(f, label)));
        }
        return result;
    }
}
