using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace QuantumPeft.Data.Tokenizers;

/// <summary>What a byte-level BPE tokenizer.json describes, in the terms <see cref="ByteLevelBpe"/> builds from.</summary>
internal sealed record TokenizerJsonBpe(
    Dictionary<string, int> Vocab,
    List<BpeMerge> Merges,
    string Pattern,
    bool AddPrefixSpace,
    NormalizationForm[] Normalizations,
    bool Lowercase,
    IReadOnlyList<AddedToken> AddedTokens,
    int[]? Prefix,
    int[]? Suffix);

/// <summary>
/// Reads HF tokenizers' tokenizer.json. Microsoft.ML.Tokenizers 2.0.1 has no reader for it, so the BPE model case is
/// taken apart here (vocab, merges, pre-tokenizer regex, normalizer, added tokens, post-processor) and handed to the
/// library's BPE tokenizer; what that cannot reproduce is reported as unsupported, never approximated.
/// </summary>
internal static class TokenizerJson
{
    /// <summary>
    /// The byte-level BPE the file describes, or null with <paramref name="unsupported"/> saying what it holds instead.
    /// Throws <see cref="InvalidDataException"/> naming the file when it is not a tokenizer.json at all.
    /// </summary>
    public static TokenizerJsonBpe? Read(string path, out string? unsupported)
    {
        var root = TokenizerFolderConfig.ReadObject(path) ?? throw new FileNotFoundException($"no '{path}'.", path);
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"'{path}' has no \"model\" object; expected a Hugging Face tokenizers file (tokenizer.json) with model, pre_tokenizer, added_tokens.");

        string type = Str(model, "type") ?? (model.TryGetProperty("merges", out _) ? "BPE" : "unknown");
        unsupported = null;
        if (type != "BPE")
        {
            unsupported = $"its model is {type} (only the BPE model is read from tokenizer.json; Microsoft.ML.Tokenizers 2.0.1 cannot read tokenizer.json itself)";
            return null;
        }
        if (Flag(model, "byte_fallback"))
            return Unsupported(out unsupported, "its BPE model uses byte_fallback (a SentencePiece-style BPE: use the folder's tokenizer.model)");
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
            return Unsupported(out unsupported, "its BPE model sets dropout (random merges at encode time)");
        if (!string.IsNullOrEmpty(Str(model, "continuing_subword_prefix")) || !string.IsNullOrEmpty(Str(model, "end_of_word_suffix")))
            return Unsupported(out unsupported, "its BPE model uses continuing_subword_prefix / end_of_word_suffix (not a byte-level BPE)");

        var pre = PreTokenizer(root, out unsupported);
        if (pre is null) return null;
        var norm = Normalizer(root, out unsupported);
        if (norm is null) return null;
        if (!PostProcessor(root, path, out var prefix, out var suffix, out unsupported)) return null;

