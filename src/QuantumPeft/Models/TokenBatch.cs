using System.Text.Json;
using static TorchSharp.torch;

namespace QuantumPeft.Models;

/// <summary>Token-id inputs as transformers takes them: input_ids, and optionally attention_mask and token_type_ids, one sequence or a batch.</summary>
/// <param name="InputIds">[B, T] token ids.</param>
/// <param name="AttentionMask">[B, T] of 1 (token) and 0 (padding), or null (no padding).</param>
/// <param name="TokenTypeIds">[B, T] segment ids, or null.</param>
/// <param name="Single">True when the input was one sequence (a flat list), so that outputs drop the batch dimension.</param>
public sealed record TokenBatch(long[][] InputIds, long[][]? AttentionMask, long[][]? TokenTypeIds, bool Single)
{
    /// <summary>Batch size.</summary>
    public int Count => InputIds.Length;

    /// <summary>Reads a JSON object {"input_ids": [..] or [[..], ..], "attention_mask": ..., "token_type_ids": ...}; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">Not that shape: the message names the key and what was expected.</exception>
    public static TokenBatch Parse(string json, string source)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message}).", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("input_ids", out var idsNode))
                throw new InvalidDataException($"{source}: expected a JSON object with \"input_ids\" (a list of token ids, or a list of such lists), optionally \"attention_mask\" and \"token_type_ids\".");
            var (ids, single) = Rows(idsNode, "input_ids", source);
            if (ids.Length == 0 || ids.Any(r => r.Length == 0)) throw new InvalidDataException($"{source}: \"input_ids\" holds an empty sequence.");
            long[][]? Optional(string key)
            {
                if (!root.TryGetProperty(key, out var node) || node.ValueKind == JsonValueKind.Null) return null;
                var (rows, s) = Rows(node, key, source);
                if (s != single || rows.Length != ids.Length || rows.Where((r, i) => r.Length != ids[i].Length).Any())
                    throw new InvalidDataException($"{source}: \"{key}\" must have the shape of \"input_ids\" ({ids.Length} x {ids[0].Length}).");
                return rows;
            }
            var mask = Optional("attention_mask");
            var types = Optional("token_type_ids");
            if (ids.Select(r => r.Length).Distinct().Count() > 1)
                throw new InvalidDataException($"{source}: the sequences in \"input_ids\" have different lengths ({string.Join(", ", ids.Select(r => r.Length))}); " +
                    "pad them to one length and give \"attention_mask\" (0 at padding).");
            if (mask is not null && mask.SelectMany(r => r).Any(v => v is not (0 or 1)))
                throw new InvalidDataException($"{source}: \"attention_mask\" must hold only 0 and 1.");
            if (mask is not null && mask.Any(r => r.All(v => v == 0)))
                throw new InvalidDataException($"{source}: a row of \"attention_mask\" is all 0: every sequence needs at least one token.");
            return new TokenBatch(ids, mask, types, single);
        }
    }

    /// <summary>Reads <see cref="Parse"/>'s format from a file.</summary>
    public static TokenBatch Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"inputs file not found: '{path}' (expected JSON with \"input_ids\").", path);
        return Parse(File.ReadAllText(path), path);
    }

    static (long[][] Rows, bool Single) Rows(JsonElement node, string key, string source)
    {
        if (node.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"{source}: \"{key}\" must be a list of integers or a list of lists.");
        var items = node.EnumerateArray().ToList();
        try
        {
            if (items.Count > 0 && items.All(i => i.ValueKind == JsonValueKind.Array))
                return (items.Select(r => r.EnumerateArray().Select(v => v.GetInt64()).ToArray()).ToArray(), false);
            return ([items.Select(v => v.GetInt64()).ToArray()], true);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: \"{key}\" must hold integers only ({e.Message}).", e);
        }
    }

    static Tensor ToTensor(long[][] rows, Device device) => tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length], device: device);

    /// <summary>input_ids as a [B, T] int64 tensor.</summary>
    public Tensor Ids(Device device) => ToTensor(InputIds, device);

    /// <summary>attention_mask as [B, T] int64, or null.</summary>
    public Tensor? Mask(Device device) => AttentionMask is null ? null : ToTensor(AttentionMask, device);

    /// <summary>token_type_ids as [B, T] int64, or null.</summary>
    public Tensor? Types(Device device) => TokenTypeIds is null ? null : ToTensor(TokenTypeIds, device);

    /// <summary>The index of each row's last token (the last 1 of its mask, else T - 1).</summary>
    public long[] LastPositions() => InputIds.Select((r, i) => AttentionMask is null ? r.Length - 1L : Array.LastIndexOf(AttentionMask[i], 1L)).ToArray();

    /// <summary>Throws when an id is outside [0, <paramref name="vocabSize"/>), naming the row, the position and the size.</summary>
    public void CheckIds(int vocabSize, string what)
    {
        for (int r = 0; r < InputIds.Length; r++)
            for (int t = 0; t < InputIds[r].Length; t++)
                if (InputIds[r][t] < 0 || InputIds[r][t] >= vocabSize)
                    throw new ArgumentException($"input_ids[{r}][{t}] = {InputIds[r][t]} is outside the vocabulary of {what} (0 .. {vocabSize - 1}).");
    }
}
