using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace QuantumPeft.Tuners;

/// <summary>peft's <c>target_modules</c> / <c>exclude_modules</c> value: a list of names, one regular expression, "all-linear" or our "all-conv".</summary>
/// <remarks>
/// Matching follows peft: a list entry matches a module whose full dotted path equals it or ends with "." + entry
/// (<c>query</c> matches <c>encoder.layer.0.attention.self.query</c>); a single string is a regular expression that must
/// match the whole path; the string "all-linear" selects every Linear layer except the output head
/// (see <see cref="PeftModel"/> for the definition of the head). In JSON it is an array or a string, as peft writes it.
/// <para>"all-conv" (this library's shorthand; peft has none) selects every Conv2d layer outside modules_to_save, and no Linear:
/// the convolutions of a CNN such as ResNet-18. As in peft, "all-linear" never selects a convolution. Lists and regular expressions
/// select Linear, Conv1D and Conv2d layers alike. A saved adapter names the layers either shorthand resolved to, so peft reads it.</para>
/// </remarks>
[JsonConverter(typeof(ModuleSelectorJsonConverter))]
public sealed record ModuleSelector
{
    /// <summary>peft's shorthand for "every linear layer but the output head".</summary>
    public const string AllLinearShorthand = "all-linear";

    /// <summary>This library's shorthand for "every Conv2d layer" (not peft's: saved configs list the layers instead).</summary>
    public const string AllConvShorthand = "all-conv";

    /// <summary>The list entries (exact name or dotted suffix), or null when this is a pattern.</summary>
    public IReadOnlyList<string>? Names { get; }

    /// <summary>The full-match regular expression (or "all-linear"), or null when this is a list.</summary>
    public string? Pattern { get; }

    private ModuleSelector(IReadOnlyList<string>? names, string? pattern) { Names = names; Pattern = pattern; }

