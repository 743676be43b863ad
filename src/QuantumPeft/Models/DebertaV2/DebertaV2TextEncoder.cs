using System.Text.Json;
using Microsoft.ML.Tokenizers;
using QuantumPeft.Data.Tokenizers;
using QuantumPeft.Models.Bert;
using static TorchSharp.torch;

namespace QuantumPeft.Models.DebertaV2;

/// <summary>DeBERTa-v2 / v3 tokenization (DebertaV2Tokenizer: a SentencePiece spm.model) of sentences and sentence pairs into model inputs.</summary>
/// <remarks>
/// Layout as in transformers: [CLS] a [SEP] (token types 0) and [CLS] a [SEP] b [SEP] (b [SEP] has token type 1); truncation
/// to maxLength, longest sequence first for pairs; padding with [PAD] to the longest row of the batch only. The pieces and
/// their ids come from spm.model ([PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3 in DeBERTa-v3's), the added tokens ([MASK] = 128000)
/// from tokenizer_config.json, special_tokens_map.json and added_tokens.json, through <see cref="ModelTokenizer"/>.
/// </remarks>
public sealed class DebertaV2TextEncoder
{
    /// <summary>The SentencePiece tokenizer of the folder (added tokens matched first).</summary>
    public ModelTokenizer Tokenizer { get; }

    /// <summary>The id of [CLS] (cls_token), which starts every row.</summary>
    public int ClsTokenId { get; }

    /// <summary>The id of [SEP] (sep_token), which ends each segment.</summary>
    public int SepTokenId { get; }

    /// <summary>The id of [PAD] (pad_token), which fills rows shorter than the longest.</summary>
    public int PadTokenId { get; }

    /// <summary>The id of [MASK] (mask_token), when the tokenizer has one.</summary>
    public int? MaskTokenId { get; }

    /// <summary>Whether text is lower-cased before SentencePiece (tokenizer_config.json do_lower_case, default false).</summary>
    public bool LowerCase { get; }

    DebertaV2TextEncoder(ModelTokenizer tokenizer, int cls, int sep, int pad, int? mask, bool lowerCase)
    {
        Tokenizer = tokenizer;
        ClsTokenId = cls;
        SepTokenId = sep;
        PadTokenId = pad;
        MaskTokenId = mask;
        LowerCase = lowerCase;
    }

    /// <summary>Reads spm.model (or tokenizer.model) and the special-token files of a DeBERTa-v2 / v3 model folder.</summary>
    /// <exception cref="FileNotFoundException">No SentencePiece model in the folder: the message names the folder and the files looked for.</exception>
    public static DebertaV2TextEncoder FromFolder(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"model folder not found: '{folder}'.");
        var spm = Path.Combine(folder, ModelTokenizer.DebertaSentencePieceFile);
        if (!File.Exists(spm) && !File.Exists(Path.Combine(folder, ModelTokenizer.SentencePieceFile)))
            throw new FileNotFoundException(
                $"no SentencePiece model in '{folder}': looked for {ModelTokenizer.DebertaSentencePieceFile} (DebertaV2Tokenizer's file) and {ModelTokenizer.SentencePieceFile}, " +
                $"with {TokenizerFolderConfig.TokenizerConfigFile}, {TokenizerFolderConfig.SpecialTokensMapFile} and {TokenizerFolderConfig.AddedTokensFile} beside them. " +
                "Copy the tokenizer files of the DeBERTa model into the folder.", spm);

        var config = TokenizerFolderConfig.ReadObject(Path.Combine(folder, TokenizerFolderConfig.TokenizerConfigFile));
        var map = TokenizerFolderConfig.ReadObject(Path.Combine(folder, TokenizerFolderConfig.SpecialTokensMapFile));
        bool lower = Flag(config, "do_lower_case") ?? false;
        if (Flag(config, "split_by_punct") == true)
            throw new NotSupportedException($"'{Path.Combine(folder, TokenizerFolderConfig.TokenizerConfigFile)}': split_by_punct true is not supported (supported: false, DebertaV2Tokenizer's default).");

