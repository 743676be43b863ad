using System.Text.Json.Nodes;
using QuantumPeft.Models.DebertaV2;
using static QuantumPeft.Tests.Data.Tokenizers.TokenizerFileWriter;

namespace QuantumPeft.Tests.Models.DebertaV2;

/// <summary>DeBERTa-v3's tokenizer folder (a SentencePiece Unigram spm.model, [MASK] added after the vocabulary) into [CLS] a [SEP] (b [SEP]) batches.</summary>
public sealed class DebertaV2TextEncoderTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-deberta-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // DeBERTa-v3's layout: [PAD] 0, [CLS] 1, [SEP] 2 (control pieces), [UNK] 3, then the pieces (ids 4-17), [MASK] = 18 (added_tokens.json).
    static readonly string[] Normal = ["▁hello", "▁he", "llo", "▁world", "▁wor", "ld", "▁", "h", "e", "l", "o", "w", "r", "d"];
    static readonly float[] Scores = [-3, -2, -2, -3, -2, -2, -1, -5, -5, -5, -5, -5, -5, -5];
    const int Hello = 4, World = 7, Space = 10, H = 11, O = 14, Ld = 9, Mask = 18;

    string Folder(string name = "v3", bool lowerCase = false)
    {
        var folder = Path.Combine(_dir, name);
        Directory.CreateDirectory(folder);
        var pieces = new List<Piece>
        {
            new("[PAD]", 0, PieceType.Control), new("[CLS]", 0, PieceType.Control), new("[SEP]", 0, PieceType.Control), new("[UNK]", 0, PieceType.Unknown),
        };
        for (int i = 0; i < Normal.Length; i++) pieces.Add(new(Normal[i], Scores[i], PieceType.Normal));
        File.WriteAllBytes(Path.Combine(folder, "spm.model"), [.. SentencePieceModel(pieces, byteFallback: false, unigram: true), .. DebertaTrainerSpec()]);
        WriteJson(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["bos_token"] = "[CLS]", ["cls_token"] = "[CLS]", ["do_lower_case"] = lowerCase, ["eos_token"] = "[SEP]", ["mask_token"] = "[MASK]",
            ["pad_token"] = "[PAD]", ["sep_token"] = "[SEP]", ["sp_model_kwargs"] = new JsonObject(), ["split_by_punct"] = false,
            ["tokenizer_class"] = "DebertaV2Tokenizer", ["unk_token"] = "[UNK]", ["vocab_type"] = "spm",
        });
        WriteJson(Path.Combine(folder, "special_tokens_map.json"), new JsonObject
        {
            ["bos_token"] = "[CLS]", ["cls_token"] = "[CLS]", ["eos_token"] = "[SEP]", ["mask_token"] = "[MASK]", ["pad_token"] = "[PAD]",
            ["sep_token"] = "[SEP]", ["unk_token"] = "[UNK]",
        });
        WriteJson(Path.Combine(folder, "added_tokens.json"), new JsonObject { ["[MASK]"] = Mask });
        return folder;
    }

    // protobuf merges a repeated sub-message field by field, so this second trainer_spec (ModelProto field 2) gives DeBERTa's
    // special ids and piece names: unk_id 3 (field 40), pad_id 0 (43), unk / bos / eos / pad_piece [UNK] [CLS] [SEP] [PAD] (45-48).
    static byte[] DebertaTrainerSpec()
    {
        var spec = new MemoryStream();
        void Varint(Stream s, ulong v) { while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; } s.WriteByte((byte)v); }
        void Int(int field, int v) { Varint(spec, (ulong)(field << 3)); Varint(spec, (ulong)v); }
        void Str(int field, string v) { Varint(spec, (ulong)(field << 3 | 2)); Varint(spec, (ulong)v.Length); spec.Write(System.Text.Encoding.UTF8.GetBytes(v)); }
        Int(40, 3);
        Int(43, 0);
        Str(45, "[UNK]");
        Str(46, "[CLS]");
        Str(47, "[SEP]");
        Str(48, "[PAD]");
        var model = new MemoryStream();
        Varint(model, 2 << 3 | 2);
        Varint(model, (ulong)spec.Length);
        spec.WriteTo(model);
        return model.ToArray();
    }

    static long[] Row(TorchSharp.torch.Tensor t, int r) => t[r].data<long>().ToArray();

    [Fact]
    public void SentencesGetClsAndSepAndTheUnigramPieces()
    {
        var encoder = DebertaV2TextEncoder.FromFolder(Folder());
        Assert.Equal((1, 2, 0, (int?)Mask), (encoder.ClsTokenId, encoder.SepTokenId, encoder.PadTokenId, encoder.MaskTokenId));
        // Viterbi: ▁hello (-3) beats ▁he + llo (-4); "hold" has no whole piece: ▁ h o ld.
        Assert.Equal([Hello, World], encoder.Tokenize("hello world"));
        Assert.Equal([Space, H, O, Ld], encoder.Tokenize("hold"));
        Assert.Equal([Hello, Mask], encoder.Tokenize("hello[MASK]"));

        using var batch = encoder.Encode(["hello world", "hello"]);
        Assert.Equal([2L, 4], batch.InputIds.shape);
        Assert.Equal([1L, Hello, World, 2], Row(batch.InputIds, 0));
        // Padded with [PAD] = 0 and masked out.
        Assert.Equal([1L, Hello, 2, 0], Row(batch.InputIds, 1));
        Assert.Equal([1L, 1, 1, 0], Row(batch.AttentionMask, 1));
        Assert.Equal([0L, 0, 0, 0], Row(batch.TokenTypeIds, 0));
    }

    [Fact]
    public void PairsAreClsASepBSepWithTypeOneOnTheSecond()
    {
        var encoder = DebertaV2TextEncoder.FromFolder(Folder());
        using var batch = encoder.Encode(["hello", "hello world"], ["world", "hold"]);
        Assert.Equal([1L, Hello, 2, World, 2, 0, 0, 0, 0], Row(batch.InputIds, 0));
        Assert.Equal([0L, 0, 0, 1, 1, 0, 0, 0, 0], Row(batch.TokenTypeIds, 0));
        Assert.Equal([1L, 1, 1, 1, 1, 0, 0, 0, 0], Row(batch.AttentionMask, 0));
        Assert.Equal([1L, Hello, World, 2, Space, H, O, Ld, 2], Row(batch.InputIds, 1));
        Assert.Equal([0L, 0, 0, 0, 1, 1, 1, 1, 1], Row(batch.TokenTypeIds, 1));
    }

    [Fact]
    public void TruncationIsLongestFirst()
    {
        var encoder = DebertaV2TextEncoder.FromFolder(Folder());
        // Budget 6 - 3 = 3 pieces: a (4 pieces) loses two, b (1 piece) keeps its one.
        using var pair = encoder.Encode(["hello world hello world"], ["world"], maxLength: 6);
        Assert.Equal([1L, Hello, World, 2, World, 2], Row(pair.InputIds, 0));
        // Equal lengths: the second side goes first.
        using var tie = encoder.Encode(["hello world"], ["world hello"], maxLength: 6);
        Assert.Equal([1L, Hello, World, 2, World, 2], Row(tie.InputIds, 0));
        using var single = encoder.Encode(["hello world hello"], maxLength: 4);
        Assert.Equal([1L, Hello, World, 2], Row(single.InputIds, 0));
    }

    [Fact]
    public void LowerCaseFollowsDoLowerCase()
    {
        var lower = DebertaV2TextEncoder.FromFolder(Folder("lower", lowerCase: true));
        Assert.True(lower.LowerCase);
        Assert.Equal([Hello, World], lower.Tokenize("Hello WORLD"));
        Assert.NotEqual([Hello, World], DebertaV2TextEncoder.FromFolder(Folder()).Tokenize("Hello WORLD"));
    }

    [Fact]
    public void BadInputGetsErrorsThatSayWhatWasExpected()
    {
        var empty = Path.Combine(_dir, "empty");
        Directory.CreateDirectory(empty);
        var missing = Assert.Throws<FileNotFoundException>(() => DebertaV2TextEncoder.FromFolder(empty));
        Assert.Contains(empty, missing.Message);
        Assert.Contains("spm.model", missing.Message);

        var encoder = DebertaV2TextEncoder.FromFolder(Folder());
        // A pair task handed single sentences: fewer second sentences than first ones, or a missing one.
        var count = Assert.Throws<ArgumentException>(() => encoder.Encode(["hello", "world"], ["hello"]));
        Assert.Contains("1 pair texts for 2 texts", count.Message);
        var hole = Assert.Throws<ArgumentException>(() => encoder.Encode(["hello", "world"], ["hello", null!]));
        Assert.Contains("pair text 1 is null", hole.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => encoder.Encode(["hello"], ["world"], maxLength: 3));
    }

    [Fact]
    public void EncodedPairsRunThroughTheModelAndSurviveSaveWithTheTokenizer()
    {
        // A model folder with its tokenizer beside it, as the hub ships microsoft/deberta-v3-base.
        var tokenizerFolder = Folder();
        var json = TinyDeberta.ConfigJson();
        json["vocab_size"] = Mask + 1;
        using var model = new DebertaV2ForSequenceClassification(TinyDeberta.Config(json), 2);
        TinyDeberta.Randomize(model, 6);
        var folder = Path.Combine(_dir, "model");
        HfDebertaV2Loader.Save(folder, model, copyTokenizerFrom: tokenizerFolder);
        Assert.True(File.Exists(Path.Combine(folder, "spm.model")));
        Assert.True(File.Exists(Path.Combine(folder, "added_tokens.json")));

        var encoder = DebertaV2TextEncoder.FromFolder(folder);
        using var loaded = DebertaV2ForSequenceClassification.FromPretrained(folder, 2);
        loaded.eval();
        using var batch = encoder.Encode(["hello world", "hold"], ["world", "hello hold"]);
        using var both = loaded.call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        for (int i = 0; i < 2; i++)
        {
            using var one = encoder.Encode([i == 0 ? "hello world" : "hold"], [i == 0 ? "world" : "hello hold"]);
            using var alone = loaded.call(one.InputIds, one.AttentionMask, one.TokenTypeIds);
            Assert.True(TinyDeberta.MaxAbsDiff(both[i..(i + 1)], alone) < 1e-5, $"row {i}");
        }
        Assert.True(TinyDeberta.MaxAbsDiff(both[0], both[1]) > 1e-4);
    }
}
