namespace QuantumPeft.Data;

/// <summary>One entry point for the text-generation (causal-LM) tasks: e2e from a folder, gloss fetched (WordNet 3.0).</summary>
public static class GenerationTasks
{
    /// <summary>Every generation task name <see cref="Load"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["e2e", "gloss"];

    /// <summary>True when <paramref name="name"/> is a generation task (trained on a causal LM).</summary>
    public static bool IsGenerationTask(string? name) => Names.Contains(name?.Trim().ToLowerInvariant());

    /// <summary>Loads a generation task by name; e2e needs <paramref name="dataDir"/> (the challenge's CSV files).</summary>
    public static GenerationTask Load(string name, string? dataDir = null) => name.Trim().ToLowerInvariant() switch
    {
        "e2e" => E2eNlg.Load(dataDir),
        "gloss" => WordNetGloss.Load(),
        _ => throw new ArgumentException($"Unknown generation task '{name}'; valid: {string.Join(", ", Names)}.", nameof(name)),
    };
}