        var tokenizer = ModelTokenizer.Load(folder);
        if (tokenizer.Underlying is not SentencePieceTokenizer sp)
            throw new InvalidDataException($"'{folder}': its tokenizer files give a {tokenizer.Kind} tokenizer, not DeBERTa's SentencePiece model.");
        var added = TokenizerFolderConfig.Read(folder);
        // special_tokens_map.json wins over tokenizer_config.json; the defaults are DebertaV2Tokenizer's.
        int? Find(string key, string fallback)
        {
            var token = TokenString(map, key) ?? TokenString(config, key) ?? fallback;
            return added.Resolve(token, t => sp.Vocabulary.TryGetValue(t, out int id) ? id : null, null);
        }
        int Require(string key, string fallback) => Find(key, fallback) ?? throw new InvalidDataException(
            $"'{folder}': {key} '{TokenString(map, key) ?? TokenString(config, key) ?? fallback}' is neither a piece of its SentencePiece model nor an added token " +
            $"(looked in {TokenizerFolderConfig.SpecialTokensMapFile}, {TokenizerFolderConfig.TokenizerConfigFile} and {TokenizerFolderConfig.AddedTokensFile}).");
        return new DebertaV2TextEncoder(tokenizer, Require("cls_token", "[CLS]"), Require("sep_token", "[SEP]"), Require("pad_token", "[PAD]"),
            Find("mask_token", "[MASK]"), lower);
    }

    /// <summary>The SentencePiece ids of one text, without [CLS] / [SEP], at most <paramref name="maxTokens"/> of them.</summary>
    public IReadOnlyList<int> Tokenize(string text, int maxTokens = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = Tokenizer.Encode(LowerCase ? text.ToLowerInvariant() : text, addSpecialTokens: false);
        return ids.Count <= maxTokens ? ids : ids.Take(maxTokens).ToList();
    }

    /// <summary>
    /// Encodes texts (and, when given, their pair texts) into [B, T] int64 tensors on <paramref name="device"/>, T being the
    /// longest encoded row (at most <paramref name="maxLength"/>).
    /// </summary>
    public BertBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string>? pairs = null, int maxLength = 128, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0) throw new ArgumentException("no texts to encode.", nameof(texts));
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException($"{pairs.Count} pair texts for {texts.Count} texts: each text needs exactly one pair text.", nameof(pairs));
        int specials = pairs is null ? 2 : 3;
        if (maxLength < specials + 1)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"maxLength must leave room for {specials} special tokens and one piece: at least {specials + 1}.");

        int budget = maxLength - specials;
        var rows = new List<(List<int> Ids, int FirstLength)>(texts.Count);
        for (int i = 0; i < texts.Count; i++)
        {
            if (texts[i] is null) throw new ArgumentException($"text {i} is null.", nameof(texts));
            if (pairs is not null && pairs[i] is null)
                throw new ArgumentException($"pair text {i} is null: a sentence-pair task needs a second sentence for every example.", nameof(pairs));
            var a = Tokenize(texts[i]).ToList();
            var b = pairs is null ? null : Tokenize(pairs[i]).ToList();
            Truncate(a, b, budget);
            var ids = new List<int>(maxLength) { ClsTokenId };
            ids.AddRange(a);
            ids.Add(SepTokenId);
            int first = ids.Count;
            if (b is not null)
            {
                ids.AddRange(b);
                ids.Add(SepTokenId);
            }
            rows.Add((ids, first));
        }

        int length = rows.Max(r => r.Ids.Count);
        var inputIds = new long[texts.Count * length];
        var mask = new long[texts.Count * length];
        var types = new long[texts.Count * length];
        Array.Fill(inputIds, PadTokenId);
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

    // transformers' "longest_first": one token at a time from the longer side (the second on ties); a single text is cut at the end.
    static void Truncate(List<int> a, List<int>? b, int budget)
    {
        if (b is null)
        {
            if (a.Count > budget) a.RemoveRange(budget, a.Count - budget);
            return;
        }
        while (a.Count + b.Count > budget)
        {
            if (a.Count > b.Count) a.RemoveAt(a.Count - 1);
            else b.RemoveAt(b.Count - 1);
        }
    }

    static bool? Flag(JsonElement? parent, string key) =>
        parent is { } p && p.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    // transformers writes a special token either as a plain string or as an AddedToken object {"content": ...}.
    static string? TokenString(JsonElement? parent, string key) =>
        parent is { } p && p.TryGetProperty(key, out var v)
            ? v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
                _ => null,
            }
            : null;
}
