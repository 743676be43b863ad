using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace QuantumPeft.Tuners;

/// <summary>The fields every adapter method shares; serialised as peft's <c>adapter_config.json</c> (snake_case).</summary>
/// <remarks>
/// Concrete methods derive from this record and register themselves in <see cref="PeftRegistry"/> under their
/// <see cref="PeftType"/>. Reading a file looks up the type by its "peft_type" key; keys the type does not know
/// (written by a newer version) are reported as warnings and ignored, as peft does.
/// </remarks>
public abstract record PeftConfig
{
    /// <summary>The method's name in files ("LORA", "QUANTUM_PEFT").</summary>
    public abstract string PeftType { get; }

    /// <summary>peft's task type (e.g. "SEQ_CLS", "CAUSAL_LM"), informational.</summary>
    public string? TaskType { get; init; }

    /// <summary>True when the adapter is loaded for inference only (peft writes true when saving).</summary>
    public bool InferenceMode { get; init; }

    /// <summary>The base model the adapter was trained on (a hub id or a local folder).</summary>
    public string? BaseModelNameOrPath { get; init; }

    /// <summary>The base model's revision, informational.</summary>
    public string? Revision { get; init; }

    /// <summary>Which Linear layers get an adapter: names/suffixes, a full-match regex, or "all-linear".</summary>
    public ModuleSelector? TargetModules { get; init; }

    /// <summary>Layers never adapted, even when <see cref="TargetModules"/> selects them (same matching rules).</summary>
    public ModuleSelector? ExcludeModules { get; init; }

    /// <summary>Modules (e.g. a classifier head) that stay fully trainable and are saved with the adapter.</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>The peft version that wrote the file (peft 0.18 and later write it; absent means older); not written by this library.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? PeftVersion { get; init; }

    /// <summary>peft's auto_mapping (for custom model classes), kept as written.</summary>
    public System.Text.Json.JsonElement? AutoMapping { get; init; }

    /// <summary>The options that read and write adapter_config.json (snake_case, string enums, indented).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = CreateJsonOptions();

    private static JsonSerializerOptions CreateJsonOptions()
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            WriteIndented = true,
            DefaultIgnoreCondition = JsonIgnoreCondition.Never,
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
            TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        o.MakeReadOnly();
        return o;
    }

    /// <summary>Checks values a file or a caller could get wrong; throws ArgumentException naming the field.</summary>
    public virtual void Validate()
    {
        if (TargetModules is null) throw new ArgumentException("target_modules is required (a list of names, a regex string, or \"all-linear\").", nameof(TargetModules));
    }

    /// <summary>Serialises this config as peft does: one JSON object, keys sorted.</summary>
    public string ToJson()
    {
        var node = JsonSerializer.SerializeToNode(this, GetType(), JsonOptions)!.AsObject();
        var sorted = new JsonObject();
        foreach (var (k, v) in node.OrderBy(p => p.Key, StringComparer.Ordinal)) sorted[k] = v?.DeepClone();
        return sorted.ToJsonString(JsonOptions);
    }

    /// <summary>Reads a config of any registered method; unknown keys become warnings.</summary>
    /// <exception cref="InvalidDataException">The text is not a config of a registered method; the message starts with <paramref name="source"/>.</exception>
    public static PeftConfig FromJson(string json, ICollection<string>? warnings = null, string source = "adapter_config.json")
    {
        JsonObject obj;
        try
        {
            obj = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException($"{source}: expected a JSON object.");
            // JsonObject reads its members lazily: a duplicate key only throws (ArgumentException) on first access.
            _ = obj.Count;
        }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message}).", e); }
        catch (InvalidOperationException e) { throw new InvalidDataException($"{source}: expected a JSON object ({e.Message}).", e); }
        catch (ArgumentException e) { throw new InvalidDataException($"{source}: a key appears twice ({WithoutParameter(e)}).", e); }

        if (!obj.TryGetPropertyValue("peft_type", out var typeNode) || typeNode is null)
            throw new InvalidDataException($"{source}: missing \"peft_type\" (one of {string.Join(", ", PeftRegistry.Names)}).");
        if (typeNode is not JsonValue typeValue || !typeValue.TryGetValue<string>(out var typeName))
            throw new InvalidDataException($"{source}: \"peft_type\" must be a string (one of {string.Join(", ", PeftRegistry.Names)}), got {typeNode.ToJsonString()}.");
        PeftMethod method;
        try { method = PeftRegistry.Get(typeName); }
        catch (ArgumentException e) { throw new InvalidDataException($"{source}: {WithoutParameter(e)}", e); }

        var known = JsonOptions.GetTypeInfo(method.ConfigType).Properties.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var key in obj.Select(p => p.Key).Where(k => !known.Contains(k)).OrderBy(k => k, StringComparer.Ordinal))
            PeftWarnings.Report(warnings, $"{source}: unknown key \"{key}\" for {method.PeftType} (written by a newer version?); ignored.");
        foreach (var key in obj.Select(p => p.Key).Where(k => !known.Contains(k)).ToList()) obj.Remove(key);

        PeftConfig config;
        try { config = (PeftConfig)obj.Deserialize(method.ConfigType, JsonOptions)!; }
        catch (JsonException e) { throw new InvalidDataException($"{source}: {e.Message}", e); }
        // Property setters and converters check values (an empty module name, a bad regex, an unknown enum name) with ArgumentException.
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or OverflowException or NotSupportedException)
        {
            throw new InvalidDataException($"{source}: {WithoutParameter(e)}", e);
        }
        if (config is null) throw new InvalidDataException($"{source}: expected a JSON object.");
        // A file without peft_version was written before peft 0.18, whatever a new config of this type defaults to.
        if (!obj.ContainsKey("peft_version")) config = config with { PeftVersion = null };
        return config.AfterRead(obj);
    }

    // The message of an ArgumentException without the " (Parameter 'x')" that .NET appends: in a file's error the key is already named.
    // A null argument's message names nothing else, so there the name stays.
    internal static string WithoutParameter(Exception e) => e switch
    {
        ArgumentNullException { ParamName: { } name } => $"{name} must not be null.",
        ArgumentException { ParamName: { } name } => e.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal),
        _ => e.Message,
    };

    /// <summary>Adjusts a config read from a file for keys the writing version did not have yet (their defaults have changed since).</summary>
    /// <param name="file">The file's JSON object (keys this type does not know already removed).</param>
    protected virtual PeftConfig AfterRead(JsonObject file) => this;

    /// <summary>Reads adapter_config.json from a file.</summary>
    public static PeftConfig Load(string path, ICollection<string>? warnings = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Adapter config not found: {path}", path);
        return FromJson(File.ReadAllText(path), warnings, path);
    }

    /// <summary>Writes this config to a file atomically (temporary name, then rename).</summary>
    public void Save(string path) => Formats.AtomicFile.WriteAllText(path, ToJson() + "\n");
}
