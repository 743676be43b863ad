using System.Text;

namespace QuantumPeft.Data;

/// <summary>
/// The E2E NLG challenge data (Novikova et al. 2017) from the challenge's CSV files in a folder the user names:
/// <c>trainset.csv</c>, <c>devset.csv</c>, <c>testset_w_refs.csv</c>, each with the columns <c>mr</c> and <c>ref</c>.
/// </summary>
/// <remarks>
/// Prompt format as in the LoRA paper's E2E data (microsoft/LoRA examples/NLG): the meaning representation
/// <c>name[The Vaults], eatType[pub]</c> written as <c>name : The Vaults | eatType : pub</c>, then the separator
/// <c> ||</c>; the completion is a space and the reference (the model's EOS is appended at tokenization).
/// Rows with the same MR are one input with several references when scoring.
/// </remarks>
public static class E2eNlg
{
    /// <summary>The three files, in split order (train, validation, test).</summary>
    public static readonly IReadOnlyList<string> Files = ["trainset.csv", "devset.csv", "testset_w_refs.csv"];

    /// <summary>The separator between the meaning representation and the text.</summary>
    public const string Separator = " ||";

    /// <summary>The E2E metrics, in the scorer's order.</summary>
    public static readonly IReadOnlyList<string> MetricNames = ["bleu", "nist", "meteor", "rouge_l", "cider"];

    /// <summary>Reads the task from <paramref name="dataDir"/>; every error names the file and what was expected.</summary>
    public static GenerationTask Load(string? dataDir)
    {
        if (string.IsNullOrWhiteSpace(dataDir))
            throw new ArgumentException($"task e2e needs --data-dir: the folder with the E2E challenge files {string.Join(", ", Files)} (not downloadable here).");
        if (!Directory.Exists(dataDir)) throw new DirectoryNotFoundException($"--data-dir '{dataDir}' does not exist (expected the E2E files {string.Join(", ", Files)}).");
        var splits = Files.Select(f => ReadFile(Path.Combine(dataDir, f))).ToList();
        return new GenerationTask("e2e", splits[0], splits[1], splits[2], MetricNames);
    }

    /// <summary>The (prompt, completion) pairs of one E2E CSV file.</summary>
    public static IReadOnlyList<PromptCompletion> ReadFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"E2E file not found: '{path}' (expected a CSV with columns mr and ref).", path);
        var rows = Csv.Parse(File.ReadAllText(path), path);
        if (rows.Count == 0) throw new InvalidDataException($"{path}: empty file (expected a header 'mr,ref' and rows).");
        var header = rows[0].Select(h => h.Trim().TrimStart('\uFEFF').ToLowerInvariant()).ToList();
        int mr = header.IndexOf("mr"), reference = header.IndexOf("ref");
        if (mr < 0 || reference < 0)
            throw new InvalidDataException($"{path}: the header has columns [{string.Join(", ", rows[0])}]; expected 'mr' and 'ref'.");
        var result = new List<PromptCompletion>();
        for (int i = 1; i < rows.Count; i++)
        {
            var row = rows[i];
            if (row.Count == 1 && row[0].Length == 0) continue;   // a blank line
            if (row.Count <= Math.Max(mr, reference))
                throw new InvalidDataException($"{path}: row {i + 1} has {row.Count} field(s); expected at least {Math.Max(mr, reference) + 1} (mr and ref).");
            var text = row[reference].Trim();
            if (text.Length == 0) throw new InvalidDataException($"{path}: row {i + 1} has an empty ref (a completion must not be empty).");
            result.Add(new PromptCompletion(Prompt(row[mr], path, i + 1), " " + text));
        }
        if (result.Count == 0) throw new InvalidDataException($"{path}: no data rows after the header.");
        return result;
    }

    /// <summary>"name[The Vaults], eatType[pub]" as the LoRA paper's prompt: "name : The Vaults | eatType : pub ||".</summary>
    public static string Prompt(string mr, string source = "mr", int row = 0)
    {
        var parts = new List<string>();
        int i = 0;
        while (i < mr.Length)
        {
            int open = mr.IndexOf('[', i);
            if (open < 0)
            {
                if (mr[i..].Trim(' ', ',').Length > 0) throw Bad();
                break;
            }
            int close = mr.IndexOf(']', open);
            if (close < 0) throw Bad();
            var key = mr[i..open].Trim(' ', ',');
            if (key.Length == 0) throw Bad();
            parts.Add($"{key} : {mr[(open + 1)..close].Trim()}");
            i = close + 1;
        }
        if (parts.Count == 0) throw Bad();
        return string.Join(" | ", parts) + Separator;

        InvalidDataException Bad() => new($"{source}: row {row}: meaning representation '{mr}' is not in the E2E form key[value], key[value], ...");
    }
}

/// <summary>RFC 4180 CSV: quoted fields may hold commas, quotes (doubled) and line breaks.</summary>
public static class Csv
{
    /// <summary>The rows of <paramref name="text"/>; an unterminated quote is an error naming <paramref name="source"/>.</summary>
    public static List<List<string>> Parse(string text, string source)
    {
        var rows = new List<List<string>>();
        var row = new List<string>();
        var field = new StringBuilder();
        bool quoted = false, any = false;
        int line = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else { if (c == '\n') line++; field.Append(c); }
                continue;
            }
            switch (c)
            {
                case '"' when field.Length == 0: quoted = true; any = true; break;
                case ',': row.Add(field.ToString()); field.Clear(); any = true; break;
                case '\r': break;
                case '\n':
                    row.Add(field.ToString()); field.Clear();
                    rows.Add(row); row = []; any = false; line++;
                    break;
                default: field.Append(c); any = true; break;
            }
        }
        if (quoted) throw new InvalidDataException($"{source}: a quoted field opened before line {line} is never closed.");
        if (any || field.Length > 0) { row.Add(field.ToString()); rows.Add(row); }
        return rows;
    }
}
