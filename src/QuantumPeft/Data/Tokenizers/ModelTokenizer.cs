using Microsoft.ML.Tokenizers;
using QuantumPeft.Models.Bert;

namespace QuantumPeft.Data.Tokenizers;

/// <summary>
/// The tokenizer of a Hugging Face model folder, read from the folder's own files: GPT-2 byte-level BPE, SentencePiece,
/// tokenizer.json (byte-level BPE) or BERT WordPiece, with special tokens added as transformers adds them.
/// </summary>
/// <remarks>
/// Kinds, in the order they are looked for:
/// <list type="number">
/// <item><c>tokenizer.json</c> when it holds a byte-level BPE that can be reproduced exactly (GPT-2, RoBERTa, Llama 3, Qwen2 layouts):
/// as transformers' AutoTokenizer, which prefers the fast tokenizer, it then wins over vocab.json + merges.txt, whose
/// pre-tokenization is always GPT-2's. Any other tokenizer.json (Unigram, WordPiece, SentencePiece-style BPE with
/// byte_fallback, ...) is passed over for the files below, and is an error only when none of them is there.</item>
/// <item><c>vocab.json</c> + <c>merges.txt</c>: GPT-2 byte-level BPE (no BOS unless tokenizer_config.json's add_bos_token).</item>
/// <item><c>tokenizer.model</c>: SentencePiece BPE or Unigram (LLaMA, Mistral, Gemma): BOS added unless add_bos_token is false.
/// Text after an added token gets no dummy-prefix space, as with transformers' fast tokenizers (legacy=False).</item>
/// <item><c>vocab.txt</c>: BERT WordPiece through <see cref="BertTextEncoder"/> ([CLS] text [SEP]).</item>
/// </list>
/// Added tokens (tokenizer_config.json's added_tokens_decoder, added_tokens.json, tokenizer.json's added_tokens) are
/// matched in the text before anything else; their lstrip / rstrip / single_word flags are not applied.
/// A tokenizer.json BPE model's ignore_merges is not applied either (words found whole in the vocabulary are still merged
/// pair by pair, which gives the same ids for vocabularies whose merges build every token, as tiktoken-derived ones do).
/// </remarks>
public sealed class ModelTokenizer
{
    /// <summary>GPT-2's vocabulary (token to id).</summary>
    public const string VocabJsonFile = "vocab.json";
    /// <summary>GPT-2's merge list.</summary>
    public const string MergesFile = "merges.txt";
    /// <summary>A serialized SentencePiece ModelProto.</summary>
    public const string SentencePieceFile = "tokenizer.model";
    /// <summary>DeBERTa-v2 / v3's name for the same SentencePiece ModelProto (read when tokenizer.model is absent).</summary>
    public const string DebertaSentencePieceFile = "spm.model";
    /// <summary>HF tokenizers' single-file tokenizer.</summary>
    public const string TokenizerJsonFile = "tokenizer.json";
    /// <summary>BERT's WordPiece vocabulary, one token per line.</summary>
    public const string VocabTxtFile = "vocab.txt";

    /// <summary>Kind of a GPT-2 byte-level BPE read from vocab.json + merges.txt.</summary>
    public const string Gpt2BpeKind = "gpt2-bpe";
    /// <summary>Kind of a SentencePiece model read from tokenizer.model.</summary>
    public const string SentencePieceKind = "sentencepiece";
    /// <summary>Kind of a byte-level BPE read from tokenizer.json.</summary>
    public const string TokenizerJsonKind = "tokenizer.json";
    /// <summary>Kind of a BERT WordPiece read from vocab.txt.</summary>
    public const string WordPieceKind = "wordpiece";

    /// <summary>Every file a tokenizer of a model folder may need, for writers that copy a tokenizer next to new weights.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles =
    [
        VocabJsonFile, MergesFile, SentencePieceFile, TokenizerJsonFile, TokenizerFolderConfig.TokenizerConfigFile,
        TokenizerFolderConfig.SpecialTokensMapFile, VocabTxtFile, TokenizerFolderConfig.AddedTokensFile,
    ];

    readonly Func<string, IReadOnlyList<int>> _encode;
    readonly Func<IReadOnlyList<int>, string> _decode;
    readonly int[] _prefix;
    readonly int[] _suffix;
    readonly HashSet<int> _specialIds;

