using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace QuantumPeft.Tests.Hardening;

/// <summary>What a fuzz run saw: accepted cases, rejections by message kind, and every case that broke the contract.</summary>
sealed class FuzzOutcomes(string area)
{
    public int Cases { get; private set; }
    public int Accepted { get; private set; }
    public SortedDictionary<string, int> Rejected { get; } = new(StringComparer.Ordinal);
    public List<string> Violations { get; } = [];

    /// <summary>
    /// Runs one case: it must return, or throw one of <paramref name="allowed"/> whose message names
    /// <paramref name="source"/>. Anything else (another type, a message without the file) is a violation.
    /// </summary>
    public void Run(string caseName, string source, Action act, params Type[] allowed)
    {
        Cases++;
        try
        {
            act();
            Accepted++;
        }
        catch (Exception e) when (allowed.Contains(e.GetType()))
        {
            if (!e.Message.Contains(source, StringComparison.Ordinal))
                Violations.Add($"{area} {caseName}: {e.GetType().Name} does not name '{source}': {e.Message}");
            var kind = $"{e.GetType().Name}: {Kind(e.Message.Replace(source, "FILE"))}";
            Rejected[kind] = Rejected.GetValueOrDefault(kind) + 1;
        }
        catch (Exception e)
        {
            Violations.Add($"{area} {caseName}: {e.GetType().FullName}: {e.Message}");
        }
    }

    /// <summary>A case that passed but whose result is wrong.</summary>
    public void Fail(string caseName, string why) => Violations.Add($"{area} {caseName}: {why}");

    // The message with names, numbers and nested details blanked, so that messages of one kind count together.
    static string Kind(string message)
    {
        var s = Regex.Replace(message, @"\(.*\)", "(..)");
        s = Regex.Replace(s, "'[^']*'|\"[^\"]*\"", "'..'");
        s = Regex.Replace(s, @"-?\d+(\.\d+)?(E[+-]?\d+)?", "N");
        s = Regex.Replace(s, @"\[[^\]]*\]", "[..]");
        return s.Length > 110 ? s[..110] + "..." : s;
    }

    public string Summary() =>
        $"{area}: {Cases} cases, {Accepted} accepted, {Cases - Accepted - Violations.Count} rejected in {Rejected.Count} message kinds, {Violations.Count} violations\n" +
        string.Join("\n", Rejected.OrderByDescending(p => p.Value).Select(p => $"  {p.Value,5}  {p.Key}"));
}

/// <summary>Seeded mutations of JSON documents: wrong types, huge numbers, deep nesting, duplicate keys, truncation, byte flips.</summary>
static class JsonFuzz
{
    static readonly string[] OddValues =
    [
        "null", "true", "false", "0", "-1", "1.5", "-0", "1e308", "-1e308", "9223372036854775808", "-9223372036854775809",
        "2147483648", "4294967296", "1e-320", "\"\"", "\"x\"", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "[]", "[1, \"a\", null]",
        "{}", "{\"a\": 1}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "\"" + new string('z', 5000) + "\"",
        "[-1, -1]", "[0]", "[1, 2, 3]", "\"all-linear\"", "\"re:(\"", "\"re:.*\"", "[\"\"]", "{\"type\": \"linear\"}",
    ];

    /// <summary>A mutated copy of <paramref name="json"/> (an object); the name of the mutation goes to <paramref name="what"/>.</summary>
    public static string Mutate(string json, Random rng, out string what)
    {
        var root = JsonNode.Parse(json)!.AsObject();
        var keys = root.Select(p => p.Key).ToList();
        switch (keys.Count == 0 ? 11 : rng.Next(12))
        {
            case 0 or 1 or 2 or 3:
            {
                // The commonest real corruption is a wrong value for a key the reader knows.
                var key = keys[rng.Next(keys.Count)];
                var value = OddValues[rng.Next(OddValues.Length)];
                what = $"{key}={Short(value)}";
                root[key] = null;
                return Replace(root.ToJsonString(), key, value);
            }
            case 4:
            {
                var key = keys[rng.Next(keys.Count)];
                root.Remove(key);
                what = $"without {key}";
                return root.ToJsonString();
            }
            case 5:
            {
                // A nested object or list gets an odd member.
                var nested = keys.Where(k => root[k] is JsonObject or JsonArray).ToList();
                if (nested.Count == 0) { what = "unchanged"; return json; }
                var key = nested[rng.Next(nested.Count)];
                var value = JsonNode.Parse(OddValues[rng.Next(OddValues.Length)]);
                if (root[key] is JsonObject o && o.Count > 0) o[o.Select(p => p.Key).ElementAt(rng.Next(o.Count))] = value;
                else if (root[key] is JsonArray a && a.Count > 0) a[rng.Next(a.Count)] = value;
                else if (root[key] is JsonArray empty) empty.Add(value);
                what = $"{key} member odd";
                return root.ToJsonString();
            }
            case 6:
            {
                // Duplicate keys: System.Text.Json's node parser rejects them, the DOM reader keeps both.
                var key = keys[rng.Next(keys.Count)];
                what = $"duplicate {key}";
                var text = root.ToJsonString();
                return text.Insert(text.LastIndexOf('}'), $", \"{key}\": {OddValues[rng.Next(OddValues.Length)]}");
            }
            case 7:
            {
                int depth = rng.Next(2) == 0 ? 70 : 2000;
                what = $"nested {depth} deep";
                var value = new string('[', depth) + new string(']', depth);
                var key = keys[rng.Next(keys.Count)];
                root[key] = null;
                return Replace(root.ToJsonString(), key, value);
            }
            case 8:
            {
                var text = root.ToJsonString();
                int at = rng.Next(text.Length);
                what = $"truncated at {at}";
                return text[..at];
            }
            case 9:
            {
                var bytes = Encoding.UTF8.GetBytes(root.ToJsonString());
                int flips = 1 + rng.Next(4);
                for (int i = 0; i < flips; i++) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                what = $"{flips} byte flips";
                return Encoding.UTF8.GetString(bytes);
            }
            case 10:
            {
                string[] roots = ["", "null", "[]", "[{}]", "42", "\"text\"", "{", "{}", "\uFEFF{}", new string('{', 5000)];
                var r = roots[rng.Next(roots.Length)];
                what = $"root {Short(r)}";
                return r;
            }
            default:
            {
                var key = "unknown_" + rng.Next(1000);
                root[key] = JsonNode.Parse(OddValues[rng.Next(OddValues.Length)]);
                what = $"extra key {key}";
                return root.ToJsonString();
            }
        }
    }

