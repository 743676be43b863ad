using QuantumPeft.Data.Tokenizers;
using static QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter;

namespace QuantumPeft.Tests.Data.Tokenizers;

/// <summary>Folders without a tokenizer, with half of one, or with damaged files: null, or errors that name the file.</summary>
public sealed class TokenizerFolderTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-tok-folder-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Sub(string name) => Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;

    [Fact]
    public void AFolderOfWeightsOnlyHasNoTokenizer()
    {
        var folder = Sub("weights");
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"model_type\": \"gpt2\", \"bos_token_id\": 50256}");
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), [8, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}', 32, 32, 32, 32, 32, 32]);
        // tokenizer_config.json alone defines no vocabulary either.
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), "{\"model_max_length\": 1024}");
        Assert.Null(ModelTokenizer.TryLoad(folder));
        var e = Assert.Throws<FileNotFoundException>(() => ModelTokenizer.Load(folder));
        Assert.Contains(folder, e.Message);
        foreach (var name in new[] { "vocab.json", "merges.txt", "tokenizer.model", "tokenizer.json", "vocab.txt" })
            Assert.Contains(name, e.Message);
        Assert.Throws<DirectoryNotFoundException>(() => ModelTokenizer.TryLoad(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public void TokenizerFilesListsEveryFileAWriterMustCopy()
    {
        Assert.Equal(
            ["vocab.json", "merges.txt", "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "added_tokens.json"],
            ModelTokenizer.TokenizerFiles);
    }

    [Fact]
    public void VocabJsonWithoutMergesTxtNamesTheMissingFile()
    {
        var folder = Sub("half");
        WriteGpt2(folder, SmallVocab(), SmallMerges);
        File.Delete(Path.Combine(folder, "merges.txt"));
        var e = Assert.Throws<FileNotFoundException>(() => ModelTokenizer.TryLoad(folder));
        Assert.Contains("merges.txt", e.Message);
    }

    [Fact]
    public void AMergesTxtCutInTheMiddleOfALineNamesTheFileAndLine()
    {
        var folder = Sub("cut-line");
        WriteGpt2(folder, SmallVocab(), SmallMerges);
        var path = Path.Combine(folder, "merges.txt");
        var text = File.ReadAllText(path);
        File.WriteAllText(path, text[..^3]); // "3 4\n" loses " 4\n"
        var e = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder));
        Assert.Contains(path, e.Message);
        Assert.Contains($"line {SmallMerges.Length + 1}", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void AMergesTxtCutAtALineEndIsCaughtByTheTokensItCannotMake()
    {
        var folder = Sub("cut-end");
        WriteGpt2(folder, SmallVocab(), SmallMerges);
        var path = Path.Combine(folder, "merges.txt");
        var text = File.ReadAllText(path);
        File.WriteAllText(path, text[..^5]); // drops "\n3 4\n": ends in "1 2", no newline
        var e = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void AMergeOfUnknownTokensNamesTheLine()
    {
        var folder = Sub("bad-merge");
        WriteGpt2(folder, SmallVocab(), [.. SmallMerges, "hello Ġworld"]);
        var e = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder));
        Assert.Contains("merges.txt", e.Message);
        Assert.Contains($"line {SmallMerges.Length + 2}", e.Message);
        Assert.Contains("helloĠworld", e.Message);
    }

    [Fact]
    public void AVocabJsonThatIsNotAnObjectOfIdsNamesTheFile()
    {
        var folder = Sub("bad-vocab");
        WriteGpt2(folder, SmallVocab(), SmallMerges);
        var path = Path.Combine(folder, "vocab.json");
        File.WriteAllText(path, "[\"a\", \"b\"]");
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder)).Message);
        File.WriteAllText(path, "{\"a\": \"zero\"}");
        Assert.Contains("'a'", Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder)).Message);
        File.WriteAllText(path, "{\"a\": 0, ");
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder)).Message);
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("text")]
    [InlineData("empty")]
    public void ACorruptTokenizerModelNamesTheFile(string damage)
    {
        var folder = Sub("sp-" + damage);
        var path = Path.Combine(folder, "tokenizer.model");
        var model = SentencePieceModel(LlamaPieces(["▁a"], ["▁", "a"]));
        File.WriteAllBytes(path, damage switch
        {
            "truncated" => model[..(model.Length / 2)],
            "text" => "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 499723\n"u8.ToArray(),
            _ => [],
        });
        var e = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder));
        Assert.Contains(path, e.Message);
        Assert.Contains("SentencePiece", e.Message);
    }

    [Theory]
    [InlineData("{\"model\": {\"type\": \"BPE\", ")]
    [InlineData("{\"version\": \"1.0\"}")]
    [InlineData("[]")]
    public void AnInvalidTokenizerJsonNamesTheFile(string content)
    {
        var folder = Sub("json-" + Math.Abs(content.GetHashCode()));
        var path = Path.Combine(folder, "tokenizer.json");
        File.WriteAllText(path, content);
        // Even with a usable vocab.json + merges.txt beside it: a damaged file is reported, not passed over.
        WriteGpt2(folder, SmallVocab(), SmallMerges);
        var e = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AnInvalidTokenizerConfigNamesTheFile()
    {
        var folder = Sub("bad-config");
        WriteGpt2(folder, SmallVocab(), SmallMerges);
        var path = Path.Combine(folder, "tokenizer_config.json");
        File.WriteAllText(path, "{\"bos_token\": ");
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder)).Message);
        File.WriteAllText(path, "{\"add_bos_token\": true, \"bos_token\": \"<nope>\"}");
        var e = Assert.Throws<InvalidDataException>(() => ModelTokenizer.Load(folder));
        Assert.Contains("add_bos_token", e.Message);
    }
}
