using System.Text.Json.Nodes;
using QuantumPeft.Data.Tokenizers;
using static QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter;

namespace QuantumPeft.Tests.Data.Tokenizers;

/// <summary>GPT-2 byte-level BPE from vocab.json + merges.txt, on a small vocabulary whose ids are worked out by hand.</summary>
public sealed class Gpt2BpeTokenizerTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-tok-gpt2-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Folder(string name, Action<string>? extra = null)
    {
        var folder = Path.Combine(_dir, name);
        WriteGpt2(folder, SmallVocab(), SmallMerges);
        extra?.Invoke(folder);
        return folder;
    }

    // Ids: bytes 0-255 in GPT-2's order ('!' = 0, 'h' = 71, 'Ġ' = 220, 'Ċ' = 198), then one per merge:
    // Ġt 256, he 257, Ġthe 258, ll 259, hell 260, hello 261, Ġw 262, or 263, Ġwor 264, ld 265, Ġworld 266, Ġhello 267, 's 268, 12 269, 34 270,
    // and <|endoftext|> 271.
    [Theory]
    [InlineData("hello world", new[] { 261, 266 })]
    [InlineData("hello the world", new[] { 261, 258, 266 })]
    // "the" has no merge for "t he" (only "Ġt he"), "'s" is its own pre-token, punctuation splits off.
    [InlineData("the world's hello, world!", new[] { 83, 257, 266, 268, 267, 11, 266, 0 })]
    // é is two bytes, C3 A9, whose tokens are 'Ã' (127) and '©' (102); no merge joins them to letters.
    [InlineData("héllo", new[] { 71, 127, 102, 259, 78 })]
    // GPT-2's regex keeps each newline before a word separate ("\s+(?!\S)" then "\s+").
    [InlineData("hello\n\nworld", new[] { 261, 198, 198, 86, 263, 265 })]
    [InlineData("1234", new[] { 269, 270 })]
    [InlineData("  hello", new[] { 220, 267 })]
    [InlineData("hello<|endoftext|>world", new[] { 261, 271, 86, 263, 265 })]
    public void IdsFollowGpt2ByteLevelBpe(string text, int[] ids)
    {
        var tok = ModelTokenizer.Load(Folder("plain"));
        Assert.Equal("gpt2-bpe", tok.Kind);
        Assert.Equal(ids, tok.Encode(text));
        Assert.Equal(ids, tok.Encode(text, addSpecialTokens: false));
    }

    [Theory]
    [InlineData("hello world")]
    [InlineData("The Quick, brown fox: 42 jumps!  Twice\tover\n")]
    [InlineData("naïve café – 東京 😀")]
    [InlineData(" leading and trailing ")]
    public void DecodeInvertsEncode(string text)
    {
        var tok = ModelTokenizer.Load(Folder("plain"));
        Assert.Equal(text, tok.Decode(tok.Encode(text)));
    }

    [Fact]
    public void NoBosByDefaultAndSpecialTokensFromTheConfig()
    {
        var tok = ModelTokenizer.Load(Folder("config", f => WriteJson(Path.Combine(f, "tokenizer_config.json"), new JsonObject
        {
            ["add_prefix_space"] = false,
            ["bos_token"] = EndOfText,
            ["eos_token"] = new JsonObject { ["__type"] = "AddedToken", ["content"] = EndOfText, ["special"] = true },
            ["unk_token"] = EndOfText,
            ["model_max_length"] = 1024,
        })));
        Assert.Equal((271, 271, (int?)null), (tok.BosTokenId, tok.EosTokenId, tok.PadTokenId));
        Assert.Equal([261, 266], tok.Encode("hello world"));
        Assert.Equal(272, tok.VocabSize);
        // transformers skips special tokens on request only.
        Assert.Equal("hello world", tok.Decode([261, 271, 266]));
        Assert.Equal("hello<|endoftext|> world", tok.Decode([261, 271, 266], skipSpecialTokens: false));
    }

    [Fact]
    public void AddBosTokenAndPrefixSpaceAreHonoured()
    {
        var tok = ModelTokenizer.Load(Folder("bos", f => WriteJson(Path.Combine(f, "tokenizer_config.json"), new JsonObject
        {
            ["add_bos_token"] = true,
            ["add_prefix_space"] = true,
            ["bos_token"] = EndOfText,
        })));
        Assert.Equal([271, 267, 266], tok.Encode("hello world"));
        Assert.Equal([267, 266], tok.Encode("hello world", addSpecialTokens: false));
    }

    [Fact]
    public void IdsComeFromConfigJsonWhenNoTokenizerConfigNamesThem()
    {
        var tok = ModelTokenizer.Load(Folder("ids", f =>
            WriteJson(Path.Combine(f, "config.json"), new JsonObject { ["bos_token_id"] = 271, ["eos_token_id"] = new JsonArray(271, 3), ["pad_token_id"] = 0 })));
        Assert.Equal((271, 271, 0), (tok.BosTokenId, tok.EosTokenId, tok.PadTokenId));
    }

    [Fact]
    public void AddedTokensAreNeverSplit()
    {
        var tok = ModelTokenizer.Load(Folder("added", f =>
        {
            File.WriteAllText(Path.Combine(f, "added_tokens.json"), "{\"<|pad|>\": 272}");
            WriteJson(Path.Combine(f, "tokenizer_config.json"), new JsonObject
            {
                ["added_tokens_decoder"] = new JsonObject
                {
                    ["271"] = new JsonObject { ["content"] = EndOfText, ["special"] = true },
                    ["273"] = new JsonObject { ["content"] = "<|im_start|>", ["special"] = true },
                },
                ["pad_token"] = "<|pad|>",
            });
        }));
        Assert.Equal([273, 261, 272, 266], tok.Encode("<|im_start|>hello<|pad|> world"));
        Assert.Equal(274, tok.VocabSize);
        Assert.Equal(272, tok.PadTokenId);
        Assert.Equal("hello world", tok.Decode([273, 261, 272, 266]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([274]));
    }
}
