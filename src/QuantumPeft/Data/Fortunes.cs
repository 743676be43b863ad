using System.Text;

namespace QuantumPeft.Data;

/// <summary>
/// The "fortunes" task: which of eight categories an epigram of Debian's <c>fortunes</c> package belongs to. A harder,
/// real, multi-class text task that can be had offline.
/// </summary>
/// <remarks>
/// Categories (inoffensive ones only): art, computers, education, food, law, politics, science, sports. Entries are
/// the texts between <c>%</c> lines, whitespace collapsed, control characters (overstriking) removed, duplicates
/// dropped. At most <see cref="PerClassCap"/> per category, a seeded sample (seed 20261201), so the task is nearly
/// balanced: 300 each for art, computers, politics and science, all of education (203), food (198), law (205) and
/// sports (147), 1,953 in all. Split per category 70 / 15 / 15 (train / validation / test).
/// </remarks>
public static class Fortunes
{
    /// <summary>The Debian package with the epigram files.</summary>
    public const string DebianPackage = "fortunes";

    /// <summary>The categories, in label order.</summary>
    public static readonly IReadOnlyList<string> Categories = ["art", "computers", "education", "food", "law", "politics", "science", "sports"];

    /// <summary>Largest number of entries taken from one category.</summary>
    public const int PerClassCap = 300;

    const int SplitSeed = 20261201;
    const double TrainFraction = 0.7, ValidationFraction = 0.15;

    /// <summary>The task, fetching the package into the cache on first use.</summary>
    public static TextTask Load() => FromFolder(Fetch());

    /// <summary>The folder holding the fortune files (usr/share/games/fortunes inside the unpacked package), fetched on first use.</summary>
    public static string Fetch() => DebianPackageCache.Ensure(DebianPackage,
        rel => rel.StartsWith("usr/share/games/fortunes/", StringComparison.Ordinal) && Categories.Contains(Path.GetFileName(rel)));

    /// <summary>The task from an unpacked package (or a folder with one file per category).</summary>
    /// <exception cref="FileNotFoundException">A category file is missing.</exception>
    /// <exception cref="InvalidDataException">A category file has no entries.</exception>
    public static TextTask FromFolder(string folder)
    {
        var nested = Path.Combine(folder, "usr", "share", "games", "fortunes");
        var dir = Directory.Exists(nested) ? nested : folder;
        var all = new List<TextExample>();
        for (int label = 0; label < Categories.Count; label++)
        {
            var path = Path.Combine(dir, Categories[label]);
            if (!File.Exists(path))
                throw new FileNotFoundException($"fortunes: category file '{path}' is missing (expected Debian's fortunes package with {string.Join(", ", Categories)}).", path);
            var entries = ReadEntries(path);
            if (entries.Count == 0) throw new InvalidDataException($"fortunes: '{path}' has no entries (expected texts separated by lines holding only '%').");
            var taken = entries.Count <= PerClassCap ? entries : SeededOrder.Shuffle(entries, SeededOrder.Derive(SplitSeed, label)).Take(PerClassCap).ToList();
            all.AddRange(taken.Select(t => new TextExample(t, null, label)));
        }
        var (train, validation, test) = DataSplits.Stratified(all, SplitSeed, TrainFraction, ValidationFraction);
        return new TextTask("fortunes", train, validation, test, Categories.Count, Categories, ["accuracy", "macro_f1", "mcc"], "accuracy");
    }

    /// <summary>The distinct entries of one fortune file, in file order: the texts between lines holding only '%', whitespace collapsed.</summary>
    public static List<string> ReadEntries(string path)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var entries = new List<string>();
        var current = new StringBuilder();
        void Flush()
        {
            var text = Clean(current.ToString());
            current.Clear();
            if (text.Length > 0 && seen.Add(text)) entries.Add(text);
        }
        foreach (var line in File.ReadLines(path, Encoding.UTF8))
        {
            if (line.TrimEnd() == "%") Flush();
            else current.Append(line).Append('\n');
        }
        Flush();
        return entries;
    }

    // Overstruck text ("_\bw") keeps the character after each backspace; other control characters become spaces.
    static string Clean(string raw)
    {
        var sb = new StringBuilder(raw.Length);
        foreach (var c in raw)
        {
            if (c == '\b') { if (sb.Length > 0) sb.Length--; continue; }
            sb.Append(char.IsControl(c) || char.IsWhiteSpace(c) ? ' ' : c);
        }
        return string.Join(' ', sb.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }
}
