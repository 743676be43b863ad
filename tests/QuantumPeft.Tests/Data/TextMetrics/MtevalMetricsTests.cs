using QuantumPeft.Data.TextMetrics;

namespace QuantumPeft.Tests.Data.TextMetrics;

/// <summary>mteval-v13a's tokenisation, BLEU and NIST against values worked out by hand.</summary>
public sealed class MtevalMetricsTests
{
    static IReadOnlyList<IReadOnlyList<string[]>> Refs(params string[][] groups) =>
        groups.Select(g => (IReadOnlyList<string[]>)g.Select(MtevalTokenizer.Tokenize).ToList()).ToList();

    static List<string[]> Hyps(params string[] h) => h.Select(MtevalTokenizer.Tokenize).ToList();

    [Theory]
    [InlineData("Hello, world.", "hello , world .")]
    [InlineData("It's £20-25 (cheap)!", "it's £20 - 25 ( cheap ) !")]   // ' and - stay inside words; - after a digit splits
    [InlineData("Prices 3.5, 1,000 and a.b", "prices 3.5 , 1,000 and a . b")] // . and , between digits stay
    [InlineData("Fish &amp; Chips &quot;x&quot;", "fish & chips \" x \"")]
    [InlineData("ÉCOLE Straße", "École straße")]                            // tr/[A-Z]/[a-z]/ lowers ASCII only
    [InlineData("   ", "")]
    public void TokenizesAsMtevalV13a(string text, string expected) =>
        Assert.Equal(expected, MtevalTokenizer.Normalize(text));

    [Fact]
    public void PerfectMatchIsOne() =>
        Assert.Equal(1.0, Bleu.Score(Hyps("The cat sat on the mat."), Refs(["the cat sat on the mat ."])), 12);

    [Fact]
    public void ClippedCountsWithTwoReferencesAndSmoothedZeroOrders()
    {
        // hyp: 7 x "the"; "the" occurs at most twice in one reference -> p1 = 2/7. No bigram matches: v13a smooths
        // 1/(2*6), then 1/(4*5) and 1/(8*4). Closest reference length to 7 is 7 -> no brevity penalty.
        // BLEU = (2/7 * 1/12 * 1/20 * 1/32)^(1/4) = 0.0780985
        var bleu = Bleu.Score(Hyps("the the the the the the the"), Refs(["the cat is on the mat", "there is a cat on the mat"]));
        Assert.Equal(0.0780985, bleu, 6);
    }

    [Fact]
    public void NoMatchAtAllStillGetsTheSmoothedValueMtevalPrints()
    {
        // 4 words, nothing matches: (1/(2*4) * 1/(4*3) * 1/(8*2) * 1/(16*1))^(1/4) = 0.0798679, BP 1 (lengths 4 and 4).
        Assert.Equal(0.0798679, Bleu.Score(Hyps("x y z w"), Refs(["a b c d"])), 6);
    }

    [Fact]
    public void BrevityPenaltyAndOrdersWithoutHypothesisNGrams()
    {
        // hyp "the cat" (2 words) against 6: p1 = p2 = 1; no 3- or 4-grams in the hypothesis: v13a adds log 1 = 0 for them.
        // BP = exp(1 - 6/2) = exp(-2) = 0.1353353
        Assert.Equal(Math.Exp(-2), Bleu.Score(Hyps("the cat"), Refs(["the cat sat on the mat"])), 12);
    }

    [Fact]
    public void ClosestReferenceLengthTakesTheShorterOnTies()
    {
        Assert.Equal(6, Bleu.ClosestReferenceLength(7, [new string[11], new string[8], new string[6], new string[9]]));
        Assert.Equal(7, Bleu.ClosestReferenceLength(7, [new string[11], new string[8], new string[6], new string[7]]));
        Assert.Equal(5, Bleu.ClosestReferenceLength(3, [new string[5], new string[0]]));   // a padded empty slot is skipped
    }

    [Fact]
    public void AnEmptyHypothesisAddsReferenceLengthButNoNGrams()
    {
        // seg 1 perfect (4 words), seg 2 empty against 2 words: all precisions 4/4 .. 1/1, ref length 4 + 2 = 6, hyp 4.
        // BLEU = exp(1 - 6/4) = 0.6065307; an all-empty corpus scores 0.
        Assert.Equal(Math.Exp(-0.5), Bleu.Score(Hyps("a b c d", ""), Refs(["a b c d"], ["e f"])), 12);
        Assert.Equal(0.0, Bleu.Score(Hyps(""), Refs(["e f"])));
    }

