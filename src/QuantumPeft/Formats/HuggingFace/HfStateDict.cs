using static TorchSharp.torch;

namespace QuantumPeft.Formats.HuggingFace;

/// <summary>What loading a checkpoint into a model did, key by key (model state-dict names).</summary>
/// <param name="Source">The folder or file the weights came from.</param>
/// <param name="Loaded">Model tensors filled from the checkpoint.</param>
/// <param name="Missing">Model tensors the checkpoint lacks, which keep their initial values (a problem).</param>
/// <param name="NewlyInitialized">Model tensors the checkpoint lacks as expected (a new task head), initialised from the seed.</param>
/// <param name="Unexpected">Checkpoint tensors the model has no place for (a problem or another head).</param>
/// <param name="Ignored">Checkpoint tensors deliberately not used (a pooler under a mean head, a position_ids buffer).</param>
public sealed record HfLoadReport(
    string Source,
    IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> NewlyInitialized,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<string> Ignored)
{
    /// <summary>True when every model tensor came from the checkpoint or was expected to be new, and nothing unexplained was left over.</summary>
    public bool IsClean => Missing.Count == 0 && Unexpected.Count == 0;
}

/// <summary>How checkpoint names relate to a model's names.</summary>
/// <param name="BasePrefix">The prefix of the backbone in task models ("bert."): added or stripped so base and task checkpoints both load.</param>
/// <param name="ExpectedMissing">Prefixes of model tensors a checkpoint may lack (a new head: "classifier.").</param>
/// <param name="IgnoredUnexpected">Prefixes or suffixes of checkpoint tensors that are dropped without a warning.</param>
/// <param name="Tied">Model tensors that share storage with another one (a tied lm_head.weight): a checkpoint leaves them
/// out, as save_pretrained does, and they are then neither missing nor loaded.</param>
public sealed record HfLoadOptions(
    string BasePrefix = "",
    IReadOnlyList<string>? ExpectedMissing = null,
    IReadOnlyList<string>? IgnoredUnexpected = null,
    IReadOnlyList<string>? Tied = null);

/// <summary>Copies Hugging Face checkpoint tensors into a TorchSharp module whose state-dict names are the Hugging Face names.</summary>
public static class HfStateDict
{
    static readonly HashSet<string> Warned = [];

    /// <summary>
    /// Copies every checkpoint tensor whose (normalised) name the model has into the model, converting dtype and
    /// device. Old LayerNorm names (gamma, beta) become weight, bias; the backbone prefix is added or stripped as
    /// needed. A shape mismatch throws naming the key and both shapes; missing and unexpected names are returned
    /// and warned about once through <paramref name="log"/> (stderr by default).
    /// </summary>
    public static HfLoadReport Load(nn.Module model, IReadOnlyDictionary<string, Tensor> checkpoint, string source,
        HfLoadOptions? options = null, Action<string>? log = null)
    {
        options ??= new HfLoadOptions();
        foreach (var m in TensorChecks.CheckFinite(checkpoint, source)) (log ?? (x => Console.Error.WriteLine(x)))($"warning: {m}");
        var target = model.state_dict();
        var renamed = Normalize(checkpoint.Keys, target.Keys, options.BasePrefix);

        var loaded = new List<string>();
        var unexpected = new List<string>();
        var ignored = new List<string>();
        using (no_grad())
        {
            // Check every shape before copying anything, so a mismatch leaves the model untouched.
            foreach (var (original, name) in renamed)
            {
                if (!target.TryGetValue(name, out var slot)) continue;
                var given = checkpoint[original];
                if (!given.shape.SequenceEqual(slot.shape))
                    throw new InvalidDataException(
                        $"{source}: tensor '{original}' has shape [{string.Join(", ", given.shape)}] but the model's '{name}' expects [{string.Join(", ", slot.shape)}].");
            }
            foreach (var (original, name) in renamed)
            {
                if (target.TryGetValue(name, out var slot))
                {
                    slot.copy_(checkpoint[original]);
                    loaded.Add(name);
                }
                else if (Matches(name, options.IgnoredUnexpected) || Matches(original, options.IgnoredUnexpected)) ignored.Add(original);
                else unexpected.Add(original);
            }
        }

        var loadedSet = loaded.ToHashSet();
        var tied = options.Tied ?? [];
        var absent = target.Keys.Where(k => !loadedSet.Contains(k) && !tied.Contains(k)).ToList();
        var fresh = absent.Where(k => Matches(k, options.ExpectedMissing)).ToList();
        var missing = absent.Except(fresh).ToList();
        if (loaded.Count == 0 && checkpoint.Count > 0)
            throw new InvalidDataException(
                $"{source}: none of its {checkpoint.Count} tensors match the model (first checkpoint name '{checkpoint.Keys.First()}', first model name '{target.Keys.FirstOrDefault()}'): is it the right architecture?");

        var report = new HfLoadReport(source, loaded, missing, fresh, unexpected, ignored);
        Announce(report, log ?? (m => Console.Error.WriteLine(m)));
        return report;
    }

