using QuantumPeft.Data;
using QuantumPeft.Data.TextMetrics;

namespace QuantumPeft.Tests.Data.TextMetrics;

/// <summary>METEOR 1.5 (pycocoevalcap's -l en -norm) against values worked out by hand, with WordNet fetched into the cache.</summary>
public sealed class MeteorTests
{
    const double Alpha = 0.85;

    [Fact]
    public void EnglishParametersAreTheRankTaskDefaults()
    {
        var p = MeteorParameters.English;
        Assert.Equal((0.85, 0.20, 0.60, 0.75), (p.Alpha, p.Beta, p.Gamma, p.Delta));
        Assert.Equal((1.0, 0.6, 0.8, 0.6), (p.ExactWeight, p.StemWeight, p.SynonymWeight, p.ParaphraseWeight));
        Assert.Equal(40, p.BeamSize);
    }

    [Fact]
    public void ExactMatchesInTwoChunks()
    {
        // "a b c d" vs "c d a b": 4 exact matches, chunks "c d" and "a b" -> 2. P = R = 1, Fmean = 1.
        // frag = 2 / 4 = 0.5, penalty = 0.6 * 0.5^0.2 = 0.5223303, score = 0.4776697
        var m = new Meteor();
        var stats = m.Align(["a", "b", "c", "d"], ["c", "d", "a", "b"]);
        Assert.Equal(2, stats.Chunks);
        Assert.Equal(0.4776697, stats.Score(m.Parameters), 6);
        Assert.Equal(0.4776697, m.Score(["a b c d"], [["c d a b"]]), 6);
    }

    [Fact]
    public void PartialExactMatchWithFmeanAndPenalty()
    {
        // "a b x" vs "a b c d": 2 matches in 1 chunk. P = 2/3, R = 2/4.
        // Fmean = P R / (0.85 P + 0.15 R) = (1/3) / 0.6416667 = 0.5194805; frag = 1 / 2 -> penalty 0.5223303.
        // score = 0.5194805 * 0.4776697 = 0.2481401 (0.24814008)
        double p = 2.0 / 3, r = 0.5, fmean = p * r / (Alpha * p + (1 - Alpha) * r);
        Assert.Equal(0.51948052, fmean, 7);
        Assert.Equal(0.24814008, new Meteor().Score(["a b x"], [["a b c d"]]), 6);
    }

    [Fact]
    public void IdenticalSentencesHaveNoFragmentationPenalty() =>
        Assert.Equal(1.0, new Meteor().Score(["the cat sat"], [["the cat sat"]]), 12);

    [Fact]
    public void StemMatchCountsWithWeightPointSix()
    {
        // Snowball: cats -> cat. "the cats sat" vs "the cat sat": exact, stem, exact in one chunk covering everything.
        // P = R = (1 + 0.6 + 1) / 3 = 0.8666667, no fragmentation (all matched, 1 chunk) -> 0.8666667
        var m = new Meteor();
        Assert.Equal("cat", m.Stem("cats"));
        Assert.Equal(2.6 / 3, m.Score(["the cats sat"], [["the cat sat"]]), 12);
    }

    [Fact]
    public void BestReferenceIsKeptAndStatisticsAreSummedOverTheCorpus()
    {
        // Segment 1: "a b c d" best against "a b c d" (score 1; the other reference "d c b a" scores less).
        // Segment 2: "a b x" vs "a b c d" as above. Summed: test length 7, ref length 8, matches 6 / 6, chunks 1 + 1 = 2.
        // P = 6/7, R = 6/8; Fmean = P R / (0.85 P + 0.15 R) = 0.8495575...; frag = 2 / 6 -> penalty 0.6 (1/3)^0.2.
        double p = 6.0 / 7, r = 6.0 / 8, fmean = p * r / (Alpha * p + (1 - Alpha) * r), expected = fmean * (1 - 0.6 * Math.Pow(1.0 / 3, 0.2));
        Assert.Equal(expected, new Meteor().Score(["a b c d", "a b x"], [["d c b a", "a b c d"], ["a b c d"]]), 12);
    }

