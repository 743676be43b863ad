using QuantumPeft.Generation;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Generation;

public sealed class LogitsProcessorTests
{
    // Logits 1, 2, 3, 4: softmax = e^i / (e + e^2 + e^3 + e^4) = 0.0321, 0.0871, 0.2369, 0.6439;
    // ascending cumulative sums 0.0321, 0.1192, 0.3561, 1.0.
    static Tensor Logits() => tensor(new float[] { 1, 2, 3, 4 }).unsqueeze(0);

    static Tensor NoIds() => zeros(1, 1, dtype: ScalarType.Int64);

    static float[] Values(Tensor t) => t.data<float>().ToArray();

    [Fact]
    public void TemperatureDividesTheLogits()
    {
        using var scores = new TemperatureWarper(2.0).Process(NoIds(), Logits());
        Assert.Equal(new float[] { 0.5f, 1, 1.5f, 2 }, Values(scores));
    }

    [Fact]
    public void TopKKeepsTheKBestAndTies()
    {
        float ninf = float.NegativeInfinity;
        using var top2 = new TopKWarper(2).Process(NoIds(), Logits());
        Assert.Equal(new[] { ninf, ninf, 3, 4 }, Values(top2));
        // min_tokens_to_keep wins over a smaller k; a tie with the k-th best stays.
        using var kept = new TopKWarper(1, minTokensToKeep: 3).Process(NoIds(), Logits());
        Assert.Equal(new[] { ninf, 2, 3, 4 }, Values(kept));
        using var tie = new TopKWarper(1).Process(NoIds(), tensor(new float[] { 4, 1, 4, 2 }).unsqueeze(0));
        Assert.Equal(new[] { 4, ninf, 4, ninf }, Values(tie));
    }

    [Fact]
    public void TopPRemovesTheTailWhoseCumulativeMassIsAtMostOneMinusP()
    {
        float ninf = float.NegativeInfinity;
        // top_p 0.7: remove cumulative <= 0.3 -> 0.0321 and 0.1192 go, 0.3561 stays: tokens 2 and 3 (mass 0.881).
        using var p07 = new TopPWarper(0.7).Process(NoIds(), Logits());
        Assert.Equal(new[] { ninf, ninf, 3, 4 }, Values(p07));
        // top_p 0.6: remove cumulative <= 0.4 -> only token 3 (mass 0.644) is left.
        using var p06 = new TopPWarper(0.6).Process(NoIds(), Logits());
        Assert.Equal(new[] { ninf, ninf, ninf, 4 }, Values(p06));
        // ... unless min_tokens_to_keep is 2.
        using var keep2 = new TopPWarper(0.6, minTokensToKeep: 2).Process(NoIds(), Logits());
        Assert.Equal(new[] { ninf, ninf, 3, 4 }, Values(keep2));
        // top_p 0.95: remove cumulative <= 0.05 -> token 0 only.
        using var p095 = new TopPWarper(0.95).Process(NoIds(), Logits());
        Assert.Equal(new[] { ninf, 2, 3, 4 }, Values(p095));
        // The kept distribution after top_p 0.7: e^3, e^4 renormalised = 0.2689, 0.7311.
        var probs = Values(p07.softmax(-1));
        Assert.Equal(0.2689, probs[2], 4);
        Assert.Equal(0.7311, probs[3], 4);
    }

    [Fact]
    public void SamplingWarpersRunInTransformersOrder()
    {
        // Temperature first, then top-k, then top-p: at temperature 0.5 the logits are 2, 4, 6, 8, and
        // softmax(6, 8) = 0.1192, 0.8808, so top_p 0.85 after top_k 2 keeps token 3 only (cumulative 0.1192 <= 0.15).
        var list = LogitsProcessorList.For(new GenerationOptions(DoSample: true, Temperature: 0.5, TopK: 2, TopP: 0.85), promptLength: 1);
        Assert.Equal(new[] { typeof(TemperatureWarper), typeof(TopKWarper), typeof(TopPWarper) }, list.Processors.Select(p => p.GetType()));
        using var scores = list.Process(NoIds(), Logits());
        float ninf = float.NegativeInfinity;
        Assert.Equal(new[] { ninf, ninf, ninf, 8 }, Values(scores));
        // Greedy gets no warpers; penalties come before the EOS rule.
        var greedy = LogitsProcessorList.For(new GenerationOptions(Temperature: 0.5, TopK: 2, RepetitionPenalty: 1.2, NoRepeatNgramSize: 2, MinNewTokens: 1, EosTokenIds: [0]), 1);
        Assert.Equal(new[] { typeof(RepetitionPenaltyProcessor), typeof(NoRepeatNGramProcessor), typeof(MinNewTokensProcessor) }, greedy.Processors.Select(p => p.GetType()));
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeScoresOfSeenTokens()
    {
        using var ids = tensor(new long[] { 0, 1, 1 }).unsqueeze(0);
        using var scores = new RepetitionPenaltyProcessor(2.0).Process(ids, tensor(new float[] { 1, -2, 3, 0.5f }).unsqueeze(0));
        Assert.Equal(new float[] { 0.5f, -4, 3, 0.5f }, Values(scores));
    }

    [Fact]
    public void NoRepeatNGramBansTheTokensThatWouldRepeatAnNgram()
    {
        float ninf = float.NegativeInfinity;
        // 1 2 3 1 2: the last two tokens (1, 2) were followed by 3 before, so 3 is banned for n = 3.
        using var ids = tensor(new long[] { 1, 2, 3, 1, 2 }).unsqueeze(0);
        using var three = new NoRepeatNGramProcessor(3).Process(ids, zeros(1, 5));
        Assert.Equal(new[] { 0, 0, 0, ninf, 0 }, Values(three));
        // n = 2: 2 was followed by 3 -> 3 banned.
        using var two = new NoRepeatNGramProcessor(2).Process(ids, zeros(1, 5));
        Assert.Equal(new[] { 0, 0, 0, ninf, 0 }, Values(two));
        // n = 6 on 5 tokens: nothing yet.
        using var six = new NoRepeatNGramProcessor(6).Process(ids, zeros(1, 5));
        Assert.All(Values(six), v => Assert.Equal(0, v));
    }

    [Fact]
    public void MinNewTokensSetsEosToMinusInfinityUntilEnoughTokens()
    {
        var p = new MinNewTokensProcessor(promptLength: 2, minNewTokens: 2, eosTokenIds: [1, 3]);
        using var early = p.Process(zeros(1, 3, dtype: ScalarType.Int64), Logits());   // one new token so far
        Assert.Equal(new[] { 1, float.NegativeInfinity, 3, float.NegativeInfinity }, Values(early));
        using var late = p.Process(zeros(1, 4, dtype: ScalarType.Int64), Logits());    // two new tokens
        Assert.Equal(new float[] { 1, 2, 3, 4 }, Values(late));
    }
}