    /// <summary>Which files the tokenizer came from: "gpt2-bpe", "sentencepiece", "tokenizer.json" or "wordpiece".</summary>
    public string Kind { get; }

    /// <summary>The number of ids the tokenizer can produce: its highest id (added tokens included) plus one.</summary>
    public int VocabSize { get; }

    /// <summary>The beginning-of-sequence token's id, when the tokenizer has one.</summary>
    public int? BosTokenId { get; }

    /// <summary>The end-of-sequence token's id, when the tokenizer has one.</summary>
    public int? EosTokenId { get; }

    /// <summary>The padding token's id, when the tokenizer has one.</summary>
    public int? PadTokenId { get; }

    /// <summary>The Microsoft.ML.Tokenizers tokenizer underneath (BpeTokenizer, SentencePieceTokenizer or BertTokenizer).</summary>
    public Tokenizer Underlying { get; }

    /// <summary>The ids of the special tokens, which <see cref="Decode"/> leaves out when asked to.</summary>
    public IReadOnlySet<int> SpecialTokenIds => _specialIds;

    ModelTokenizer(string kind, Tokenizer underlying, Func<string, IReadOnlyList<int>> encode, Func<IReadOnlyList<int>, string> decode,
        int[] prefix, int[] suffix, int? bos, int? eos, int? pad, int vocabSize, IEnumerable<int> specialIds)
    {
        Kind = kind;
        Underlying = underlying;
        _encode = encode;
        _decode = decode;
        _prefix = prefix;
        _suffix = suffix;
        BosTokenId = bos;
        EosTokenId = eos;
        PadTokenId = pad;
        VocabSize = vocabSize;
        _specialIds = [.. specialIds, .. prefix, .. suffix];
    }

