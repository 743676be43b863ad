using System.Text.Json;
using Microsoft.ML.Tokenizers;
using QuantumPeft.Formats.HuggingFace;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Bert;

/// <summary>A tokenized batch as BERT takes it: input ids, attention mask and token type ids, each [B, T] int64.</summary>
public sealed record BertBatch(Tensor InputIds, Tensor AttentionMask, Tensor TokenTypeIds) : IDisposable
{
    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        TokenTypeIds.Dispose();
    }
}

/// <summary>WordPiece tokenization of sentences and sentence pairs into BERT inputs, from a folder's vocab.txt.</summary>
/// <remarks>
/// Layout as in transformers: [CLS] a [SEP] (token types 0) and [CLS] a [SEP] b [SEP] (b has token type 1);
/// truncation to maxLength, longest sequence first for pairs; padding to the longest row of the batch only.
/// </remarks>
public sealed class BertTextEncoder
{
    /// <summary>The underlying WordPiece tokenizer (Microsoft.ML.Tokenizers).</summary>
    public BertTokenizer Tokenizer { get; }

    /// <summary>Whether text is lower-cased before WordPiece (tokenizer_config.json do_lower_case).</summary>
    public bool LowerCase { get; }

    BertTextEncoder(BertTokenizer tokenizer, bool lowerCase)
    {
        Tokenizer = tokenizer;
        LowerCase = lowerCase;
    }

    /// <summary>Reads vocab.txt and the casing options of tokenizer_config.json (do_lower_case, default true) from a model folder.</summary>
    public static BertTextEncoder FromFolder(string folder)
    {
        var vocab = Path.Combine(folder, HfCheckpoint.Vocabulary);
        if (!File.Exists(vocab))
            throw new FileNotFoundException($"no {HfCheckpoint.Vocabulary} in '{folder}': a BERT model folder needs its WordPiece vocabulary.", vocab);
        bool lower = true;
        bool? stripAccents = null;
        bool cjk = true;
        var configPath = Path.Combine(folder, HfCheckpoint.TokenizerConfig);
        if (File.Exists(configPath))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(configPath));
                var root = doc.RootElement;
                if (root.TryGetProperty("do_lower_case", out var l) && l.ValueKind is JsonValueKind.True or JsonValueKind.False) lower = l.GetBoolean();
                if (root.TryGetProperty("strip_accents", out var s) && s.ValueKind is JsonValueKind.True or JsonValueKind.False) stripAccents = s.GetBoolean();
                if (root.TryGetProperty("tokenize_chinese_chars", out var c) && c.ValueKind is JsonValueKind.True or JsonValueKind.False) cjk = c.GetBoolean();
            }
            catch (JsonException e) { throw new InvalidDataException($"'{configPath}' is not valid JSON ({e.Message}).", e); }
        }
        return FromVocab(vocab, lower, stripAccents, cjk);
    }

    /// <summary>A tokenizer over a vocab.txt file. Accents are stripped when lower-casing unless <paramref name="stripAccents"/> says otherwise (as in transformers).</summary>
    public static BertTextEncoder FromVocab(string vocabPath, bool lowerCase = true, bool? stripAccents = null, bool tokenizeChineseChars = true)
    {
        var options = new BertOptions
        {
            LowerCaseBeforeTokenization = lowerCase,
            RemoveNonSpacingMarks = stripAccents ?? lowerCase,
            IndividuallyTokenizeCjk = tokenizeChineseChars,
        };
        try { return new BertTextEncoder(BertTokenizer.Create(vocabPath, options), lowerCase); }
        catch (ArgumentException e) { throw new InvalidDataException($"'{vocabPath}' is not a usable BERT vocabulary: {e.Message}", e); }
    }

    /// <summary>The WordPiece ids of one text, without [CLS] / [SEP], at most <paramref name="maxTokens"/> of them.</summary>
    public IReadOnlyList<int> Tokenize(string text, int maxTokens = int.MaxValue) =>
        maxTokens == int.MaxValue
            ? Tokenizer.EncodeToIds(text, addSpecialTokens: false)
            : Tokenizer.EncodeToIds(text, maxTokens, addSpecialTokens: false, out _, out _);

    /// <summary>
    /// Encodes texts (and, when given, their pair texts) into [B, T] int64 tensors on <paramref name="device"/>, T being
    /// the longest encoded row (at most <paramref name="maxLength"/>).
    /// </summary>
    public BertBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string>? pairs = null, int maxLength = 128, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0) throw new ArgumentException("no texts to encode.", nameof(texts));
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException($"{pairs.Count} pair texts for {texts.Count} texts: each text needs exactly one pair text.", nameof(pairs));
        int specials = pairs is null ? 2 : 3;
        if (maxLength < specials + 1)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"maxLength must leave room for {specials} special tokens and one word: at least {specials + 1}.");

        int budget = maxLength - specials;
        var rows = new List<(List<int> Ids, int FirstLength)>(texts.Count);
        for (int i = 0; i < texts.Count; i++)
        {
            // Neither side can keep more than the whole budget, so longer texts are never tokenized past it.
            var a = Tokenize(texts[i], budget).ToList();
            var b = pairs is null ? null : Tokenize(pairs[i], budget).ToList();
            if (b is not null) TruncateLongestFirst(a, b, budget);
            var ids = new List<int>(maxLength) { Tokenizer.ClassificationTokenId };
            ids.AddRange(a);
            ids.Add(Tokenizer.SeparatorTokenId);
            int first = ids.Count;
            if (b is not null)
            {
                ids.AddRange(b);
                ids.Add(Tokenizer.SeparatorTokenId);
            }
            rows.Add((ids, first));
        }

        int length = rows.Max(r => r.Ids.Count);
        var inputIds = new long[texts.Count * length];
        var mask = new long[texts.Count * length];
        var types = new long[texts.Count * length];
        Array.Fill(inputIds, Tokenizer.PaddingTokenId);
        for (int r = 0; r < rows.Count; r++)
            for (int t = 0; t < rows[r].Ids.Count; t++)
            {
                inputIds[r * length + t] = rows[r].Ids[t];
                mask[r * length + t] = 1;
                types[r * length + t] = t < rows[r].FirstLength ? 0 : 1;
            }
        long[] shape = [texts.Count, length];
        return new BertBatch(tensor(inputIds, shape, device: device), tensor(mask, shape, device: device), tensor(types, shape, device: device));
    }

    // transformers' "longest_first": drop one token at a time from the longer side (the second on ties).
    static void TruncateLongestFirst(List<int> a, List<int> b, int budget)
    {
        while (a.Count + b.Count > budget)
        {
            if (a.Count > b.Count) a.RemoveAt(a.Count - 1);
            else b.RemoveAt(b.Count - 1);
        }
    }
}
