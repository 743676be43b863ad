using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace QuantumPeft.Tests.Data.Tokenizers;

/// <summary>Writes tokenizer files in their real formats: GPT-2's vocab.json / merges.txt, tokenizer.json, a sentencepiece ModelProto.</summary>
static class TokenizerFileWriter
{
    /// <summary>GPT-2's bytes_to_unicode (openai/gpt-2 encoder.py): printable bytes stand for themselves, the others move to U+0100 on.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar(out ByteOrder);

    /// <summary>The bytes in GPT-2's vocabulary order: byte ByteOrder[i] is token i.</summary>
    public static readonly int[] ByteOrder;

    static char[] BuildByteToChar(out int[] order)
    {
        var bs = new List<int>();
        for (int b = '!'; b <= '~'; b++) bs.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        var cs = new List<int>(bs);
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b)) { bs.Add(b); cs.Add(256 + n++); }
        var map = new char[256];
        for (int i = 0; i < 256; i++) map[bs[i]] = (char)cs[i];
        order = bs.ToArray();
        return map;
    }

    /// <summary>A token's bytes in GPT-2's byte-level alphabet.</summary>
    public static string ByteLevel(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length);
        foreach (var b in bytes) sb.Append(ByteToChar[b]);
        return sb.ToString();
    }

    public static string ByteLevel(string text) => ByteLevel(Encoding.UTF8.GetBytes(text));

    /// <summary>The id of a single byte's token in a GPT-2 layout vocabulary (bytes first, in GPT-2's order).</summary>
    public static int ByteId(char c) => Array.IndexOf(ByteOrder, (int)c);

    public const string EndOfText = "<|endoftext|>";

    /// <summary>
    /// A small GPT-2 vocabulary: the 256 byte tokens (ids 0-255, space 'Ġ' = 220 and newline 'Ċ' = 198 as in GPT-2), then
    /// one token per merge in merge order (256 on), then &lt;|endoftext|&gt;.
    /// </summary>
    public static readonly string[] SmallMerges =
    [
        "Ġ t", "h e", "Ġt he", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "Ġ hello", "' s", "1 2", "3 4",
    ];

    public static int SmallId(string token) => 256 + Array.FindIndex(SmallMerges, m => m.Replace(" ", "") == token);

    public static int SmallEndOfText => 256 + SmallMerges.Length;

    public static Dictionary<string, int> SmallVocab()
    {
        var vocab = new Dictionary<string, int>();
        for (int i = 0; i < 256; i++) vocab[ByteToChar[ByteOrder[i]].ToString()] = i;
        foreach (var m in SmallMerges) vocab[m.Replace(" ", "")] = vocab.Count;
        vocab[EndOfText] = vocab.Count;
        return vocab;
    }

    /// <summary>vocab.json + merges.txt as GPT-2 ships them (merges.txt begins with its #version line).</summary>
    public static void WriteGpt2(string folder, IReadOnlyDictionary<string, int> vocab, IEnumerable<string> merges)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllText(Path.Combine(folder, "merges.txt"), "#version: 0.2\n" + string.Join("", merges.Select(m => m + "\n")));
    }

    /// <summary>A GPT-2-style tokenizer.json (ByteLevel pre-tokenizer, post-processor and decoder) with &lt;|endoftext|&gt; as its added token.</summary>
    public static JsonObject Gpt2TokenizerJson(IReadOnlyDictionary<string, int> vocab, IEnumerable<string> merges, bool mergesAsPairs = false)
    {
        var vocabJson = new JsonObject();
        foreach (var (token, id) in vocab.OrderBy(kv => kv.Value)) vocabJson[token] = id;
        var mergesJson = new JsonArray();
        foreach (var m in merges)
            mergesJson.Add(mergesAsPairs ? new JsonArray(m.Split(' ')[0], m.Split(' ')[1]) : JsonValue.Create(m));
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = vocab[EndOfText], ["content"] = EndOfText, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = true, ["special"] = true,
            }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "", ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["vocab"] = vocabJson, ["merges"] = mergesJson,
            },
        };
    }

    public static void WriteJson(string path, JsonNode node)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    // ---- SentencePiece: sentencepiece_model.proto, hand-encoded ----

    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

    public sealed record Piece(string Text, float Score, PieceType Type);

    /// <summary>
    /// A serialized ModelProto: pieces (1: piece, 2: score, 3: type), trainer_spec (3: model_type UNIGRAM = 1 or BPE = 2, 35: byte_fallback,
    /// 40-43: unk / bos / eos / pad ids) and normalizer_spec (1: name, 3: add_dummy_prefix, 4: remove_extra_whitespaces, 5: escape_whitespaces).
    /// </summary>
    public static byte[] SentencePieceModel(IEnumerable<Piece> pieces, bool byteFallback = true, bool addDummyPrefix = true, bool unigram = false)
    {
        var model = new MemoryStream();
        foreach (var p in pieces)
        {
            var m = new MemoryStream();
            Str(m, 1, p.Text);
            Float(m, 2, p.Score);
            Int(m, 3, (int)p.Type);
            Message(model, 1, m);
        }
        var trainer = new MemoryStream();
        Int(trainer, 3, unigram ? 1 : 2);
        Int(trainer, 35, byteFallback ? 1 : 0);
        Int(trainer, 40, 0);
        Int(trainer, 41, 1);
        Int(trainer, 42, 2);
        Int(trainer, 43, -1);
        Message(model, 2, trainer);
        var normalizer = new MemoryStream();
        Str(normalizer, 1, "identity");
        Int(normalizer, 3, addDummyPrefix ? 1 : 0);
        Int(normalizer, 4, 0);
        Int(normalizer, 5, 1);
        Message(model, 3, normalizer);
        return model.ToArray();
    }

    /// <summary>
    /// A LLaMA-layout piece list: &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2, the byte pieces &lt;0x00&gt;..&lt;0xFF&gt; (3-258), then
    /// <paramref name="merged"/> with scores -1, -2, ... (earlier = preferred), then the single characters, scored below them.
    /// </summary>
    public static List<Piece> LlamaPieces(string[] merged, string[] chars)
    {
        var pieces = new List<Piece> { new("<unk>", 0, PieceType.Unknown), new("<s>", 0, PieceType.Control), new("</s>", 0, PieceType.Control) };
        for (int b = 0; b < 256; b++) pieces.Add(new($"<0x{b:X2}>", 0, PieceType.Byte));
        for (int i = 0; i < merged.Length; i++) pieces.Add(new(merged[i], -(i + 1), PieceType.Normal));
        for (int i = 0; i < chars.Length; i++) pieces.Add(new(chars[i], -(merged.Length + i + 1), PieceType.Normal));
        return pieces;
    }

    static void Varint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }

    static void Tag(Stream s, int field, int wire) => Varint(s, (ulong)((field << 3) | wire));

    // Negative int32 values are written sign-extended to 64 bits, as protobuf does.
    static void Int(Stream s, int field, long v) { Tag(s, field, 0); Varint(s, unchecked((ulong)v)); }

    static void Float(Stream s, int field, float v) { Tag(s, field, 5); s.Write(BitConverter.GetBytes(v)); }

    static void Bytes(Stream s, int field, byte[] b) { Tag(s, field, 2); Varint(s, (ulong)b.Length); s.Write(b); }

    static void Str(Stream s, int field, string v) => Bytes(s, field, Encoding.UTF8.GetBytes(v));

    static void Message(Stream s, int field, MemoryStream m) => Bytes(s, field, m.ToArray());
}
