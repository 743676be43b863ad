using QuantumPeft.Data.TextMetrics;

namespace QuantumPeft.Tests.Data.TextMetrics;

/// <summary>pycocoevalcap's PTB tokenisation, ROUGE-L and CIDEr-D against values worked out by hand.</summary>
public sealed class CocoMetricsTests
{
    [Theory]
    [InlineData("The Eagle is a cheap, family-friendly pub.", "the eagle is a cheap family-friendly pub")]
    [InlineData("Zizzi's prices are £20-25; it isn't near (the) river!", "zizzi 's prices are # 20-25 it is n't near -lrb- the -rrb- river")]   // normalizeCurrency: £ -> #
    [InlineData("\"Quoted\" -- text...", "quoted text")]
    [InlineData("It costs 3.50 and I cannot go.", "it costs 3.50 and i can not go")]
    [InlineData("Near the city centre, flavours and colour.", "near the city center flavors and color")]   // americanize
    [InlineData("Near the City Centre and a detour", "near the city centre and a detour")]            // case-sensitive list; exception
    [InlineData("fish and/or chips", "fish and\\/or chips")]                                          // escapeForwardSlashAsterisk
    public void TokenizesAndDropsPunctuationAsPycocoevalcap(string text, string expected) =>
        Assert.Equal(expected, PtbTokenizer.Tokenize(text));

    [Fact]
    public void RougeLTakesBestPrecisionAndBestRecallFromDifferentReferences()
    {
        // hyp "the cat sat on mat" (5). ref 1 "the cat was on the mat" (6): LCS "the cat on mat" = 4, P 4/5, R 4/6.
        // ref 2 "cat sat on" (3): LCS 3, P 3/5, R 3/3. max P = 0.8, max R = 1.
        // F = (1 + 1.2^2) 0.8 * 1 / (1 + 1.2^2 * 0.8) = 1.952 / 2.152 = 0.9070632
        Assert.Equal(4, RougeL.Lcs("the cat was on the mat".Split(' '), "the cat sat on mat".Split(' ')));
        Assert.Equal(0.9070632, RougeL.Segment("the cat sat on mat", ["the cat was on the mat", "cat sat on"]), 6);
        // Corpus: mean with a segment scoring 0 (no common word) and an empty hypothesis (one empty token, LCS 0).
        Assert.Equal(0.9070632 / 3, RougeL.Score(["the cat sat on mat", "x", ""], [["the cat was on the mat", "cat sat on"], ["y"], ["z"]]), 6);
    }

    [Fact]
    public void CiderDOnAThreeImageCorpus()
    {
        // Groups: {"a b", "a c"}, {"b c"}, {"d"}; idf numerator ln 3; df(a) = 1, df(b) = df(c) = 2 ("b" in groups 1, 2).
        // w(df 1) = ln 3 = 1.0986123, w(df 2) = ln 1.5 = 0.4054651.
        // Image 1, hyp "a b": vs "a b" cosine 1 (orders 1 and 2), vs "a c": order 1 w_a^2 / (w_a^2 + w_b^2) = 0.8801168, order 2 0;
        //   mean over 4 orders and 2 refs x 10 = (1 + 1 + 0.8801168) / 8 * 10 = 3.6001460.
        // Image 2, hyp "b c c" vs "b c": clipping min(2 w_c, w_c) * w_c: order 1 2 w^2 / (sqrt(5) w * sqrt(2) w) = 0.6324555;
        //   order 2 ("c c" has df 0 -> weight ln 3): w^2 / (sqrt(2) w * w) = 0.7071068; order 3 has no reference n-grams -> 0.
        //   Length (bigram count) 2 vs 1: penalty exp(-1 / 72) = 0.9862071. (0.6324555 + 0.7071068) * 0.9862071 / 4 * 10 = 3.3027147.
        // Image 3, hyp "a" vs "d": 0.  Corpus = (3.6001460 + 3.3027147 + 0) / 3 = 2.3009536
        var scores = Cider.SegmentScores(["a b", "b c c", "a"], [["a b", "a c"], ["b c"], ["d"]]);
        Assert.Equal(3.6001460, scores[0], 6);
        Assert.Equal(3.3027147, scores[1], 6);
        Assert.Equal(0.0, scores[2], 12);
        Assert.Equal(2.3009536, Cider.Score(["a b", "b c c", "a"], [["a b", "a c"], ["b c"], ["d"]]), 6);
    }

    [Fact]
    public void CiderParametersAreCiderDs()
    {
        Assert.Equal(4, Cider.N);
        Assert.Equal(6.0, Cider.Sigma);
        Assert.Equal(1.2, RougeL.Beta);
    }
}