    [Fact]
    public void WordNetSynonymMatchCountsWithWeightPointEight()
    {
        // data.adj synset 00934199 holds "cheap" and "inexpensive" (their Snowball stems differ).
        var wordnet = WordNetSynonyms.Default;
        Assert.True(wordnet.AreSynonyms("cheap", "inexpensive"));
        Assert.True(wordnet.AreSynonyms("restaurants", "eatery"));   // morph: restaurants -> restaurant, which shares a synset with eatery
        Assert.False(wordnet.AreSynonyms("cheap", "river"));
        Assert.Equal("restaurant", wordnet.Morph("restaurants"));
        Assert.Equal("glass", wordnet.Morph("glass"));

        // "it is inexpensive" vs "it is cheap": exact, exact, synonym in one chunk covering all: P = R = (1 + 1 + 0.8) / 3.
        var m = new Meteor(synonyms: wordnet);
        Assert.Equal(2.8 / 3, m.Score(["it is inexpensive"], [["it is cheap"]]), 12);
    }

    [Fact]
    public void WithoutSynonymsTheSameWordsOnlyMatchExactly()
    {
        // "it is inexpensive" vs "it is cheap" without WordNet: 2 of 3 on each side, 1 chunk.
        // Fmean = (2/3)(2/3) / (2/3) = 2/3; frag 1/2 -> 2/3 * (1 - 0.6 * 0.5^0.2)
        Assert.Equal(2.0 / 3 * (1 - 0.6 * Math.Pow(0.5, 0.2)), new Meteor().Score(["it is inexpensive"], [["it is cheap"]]), 12);
    }

    [Fact]
    public void EmptyHypothesisScoresZero() => Assert.Equal(0.0, new Meteor().Score([""], [["a b"]]));

    [Fact]
    public void DebianCacheIsIdempotentAndKeepsOnlyTheSelectedFiles()
    {
        Assert.True(WordNetSynonyms.Default.WordCount > 140_000);   // fetched (or found) through the cache
        var first = DebianPackageCache.Ensure(WordNetSynonyms.DebianPackage);
        var again = DebianPackageCache.Ensure(WordNetSynonyms.DebianPackage, _ => false);
        Assert.Equal(first, again);
        Assert.True(File.Exists(Path.Combine(first, "usr", "share", "wordnet", "data.noun")));
        Assert.True(File.Exists(Path.Combine(first, "usr", "share", "wordnet", "verb.exc")));
        Assert.False(File.Exists(Path.Combine(first, "usr", "share", "wordnet", "index.noun")));
    }

    [Fact]
    public void AMissingAptClientGivesAClearError()
    {
        var e = Assert.Throws<InvalidOperationException>(() =>
            DebianPackageCache.Ensure("qpeft-no-such-package", null, "/nonexistent/apt-get", "dpkg"));
        Assert.Contains("apt-get download qpeft-no-such-package", e.Message);
        Assert.Contains("not found", e.Message);
    }
}

/// <summary>METEOR's -norm normaliser (Normalizer.java) on PTB-tokenised, lower-cased captions.</summary>
public sealed class MeteorNormalizerTests
{
    [Theory]
    [InlineData("a family-friendly pub", "a family friendly pub")]        // dashes between words removed
    [InlineData("prices £ 20-25", "prices £ 20 25")]
    [InlineData("zizzi 's prices", "zizzi ' s prices")]                   // a lone clitic: space ' letter splits
    [InlineData("it is n't near", "it is n 't near")]                    // letter ' letter keeps the quote on the right
    [InlineData("the u.s. based st. john", "the us based st. john")]     // dotted abbreviation undotted; st. before lower case kept
    [InlineData("costs 3.50 , 1,000 and the end.", "costs 3.50 , 1,000 and the end .")]
    [InlineData("Fish & Chips", "fish & chips")]
    [InlineData("wait... what", "wait ... what")]
    public void NormalizesAsMeteor(string line, string expected) => Assert.Equal(expected, MeteorNormalizer.Normalize(line));
}
