using System.Text;

namespace QuantumPeft.Data.TextMetrics;

/// <summary>The five E2E NLG challenge metrics of a system output; BLEU as a fraction in [0, 1], as the E2E scorer prints it.</summary>
public sealed record E2eScores(double Bleu, double Nist, double Meteor, double RougeL, double Cider);

/// <summary>
/// The official E2E NLG challenge scorer (tuetschek/e2e-metrics, measure_scores.py) re-implemented: BLEU and NIST as
/// mteval-v13a computes them on its own tokenisation; METEOR, ROUGE-L and CIDEr as pycocoevalcap computes them on
/// PTB-tokenised, lower-cased captions without punctuation.
/// </summary>
public static class E2eScorer
{
    /// <summary>What cannot be reproduced here, for users to read next to the numbers.</summary>
    public const string MeteorNote =
        "METEOR runs without its paraphrase module (METEOR's paraphrase-en table is not available here) and without METEOR's English function-word list; " +
        "the PTB tokenisation before METEOR, ROUGE-L and CIDEr re-implements Stanford's PTBTokenizer rules.";

    /// <summary>Scores hypotheses against their reference groups (one group per hypothesis) with METEOR's WordNet synonyms fetched on first use.</summary>
    public static E2eScores Score(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references) =>
        Score(hypotheses, references, WordNetSynonyms.Default);

    /// <summary>As above with a given synonym dictionary (null: METEOR without the synonym module).</summary>
    public static E2eScores Score(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references, WordNetSynonyms? synonyms)
    {
        if (hypotheses.Count != references.Count)
            throw new ArgumentException($"{hypotheses.Count} hypotheses but {references.Count} reference groups.", nameof(references));
        if (references.Any(g => g.Count == 0)) throw new ArgumentException("Every hypothesis needs at least one reference.", nameof(references));

        // measure_scores.py's run_mteval: BLEU and NIST on mteval's tokenisation, groups padded to the largest group size.
        var mtHyp = hypotheses.Select(MtevalTokenizer.Tokenize).ToList();
        var mtRef = references.Select(g => (IReadOnlyList<string[]>)g.Select(MtevalTokenizer.Tokenize).ToList()).ToList();
        double bleu = Bleu.Score(mtHyp, mtRef);
        double nist = Nist.Score(mtHyp, mtRef);

        // measure_scores.py's run_coco_eval: PTBTokenizer, then METEOR, ROUGE-L, CIDEr.
        var cocoHyp = hypotheses.Select(PtbTokenizer.Tokenize).ToList();
        var cocoRef = references.Select(g => (IReadOnlyList<string>)g.Select(PtbTokenizer.Tokenize).ToList()).ToList();
        double meteor = new Meteor(MeteorParameters.English, synonyms).Score(cocoHyp, cocoRef);
        double rouge = RougeL.Score(cocoHyp, cocoRef);
        double cider = Cider.Score(cocoHyp, cocoRef);
        return new E2eScores(bleu, nist, meteor, rouge, cider);
    }

    /// <summary>Scores the challenge's files: <paramref name="hypothesesFile"/> one output per line, <paramref name="referencesFile"/> blank-line-separated groups.</summary>
    public static E2eScores ScoreFiles(string referencesFile, string hypothesesFile, WordNetSynonyms? synonyms)
    {
        var (refs, hyps) = ReadPair(referencesFile, hypothesesFile);
        return Score(hyps, refs, synonyms);
    }

    /// <summary>Reads both files and checks that there is one reference group per hypothesis.</summary>
    public static (IReadOnlyList<IReadOnlyList<string>> References, IReadOnlyList<string> Hypotheses) ReadPair(string referencesFile, string hypothesesFile)
    {
        var hyps = ReadHypotheses(hypothesesFile);
        var refs = ReadReferences(referencesFile);
        if (hyps.Count == 0) throw new ArgumentException($"hypotheses file '{hypothesesFile}' has no lines.");
        if (refs.Count != hyps.Count)
            throw new ArgumentException(
                $"{refs.Count} reference group(s) in '{referencesFile}' but {hyps.Count} hypothesis line(s) in '{hypothesesFile}': " +
                "give one group of references per hypothesis, groups separated by blank lines (a file without blank lines holds one reference per hypothesis).");
        return (refs, hyps);
    }

    /// <summary>measure_scores.py's read_lines: one hypothesis per line, each stripped (blank lines are empty hypotheses).</summary>
    public static List<string> ReadHypotheses(string path) => Lines(ReadText(path)).Select(PyStrip).ToList();

    /// <summary>
    /// measure_scores.py's read_lines in multi-reference mode: stripped lines, groups separated by blank lines, a trailing
    /// empty group dropped, and a file with a single group read as one reference per line. Unlike it, a run of several
    /// blank lines separates only once (measure_scores.py would make empty groups and fail).
    /// </summary>
    public static List<IReadOnlyList<string>> ReadReferences(string path)
    {
        var groups = new List<List<string>> { new() };
        foreach (var raw in Lines(ReadText(path)))
        {
            var line = PyStrip(raw);
            if (line.Length == 0) { if (groups[^1].Count > 0) groups.Add([]); }
            else groups[^1].Add(line);
        }
        if (groups[^1].Count == 0) groups.RemoveAt(groups.Count - 1);
        if (groups.Count == 1) return groups[0].Select(r => (IReadOnlyList<string>)new[] { r }).ToList();
        return groups.Cast<IReadOnlyList<string>>().ToList();
    }

    static string ReadText(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"file '{full}' does not exist.", full);
        return File.ReadAllText(full, Encoding.UTF8);
    }

    // Python's str.splitlines: \n, \r\n, \r and the other Unicode line boundaries; no empty last line after a final break.
    static IEnumerable<string> Lines(string text)
    {
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')
            {
                yield return text[start..i];
                if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
                start = i + 1;
            }
        }
        if (start < text.Length) yield return text[start..];
    }

    // Python's str.strip(): Unicode white space, which also counts U+001C..U+001F.
    static string PyStrip(string s) => s.Trim().Trim('\x1c', '\x1d', '\x1e', '\x1f').Trim();
}