    /// <summary>Pairs each checkpoint name with the model name it loads into (gamma/beta renamed, backbone prefix reconciled).</summary>
    internal static List<(string Original, string Name)> Normalize(IEnumerable<string> checkpointNames, IEnumerable<string> modelNames, string basePrefix)
    {
        var names = checkpointNames.ToList();
        var renamed = names.Select(n => (Original: n, Name: RenameLegacy(n))).ToList();
        if (basePrefix.Length == 0) return renamed;
        // The transformers rule: a task model ("bert." names) takes a base checkpoint by adding the prefix,
        // and a base model takes a task checkpoint by stripping it.
        bool modelHasPrefix = modelNames.Any(n => n.StartsWith(basePrefix, StringComparison.Ordinal));
        bool checkpointHasPrefix = renamed.Any(p => p.Name.StartsWith(basePrefix, StringComparison.Ordinal));
        if (modelHasPrefix && !checkpointHasPrefix)
            return renamed.Select(p => (p.Original, basePrefix + p.Name)).ToList();
        if (!modelHasPrefix && checkpointHasPrefix)
            return renamed.Select(p => p.Name.StartsWith(basePrefix, StringComparison.Ordinal) ? (p.Original, p.Name[basePrefix.Length..]) : p).ToList();
        return renamed;
    }

    // TensorFlow-era checkpoints name LayerNorm parameters gamma and beta.
    static string RenameLegacy(string name) =>
        name.EndsWith(".gamma", StringComparison.Ordinal) ? name[..^".gamma".Length] + ".weight"
        : name.EndsWith(".beta", StringComparison.Ordinal) ? name[..^".beta".Length] + ".bias"
        : name;

    static bool Matches(string name, IReadOnlyList<string>? patterns) =>
        patterns is not null && patterns.Any(p => name.StartsWith(p, StringComparison.Ordinal) || name.EndsWith(p, StringComparison.Ordinal));

    static void Announce(HfLoadReport report, Action<string> log)
    {
        var messages = new List<string>();
        if (report.Missing.Count > 0)
            messages.Add($"warning: {report.Source}: {report.Missing.Count} model tensors are not in the checkpoint and keep their random initial values: {List(report.Missing)}");
        if (report.Unexpected.Count > 0)
            messages.Add($"warning: {report.Source}: {report.Unexpected.Count} checkpoint tensors were not used: {List(report.Unexpected)}");
        if (report.NewlyInitialized.Count > 0)
            messages.Add($"note: {report.Source}: newly initialised (train before use): {List(report.NewlyInitialized)}");
        foreach (var m in messages)
        {
            // Once per process: a trainer that reloads the same folder every epoch should not repeat itself.
            lock (Warned) if (!Warned.Add(m)) continue;
            log(m);
        }
    }

    static string List(IReadOnlyList<string> names) =>
        string.Join(", ", names.Take(12)) + (names.Count > 12 ? $", ... ({names.Count - 12} more)" : "");
}