    /// <summary>A list of exact names or dotted suffixes.</summary>
    public static ModuleSelector Of(params string[] names)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (names.Any(string.IsNullOrWhiteSpace)) throw new ArgumentException("Module names must be non-empty.", nameof(names));
        return new ModuleSelector(names.ToArray(), null);
    }

    /// <summary>A regular expression that must match a module's whole dotted path (peft's single-string form).</summary>
    public static ModuleSelector Regex(string pattern)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pattern);
        _ = new Regex(pattern); // fail early on a malformed pattern
        return new ModuleSelector(null, pattern);
    }

    /// <summary>Every Linear layer except the output head.</summary>
    public static ModuleSelector AllLinear { get; } = new(null, AllLinearShorthand);

    /// <summary>True for the "all-linear" shorthand.</summary>
    public bool IsAllLinear => Pattern == AllLinearShorthand;

    /// <summary>Every Conv2d layer (outside modules_to_save).</summary>
    public static ModuleSelector AllConv { get; } = new(null, AllConvShorthand);

    /// <summary>True for the "all-conv" shorthand.</summary>
    public bool IsAllConv => Pattern == AllConvShorthand;

    /// <summary>True for "all-linear" or "all-conv", which are resolved against the model rather than matched by name.</summary>
    public bool IsShorthand => IsAllLinear || IsAllConv;

    public static implicit operator ModuleSelector(string[] names) => Of(names);
    public static implicit operator ModuleSelector(List<string> names) => Of(names.ToArray());

    /// <summary>Parses a command-line value: "all-linear", "all-conv", "re:PATTERN", or comma-separated names (a name may carry parts: "c_attn[q,v]").</summary>
    public static ModuleSelector Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        if (text == AllLinearShorthand) return AllLinear;
        if (text == AllConvShorthand) return AllConv;
        if (text.StartsWith("re:", StringComparison.Ordinal)) return Regex(text[3..]);
        // Split on commas outside brackets.
        var names = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i <= text.Length; i++)
        {
            if (i < text.Length && text[i] == '[') depth++;
            else if (i < text.Length && text[i] == ']') depth--;
            else if (i == text.Length || (text[i] == ',' && depth == 0))
            {
                var name = text[start..i].Trim();
                if (name.Length > 0) names.Add(name);
                start = i + 1;
            }
        }
        foreach (var n in names) _ = SplitParts(n);
        return Of(names.ToArray());
    }

    /// <summary>
    /// An entry's module name and, for the fused-projection form "NAME[q,v]", the parts it adapts (null for a plain name).
    /// </summary>
    /// <exception cref="ArgumentException">Malformed brackets or a part other than q, k, v.</exception>
    public static (string Name, IReadOnlyList<string>? Parts) SplitParts(string entry)
    {
        var open = entry.IndexOf('[');
        if (open < 0)
        {
            if (entry.Contains(']')) throw new ArgumentException($"target '{entry}': ']' without '['; the parts form is NAME[q,v].", nameof(entry));
            return (entry, null);
        }
        if (!entry.EndsWith(']') || open == 0)
            throw new ArgumentException($"target '{entry}' is malformed; the parts form is NAME[q,v] (parts of a fused q, k, v projection such as GPT-2's c_attn).", nameof(entry));
        var parts = entry[(open + 1)..^1].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
        if (parts.Count == 0) throw new ArgumentException($"target '{entry}' names no part; use e.g. c_attn[q,v].", nameof(entry));
        foreach (var p in parts) FusedPartsBranch.PartIndex(p);
        if (parts.Distinct().Count() != parts.Count) throw new ArgumentException($"target '{entry}' names a part twice.", nameof(entry));
        return (entry[..open], parts);
    }

    /// <summary>Whether one list entry (or the pattern) selects the module at <paramref name="path"/> (the parts of "NAME[q,v]" aside).</summary>
    public static bool EntryMatches(string entry, string path)
    {
        var bracket = entry.IndexOf('[');
        if (bracket > 0) entry = entry[..bracket];
        return path == entry || path.EndsWith("." + entry, StringComparison.Ordinal);
    }

    /// <summary>The parts the first matching "NAME[q,v]" entry names for <paramref name="path"/>, or null when the layer is adapted whole.</summary>
    public IReadOnlyList<string>? PartsFor(string path) =>
        Names?.Where(n => EntryMatches(n, path)).Select(n => SplitParts(n).Parts).FirstOrDefault(p => p is not null);

    /// <summary>Whether this selector selects <paramref name="path"/> (the "all-linear" shorthand is resolved by the caller).</summary>
    public bool Matches(string path)
    {
        if (Names is not null) return Names.Any(n => EntryMatches(n, path));
        if (IsShorthand) throw new InvalidOperationException($"\"{Pattern}\" is resolved against the model, not by name.");
        return System.Text.RegularExpressions.Regex.IsMatch(path, $"^(?:{Pattern})$");
    }

    public override string ToString() => Names is not null ? "[" + string.Join(", ", Names) + "]" : $"\"{Pattern}\"";

    public bool Equals(ModuleSelector? other) =>
        other is not null && Pattern == other.Pattern &&
        (Names is null ? other.Names is null : other.Names is not null && Names.SequenceEqual(other.Names));

    public override int GetHashCode() => HashCode.Combine(Pattern, Names is null ? 0 : string.Join("\u0001", Names).GetHashCode());
}

/// <summary>Reads and writes <see cref="ModuleSelector"/> as peft does: a JSON array of names or a string.</summary>
public sealed class ModuleSelectorJsonConverter : JsonConverter<ModuleSelector>
{
    public override ModuleSelector? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.String:
                var s = reader.GetString()!;
                return s switch
                {
                    ModuleSelector.AllLinearShorthand => ModuleSelector.AllLinear,
                    ModuleSelector.AllConvShorthand => ModuleSelector.AllConv,
                    _ => ModuleSelector.Regex(s),
                };
            case JsonTokenType.StartArray:
                var names = JsonSerializer.Deserialize<List<string>>(ref reader, options) ?? [];
                return ModuleSelector.Of(names.ToArray());
            default:
                throw new JsonException($"Expected a list of module names or a string pattern, found {reader.TokenType}.");
        }
    }

    public override void Write(Utf8JsonWriter writer, ModuleSelector value, JsonSerializerOptions options)
    {
        if (value.Names is not null)
        {
            writer.WriteStartArray();
            foreach (var n in value.Names) writer.WriteStringValue(n);
            writer.WriteEndArray();
        }
        else writer.WriteStringValue(value.Pattern);
    }
}
