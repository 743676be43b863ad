using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace QuantumPeft.Data.Tokenizers;

/// <summary>One BPE merge: two vocabulary tokens that join into a third, with where it was read (for error messages).</summary>
internal readonly record struct BpeMerge(string Left, string Right, string Where);

/// <summary>
/// Byte-level BPE as GPT-2 defines it (every UTF-8 byte mapped to a printable character, space to 'Ġ'), built on
/// Microsoft.ML.Tokenizers' BpeTokenizer from a vocabulary and a merge list, whichever file they came from.
/// </summary>
internal static class ByteLevelBpe
{
    /// <summary>GPT-2's pre-tokenization pattern (openai/gpt-2 encoder.py), which HF tokenizers' ByteLevel uses when use_regex is set.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Reads GPT-2's vocab.json: one JSON object mapping every token to its id.</summary>
    public static Dictionary<string, int> ReadVocabJson(string path)
    {
        JsonElement root;
        try { root = TokenizerFolderConfig.ReadObject(path) ?? throw new FileNotFoundException($"no '{path}'.", path); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{e.Message} vocab.json must map each token to its id, as {{\"token\": id, ...}}.", e); }
        return ReadVocab(root, path);
    }

    /// <summary>A vocabulary object {"token": id}, checked: ids are non-negative integers and no object is empty.</summary>
    public static Dictionary<string, int> ReadVocab(JsonElement vocab, string where)
    {
        if (vocab.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where}: the vocabulary is a JSON {vocab.ValueKind}; expected an object mapping each token to its id.");
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw new InvalidDataException($"{where}: the id of token '{entry.Name}' is {entry.Value.GetRawText()}; expected a non-negative integer.");
            result[entry.Name] = id;
        }
        if (result.Count == 0) throw new InvalidDataException($"{where}: the vocabulary is empty.");
        return result;
    }

    /// <summary>
    /// Reads merges.txt as HF tokenizers does: an optional "#version" line, then one merge per line, two tokens
    /// separated by one space. A file that does not end in a newline and leaves vocabulary tokens unmade was cut short.
    /// </summary>
    public static List<BpeMerge> ReadMergesTxt(string path)
    {
        var text = File.ReadAllText(path);
        var merges = new List<BpeMerge>();
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.Length == 0 || line.StartsWith("#version", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new InvalidDataException(
                    $"'{path}' line {i + 1}: '{line}' is not a merge; expected two tokens separated by one space (as 'Ġ t'){(i == lines.Length - 1 ? ": the file looks truncated" : "")}.");
            merges.Add(new BpeMerge(parts[0], parts[1], $"'{path}' line {i + 1}"));
        }
        return merges;
    }

    /// <summary>Whether a text file ends in a newline (merges.txt as written by tokenizers and transformers does).</summary>
    public static bool EndsWithNewline(string path)
    {
        using var f = File.OpenRead(path);
        if (f.Length == 0) return false;
        f.Seek(-1, SeekOrigin.End);
        return f.ReadByte() == '\n';
    }

    /// <summary>
    /// Checks merges against the vocabulary as HF tokenizers does (both sides and the joined token must be tokens), and,
    /// when <paramref name="maybeCut"/>, that every multi-character token is made by some merge or is an added token.
    /// </summary>
    public static void CheckMerges(IReadOnlyList<BpeMerge> merges, IReadOnlyDictionary<string, int> vocab, IEnumerable<string> addedTokens,
        string vocabName, string mergesName, bool maybeCut)
    {
        var added = addedTokens.ToHashSet(StringComparer.Ordinal);
        if (merges.Count == 0 && vocab.Keys.Any(k => k.Length > 1 && !added.Contains(k)))
            throw new InvalidDataException($"{mergesName} holds no merges, but {vocabName} has multi-character tokens that only merges can make.");
        var made = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in merges)
        {
            foreach (var side in new[] { m.Left, m.Right })
                if (!vocab.ContainsKey(side))
                    throw new InvalidDataException($"{m.Where}: merge '{m.Left} {m.Right}' uses '{side}', which {vocabName} does not have (every merge joins two vocabulary tokens).");
            var joined = m.Left + m.Right;
            if (!vocab.ContainsKey(joined))
                throw new InvalidDataException($"{m.Where}: merge '{m.Left} {m.Right}' makes '{joined}', which {vocabName} does not have{(maybeCut && m.Equals(merges[^1]) ? " (the file looks truncated)" : "")}.");
            made.Add(joined);
        }
        if (!maybeCut) return;
        int unmade = vocab.Keys.Count(k => k.Length > 1 && !made.Contains(k) && !added.Contains(k));
        if (unmade > 0)
            throw new InvalidDataException(
                $"{mergesName} looks truncated: it does not end in a newline and {unmade} multi-character tokens of {vocabName} are made by no merge.");
    }

    /// <summary>A byte-level BpeTokenizer: pre-tokenized by <paramref name="pattern"/>, added tokens split out first and never merged.</summary>
    public static BpeTokenizer Create(IReadOnlyDictionary<string, int> vocab, IReadOnlyList<BpeMerge> merges, string pattern,
        IReadOnlyDictionary<string, int> addedTokens, string where)
    {
        var specials = addedTokens.Count == 0 ? null : addedTokens;
        try
        {
            var regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
            return BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges.Select(m => $"{m.Left} {m.Right}"),
                ByteLevel = true,
                PreTokenizer = new RegexPreTokenizer(regex, specials),
                SpecialTokens = specials,
            });
        }
        catch (ArgumentException e) { throw new InvalidDataException($"{where}: not a usable byte-level BPE tokenizer: {e.Message}", e); }
        catch (InvalidOperationException e) { throw new InvalidDataException($"{where}: not a usable byte-level BPE tokenizer: {e.Message}", e); }
    }
}
