using System.Text.Json;

namespace QuantumPeft.Data.Tokenizers;

/// <summary>A token added on top of a tokenizer's vocabulary (transformers' AddedToken): never split, matched in text first.</summary>
internal sealed record AddedToken(string Content, int Id, bool Special);

/// <summary>
/// The special-token settings of a model folder, as transformers gathers them: tokenizer_config.json, overridden by
/// special_tokens_map.json, plus added_tokens.json; config.json's token ids as the last resort.
/// </summary>
internal sealed record TokenizerFolderConfig
{
    public const string TokenizerConfigFile = "tokenizer_config.json";
    public const string SpecialTokensMapFile = "special_tokens_map.json";
    public const string AddedTokensFile = "added_tokens.json";
    public const string ModelConfigFile = "config.json";

    public string? BosToken { get; private init; }
    public string? EosToken { get; private init; }
    public string? PadToken { get; private init; }
    public string? UnkToken { get; private init; }
    public bool? AddBosToken { get; private init; }
    public bool? AddEosToken { get; private init; }
    public bool? AddPrefixSpace { get; private init; }
    public IReadOnlyList<AddedToken> AddedTokens { get; private init; } = [];
    public int? ConfigBosId { get; private init; }
    public int? ConfigEosId { get; private init; }
    public int? ConfigPadId { get; private init; }

    public static TokenizerFolderConfig Read(string folder)
    {
        var config = ReadObject(Path.Combine(folder, TokenizerConfigFile));
        var map = ReadObject(Path.Combine(folder, SpecialTokensMapFile));
        var model = ReadObject(Path.Combine(folder, ModelConfigFile));

        // special_tokens_map.json wins over tokenizer_config.json, as in transformers' from_pretrained.
        string? Token(string key) => TokenString(map, key) ?? TokenString(config, key);

        var added = new Dictionary<int, AddedToken>();
        if (config is { } c && c.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object)
        {
            foreach (var entry in decoder.EnumerateObject())
            {
                if (!int.TryParse(entry.Name, out int id) || id < 0)
                    throw new InvalidDataException($"'{Path.Combine(folder, TokenizerConfigFile)}': added_tokens_decoder key '{entry.Name}' is not a token id (expected a non-negative integer).");
                var content = TokenString(entry.Value)
                    ?? throw new InvalidDataException($"'{Path.Combine(folder, TokenizerConfigFile)}': added_tokens_decoder['{entry.Name}'] has no \"content\" string.");
                bool special = entry.Value.ValueKind == JsonValueKind.Object && entry.Value.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                added[id] = new AddedToken(content, id, special);
            }
        }
        var addedPath = Path.Combine(folder, AddedTokensFile);
        if (ReadObject(addedPath) is { } extra)
        {
            foreach (var entry in extra.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                    throw new InvalidDataException($"'{addedPath}': the id of '{entry.Name}' is not a non-negative integer (expected {{\"token\": id, ...}}).");
                added.TryAdd(id, new AddedToken(entry.Name, id, Special: false));
            }
        }

        return new TokenizerFolderConfig
        {
            BosToken = Token("bos_token"),
            EosToken = Token("eos_token"),
            PadToken = Token("pad_token"),
            UnkToken = Token("unk_token"),
            AddBosToken = Bool(config, "add_bos_token"),
            AddEosToken = Bool(config, "add_eos_token"),
            AddPrefixSpace = Bool(config, "add_prefix_space"),
            AddedTokens = added.Values.OrderBy(t => t.Id).ToList(),
            ConfigBosId = FirstId(model, "bos_token_id"),
            ConfigEosId = FirstId(model, "eos_token_id"),
            ConfigPadId = FirstId(model, "pad_token_id"),
        };
    }

    /// <summary>The same settings with a tokenizer class's default special tokens where the files name none.</summary>
    public TokenizerFolderConfig WithDefaults(string? bos, string? eos, string? unk) =>
        this with { BosToken = BosToken ?? bos, EosToken = EosToken ?? eos, UnkToken = UnkToken ?? unk };

    /// <summary>The id of a special token: its string looked up with <paramref name="lookup"/> (added tokens first), else the config.json id.</summary>
    public int? Resolve(string? token, Func<string, int?> lookup, int? configId)
    {
        if (token is not null)
        {
            foreach (var t in AddedTokens)
                if (t.Content == token) return t.Id;
            if (lookup(token) is { } id) return id;
        }
        return configId;
    }

    /// <summary>A folder's JSON file as an object, or null when the file is absent; throws naming the file when it is not a JSON object.</summary>
    public static JsonElement? ReadObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { AllowTrailingCommas = true });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{path}' holds a JSON {doc.RootElement.ValueKind}; expected a JSON object.");
            return doc.RootElement.Clone();
        }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON ({e.Message}).", e); }
    }

    // transformers writes a special token either as a plain string or as an AddedToken object {"content": ...}.
    static string? TokenString(JsonElement? parent, string key) =>
        parent is { } p && p.TryGetProperty(key, out var v) ? TokenString(v) : null;

    static string? TokenString(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString(),
        JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
        _ => null,
    };

    static bool? Bool(JsonElement? parent, string key) =>
        parent is { } p && p.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    // eos_token_id may be a list (several stop tokens): the first is the one a tokenizer appends.
    static int? FirstId(JsonElement? parent, string key)
    {
        if (parent is not { } p || !p.TryGetProperty(key, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int id)) return id;
        if (v.ValueKind == JsonValueKind.Array)
            foreach (var x in v.EnumerateArray())
                if (x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int first)) return first;
        return null;
    }
}
