using System.Text.Json;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Data.TextMetrics;
using QuantumPeft.Tests.Cli;

namespace QuantumPeft.Tests.Data.TextMetrics;

/// <summary>The E2E file formats, the scorer end to end, and the <c>qpeft score</c> contract.</summary>
public sealed class E2eScorerTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-e2e-tests-" + Guid.NewGuid().ToString("N"));

    public E2eScorerTests() => Directory.CreateDirectory(dir);
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    string Write(string name, string text)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ReferenceGroupsAreSeparatedByBlankLinesWithCrlfAndTrailingBlankLines()
    {
        var path = Write("refs.txt", "  First ref a.\r\nFirst ref b.\r\n\r\nSecond ref.\r\n\r\n\r\n");
        var groups = E2eScorer.ReadReferences(path);
        Assert.Equal(2, groups.Count);
        Assert.Equal(["First ref a.", "First ref b."], groups[0]);
        Assert.Equal(["Second ref."], groups[1]);
    }

    [Fact]
    public void AFileWithoutBlankLinesHoldsOneReferencePerHypothesis()
    {
        var groups = E2eScorer.ReadReferences(Write("refs.txt", "one\ntwo\nthree\n"));
        Assert.Equal(3, groups.Count);
        Assert.All(groups, g => Assert.Single(g));
    }

    [Fact]
    public void HypothesesKeepBlankLinesAsEmptyOutputs()
    {
        var hyps = E2eScorer.ReadHypotheses(Write("hyps.txt", "a b \r\n\r\nc\n"));
        Assert.Equal(["a b", "", "c"], hyps);
    }

    [Fact]
    public void ACountMismatchNamesBothCountsAndFiles()
    {
        var refs = Write("refs.txt", "a\nb\n\nc\n");
        var hyps = Write("hyps.txt", "a\nb\nc\n");
        var e = Assert.Throws<ArgumentException>(() => E2eScorer.ReadPair(refs, hyps));
        Assert.Contains("2 reference group(s)", e.Message);
        Assert.Contains("3 hypothesis line(s)", e.Message);
        Assert.Contains(refs, e.Message);
        Assert.Contains(hyps, e.Message);
    }

    [Fact]
    public void EmptyFilesAreRefused()
    {
        var empty = Write("empty.txt", "");
        var refs = Write("refs.txt", "a\n");
        Assert.Contains("no lines", Assert.Throws<ArgumentException>(() => E2eScorer.ReadPair(refs, empty)).Message);
        var hyps = Write("hyps.txt", "a\n");
        Assert.Contains("0 reference group(s)", Assert.Throws<ArgumentException>(() => E2eScorer.ReadPair(empty, hyps)).Message);
    }

    [Fact]
    public void IdenticalOutputsScorePerfectlyOnEveryMetric()
    {
        // BLEU 1, ROUGE-L 1; CIDEr 10 x mean cosine (1) with no length penalty = 10. METEOR: each segment alone scores 1,
        // but the corpus statistics are summed (pycocoevalcap's EVAL) and the no-fragmentation case needs a single chunk:
        // METEOR's normaliser makes family-friendly two words: 9 + 6 words all matched in 2 chunks -> frag = 2 / 15,
        // score = 1 - 0.6 (2/15)^0.2 = 0.5990050.
        var hyps = new[] { "The Eagle is a cheap pub near the river.", "Zizzi is a family-friendly restaurant." };
        var refs = hyps.Select(h => (IReadOnlyList<string>)[h]).ToList();
        var s = E2eScorer.Score(hyps, refs, synonyms: null);
        Assert.Equal(1.0, s.Bleu, 12);
        Assert.Equal(1 - 0.6 * Math.Pow(2.0 / 15, 0.2), s.Meteor, 12);
        Assert.Equal(1.0, new Meteor().Score([PtbTokenizer.Tokenize(hyps[0])], [[PtbTokenizer.Tokenize(hyps[0])]]), 12);
        Assert.Equal(1.0, s.RougeL, 12);
        Assert.Equal(10.0, s.Cider, 9);
        Assert.True(s.Nist > 0);
    }

    [Fact]
    public void ScoreCommandPrintsTheJsonContract()
    {
        var refs = Write("refs.txt", "The Eagle is a cheap pub.\nThe Eagle pub is cheap.\n\nZizzi is near the river.\n");
        var hyps = Write("hyps.txt", "The Eagle is a cheap pub.\nZizzi is by the river.\n");
        var (code, output) = CliCommandTests.Run(new ScoreCommand(), "score", "--references", refs, "--hypotheses", hyps, "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output.Trim());
        Assert.Equal(["bleu", "nist", "meteor", "rouge_l", "cider"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        var bleu = doc.RootElement.GetProperty("bleu").GetDouble();
        Assert.InRange(bleu, 0, 1);
        var direct = E2eScorer.ScoreFiles(refs, hyps, WordNetSynonyms.Default);
        Assert.Equal(Math.Round(direct.Bleu, 4), bleu);
        Assert.Equal(Math.Round(direct.Cider, 4), doc.RootElement.GetProperty("cider").GetDouble());
    }

    [Fact]
    public void ScoreCommandPrintsATableAndTheNote()
    {
        var refs = Write("refs.txt", "a cheap pub\n");
        var hyps = Write("hyps.txt", "a cheap pub\n");
        var (code, output) = CliCommandTests.Run(new ScoreCommand(), "score", "--references", refs, "--hypotheses", hyps);
        Assert.Equal(0, code);
        Assert.Contains("BLEU     1.0000", output);
        Assert.Contains("paraphrase", output);
    }

    [Fact]
    public void ScoreCommandReadsAGivenWordNetFolder()
    {
        // A two-synset WordNet in the data-file format: "cheap" and "inexpensive" share one adjective synset.
        var wn = Path.Combine(dir, "wordnet");
        Directory.CreateDirectory(wn);
        File.WriteAllText(Path.Combine(wn, "data.adj"), "  1 licence line\n00000001 00 a 02 cheap 0 inexpensive 0 000 | low in price\n");
        foreach (var pos in new[] { "noun", "verb", "adv" }) File.WriteAllText(Path.Combine(wn, "data." + pos), "  1 licence line\n");
        var refs = Write("refs.txt", "it is cheap\n");
        var hyps = Write("hyps.txt", "it is inexpensive\n");
        var (code, output) = CliCommandTests.Run(new ScoreCommand(), "score", "--references", refs, "--hypotheses", hyps, "--json", "--wordnet", wn);
        Assert.Equal(0, code);
        // exact, exact, synonym (0.8) in one chunk covering all: (1 + 1 + 0.8) / 3 = 0.9333
        Assert.Equal(0.9333, JsonDocument.Parse(output.Trim()).RootElement.GetProperty("meteor").GetDouble());
    }

    [Fact]
    public void ScoreCommandMismatchIsAnError()
    {
        var refs = Write("refs.txt", "a\n\nb\n");
        var hyps = Write("hyps.txt", "a\n");
        var e = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new ScoreCommand(), "score", "--references", refs, "--hypotheses", hyps, "--json"));
        Assert.Contains("2 reference group(s)", e.Message);
    }
}
