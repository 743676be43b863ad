namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// METEOR 1.5's synonym dictionary (aligner/SynonymDictionary.java) built from WordNet 3.0's own files: a word's synsets,
/// its exception-list base forms (WordNet's *.exc), and otherwise the synsets of its first WordNet morphological base form
/// (SynonymDictionary.morph's suffix rules) that is a WordNet word. Two different words are synonyms if these sets meet.
/// </summary>
public sealed class WordNetSynonyms
{
    /// <summary>The Debian package that holds WordNet 3.0's database.</summary>
    public const string DebianPackage = "wordnet-base";

    static readonly string[] PartsOfSpeech = ["noun", "verb", "adj", "adv"];
    static readonly Lazy<WordNetSynonyms> Fetched = new(() => Load(Fetch()));

    /// <summary>
    /// The folder of WordNet 3.0's data and exception files (the package's data.* and *.exc), fetched into the cache on first use.
    /// The one fetch of the package: every user of WordNet (METEOR's synonyms, the gloss task) reads this folder, whichever runs first.
    /// </summary>
    public static string Fetch() => DebianPackageCache.Ensure(DebianPackage,
        rel => rel.StartsWith("usr/share/wordnet/", StringComparison.Ordinal) && (rel.Contains("/data.") || rel.EndsWith(".exc", StringComparison.Ordinal)));

    readonly Dictionary<string, HashSet<long>> wordToSynsets;
    readonly Dictionary<string, List<string>> wordToBases;

    WordNetSynonyms(Dictionary<string, HashSet<long>> wordToSynsets, Dictionary<string, List<string>> wordToBases)
    {
        this.wordToSynsets = wordToSynsets;
        this.wordToBases = wordToBases;
    }

    /// <summary>WordNet 3.0 from the cache, fetched with <see cref="DebianPackageCache"/> on first use.</summary>
    public static WordNetSynonyms Default => Fetched.Value;

    /// <summary>Number of distinct words with at least one synset.</summary>
    public int WordCount => wordToSynsets.Count;

    /// <summary>Reads data.{noun,verb,adj,adv} and {noun,verb,adj,adv}.exc from a folder holding usr/share/wordnet/ (or those files directly).</summary>
    public static WordNetSynonyms Load(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"WordNet folder '{folder}' does not exist.");
        var dir = Directory.Exists(Path.Combine(folder, "usr", "share", "wordnet")) ? Path.Combine(folder, "usr", "share", "wordnet") : folder;
        var synsets = new Dictionary<string, HashSet<long>>(StringComparer.Ordinal);
        for (int p = 0; p < PartsOfSpeech.Length; p++)
        {
            var path = Path.Combine(dir, "data." + PartsOfSpeech[p]);
            if (!File.Exists(path)) throw new FileNotFoundException($"WordNet data file '{path}' is missing.", path);
            foreach (var line in File.ReadLines(path))
            {
                if (line.StartsWith("  ", StringComparison.Ordinal) || line.Length == 0) continue;   // licence header
                var f = line.Split(' ');
                // data.*: synset_offset lex_filenum ss_type w_cnt(hex) word lex_id ...; ids carry the part of speech since
                // offsets are per file.
                long id = (p + 1) * 1_000_000_000L + long.Parse(f[0]);
                int count = Convert.ToInt32(f[3], 16);
                for (int w = 0; w < count; w++)
                {
                    var word = f[4 + 2 * w];
                    int marker = word.IndexOf('(');                       // adjective markers: (a), (p), (ip)
                    if (marker > 0) word = word[..marker];
                    word = word.ToLowerInvariant();
                    if (!synsets.TryGetValue(word, out var set)) synsets[word] = set = [];
                    set.Add(id);
                }
            }
        }
        var bases = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var pos in PartsOfSpeech)
        {
            var path = Path.Combine(dir, pos + ".exc");
            if (!File.Exists(path)) continue;
            foreach (var line in File.ReadLines(path))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 2) continue;
                if (!bases.TryGetValue(f[0], out var list)) bases[f[0]] = list = [];
                list.AddRange(f.Skip(1));
            }
        }
        return new WordNetSynonyms(synsets, bases);
    }

    /// <summary>SynonymDictionary.getSynSets: the synsets that hold the word itself.</summary>
    public IReadOnlySet<long> SynSets(string word) => wordToSynsets.TryGetValue(word, out var s) ? s : EmptySet;

    /// <summary>SynonymDictionary.getStemSynSets: synsets of the exception-list bases, else of the morphological base form.</summary>
    public IReadOnlySet<long> StemSynSets(string word)
    {
        if (wordToBases.TryGetValue(word, out var bases))
        {
            var set = new HashSet<long>();
            foreach (var b in bases) set.UnionWith(SynSets(b));
            return set;
        }
        return SynSets(Morph(word));
    }

    /// <summary>The set METEOR's synonym matcher compares: own synsets plus base-form synsets.</summary>
    public HashSet<long> MatchSets(string word)
    {
        var set = new HashSet<long>(SynSets(word));
        set.UnionWith(StemSynSets(word));
        return set;
    }

    /// <summary>True when two different words share a synset (SynonymMatcher's test).</summary>
    public bool AreSynonyms(string a, string b) => a != b && MatchSets(a).Overlaps(MatchSets(b));

    static readonly HashSet<long> EmptySet = [];

    // WordNet 3's morphy suffix table as SynonymDictionary.java carries it: noun, verb, then adjective rules.
    static readonly string[] Suffixes = ["s", "ses", "xes", "zes", "ches", "shes", "men", "ies", "s", "ies", "es", "es", "ed", "ed", "ing", "ing", "er", "est", "er", "est"];
    static readonly string[] Endings = ["", "s", "x", "z", "ch", "sh", "man", "y", "", "y", "e", "", "e", "", "e", "", "", "", "e", "e"];

    /// <summary>SynonymDictionary.morph: the word itself if it ends in "ss" or has at most 2 letters, else the first rule's base form that is a WordNet word, else "".</summary>
    public string Morph(string word)
    {
        if (word.EndsWith("ss", StringComparison.Ordinal) || word.Length <= 2) return word;
        for (int i = 0; i < Suffixes.Length; i++)
        {
            if (!word.EndsWith(Suffixes[i], StringComparison.Ordinal)) continue;
            var candidate = word[..^Suffixes[i].Length] + Endings[i];
            if (wordToSynsets.ContainsKey(candidate)) return candidate;
        }
        return "";
    }
}
