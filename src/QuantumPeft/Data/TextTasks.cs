namespace QuantumPeft.Data;

/// <summary>One entry point for every text task: the fetched ones (sentiment, spam, fortunes) and GLUE (from a folder).</summary>
public static class TextTasks
{
    /// <summary>Tasks fetched by the project itself (no folder needed).</summary>
    public static IReadOnlyList<string> FetchedNames { get; } = ["sentiment", "spam", "fortunes"];

    /// <summary>Every task name <see cref="Load"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. FetchedNames, .. GlueTasks.Names];

    /// <summary>Fetches a fetched task's data into the cache (once) and returns its folder.</summary>
    public static string Fetch(string name) => name == "fortunes" ? Fortunes.Fetch()
        : FetchedNames.Contains(name) ? NpmTasks.Fetch(name)
        : throw new ArgumentException($"task '{name}' cannot be fetched; valid: {string.Join(", ", FetchedNames)}. (GLUE tasks are read from --data-dir.)", nameof(name));

    /// <summary>
    /// Loads a task by name. sentiment, spam and fortunes are fetched into the cache on first use; GLUE tasks need
    /// <paramref name="dataDir"/> (the GLUE root or the task's folder).
    /// </summary>
    public static TextTask Load(string name, string? dataDir = null)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case "sentiment": return NpmTasks.LoadSentiment();
            case "spam": return NpmTasks.LoadSpam();
            case "fortunes": return Fortunes.Load();
        }
        if (!GlueTasks.Names.Contains(name?.Trim().ToLowerInvariant()))
            throw new ArgumentException($"Unknown task '{name}'; valid tasks: {string.Join(", ", Names)}.", nameof(name));
        if (string.IsNullOrWhiteSpace(dataDir))
            throw new ArgumentException($"GLUE task '{name}' needs a data folder (--data-dir) holding the GLUE TSV files ({GlueTasks.FolderOf(name!)}/train.tsv ...).", nameof(dataDir));
        return GlueTasks.Load(name!, dataDir);
    }
}