    [Fact]
    public void NistInformationWeightsOnATwoSentenceCorpus()
    {
        // Reference words: a b c | a b d (6). info(a) = info(b) = log2(6/2), info(c) = info(d) = log2(6),
        // info(a b) = log2(2/2) = 0, info(b c) = log2(2/1) = 1, info(a b c) = log2(count(a b)/1) = 1.
        var info = Nist.InformationWeights(Refs(["a b c"], ["a b d"]).SelectMany(g => g).ToList());
        Assert.Equal(Math.Log2(3), info["a"], 12);
        Assert.Equal(Math.Log2(6), info["d"], 12);
        Assert.Equal(0.0, info["a b"], 12);
        Assert.Equal(1.0, info["b c"], 12);
        Assert.Equal(1.0, info["a b c"], 12);

        // hyps "a b c" and "a b": 1-grams (3 log2 3 + log2 6 ... ) = (4 log2 3 + log2 6) / 5 = 1.7849625, 2-grams (0 + 1 + 0) / 3,
        // 3-grams 1 / 1, no 4/5-grams. Length penalty: 5 words against 6: exp(-beta ln^2(5/6)), beta = -ln .5 / ln^2 1.5
        // = 4.2161; = 0.8692274. NIST = (1.7849625 + 0.3333333 + 1) * 0.8692274 = 2.7105083
        Assert.Equal(2.7105083, Nist.Score(Hyps("a b c", "a b"), Refs(["a b c"], ["a b d"])), 6);
    }

    [Fact]
    public void NistReferenceLengthDividesByTheLargestGroup()
    {
        // mteval sees 2 reference sets (groups padded with ""): ref length (3 + 3 + 3) / 2 = 4.5 for 6 hypothesis words: no penalty.
        // info: words a b c d x y z, totals 9; the hyps match "a b c" (3) and "x y z"... checked only via the penalty here.
        Assert.Equal(1.0, Nist.LengthPenalty(6 / 4.5));
        Assert.Equal(0.5, Nist.LengthPenalty(2.0 / 3), 12);    // beta makes a ratio of 2/3 cost exactly one half
        Assert.Equal(0.0, Nist.LengthPenalty(0));
    }

    [Fact]
    public void NistTreatsThePrefixWordZeroAsPerlDoes()
    {
        // $mgram ? ... : ... in compute_ngram_info: the prefix "0" is false in Perl, so info("0 x") uses the total word count.
        var info = Nist.InformationWeights([["0", "x"], ["0", "y"]]);
        Assert.Equal(Math.Log2(4.0 / 1), info["0 x"], 12);
    }
    [Fact]
    public void MatchesMtevalOnAPaddedMultiReferenceCorpus()
    {
        // 12 segments with 1-4 references (mteval sees 4 reference sets, shorter groups padded with ""), an empty hypothesis
        // and the word "0" as an n-gram prefix. Expected values: mteval-v13a-sig.pl's own score_segment, bleu_score,
        // nist_score and compute_ngram_info subs run by Perl 5.36 on these segments (NIST 3.831369915556, BLEU 0.362882574167).
        string[] hyps = ["rating 0 of cheap near 0 5 and near an", "centre it out is centre family city 0", "the it an pub city an",
            "out cheap rating 0 cheap pub it food an food it", "centre of riverside", "", "pub riverside city", "0",
            "food centre it and 5 riverside", "0 of pub is friendly pub", "and", "and cheap 0"];
        string[][] refs = [
            ["rating 0 of cheap near 0 5 and near an", "riverside pub is out a and food rating and near", "0 is a", "cheap city and"],
            ["family rating of cheap 0 city riverside 5 the is"],
            ["is of an", "an riverside food is the the cheap cheap a", "food food it is of cheap centre family is riverside"],
            ["rating 5 near"], ["centre of riverside", "cheap near food"], ["pub cheap rating"],
            ["and family riverside", "is is is cheap of city the and friendly", "and rating pub of 5 of pub food"],
            ["near out cheap food 5 and", "it a an an"], ["food centre it and 5 riverside", "is pub city 5 out", "centre cheap cheap the"],
            ["it rating city a a near riverside"],
            ["0 of pub of a the 5 friendly", "a the and is 5 is riverside", "pub is is rating out friendly a pub", "friendly is 5 is it the 5 of"],
            ["of the and is is is an centre it", "food of rating rating rating out is 0", "riverside and is", "the city an 5 and 5 centre the friendly riverside"]];
        Assert.Equal(0.362882574167, Bleu.Score(Hyps(hyps), Refs(refs)), 11);
        Assert.Equal(3.831369915556, Nist.Score(Hyps(hyps), Refs(refs)), 11);
    }
}