    /// <summary>The token ids of <paramref name="text"/>, with the special tokens the model's tokenizer adds (BOS, [CLS] ... [SEP]) when <paramref name="addSpecialTokens"/>.</summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var body = _encode(text);
        if (!addSpecialTokens || (_prefix.Length == 0 && _suffix.Length == 0)) return body;
        var ids = new List<int>(_prefix.Length + body.Count + _suffix.Length);
        ids.AddRange(_prefix);
        ids.AddRange(body);
        ids.AddRange(_suffix);
        return ids;
    }

    /// <summary>The text of <paramref name="ids"/>, special tokens left out when <paramref name="skipSpecialTokens"/>; throws on ids outside [0, VocabSize).</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var list = new List<int>();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside this {Kind} tokenizer's ids [0, {VocabSize}).");
            if (!(skipSpecialTokens && _specialIds.Contains(id))) list.Add(id);
        }
        return list.Count == 0 ? "" : _decode(list);
    }

    /// <summary>
    /// The tokenizer of <paramref name="folder"/>, or null when it has no tokenizer files (a folder of weights only,
    /// which models can still use from token ids). Throws when tokenizer files are there but incomplete, malformed or unsupported.
    /// </summary>
    public static ModelTokenizer? TryLoad(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"model folder not found: '{folder}'.");
        string At(string name) => Path.Combine(folder, name);

        string? jsonUnsupported = null;
        if (File.Exists(At(TokenizerJsonFile)) && TokenizerJson.Read(At(TokenizerJsonFile), out jsonUnsupported) is { } bpe)
            return FromTokenizerJson(folder, bpe);
        bool vocabJson = File.Exists(At(VocabJsonFile)), merges = File.Exists(At(MergesFile));
        if (vocabJson && merges) return FromGpt2Bpe(folder);
        if (File.Exists(At(SentencePieceFile)) || File.Exists(At(DebertaSentencePieceFile))) return FromSentencePiece(folder);
        if (File.Exists(At(VocabTxtFile))) return FromWordPiece(folder);
        if (jsonUnsupported is not null)
            throw new NotSupportedException(
                $"'{At(TokenizerJsonFile)}' cannot be used: {jsonUnsupported}; and '{folder}' has none of {VocabJsonFile} + {MergesFile}, {SentencePieceFile} or {VocabTxtFile} to read instead.");
        if (vocabJson || merges)
            throw new FileNotFoundException(
                $"'{folder}' has {(vocabJson ? VocabJsonFile : MergesFile)} but no {(vocabJson ? MergesFile : VocabJsonFile)}: a GPT-2 byte-level BPE tokenizer needs both.",
                At(vocabJson ? MergesFile : VocabJsonFile));
        return null;
    }

    /// <summary>The tokenizer of <paramref name="folder"/>; throws naming the folder and the files looked for when it has none.</summary>
    public static ModelTokenizer Load(string folder) =>
        TryLoad(folder) ?? throw new FileNotFoundException(
            $"no tokenizer in '{folder}': looked for {TokenizerJsonFile}, {VocabJsonFile} + {MergesFile}, {SentencePieceFile} and {VocabTxtFile} " +
            $"(with {TokenizerFolderConfig.TokenizerConfigFile}, {TokenizerFolderConfig.SpecialTokensMapFile} and {TokenizerFolderConfig.AddedTokensFile} beside them). " +
            "Copy the tokenizer files of the model into the folder, or work from token ids.");

    const string Gpt2EndOfText = "<|endoftext|>";

    static ModelTokenizer FromGpt2Bpe(string folder)
    {
        var vocabPath = Path.Combine(folder, VocabJsonFile);
        var mergesPath = Path.Combine(folder, MergesFile);
        var vocab = ByteLevelBpe.ReadVocabJson(vocabPath);
        // GPT2Tokenizer's defaults: <|endoftext|> is its bos, eos and unk token, so it is never split even when no file names it.
        var endOfText = vocab.ContainsKey(Gpt2EndOfText) ? Gpt2EndOfText : null;
        var cfg = TokenizerFolderConfig.Read(folder).WithDefaults(endOfText, endOfText, endOfText);
        var merges = ByteLevelBpe.ReadMergesTxt(mergesPath);
        var added = AddedWithSpecials(cfg, cfg.AddedTokens, t => vocab.TryGetValue(t, out int id) ? id : null);
        ByteLevelBpe.CheckMerges(merges, vocab, added.Keys, $"'{vocabPath}'", $"'{mergesPath}'", maybeCut: !ByteLevelBpe.EndsWithNewline(mergesPath));
        var bpe = ByteLevelBpe.Create(vocab, merges, ByteLevelBpe.Gpt2Pattern, added, $"'{vocabPath}' + '{mergesPath}'");
        // GPT2Tokenizer puts its prefix space before any text, even text that starts with one.
        bool prefixSpace = cfg.AddPrefixSpace == true;
        return FromBpe(Gpt2BpeKind, folder, cfg, bpe, vocab, added, text => prefixSpace ? " " + text : text, templatePrefix: null, templateSuffix: null);
    }

    static ModelTokenizer FromTokenizerJson(string folder, TokenizerJsonBpe json)
    {
        var cfg = TokenizerFolderConfig.Read(folder);
        var path = Path.Combine(folder, TokenizerJsonFile);
        var vocab = json.Vocab;
        var declared = json.AddedTokens.Concat(cfg.AddedTokens.Where(t => json.AddedTokens.All(j => j.Content != t.Content))).ToList();
        var added = AddedWithSpecials(cfg, declared, t => vocab.TryGetValue(t, out int id) ? id : null);
        var bpe = ByteLevelBpe.Create(vocab, json.Merges, json.Pattern, added, $"'{path}'");
        // transformers' GPT-2 / RoBERTa fast tokenizers rewrite the pre-tokenizer when tokenizer_config.json's add_prefix_space differs.
        bool prefixSpace = cfg.AddPrefixSpace ?? json.AddPrefixSpace;
        string Prepare(string text)
        {
            foreach (var form in json.Normalizations) text = text.Normalize(form);
            if (json.Lowercase) text = text.ToLowerInvariant();
            // HF ByteLevel(add_prefix_space) adds the space only when the text does not already start with one.
            return prefixSpace && !text.StartsWith(' ') ? " " + text : text;
        }
        return FromBpe(TokenizerJsonKind, folder, cfg, bpe, vocab, added, Prepare, json.Prefix, json.Suffix,
            declared.Where(t => t.Special).Select(t => t.Id));
    }

    static ModelTokenizer FromBpe(string kind, string folder, TokenizerFolderConfig cfg, BpeTokenizer bpe, Dictionary<string, int> vocab,
        IReadOnlyDictionary<string, int> added, Func<string, string> prepare, int[]? templatePrefix, int[]? templateSuffix, IEnumerable<int>? specialIds = null)
    {
        int? Lookup(string t) => added.TryGetValue(t, out int a) ? a : vocab.TryGetValue(t, out int v) ? v : null;
        var (bos, eos, pad, unk) = SpecialIds(cfg, Lookup);
        var prefix = Flagged(cfg.AddBosToken, bos, "add_bos_token", "bos_token", folder) ?? templatePrefix ?? [];
        var suffix = Flagged(cfg.AddEosToken, eos, "add_eos_token", "eos_token", folder) ?? templateSuffix ?? [];
        int size = Math.Max(vocab.Values.Max(), added.Count == 0 ? 0 : added.Values.Max()) + 1;
        var specials = cfg.AddedTokens.Where(t => t.Special).Select(t => t.Id).Concat(specialIds ?? []).Concat(Present(bos, eos, pad, unk));
        return new ModelTokenizer(kind, bpe,
            text => bpe.EncodeToIds(prepare(text)),
            ids => bpe.Decode(ids, considerSpecialTokens: true) ?? "",
            prefix, suffix, bos, eos, pad, size, specials);
    }

    static ModelTokenizer FromSentencePiece(string folder)
    {
        var cfg = TokenizerFolderConfig.Read(folder);
        var path = File.Exists(Path.Combine(folder, SentencePieceFile)) ? Path.Combine(folder, SentencePieceFile) : Path.Combine(folder, DebertaSentencePieceFile);
        var sp = ReadSentencePiece(path, specialTokens: null);
        var pieces = sp.Vocabulary;
        int? Piece(string t) => pieces.TryGetValue(t, out int id) ? id : null;
        var added = AddedWithSpecials(cfg, cfg.AddedTokens, Piece);
        // The model's own control pieces are the special tokens when no config names them (transformers' defaults are the same <s>, </s>, <unk>).
        int? Own(string token, int id) => pieces.TryGetValue(token, out int found) && found == id ? id : null;
        if (cfg.BosToken is null && Own(sp.BeginningOfSentenceToken, sp.BeginningOfSentenceId) is { } b) added.TryAdd(sp.BeginningOfSentenceToken, b);
        if (cfg.EosToken is null && Own(sp.EndOfSentenceToken, sp.EndOfSentenceId) is { } e) added.TryAdd(sp.EndOfSentenceToken, e);
        if (cfg.UnkToken is null && Own(sp.UnknownToken, sp.UnknownId) is { } u) added.TryAdd(sp.UnknownToken, u);
        if (added.Count > 0) sp = ReadSentencePiece(path, added);

        int? Lookup(string t) => added.TryGetValue(t, out int a) ? a : Piece(t);
        var (bos, eos, pad, unk) = SpecialIds(cfg, Lookup);
        bos ??= Own(sp.BeginningOfSentenceToken, sp.BeginningOfSentenceId);
        eos ??= Own(sp.EndOfSentenceToken, sp.EndOfSentenceId);
        unk ??= Own(sp.UnknownToken, sp.UnknownId);
        // LlamaTokenizer's defaults: add_bos_token true, add_eos_token false.
        var prefix = Flagged(cfg.AddBosToken ?? (bos is not null), bos, "add_bos_token", "bos_token", folder) ?? [];
        var suffix = Flagged(cfg.AddEosToken, eos, "add_eos_token", "eos_token", folder) ?? [];
        int size = Math.Max(pieces.Count - 1, added.Count == 0 ? 0 : added.Values.Max()) + 1;
        var specials = cfg.AddedTokens.Where(t => t.Special).Select(t => t.Id).Concat(Present(bos, eos, pad, unk));
        return new ModelTokenizer(SentencePieceKind, sp,
            text => sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false),
            ids => sp.Decode(ids, considerSpecialTokens: true) ?? "",
            prefix, suffix, bos, eos, pad, size, specials);
    }

    static SentencePieceTokenizer ReadSentencePiece(string path, IReadOnlyDictionary<string, int>? specialTokens)
    {
        if (new FileInfo(path).Length == 0)
            throw new InvalidDataException($"'{path}' is empty; expected a SentencePiece model (a serialized sentencepiece ModelProto).");
        SentencePieceTokenizer sp;
        using var stream = File.OpenRead(path);
        try { sp = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false, specialTokens); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Google.Protobuf's InvalidProtocolBufferException (an IOException) for a corrupt or truncated file; others for a model the library cannot use.
            throw new InvalidDataException(
                $"'{path}' is not a usable SentencePiece model (expected a serialized sentencepiece ModelProto: pieces, trainer_spec with a BPE or Unigram model_type, normalizer_spec): {e.Message}", e);
        }
        if (sp.Vocabulary.Count == 0)
            throw new InvalidDataException($"'{path}' holds a SentencePiece model with no pieces.");
        return sp;
    }

    static ModelTokenizer FromWordPiece(string folder)
    {
        var cfg = TokenizerFolderConfig.Read(folder);
        var path = Path.Combine(folder, VocabTxtFile);
        var bert = BertTextEncoder.FromFolder(folder).Tokenizer;
        // transformers' load_vocab: one token per line, a later duplicate taking the id.
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        int lines = 0;
        foreach (var line in File.ReadLines(path)) vocab[line.TrimEnd('\r')] = lines++;
        int? Lookup(string t) => vocab.TryGetValue(t, out int id) ? id : null;
        var (bos, eos, pad, unk) = SpecialIds(cfg, Lookup);
        pad ??= bert.PaddingTokenId;
        unk ??= Lookup(bert.UnknownToken);
        int size = Math.Max(lines - 1, cfg.AddedTokens.Count == 0 ? 0 : cfg.AddedTokens.Max(t => t.Id)) + 1;
        var specials = cfg.AddedTokens.Where(t => t.Special).Select(t => t.Id)
            .Concat(Present(bos, eos, pad, unk, bert.ClassificationTokenId, bert.SeparatorTokenId, bert.MaskingTokenId));
        return new ModelTokenizer(WordPieceKind, bert,
            text => bert.EncodeToIds(text, addSpecialTokens: false),
            ids => bert.Decode(ids, false) ?? "",
            [bert.ClassificationTokenId], [bert.SeparatorTokenId], bos, eos, pad, size, specials);
    }

    // Added tokens, plus the named special tokens that the vocabulary has: transformers never splits either.
    static Dictionary<string, int> AddedWithSpecials(TokenizerFolderConfig cfg, IEnumerable<AddedToken> declared, Func<string, int?> vocab)
    {
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in declared) added.TryAdd(t.Content, t.Id);
        foreach (var token in new[] { cfg.BosToken, cfg.EosToken, cfg.UnkToken, cfg.PadToken })
            if (token is not null && !added.ContainsKey(token) && vocab(token) is { } id) added[token] = id;
        return added;
    }

    static (int? Bos, int? Eos, int? Pad, int? Unk) SpecialIds(TokenizerFolderConfig cfg, Func<string, int?> lookup) =>
        (cfg.Resolve(cfg.BosToken, lookup, cfg.ConfigBosId),
         cfg.Resolve(cfg.EosToken, lookup, cfg.ConfigEosId),
         cfg.Resolve(cfg.PadToken, lookup, cfg.ConfigPadId),
         cfg.Resolve(cfg.UnkToken, lookup, null));

    // An add_bos_token / add_eos_token flag: [id] when set, [] when cleared, null when the config does not say.
    static int[]? Flagged(bool? flag, int? id, string flagName, string tokenName, string folder)
    {
        if (flag is not { } on) return null;
        if (!on) return [];
        return id is { } value ? [value]
            : throw new InvalidDataException($"'{Path.Combine(folder, TokenizerFolderConfig.TokenizerConfigFile)}' sets {flagName}, but no {tokenName} resolves to a token id " +
                $"(looked in {TokenizerFolderConfig.SpecialTokensMapFile}, {TokenizerFolderConfig.TokenizerConfigFile}, the vocabulary and {TokenizerFolderConfig.ModelConfigFile}).");
    }

    static IEnumerable<int> Present(params int?[] ids) => ids.Where(i => i is not null).Select(i => i!.Value);
}
