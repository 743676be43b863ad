using System.Globalization;
using System.Text;

namespace QuantumPeft.Data;

/// <summary>
/// Small GLUE-format folders (the eight tasks' TSV files, with GLUE's own headers and label names) made from the real
/// offline data: the sentiment sentences and the SpamAssassin e-mails. Not GLUE: the labels are derived from those sets
/// (same sentiment, both spam, ...), so that every task type's code path (single sentences, pairs, three classes,
/// regression, MNLI's matched and mismatched dev files) runs end to end where GLUE itself cannot be had.
/// </summary>
public static class GlueSample
{
    /// <summary>Characters kept of each e-mail body (QQP and QNLI texts, MNLI's neutral hypotheses).</summary>
    public const int MailChars = 200;

    /// <summary>Writes CoLA/, SST-2/, MRPC/, STS-B/, QQP/, MNLI/, QNLI/ and RTE/ under <paramref name="outDir"/>: <paramref name="train"/> training and <paramref name="dev"/> dev rows each.</summary>
    /// <returns>Task folder to (train rows, dev rows).</returns>
    public static IReadOnlyDictionary<string, (int Train, int Dev)> Write(string outDir, int train = 64, int dev = 32, int seed = 13)
    {
        if (train < 4) throw new ArgumentOutOfRangeException(nameof(train), train, "at least 4 training rows per task (GLUE's loader holds out a validation slice).");
        if (dev < 2) throw new ArgumentOutOfRangeException(nameof(dev), dev, "at least 2 dev rows per task.");
        var sentiment = NpmTasks.LoadSentiment();
        var spam = NpmTasks.LoadSpam();
        var rng = new Random(seed);
        var written = new Dictionary<string, (int, int)>();
        // Training rows come from the sets' train splits, dev rows from their test splits: no sentence is in both.
        Pools Of(bool forTrain) => new(
            Split(forTrain ? sentiment.Train : sentiment.Test),
            Split((forTrain ? spam.Train : spam.Test).Select(e => e with { Text = Clean(e.Text, MailChars) }).ToList()));
        var trainPools = Of(true);
        var devPools = Of(false);

        void Task(string folder, string header, Func<Pools, int, string> row, params string[] devFiles)
        {
            var dir = Path.Combine(outDir, folder);
            Directory.CreateDirectory(dir);
            string Rows(Pools pools, int count)
            {
                var sb = new StringBuilder(header.Length == 0 ? "" : header + "\n");
                for (int i = 0; i < count; i++) sb.Append(row(pools, i)).Append('\n');
                return sb.ToString();
            }
            Formats.AtomicFile.WriteAllText(Path.Combine(dir, "train.tsv"), Rows(trainPools, train));
            foreach (var file in devFiles.Length == 0 ? ["dev.tsv"] : devFiles)
                Formats.AtomicFile.WriteAllText(Path.Combine(dir, file), Rows(devPools, dev));
            written[folder] = (train, dev);
        }

        string S(Pools p, int label) => p.Sentences[label][rng.Next(p.Sentences[label].Count)];
        string M(Pools p, int label) => p.Mails[label][rng.Next(p.Mails[label].Count)];
        int Coin() => rng.Next(2);
        string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

        // CoLA has no header: source, label, original mark, sentence. "Acceptable" stands for a positive sentence.
        Task("CoLA", "", (p, i) => { int l = Coin(); return $"sample\t{l}\t{(l == 1 ? "" : "*")}\t{S(p, l)}"; });
        Task("SST-2", "sentence\tlabel", (p, i) => { int l = Coin(); return $"{S(p, l)}\t{l}"; });
        // Pairs: equivalent / duplicate / entailment when both texts have the same label.
        Task("MRPC", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", (p, i) =>
        {
            int a = Coin(), b = Coin();
            return $"{(a == b ? 1 : 0)}\t{2 * i}\t{2 * i + 1}\t{S(p, a)}\t{S(p, b)}";
        });
        // STS-B's score: 0, 2.5 or 5 by how many of the two sentences are positive, plus a little jitter to make it a real regression.
        Task("STS-B", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore", (p, i) =>
        {
            int a = Coin(), b = Coin();
            var score = Math.Clamp(2.5 * (a + b) + (rng.NextDouble() - 0.5) * 0.5, 0, 5);
            return $"{i}\tsample\tsample\t2024\t{i}\tsentiment\tsentiment\t{S(p, a)}\t{S(p, b)}\t{F(score)}";
        });
        Task("QQP", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", (p, i) =>
        {
            int a = Coin(), b = Coin();
            return $"{i}\t{2 * i}\t{2 * i + 1}\t{M(p, a)}\t{M(p, b)}\t{(a == b ? 1 : 0)}";
        });
        // MNLI: a hypothesis of the same sentiment entails, of the other contradicts, and an e-mail is neutral.
        string[] nli = ["entailment", "neutral", "contradiction"];
        Task("MNLI", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label", (p, i) =>
        {
            int a = Coin(), label = rng.Next(3);
            var hypothesis = label switch { 0 => S(p, a), 1 => M(p, Coin()), _ => S(p, 1 - a) };
            var premise = S(p, a);
            return $"{i}\t{i}\t{i}\tsample\t{premise}\t{hypothesis}\t{premise}\t{hypothesis}\t{premise}\t{hypothesis}\t{nli[label]}\t{nli[label]}";
        }, "dev_matched.tsv", "dev_mismatched.tsv");
        Task("QNLI", "index\tquestion\tsentence\tlabel", (p, i) =>
        {
            int a = Coin(), b = Coin();
            return $"{i}\t{M(p, a)}\t{M(p, b)}\t{(a == b ? "entailment" : "not_entailment")}";
        });
        Task("RTE", "index\tsentence1\tsentence2\tlabel", (p, i) =>
        {
            int a = Coin(), b = Coin();
            return $"{i}\t{S(p, a)}\t{S(p, b)}\t{(a == b ? "entailment" : "not_entailment")}";
        });
        return written;
    }

    sealed record Pools(IReadOnlyList<string>[] Sentences, IReadOnlyList<string>[] Mails);

    // Texts by label 0 / 1, on one line without tabs (a TSV field).
    static IReadOnlyList<string>[] Split(IReadOnlyList<TextExample> examples) =>
        [.. Enumerable.Range(0, 2).Select(l => (IReadOnlyList<string>)examples.Where(e => (int)e.Label == l).Select(e => Clean(e.Text, int.MaxValue)).Where(t => t.Length > 0).ToList())];

    static string Clean(string text, int maxChars)
    {
        var flat = string.Join(' ', text.Split((char[])['\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries)).Trim();
        return flat.Length <= maxChars ? flat : flat[..maxChars].TrimEnd();
    }
}
