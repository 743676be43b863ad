using System.Text.Json.Nodes;
using QuantumPeft.Data.Tokenizers;
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using static QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter;

namespace QuantumPeft.Tests.Data.Tokenizers;

/// <summary>BERT's vocab.txt (the bundled MiniLM's uncased vocabulary), compared with <see cref="BertTextEncoder"/>.</summary>
public sealed class WordPieceTokenizerTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-tok-bert-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly string[] Sentences =
    [
        "hello world", "Hello, World!", "The quick brown fox.", "Café Déjà Vu", "unaffable tokenization of 東京", "I can't  believe it's 2026",
    ];

    string MiniLmVocabFolder(string name, bool? lowerCase)
    {
        var folder = Path.Combine(_dir, name);
        Directory.CreateDirectory(folder);
        using (var vocab = BundledModels.OpenMiniLmVocab())
        using (var file = File.Create(Path.Combine(folder, "vocab.txt")))
            vocab.CopyTo(file);
        if (lowerCase is { } lower)
            WriteJson(Path.Combine(folder, "tokenizer_config.json"), new JsonObject { ["do_lower_case"] = lower, ["pad_token"] = "[PAD]" });
        return folder;
    }

    [Theory]
    [InlineData(null)]
    [InlineData(true)]
    [InlineData(false)]
    public void IdsAreThoseOfBertTextEncoder(bool? lowerCase)
    {
        var folder = MiniLmVocabFolder($"minilm-{lowerCase}", lowerCase);
        var tok = ModelTokenizer.Load(folder);
        var encoder = BertTextEncoder.FromFolder(folder);
        Assert.Equal("wordpiece", tok.Kind);
        Assert.Equal(lowerCase ?? true, encoder.LowerCase);
        foreach (var s in Sentences)
        {
            Assert.Equal([encoder.Tokenizer.ClassificationTokenId, .. encoder.Tokenize(s), encoder.Tokenizer.SeparatorTokenId], tok.Encode(s));
            Assert.Equal(encoder.Tokenize(s), tok.Encode(s, addSpecialTokens: false));
        }
    }

    [Fact]
    public void UncasedIdsSizeAndSpecialTokens()
    {
        var tok = ModelTokenizer.Load(MiniLmVocabFolder("uncased", lowerCase: true));
        Assert.Equal([101, 7592, 2088, 102], tok.Encode("hello world"));
        Assert.Equal([101, 7592, 1010, 2088, 999, 102], tok.Encode("Hello, World!"));
        Assert.Equal(30522, tok.VocabSize);
        Assert.Equal(0, tok.PadTokenId);
        Assert.Null(tok.BosTokenId);
        Assert.Equal("hello world", tok.Decode([101, 7592, 2088, 102, 0, 0]));
    }
}