        if (!model.TryGetProperty("vocab", out var vocabJson))
            throw new InvalidDataException($"'{path}': the BPE model has no \"vocab\" object.");
        var vocab = ByteLevelBpe.ReadVocab(vocabJson, $"'{path}' model.vocab");
        var merges = Merges(model, path);
        var added = AddedTokens(root, path);
        ByteLevelBpe.CheckMerges(merges, vocab, added.Select(t => t.Content), $"'{path}' model.vocab", $"'{path}' model.merges", maybeCut: false);
        return new TokenizerJsonBpe(vocab, merges, pre.Value.Pattern, pre.Value.AddPrefixSpace, norm.Value.Forms, norm.Value.Lowercase, added, prefix, suffix);
    }

    static TokenizerJsonBpe? Unsupported(out string? reason, string why)
    {
        reason = why;
        return null;
    }

    // ByteLevel alone (GPT-2, RoBERTa), or Split(regex) then ByteLevel without its own regex (Llama 3, Qwen2).
    static (string Pattern, bool AddPrefixSpace)? PreTokenizer(JsonElement root, out string? unsupported)
    {
        unsupported = null;
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
        {
            unsupported = "it has no pre_tokenizer (only byte-level BPE, whose pre_tokenizer is ByteLevel, is read)";
            return null;
        }
        var steps = Str(pre, "type") == "Sequence" && pre.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().ToList()
            : [pre];
        var last = steps[^1];
        if (Str(last, "type") != "ByteLevel")
        {
            unsupported = $"its pre_tokenizer is {Describe(steps)} (only ByteLevel, optionally after one Split regex, is read)";
            return null;
        }
        bool prefixSpace = Flag(last, "add_prefix_space");
        bool useRegex = !last.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False;
        if (steps.Count == 1)
            return (useRegex ? ByteLevelBpe.Gpt2Pattern : @"[\s\S]+", prefixSpace);
        var split = steps[0];
        if (steps.Count != 2 || useRegex || Str(split, "type") != "Split" || Str(split, "behavior") != "Isolated" || Flag(split, "invert")
            || !split.TryGetProperty("pattern", out var pattern) || pattern.ValueKind != JsonValueKind.Object)
        {
            unsupported = $"its pre_tokenizer is {Describe(steps)} (only ByteLevel, optionally after one Split regex with behavior Isolated, is read)";
            return null;
        }
        string? regex = Str(pattern, "Regex") ?? (Str(pattern, "String") is { } literal ? Regex.Escape(literal) : null);
        if (regex is null)
        {
            unsupported = "its Split pre-tokenizer has neither a Regex nor a String pattern";
            return null;
        }
        // Isolated keeps the text between matches as pieces of their own; the second branch takes such a gap whole.
        return ($"(?:{regex})|(?:(?!(?:{regex}))[\\s\\S])+", prefixSpace);
    }

    static (NormalizationForm[] Forms, bool Lowercase)? Normalizer(JsonElement root, out string? unsupported)
    {
        unsupported = null;
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind == JsonValueKind.Null) return ([], false);
        var steps = Str(n, "type") == "Sequence" && n.TryGetProperty("normalizers", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().ToList()
            : [n];
        var forms = new List<NormalizationForm>();
        bool lower = false;
        foreach (var s in steps)
        {
            switch (Str(s, "type"))
            {
                case "NFC": forms.Add(NormalizationForm.FormC); break;
                case "NFD": forms.Add(NormalizationForm.FormD); break;
                case "NFKC": forms.Add(NormalizationForm.FormKC); break;
                case "NFKD": forms.Add(NormalizationForm.FormKD); break;
                case "Lowercase" when forms.Count == 0: lower = true; break;
                default:
                    unsupported = $"its normalizer is {Describe(steps)} (only NFC, NFD, NFKC, NFKD and a leading Lowercase are read)";
                    return null;
            }
        }
        return (forms.ToArray(), lower);
    }

    // The ids put around one sequence: TemplateProcessing's "single" template, or RobertaProcessing / BertProcessing's cls ... sep.
    static bool PostProcessor(JsonElement root, string path, out int[]? prefix, out int[]? suffix, out string? unsupported)
    {
        prefix = suffix = null;
        unsupported = null;
        if (!root.TryGetProperty("post_processor", out var p) || p.ValueKind == JsonValueKind.Null) return true;
        var steps = Str(p, "type") == "Sequence" && p.TryGetProperty("processors", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().ToList()
            : [p];
        foreach (var s in steps)
        {
            switch (Str(s, "type"))
            {
                case "ByteLevel":
                    break;
                case "RobertaProcessing" or "BertProcessing":
                    prefix = [PairId(s, "cls", path)];
                    suffix = [PairId(s, "sep", path)];
                    break;
                case "TemplateProcessing":
                    (prefix, suffix) = Template(s, path);
                    break;
                default:
                    unsupported = $"its post_processor is {Describe(steps)} (only ByteLevel, TemplateProcessing, RobertaProcessing and BertProcessing are read)";
                    return false;
            }
        }
        return true;
    }

    static (int[] Prefix, int[] Suffix) Template(JsonElement t, string path)
    {
        if (!t.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"'{path}': TemplateProcessing has no \"single\" template array.");
        var ids = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (t.TryGetProperty("special_tokens", out var specials) && specials.ValueKind == JsonValueKind.Object)
            foreach (var s in specials.EnumerateObject())
                if (s.Value.TryGetProperty("ids", out var list) && list.ValueKind == JsonValueKind.Array)
                    ids[s.Name] = list.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int id) && id >= 0 ? id
                        : throw new InvalidDataException($"'{path}': TemplateProcessing special token '{s.Name}' has id {x.GetRawText()}; expected a non-negative integer.")).ToArray();
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        foreach (var piece in single.EnumerateArray())
        {
            if (piece.TryGetProperty("Sequence", out _)) { seenSequence = true; continue; }
            if (!piece.TryGetProperty("SpecialToken", out var st) || Str(st, "id") is not { } name)
                throw new InvalidDataException($"'{path}': a TemplateProcessing piece is {piece.GetRawText()}; expected {{\"Sequence\": ...}} or {{\"SpecialToken\": {{\"id\": ...}}}}.");
            if (!ids.TryGetValue(name, out var tokenIds))
                throw new InvalidDataException($"'{path}': TemplateProcessing uses special token '{name}', which its special_tokens do not define.");
            (seenSequence ? suffix : prefix).AddRange(tokenIds);
        }
        return (prefix.ToArray(), suffix.ToArray());
    }

    static int PairId(JsonElement s, string key, string path)
    {
        if (s.TryGetProperty(key, out var pair) && pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2
            && pair[1].ValueKind == JsonValueKind.Number && pair[1].TryGetInt32(out int id))
            return id;
        throw new InvalidDataException($"'{path}': post_processor.{key} is not a [token, id] pair.");
    }

    // Merges are "a b" strings (tokenizers before 0.20) or ["a", "b"] pairs (0.20 and later).
    static List<BpeMerge> Merges(JsonElement model, string path)
    {
        if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"'{path}': the BPE model has no \"merges\" array.");
        var result = new List<BpeMerge>(merges.GetArrayLength());
        int i = 0;
        foreach (var m in merges.EnumerateArray())
        {
            string where = $"'{path}' model.merges[{i++}]";
            string[] parts = m.ValueKind switch
            {
                JsonValueKind.String => m.GetString()!.Split(' '),
                JsonValueKind.Array when m.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String) => m.EnumerateArray().Select(x => x.GetString()!).ToArray(),
                _ => [],
            };
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new InvalidDataException($"{where} is {m.GetRawText()}; expected \"a b\" or [\"a\", \"b\"].");
            if (parts[0].Contains(' ') || parts[1].Contains(' '))
                throw new InvalidDataException($"{where} joins tokens with spaces, which a byte-level vocabulary never has.");
            result.Add(new BpeMerge(parts[0], parts[1], where));
        }
        return result;
    }

    static List<AddedToken> AddedTokens(JsonElement root, string path)
    {
        var result = new List<AddedToken>();
        if (!root.TryGetProperty("added_tokens", out var list) || list.ValueKind != JsonValueKind.Array) return result;
        foreach (var t in list.EnumerateArray())
        {
            if (!t.TryGetProperty("id", out var id) || id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out int value) || value < 0
                || Str(t, "content") is not { } content)
                throw new InvalidDataException($"'{path}': added token {t.GetRawText()} lacks a non-negative \"id\" or a \"content\" string.");
            result.Add(new AddedToken(content, value, Flag(t, "special")));
        }
        return result;
    }

    static string Describe(List<JsonElement> steps) => string.Join(" + ", steps.Select(s => Str(s, "type") ?? "?"));

    static string? Str(JsonElement e, string key) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    static bool Flag(JsonElement e, string key) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.True;
}
