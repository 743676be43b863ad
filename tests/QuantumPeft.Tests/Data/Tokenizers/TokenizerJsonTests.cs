using System.Text.Json.Nodes;
using QuantumPeft.Data.Tokenizers;
using static QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter;

namespace QuantumPeft.Tests.Data.Tokenizers;

/// <summary>tokenizer.json with a byte-level BPE model, compared with the same vocabulary read from vocab.json + merges.txt.</summary>
public sealed class TokenizerJsonTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-tok-json-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly string[] Texts =
    [
        "hello world", "hello the world", "the world's hello, world!", "héllo", "hello\n\nworld", "1234", "  hello",
        "hello<|endoftext|>world", "naïve café – 東京 😀",
    ];

    string JsonFolder(string name, JsonObject tokenizer, JsonObject? config = null)
    {
        var folder = Path.Combine(_dir, name);
        WriteJson(Path.Combine(folder, "tokenizer.json"), tokenizer);
        if (config is not null) WriteJson(Path.Combine(folder, "tokenizer_config.json"), config);
        return folder;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GivesTheIdsOfVocabJsonAndMergesTxt(bool mergesAsPairs)
    {
        var gpt2 = Path.Combine(_dir, "gpt2");
        WriteGpt2(gpt2, SmallVocab(), SmallMerges);
        var fromFiles = ModelTokenizer.Load(gpt2);
        var fromJson = ModelTokenizer.Load(JsonFolder("json", Gpt2TokenizerJson(SmallVocab(), SmallMerges, mergesAsPairs)));
        Assert.Equal("tokenizer.json", fromJson.Kind);
        Assert.Equal(fromFiles.VocabSize, fromJson.VocabSize);
        foreach (var text in Texts)
        {
            Assert.Equal(fromFiles.Encode(text), fromJson.Encode(text));
            Assert.Equal(text, fromJson.Decode(fromJson.Encode(text), skipSpecialTokens: false));
        }
    }

    [Fact]
    public void IsPreferredToVocabJsonAndMergesTxtInTheSameFolder()
    {
        var folder = JsonFolder("both", Gpt2TokenizerJson(SmallVocab(), SmallMerges));
        WriteGpt2(folder, SmallVocab(), SmallMerges);
        Assert.Equal("tokenizer.json", ModelTokenizer.Load(folder).Kind);
    }

    [Fact]
    public void TemplateProcessingAddsItsSpecialTokens()
    {
        var json = Gpt2TokenizerJson(SmallVocab(), SmallMerges);
        json["post_processor"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["processors"] = new JsonArray(
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
                new JsonObject
                {
                    ["type"] = "TemplateProcessing",
                    ["single"] = new JsonArray(
                        new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = EndOfText, ["type_id"] = 0 } },
                        new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                    ["pair"] = new JsonArray(),
                    ["special_tokens"] = new JsonObject
                    {
                        [EndOfText] = new JsonObject { ["id"] = EndOfText, ["ids"] = new JsonArray(271), ["tokens"] = new JsonArray(EndOfText) },
                    },
                }),
        };
        var tok = ModelTokenizer.Load(JsonFolder("template", json, new JsonObject { ["bos_token"] = EndOfText }));
        Assert.Equal([271, 261, 266], tok.Encode("hello world"));
        Assert.Equal([261, 266], tok.Encode("hello world", addSpecialTokens: false));
        Assert.Equal(271, tok.BosTokenId);
        Assert.Equal("hello world", tok.Decode(tok.Encode("hello world")));
        // An explicit add_bos_token = false in tokenizer_config.json wins over the template, as in LlamaTokenizerFast.
        var off = ModelTokenizer.Load(JsonFolder("template-off", json, new JsonObject { ["bos_token"] = EndOfText, ["add_bos_token"] = false }));
        Assert.Equal([261, 266], off.Encode("hello world"));
    }

    [Fact]
    public void SplitRegexBeforeByteLevelIsTheLlama3Layout()
    {
        var json = Gpt2TokenizerJson(SmallVocab(), SmallMerges);
        json["pre_tokenizer"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject
                {
                    ["type"] = "Split",
                    ["pattern"] = new JsonObject { ["Regex"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+" },
                    ["behavior"] = "Isolated",
                    ["invert"] = false,
                },
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
        };
        var tok = ModelTokenizer.Load(JsonFolder("llama3", json));
        Assert.Equal([261, 266], tok.Encode("hello world"));
        // Digits go in threes: "123" "4", so "34" never forms (GPT-2's regex keeps "1234" whole: 12 34).
        Assert.Equal([269, 18, 19], tok.Encode("1234"));
        Assert.Equal("1234 hello", tok.Decode(tok.Encode("1234 hello")));
    }

    [Fact]
    public void NormalizerAndPrefixSpaceAreApplied()
    {
        var json = Gpt2TokenizerJson(SmallVocab(), SmallMerges);
        json["normalizer"] = new JsonObject { ["type"] = "NFC" };
        json["pre_tokenizer"]!["add_prefix_space"] = true;
        var tok = ModelTokenizer.Load(JsonFolder("nfc", json));
        // e + combining acute becomes é before the bytes are taken; the prefix space makes "hello" the word "Ġhello".
        Assert.Equal([220, 71, 127, 102, 259, 78], tok.Encode("he\u0301llo"));
        Assert.Equal([267, 266], tok.Encode("hello world"));
        Assert.Equal([267, 266], tok.Encode(" hello world"));
        // tokenizer_config.json's add_prefix_space overrides the pre-tokenizer's, as GPT2TokenizerFast does.
        WriteJson(Path.Combine(_dir, "nfc", "tokenizer_config.json"), new JsonObject { ["add_prefix_space"] = false });
        Assert.Equal([261, 266], ModelTokenizer.Load(Path.Combine(_dir, "nfc")).Encode("hello world"));
    }

    [Fact]
    public void OtherModelsAreNamedWhenNothingElseCanBeRead()
    {
        var unigram = new JsonObject
        {
            ["version"] = "1.0",
            ["model"] = new JsonObject { ["type"] = "Unigram", ["unk_id"] = 0, ["vocab"] = new JsonArray(new JsonArray("<unk>", 0.0)) },
        };
        var e = Assert.Throws<NotSupportedException>(() => ModelTokenizer.Load(JsonFolder("unigram", unigram)));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("Unigram", e.Message);
        Assert.Contains("tokenizer.model", e.Message);

        var fallback = Gpt2TokenizerJson(SmallVocab(), SmallMerges);
        fallback["model"]!["byte_fallback"] = true;
        var f = Assert.Throws<NotSupportedException>(() => ModelTokenizer.Load(JsonFolder("byte-fallback", fallback)));
        Assert.Contains("byte_fallback", f.Message);
    }

    [Fact]
    public void AWordPieceTokenizerJsonGivesWayToVocabTxt()
    {
        var folder = JsonFolder("bert", new JsonObject
        {
            ["version"] = "1.0",
            ["model"] = new JsonObject { ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["vocab"] = new JsonObject { ["[UNK]"] = 0 } },
        });
        File.WriteAllLines(Path.Combine(folder, "vocab.txt"), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]);
        var tok = ModelTokenizer.Load(folder);
        Assert.Equal("wordpiece", tok.Kind);
        Assert.Equal([2, 5, 6, 3], tok.Encode("Hello world"));
    }
}
