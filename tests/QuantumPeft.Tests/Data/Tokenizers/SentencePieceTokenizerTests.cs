using System.Text.Json.Nodes;
using QuantumPeft.Data.Tokenizers;
using static QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter;

namespace QuantumPeft.Tests.Data.Tokenizers;

/// <summary>SentencePiece BPE from a hand-encoded tokenizer.model, LLaMA layout (byte fallback, dummy prefix, BOS added).</summary>
public sealed class SentencePieceTokenizerTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-tok-sp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3-258, then ll 259, ▁h 260, ▁w 261, or 262, ▁he 263, ▁hell 264, ▁hello 265,
    // ld 266, ▁wor 267, ▁world 268 (scores -1 .. -10), then the characters ▁ 269, h 270, e 271, l 272, o 273, w 274, r 275, d 276.
    static readonly string[] Merged = ["ll", "▁h", "▁w", "or", "▁he", "▁hell", "▁hello", "ld", "▁wor", "▁world"];
    static readonly string[] Chars = ["▁", "h", "e", "l", "o", "w", "r", "d"];

    string Folder(string name, List<Piece>? pieces = null, JsonObject? config = null)
    {
        var folder = Path.Combine(_dir, name);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceModel(pieces ?? LlamaPieces(Merged, Chars)));
        if (config is not null) WriteJson(Path.Combine(folder, "tokenizer_config.json"), config);
        return folder;
    }

    static JsonObject LlamaConfig(bool addBos = true, bool addEos = false) => new()
    {
        ["add_bos_token"] = addBos,
        ["add_eos_token"] = addEos,
        ["bos_token"] = new JsonObject { ["__type"] = "AddedToken", ["content"] = "<s>", ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false },
        ["eos_token"] = new JsonObject { ["__type"] = "AddedToken", ["content"] = "</s>", ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false },
        ["unk_token"] = "<unk>",
        ["pad_token"] = null,
        ["legacy"] = false,
        ["added_tokens_decoder"] = new JsonObject
        {
            ["0"] = new JsonObject { ["content"] = "<unk>", ["special"] = true },
            ["1"] = new JsonObject { ["content"] = "<s>", ["special"] = true },
            ["2"] = new JsonObject { ["content"] = "</s>", ["special"] = true },
        },
        ["tokenizer_class"] = "LlamaTokenizer",
    };

    [Theory]
    // add_dummy_prefix: "hello world" is encoded as "▁hello▁world".
    [InlineData("hello world", new[] { 1, 265, 268 })]
    [InlineData("hell", new[] { 1, 264 })]
    [InlineData("world hello", new[] { 1, 268, 265 })]
    // remove_extra_whitespaces is off (as in LLaMA): the second space stays a piece of its own.
    [InlineData("hello  world", new[] { 1, 265, 269, 268 })]
    // Byte fallback: H (0x48) and i (0x69) are not pieces, so they become <0x48> <0x69>; é is <0xC3> <0xA9>.
    [InlineData("Hi", new[] { 1, 269, 75, 108 })]
    [InlineData("é", new[] { 1, 269, 198, 172 })]
    // Added tokens are matched in the text.
    [InlineData("hello</s>", new[] { 1, 265, 2 })]
    public void IdsFollowSentencePieceBpeWithBos(string text, int[] ids)
    {
        var tok = ModelTokenizer.Load(Folder("llama", config: LlamaConfig()));
        Assert.Equal("sentencepiece", tok.Kind);
        Assert.Equal(ids, tok.Encode(text));
        Assert.Equal(ids[1..], tok.Encode(text, addSpecialTokens: false));
    }

    [Theory]
    [InlineData("hello world")]
    [InlineData("Hi there, é and 東京!")]
    [InlineData("hello  world")]
    public void DecodeInvertsEncode(string text)
    {
        var tok = ModelTokenizer.Load(Folder("llama", config: LlamaConfig()));
        Assert.Equal(text, tok.Decode(tok.Encode(text)));
    }

    [Fact]
    public void MergesGoByScoreNotByPieceOrder()
    {
        // "el" comes last in the model but scores highest, so it is merged first and "▁hello" can no longer form.
        var pieces = LlamaPieces(Merged, Chars);
        pieces.Add(new Piece("el", -0.5f, PieceType.Normal));
        var tok = ModelTokenizer.Load(Folder("el", pieces));
        Assert.Equal([1, 260, 277, 272, 273], tok.Encode("hello"));
        Assert.Equal("hello", tok.Decode(tok.Encode("hello")));
    }

    [Fact]
    public void UnigramModelsTakeTheBestScoringSegmentation()
    {
        // Viterbi over piece scores: ▁hello (-3) beats ▁he + llo (-4); "hold" has no whole piece, so ▁ h o ld (-13) beats ▁ h o l d (-21).
        var pieces = new List<Piece> { new("<unk>", 0, PieceType.Unknown), new("<s>", 0, PieceType.Control), new("</s>", 0, PieceType.Control) };
        string[] normal = ["▁hello", "▁he", "llo", "▁world", "▁wor", "ld", "▁", "h", "e", "l", "o", "w", "r", "d"];
        float[] scores = [-3, -2, -2, -3, -2, -2, -1, -5, -5, -5, -5, -5, -5, -5];
        for (int i = 0; i < normal.Length; i++) pieces.Add(new(normal[i], scores[i], PieceType.Normal));
        var folder = Path.Combine(_dir, "unigram");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceModel(pieces, byteFallback: false, unigram: true));
        var tok = ModelTokenizer.Load(folder);
        Assert.Equal([1, 3, 6], tok.Encode("hello world"));
        Assert.Equal([1, 9, 10, 13, 8], tok.Encode("hold"));
        Assert.Equal("hello world", tok.Decode(tok.Encode("hello world")));
    }

    [Fact]
    public void SpecialTokensComeFromTheConfigOrTheModel()
    {
        var configured = ModelTokenizer.Load(Folder("configured", config: LlamaConfig()));
        Assert.Equal((1, 2, (int?)null, 277), (configured.BosTokenId, configured.EosTokenId, configured.PadTokenId, configured.VocabSize));
        // Without a tokenizer_config.json the model's own <s> / </s> are used, and BOS is still added (LlamaTokenizer's default).
        var bare = ModelTokenizer.Load(Folder("bare"));
        Assert.Equal((1, 2), (bare.BosTokenId, bare.EosTokenId));
        Assert.Equal([1, 265, 268], bare.Encode("hello world"));
        Assert.Equal("hello world", bare.Decode([1, 265, 268, 2]));
        Assert.Equal("<s>hello world</s>", bare.Decode([1, 265, 268, 2], skipSpecialTokens: false));
    }

    [Fact]
    public void AddBosAndAddEosFlagsAreHonoured()
    {
        var eosOnly = ModelTokenizer.Load(Folder("eos", config: LlamaConfig(addBos: false, addEos: true)));
        Assert.Equal([265, 268, 2], eosOnly.Encode("hello world"));
        Assert.Equal([265, 268], eosOnly.Encode("hello world", addSpecialTokens: false));
    }
}
