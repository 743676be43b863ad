using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using QuantumPeft.Data.TextMetrics;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft score</c>: the E2E NLG challenge metrics (BLEU, NIST, METEOR, ROUGE-L, CIDEr) of a system output file.</summary>
public sealed class ScoreCommand : ICliCommand
{
    public Command Build()
    {
        var references = new Option<string>("--references") { Description = "References: one group per hypothesis, groups separated by blank lines (the E2E format).", Required = true };
        var hypotheses = new Option<string>("--hypotheses") { Description = "System outputs, one per line.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print {\"bleu\", \"nist\", \"meteor\", \"rouge_l\", \"cider\"} as one JSON object." };
        var wordnet = new Option<string?>("--wordnet") { Description = "Folder with WordNet 3.0's data.{noun,verb,adj,adv} and *.exc files for METEOR's synonyms (default: Debian's wordnet-base, fetched once into the cache with apt-get)." };

        var cmd = new Command("score", "Score generated text with the official E2E NLG challenge metrics (e2e-metrics' measure_scores.py).");
        foreach (var o in new Option[] { references, hypotheses, json, wordnet }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var (refs, hyps) = E2eScorer.ReadPair(parse.GetValue(references)!, parse.GetValue(hypotheses)!);
            var synonyms = parse.GetValue(wordnet) is { } dir ? WordNetSynonyms.Load(Path.GetFullPath(dir)) : WordNetSynonyms.Default;
            var s = E2eScorer.Score(hyps, refs, synonyms);
            // measure_scores.py prints every metric with four decimals (%.4f); BLEU comes from mteval already rounded so.
            double R(double v) => Math.Round(v, 4, MidpointRounding.ToEven);
            if (parse.GetValue(json))
            {
                var values = new Dictionary<string, double>
                {
                    ["bleu"] = R(s.Bleu), ["nist"] = R(s.Nist), ["meteor"] = R(s.Meteor), ["rouge_l"] = R(s.RougeL), ["cider"] = R(s.Cider),
                };
                Console.WriteLine(JsonSerializer.Serialize(values));
                return 0;
            }
            Console.WriteLine($"qpeft score: {hyps.Count} hypotheses, {refs.Sum(g => g.Count)} references");
            Console.WriteLine("metric   score");
            foreach (var (name, v) in new[] { ("BLEU", s.Bleu), ("NIST", s.Nist), ("METEOR", s.Meteor), ("ROUGE_L", s.RougeL), ("CIDEr", s.Cider) })
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-8} {v:F4}"));
            Console.WriteLine($"note: {E2eScorer.MeteorNote}");
            return 0;
        });
        return cmd;
    }
}
