using Microsoft.ML.Tokenizers;
using QuantumPeft.Data.Tokenizers;
using QuantumPeft.Models.Bert;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Roberta;

/// <summary>RoBERTa's byte-level BPE (vocab.json + merges.txt, or tokenizer.json) into model inputs: &lt;s&gt; A &lt;/s&gt; and &lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;.</summary>
/// <remarks>
/// As transformers' RobertaTokenizer: the texts are tokenized without a prefix space, the pair's second text on its own; token
/// type ids are all 0 (RoBERTa has one token type); truncation is longest_first over the two texts; rows are padded with
/// &lt;pad&gt; to the longest row of the batch. The special tokens are tokenizer_config.json's (cls_token, sep_token, pad_token
/// through bos / eos / pad), defaulting to RoBERTa's &lt;s&gt;, &lt;/s&gt;, &lt;pad&gt;.
/// </remarks>
public sealed class RobertaTextEncoder
{
    /// <summary>The tokenizer of the folder (its body tokens; the special tokens are added here).</summary>
    public ModelTokenizer Tokenizer { get; }

    /// <summary>&lt;s&gt;: the first token of every row (RoBERTa's cls_token).</summary>
    public int ClsTokenId { get; }

    /// <summary>&lt;/s&gt;: ends each text (RoBERTa's sep_token), twice between the two texts of a pair.</summary>
    public int SepTokenId { get; }

    /// <summary>&lt;pad&gt;: fills short rows; the model's pad_token_id.</summary>
    public int PadTokenId { get; }

    RobertaTextEncoder(ModelTokenizer tokenizer, int cls, int sep, int pad)
    {
        Tokenizer = tokenizer;
        ClsTokenId = cls;
        SepTokenId = sep;
        PadTokenId = pad;
    }

    /// <summary>Reads the folder's byte-level BPE and looks up its special tokens.</summary>
    /// <exception cref="FileNotFoundException">The folder has no tokenizer files.</exception>
    /// <exception cref="InvalidDataException">The vocabulary lacks one of the special tokens.</exception>
    public static RobertaTextEncoder FromFolder(string folder)
    {
        var tokenizer = ModelTokenizer.Load(folder);
        if (tokenizer.Underlying is not BpeTokenizer bpe)
            throw new InvalidDataException($"'{folder}': a RoBERTa folder needs a byte-level BPE tokenizer ({ModelTokenizer.VocabJsonFile} + {ModelTokenizer.MergesFile}, or {ModelTokenizer.TokenizerJsonFile}), found {tokenizer.Kind}.");
        var cfg = TokenizerFolderConfig.Read(folder);
        int Id(string? configured, string fallback, string role)
        {
            var token = configured ?? fallback;
            return bpe.Vocabulary.TryGetValue(token, out var id) ? id
                : throw new InvalidDataException($"'{folder}': the {role} token '{token}' is not in the vocabulary ({ModelTokenizer.VocabJsonFile}); RoBERTa needs <s>, </s> and <pad>.");
        }
        return new RobertaTextEncoder(tokenizer, Id(cfg.BosToken, "<s>", "cls / bos"), Id(cfg.EosToken, "</s>", "sep / eos"), Id(cfg.PadToken, "<pad>", "pad"));
    }

    /// <summary>The BPE ids of one text, without special tokens, at most <paramref name="maxTokens"/> of them.</summary>
    public IReadOnlyList<int> Tokenize(string text, int maxTokens = int.MaxValue)
    {
        var ids = Tokenizer.Encode(text, addSpecialTokens: false);
        return ids.Count <= maxTokens ? ids : ids.Take(maxTokens).ToList();
    }

    /// <summary>
    /// Encodes texts (and, when given, their pair texts) into [B, T] int64 tensors on <paramref name="device"/>, T being the
    /// longest encoded row (at most <paramref name="maxLength"/>); the same contract as <see cref="BertTextEncoder.Encode"/>.
    /// </summary>
    public BertBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string>? pairs = null, int maxLength = 128, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0) throw new ArgumentException("no texts to encode.", nameof(texts));
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException($"{pairs.Count} pair texts for {texts.Count} texts: each text needs exactly one pair text.", nameof(pairs));
        int specials = pairs is null ? 2 : 4;
        if (maxLength < specials + 1)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"maxLength must leave room for {specials} special tokens and one word: at least {specials + 1}.");

        int budget = maxLength - specials;
        var rows = new List<List<int>>(texts.Count);
        for (int i = 0; i < texts.Count; i++)
        {
            var a = Tokenize(texts[i], budget).ToList();
            var b = pairs is null ? null : Tokenize(pairs[i], budget).ToList();
            if (b is not null)
                while (a.Count + b.Count > budget)
                {
                    // longest_first: one token at a time from the longer side (the second on ties).
                    if (a.Count > b.Count) a.RemoveAt(a.Count - 1);
                    else b.RemoveAt(b.Count - 1);
                }
            var ids = new List<int>(maxLength) { ClsTokenId };
            ids.AddRange(a);
            ids.Add(SepTokenId);
            if (b is not null)
            {
                ids.Add(SepTokenId);
                ids.AddRange(b);
                ids.Add(SepTokenId);
            }
            rows.Add(ids);
        }

        int length = rows.Max(r => r.Count);
        var inputIds = new long[texts.Count * length];
        var mask = new long[texts.Count * length];
        Array.Fill(inputIds, PadTokenId);
        for (int r = 0; r < rows.Count; r++)
            for (int t = 0; t < rows[r].Count; t++)
            {
                inputIds[r * length + t] = rows[r][t];
                mask[r * length + t] = 1;
            }
        long[] shape = [texts.Count, length];
        return new BertBatch(tensor(inputIds, shape, device: device), tensor(mask, shape, device: device), zeros(shape, ScalarType.Int64, device: device));
    }
}
