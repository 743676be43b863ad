using System.Globalization;

namespace QuantumPeft.Data;

/// <summary>
/// The GLUE tasks from their standard TSV files in a folder the user names. The folder is either the GLUE
/// root (sub-folders CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE) or one task's own folder.
/// train.tsv minus a seeded validation slice is train; dev.tsv (MNLI: dev_matched.tsv / dev_mismatched.tsv)
/// is the test split, since GLUE's own test labels are hidden.
/// </summary>
public static class GlueTasks
{
    /// <summary>Seed of the validation slice held out of train.tsv.</summary>
    public const int ValidationSeed = 20240502;

    /// <summary>Share of train.tsv held out for validation (capped at <see cref="MaxValidation"/>).</summary>
    public const double ValidationFraction = 0.1;

    /// <summary>Largest validation slice, so that MNLI and QQP evaluate in minutes, not hours.</summary>
    public const int MaxValidation = 2000;

    /// <summary>How one task's files read: columns by header name (or index for header-less CoLA) and label meaning.</summary>
    sealed record Spec(
        string Name, string Folder, string TestFile, string TextColumn, string? PairColumn, string LabelColumn,
        string[] LabelNames, string[] Metrics, string MainMetric, bool HasHeader = true,
        int ColumnCount = 0, int TextIndex = -1, int LabelIndex = -1)
    {
        public bool IsRegression => LabelNames.Length == 1;
    }

    static readonly Spec[] Specs =
    [
        new("cola", "CoLA", "dev.tsv", "sentence", null, "label", ["unacceptable", "acceptable"], ["mcc", "accuracy"], "mcc",
            HasHeader: false, ColumnCount: 4, TextIndex: 3, LabelIndex: 1),
        new("sst2", "SST-2", "dev.tsv", "sentence", null, "label", ["negative", "positive"], ["accuracy"], "accuracy"),
        new("mrpc", "MRPC", "dev.tsv", "#1 String", "#2 String", "Quality", ["not_equivalent", "equivalent"], ["f1", "accuracy"], "f1"),
        new("stsb", "STS-B", "dev.tsv", "sentence1", "sentence2", "score", ["score"], ["pearson", "spearman"], "pearson"),
        new("qqp", "QQP", "dev.tsv", "question1", "question2", "is_duplicate", ["not_duplicate", "duplicate"], ["f1", "accuracy"], "f1"),
        new("mnli", "MNLI", "dev_matched.tsv", "sentence1", "sentence2", "gold_label", ["entailment", "neutral", "contradiction"], ["accuracy"], "accuracy"),
        new("mnli-mm", "MNLI", "dev_mismatched.tsv", "sentence1", "sentence2", "gold_label", ["entailment", "neutral", "contradiction"], ["accuracy"], "accuracy"),
        new("qnli", "QNLI", "dev.tsv", "question", "sentence", "label", ["entailment", "not_entailment"], ["accuracy"], "accuracy"),
        new("rte", "RTE", "dev.tsv", "sentence1", "sentence2", "label", ["entailment", "not_entailment"], ["accuracy"], "accuracy"),
    ];

    /// <summary>The GLUE task names accepted by <see cref="Load"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = Specs.Select(s => s.Name).ToArray();

    /// <summary>The standard sub-folder name of a GLUE task (e.g. "SST-2" for "sst2").</summary>
    public static string FolderOf(string task) => Find(task).Folder;

    /// <summary>Loads a GLUE task from <paramref name="dataDir"/> (the GLUE root or the task's folder).</summary>
    public static TextTask Load(string task, string dataDir)
    {
        var spec = Find(task);
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDir);
        var expected = $"train.tsv and {spec.TestFile}";
        if (!Directory.Exists(dataDir))
            throw new FileNotFoundException($"GLUE data folder '{dataDir}' does not exist; expected the GLUE root (with {spec.Folder}/) or the {spec.Folder} folder holding {expected}.", dataDir);
        var dir = Directory.Exists(Path.Combine(dataDir, spec.Folder)) ? Path.Combine(dataDir, spec.Folder) : dataDir;
        string FileIn(string name)
        {
            var path = Path.Combine(dir, name);
            if (!File.Exists(path))
                throw new FileNotFoundException($"GLUE task '{spec.Name}' needs {expected} in '{dir}' (or under '{Path.Combine(dataDir, spec.Folder)}'); '{path}' is missing.", path);
            return path;
        }
        var trainFile = FileIn("train.tsv");
        var testFile = FileIn(spec.TestFile);
        var all = ReadTsv(spec, trainFile);
        var test = ReadTsv(spec, testFile);
        var (train, validation) = DataSplits.HoldOut(all, ValidationSeed, ValidationFraction, MaxValidation);
        return new TextTask(spec.Name, train, validation, test, spec.IsRegression ? 1 : spec.LabelNames.Length,
            spec.LabelNames, spec.Metrics, spec.MainMetric);
    }

    static Spec Find(string task) =>
        Specs.FirstOrDefault(s => string.Equals(s.Name, task?.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown GLUE task '{task}'; valid tasks: {string.Join(", ", Specs.Select(s => s.Name))}.", nameof(task));

    static List<TextExample> ReadTsv(Spec spec, string path)
    {
        var result = new List<TextExample>();
        int textCol = spec.TextIndex, pairCol = -1, labelCol = spec.LabelIndex, columns = spec.ColumnCount;
        int lineNo = 0;
        foreach (var raw in File.ReadLines(path))
        {
            lineNo++;
            var line = lineNo == 1 ? raw.TrimStart('\uFEFF') : raw;
            if (line.Length == 0) continue;
            var fields = line.Split('\t');
            if (spec.HasHeader && lineNo == 1)
            {
                columns = fields.Length;
                int Column(string name) => Array.FindIndex(fields, f => f.Trim() == name) is var i and >= 0 ? i
                    : throw new InvalidDataException($"{path}: line 1 (header) has no column '{name}'; found: {string.Join(", ", fields)}.");
                textCol = Column(spec.TextColumn);
                pairCol = spec.PairColumn is null ? -1 : Column(spec.PairColumn);
                // STS-B's score is its last column whatever the header calls it.
                labelCol = spec.IsRegression ? fields.Length - 1 : Column(spec.LabelColumn);
                continue;
            }
            if (fields.Length != columns)
                throw new InvalidDataException($"{path}: line {lineNo} has {fields.Length} tab-separated fields; expected {columns}.");
            var label = ParseLabel(spec, fields[labelCol].Trim())
                ?? throw new InvalidDataException($"{path}: line {lineNo} has label '{fields[labelCol]}'; expected " +
                    (spec.IsRegression ? "a number." : $"one of {string.Join(", ", spec.LabelNames)} or 0..{spec.LabelNames.Length - 1}."));
            result.Add(new TextExample(fields[textCol], pairCol >= 0 ? fields[pairCol] : null, label));
        }
        if (result.Count == 0) throw new InvalidDataException($"{path}: no examples found.");
        return result;
    }

    static float? ParseLabel(Spec spec, string value)
    {
        if (spec.IsRegression)
            return float.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var score) && float.IsFinite(score) ? score : null;
        var byName = Array.IndexOf(spec.LabelNames, value);
        if (byName >= 0) return byName;
        return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < spec.LabelNames.Length ? index : null;
    }
}