    // JsonNode cannot hold an arbitrary text value (a duplicate key, an out-of-range number), so the value goes in as text.
    static string Replace(string json, string key, string value) =>
        json.Replace($"\"{key}\":null", $"\"{key}\":{value}", StringComparison.Ordinal);

    static string Short(string s) => s.Length > 24 ? s[..24] + "..." : s;
}

/// <summary>A safetensors file as editable parts (entries, metadata, data), serialised without the reader's checks.</summary>
sealed class RawSafetensors
{
    public sealed record Entry(string Name, string DType, long[] Shape, long Begin, long End);

    public List<Entry> Entries { get; } = [];
    public Dictionary<string, string> Metadata { get; } = [];
    public byte[] Data { get; set; } = [];
    /// <summary>When set, written in place of the true header length.</summary>
    public ulong? HeaderLength { get; set; }
    /// <summary>When set, written in place of the JSON header built from the entries.</summary>
    public string? HeaderJson { get; set; }

    public static readonly (string Name, int Size)[] DTypes = [("F32", 4), ("F16", 2), ("BF16", 2), ("F64", 8), ("I64", 8), ("I32", 4), ("I8", 1), ("U8", 1), ("BOOL", 1)];

    /// <summary>Random tensors (small shapes, random bytes; floats sometimes NaN or inf), laid out back to back.</summary>
    public static RawSafetensors Random(Random rng)
    {
        var file = new RawSafetensors();
        var data = new List<byte>();
        int count = rng.Next(5);
        for (int i = 0; i < count; i++)
        {
            var (dtype, size) = DTypes[rng.Next(DTypes.Length)];
            var shape = Enumerable.Range(0, rng.Next(4)).Select(_ => (long)rng.Next(5)).ToArray();
            long n = shape.Aggregate(1L, (a, b) => a * b);
            var bytes = new byte[n * size];
            if (dtype == "F32")
                for (int k = 0; k < n; k++)
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * k), rng.Next(10) == 0 ? float.NaN : rng.Next(10) == 0 ? float.PositiveInfinity : (float)rng.NextDouble());
            else if (dtype == "BOOL") for (int k = 0; k < n; k++) bytes[k] = (byte)rng.Next(2);
            else rng.NextBytes(bytes);
            if (dtype is "F16" or "BF16" or "F64")
                for (int k = 0; k < n; k++) bytes[(k + 1) * size - 1] &= 0x3F;   // keep most of them finite
            file.Entries.Add(new Entry($"layer.{i}.weight", dtype, shape, data.Count, data.Count + bytes.Length));
            data.AddRange(bytes);
        }
        if (rng.Next(2) == 0) file.Metadata["format"] = "pt";
        file.Data = [.. data];
        return file;
    }

    public string BuildHeader()
    {
        var parts = new List<string>();
        if (Metadata.Count > 0)
            parts.Add("\"__metadata__\":{" + string.Join(",", Metadata.Select(p => $"{Quote(p.Key)}:{Quote(p.Value)}")) + "}");
        foreach (var e in Entries)
            parts.Add($"{Quote(e.Name)}:{{\"dtype\":{Quote(e.DType)},\"shape\":[{string.Join(",", e.Shape)}],\"data_offsets\":[{e.Begin},{e.End}]}}");
        return "{" + string.Join(",", parts) + "}";
    }

    public byte[] ToBytes()
    {
        var header = Encoding.UTF8.GetBytes(HeaderJson ?? BuildHeader());
        var bytes = new byte[8 + header.Length + Data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, HeaderLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        Data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s);
}
