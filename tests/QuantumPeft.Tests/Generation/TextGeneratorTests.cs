using QuantumPeft.Generation;
using QuantumPeft.Models.Decoder;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Generation;

public sealed class TextGeneratorTests
{
    static Tensor Row(params long[] ids) => tensor(ids, dtype: ScalarType.Int64).unsqueeze(0);

    static long[] Tokens(Tensor t) => t.cpu().data<long>().ToArray();

    static long[] Generate(ICausalLM model, long[] prompt, GenerationOptions o)
    {
        using var ids = Row(prompt);
        using var result = TextGenerator.Generate(model, ids, null, o);
        return result.NewTokens[0];
    }

    /// <summary>Greedy decoding written out: one full forward of the whole sequence per token, argmax of the last position.</summary>
    static long[] GreedyByFullForwards(ICausalLM model, long[] prompt, int newTokens)
    {
        var sequence = prompt.ToList();
        using var noGrad = no_grad();
        for (int i = 0; i < newTokens; i++)
        {
            using var scope = NewDisposeScope();
            var logits = model.Forward(tensor(sequence.ToArray(), dtype: ScalarType.Int64).unsqueeze(0));
            sequence.Add(logits[0, -1].argmax().item<long>());
        }
        return sequence.Skip(prompt.Length).ToArray();
    }

    /// <summary>Sum of the model's log-probabilities of <paramref name="continuation"/> after <paramref name="prompt"/>, from one full forward.</summary>
    static double LogProb(ICausalLM model, long[] prompt, long[] continuation)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var all = prompt.Concat(continuation).ToArray();
        var logp = model.Forward(tensor(all, dtype: ScalarType.Int64).unsqueeze(0)).log_softmax(-1);
        double sum = 0;
        for (int i = 0; i < continuation.Length; i++) sum += logp[0, prompt.Length - 1 + i, continuation[i]].item<float>();
        return sum;
    }

    static IEnumerable<long[]> AllSequences(int vocab, int length, Func<long, bool>? allowed = null)
    {
        if (length == 0) { yield return []; yield break; }
        foreach (var head in AllSequences(vocab, length - 1, allowed))
            for (long t = 0; t < vocab; t++)
                if (allowed?.Invoke(t) ?? true) yield return [.. head, t];
    }

    static bool HasRepeatedNgram(IReadOnlyList<long> s, int n)
    {
        var seen = new HashSet<string>();
        for (int i = 0; i + n <= s.Count; i++)
            if (!seen.Add(string.Join(",", s.Skip(i).Take(n)))) return true;
        return false;
    }

    [Fact]
    public void GreedyEqualsTheArgmaxOfRepeatedFullForwards()
    {
        using var model = new TinyCausalLM(seed: 3);
        long[] prompt = [1, 2, 3];
        var expected = GreedyByFullForwards(model, prompt, 10);
        Assert.Equal(expected, Generate(model, prompt, new GenerationOptions(MaxNewTokens: 10)));
        Assert.Equal(expected, Generate(model, prompt, new GenerationOptions(MaxNewTokens: 10, UseCache: false)));
        Assert.True(expected.Distinct().Count() > 1, "the fixture should not collapse to one token");
    }

    [Fact]
    public void CachedAndUncachedGenerationGiveTheSameTokens()
    {
        using var model = new TinyCausalLM(seed: 5);
        long[] prompt = [4, 1, 0, 2];
        GenerationOptions[] cases =
        [
            new(MaxNewTokens: 12),
            new(MaxNewTokens: 12, EosTokenIds: [5], NoRepeatNgramSize: 2, RepetitionPenalty: 1.3),
            new(MaxNewTokens: 8, NumBeams: 4, EosTokenIds: [5], NumReturnSequences: 3),
            new(MaxNewTokens: 8, NumBeams: 3, LengthPenalty: 0.5, EarlyStopping: BeamEarlyStopping.Never, EosTokenIds: [5]),
            new(MaxNewTokens: 12, DoSample: true, Temperature: 1.5, Seed: 11),
        ];
        foreach (var o in cases)
        {
            using var ids = Row(prompt);
            using var cached = TextGenerator.Generate(model, ids, null, o);
            using var uncached = TextGenerator.Generate(model, ids, null, o with { UseCache = false });
            Assert.Equal(Tokens(cached.Sequences), Tokens(uncached.Sequences));
            Assert.Equal(cached.Sequences.shape, uncached.Sequences.shape);
            if (cached.SequenceScores is { } s) Assert.Equal(s, uncached.SequenceScores!, (a, b) => Math.Abs(a - b) < 1e-4);
        }
    }

    [Fact]
    public void BeamSearchWithOneBeamEqualsGreedy()
    {
        using var model = new TinyCausalLM(seed: 7);
        long[] prompt = [2, 0, 3];
        var greedy = Generate(model, prompt, new GenerationOptions(MaxNewTokens: 9));
        using (var ids = Row(prompt))
        using (var beam = TextGenerator.BeamSearch(model, ids, null, new GenerationOptions(MaxNewTokens: 9)))
            Assert.Equal(greedy, beam.NewTokens[0]);

        // With an EOS that greedy meets on its third token: one beam stops there too, under each early-stopping rule.
        long eos = greedy[2];
        var withEos = new GenerationOptions(MaxNewTokens: 9, EosTokenIds: [(int)eos]);
        var greedyEos = Generate(model, prompt, withEos);
        Assert.Equal(greedy.Take(Array.IndexOf(greedy, eos) + 1), greedyEos);
        foreach (var rule in Enum.GetValues<BeamEarlyStopping>().Where(r => r != BeamEarlyStopping.Never))
        {
            using var ids = Row(prompt);
            using var beam = TextGenerator.BeamSearch(model, ids, null, withEos with { EarlyStopping = rule });
            Assert.Equal(greedyEos, beam.NewTokens[0]);
        }
    }

    [Fact]
    public void BeamSearchWithEveryBeamFindsTheExhaustiveBestWithoutEos()
    {
        // Vocabulary 4, 3 new tokens: 64 sequences, 64 beams.
        using var model = new TinyCausalLM(vocab: 4, seed: 11);
        long[] prompt = [1, 2];
        var ranked = AllSequences(4, 3).Select(s => (Seq: s, Score: LogProb(model, prompt, s) / 3.0)).OrderByDescending(x => x.Score).ToList();
        Assert.True(ranked[0].Score - ranked[1].Score > 1e-3, "the fixture's best sequence should be clear");

        using var ids = Row(prompt);
        using var result = TextGenerator.Generate(model, ids, null, new GenerationOptions(MaxNewTokens: 3, NumBeams: 64, NumReturnSequences: 5));
        Assert.Equal(new long[] { 5, 5 }, result.Sequences.shape);
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(ranked[i].Seq, result.NewTokens[i]);
            Assert.Equal(ranked[i].Score, result.SequenceScores![i], 4);
        }
    }

    [Fact]
    public void BeamSearchFindsTheExhaustiveBestWhenMinNewTokensKeepsEosOut()
    {
        // min_new_tokens = max_new_tokens: EOS (3) is -inf at every step, so 27 sequences of tokens 0..2 compete.
        using var model = new TinyCausalLM(vocab: 4, seed: 12);
        long[] prompt = [3, 1];
        var best = AllSequences(4, 3, t => t != 3).MaxBy(s => LogProb(model, prompt, s))!;
        var o = new GenerationOptions(MaxNewTokens: 3, MinNewTokens: 3, NumBeams: 27, EosTokenIds: [3]);
        Assert.Equal(best, Generate(model, prompt, o));
    }

    [Theory]
    [InlineData(1.0, BeamEarlyStopping.Heuristic)]
    [InlineData(2.0, BeamEarlyStopping.Heuristic)]
    [InlineData(-1.0, BeamEarlyStopping.Heuristic)]
    [InlineData(2.0, BeamEarlyStopping.Never)]
    public void BeamSearchWithEnoughBeamsFindsTheExhaustiveBestWithEos(double lengthPenalty, BeamEarlyStopping rule)
    {
        // Vocabulary 4 with EOS 3, 3 new tokens. Finished hypotheses, scored as transformers does:
        // sum of log-probabilities (the EOS's included) / (generated tokens, the EOS included) ** length_penalty.
        using var model = new TinyCausalLM(vocab: 4, seed: 13);
        long[] prompt = [0, 2];
        const long eos = 3;
        var hypotheses = new List<long[]>();
        for (int length = 1; length <= 3; length++)
            hypotheses.AddRange(AllSequences(4, length - 1, t => t != eos).Select(s => (long[])[.. s, eos]));
        hypotheses.AddRange(AllSequences(4, 3, t => t != eos));
        Assert.Equal(1 + 3 + 9 + 27, hypotheses.Count);
        var ranked = hypotheses.Select(h => (Seq: h, Score: LogProb(model, prompt, h) / Math.Pow(h.Length, lengthPenalty)))
            .OrderByDescending(x => x.Score).ToList();
        Assert.True(ranked[0].Score - ranked[1].Score > 1e-3, "the fixture's best hypothesis should be clear");

        // 40 beams hold every hypothesis: each step's candidates all rank in the top num_beams and the pool never fills.
        var o = new GenerationOptions(MaxNewTokens: 3, NumBeams: 40, NumReturnSequences: 3, LengthPenalty: lengthPenalty,
            EarlyStopping: rule, EosTokenIds: [(int)eos]);
        using var ids = Row(prompt);
        using var result = TextGenerator.Generate(model, ids, null, o);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(ranked[i].Seq, result.NewTokens[i]);
            Assert.Equal(ranked[i].Score, result.SequenceScores![i], 4);
        }
        // Shorter returned hypotheses are padded with the pad id (here EOS) after their EOS.
        var rows = Tokens(result.Sequences).Chunk((int)result.Sequences.shape[1]).ToList();
        for (int i = 0; i < 3; i++)
            Assert.All(rows[i].Skip(prompt.Length + result.NewTokens[i].Length), t => Assert.Equal(eos, t));
    }

    [Fact]
    public void NoRepeatNgramSizeLeavesNoRepeatedNgramAndChangesGreedy()
    {
        using var model = new TinyCausalLM(seed: 17);
        long[]? prompt = null;
        long[] plain = [];
        foreach (var candidate in new long[][] { [1, 2], [0, 3], [4, 4], [5, 1], [2, 2, 2] })
        {
            plain = Generate(model, candidate, new GenerationOptions(MaxNewTokens: 12));
            if (HasRepeatedNgram([.. candidate, .. plain], 2)) { prompt = candidate; break; }
        }
        Assert.NotNull(prompt);
        foreach (var n in new[] { 2, 3 })
        {
            var constrained = Generate(model, prompt!, new GenerationOptions(MaxNewTokens: 12, NoRepeatNgramSize: n));
            Assert.False(HasRepeatedNgram([.. prompt!, .. constrained], n), $"a {n}-gram repeats in {string.Join(" ", constrained)}");
            if (n == 2) Assert.NotEqual(plain, constrained);
        }
        // Beams too: every returned sequence is free of repeated 3-grams.
        using var ids = Row(prompt!);
        using var beams = TextGenerator.Generate(model, ids, null, new GenerationOptions(MaxNewTokens: 10, NumBeams: 3, NumReturnSequences: 3, NoRepeatNgramSize: 3));
        foreach (var s in beams.NewTokens) Assert.False(HasRepeatedNgram([.. prompt!, .. s], 3));
    }

    [Fact]
    public void MinNewTokensKeepsEosOutAndEosEndsGeneration()
    {
        using var model = new TinyCausalLM(seed: 19);
        long[] prompt = [3, 1, 4];
        var plain = Generate(model, prompt, new GenerationOptions(MaxNewTokens: 10));
        int eos = (int)plain[0];

        // EOS as the first greedy token: generation stops after it, one token long.
        using (var ids = Row(prompt))
        using (var stopped = TextGenerator.Generate(model, ids, null, new GenerationOptions(MaxNewTokens: 10, EosTokenIds: [eos])))
        {
            Assert.Equal(new long[] { 1, prompt.Length + 1 }, stopped.Sequences.shape);
            Assert.Equal(new long[] { eos }, stopped.NewTokens[0]);
        }

        foreach (var min in new[] { 1, 3, 10 })
        {
            var o = new GenerationOptions(MaxNewTokens: 10, MinNewTokens: min, EosTokenIds: [eos]);
            var tokens = Generate(model, prompt, o);
            Assert.DoesNotContain((long)eos, tokens.Take(min));
            Assert.True(tokens.Length >= Math.Min(min + 1, 10) || tokens.Length == 10);
            using var ids = Row(prompt);
            using var beams = TextGenerator.Generate(model, ids, null, o with { NumBeams = 3, NumReturnSequences = 3 });
            foreach (var s in beams.NewTokens) Assert.DoesNotContain((long)eos, s.Take(min));
        }
    }

    [Fact]
    public void FinishedRowsGetPadTokensAndGenerationStopsWhenAllRowsFinished()
    {
        using var model = new TinyCausalLM(seed: 23);
        long[][] prompts = [[1, 2, 3], [4, 0, 2]];
        var plain = prompts.Select(p => Generate(model, p, new GenerationOptions(MaxNewTokens: 10))).ToArray();
        // An EOS both rows produce, at different steps.
        var eos = plain[0].Distinct().FirstOrDefault(t => plain[1].Contains(t) && Array.IndexOf(plain[0], t) != Array.IndexOf(plain[1], t), -1);
        Assert.True(eos >= 0, "the fixture should give the two rows a common token");
        var firstEos = plain.Select(p => Array.IndexOf(p, eos)).ToArray();
        int length = firstEos.Max() + 1;

        foreach (int? pad in new int?[] { (int)((eos + 1) % 6), null })
        {
            using var ids = cat([Row(prompts[0]), Row(prompts[1])], 0);
            // An explicit mask: without one a pad id that occurs in a prompt would be read as padding (transformers' inference).
            using var mask = ones_like(ids);
            using var result = TextGenerator.Generate(model, ids, mask, new GenerationOptions(MaxNewTokens: 10, EosTokenIds: [(int)eos], PadTokenId: pad));
            Assert.Equal(new long[] { 2, 3 + length }, result.Sequences.shape);   // stopped once both rows had their EOS
            var rows = Tokens(result.Sequences).Chunk(3 + length).ToArray();
            for (int r = 0; r < 2; r++)
            {
                Assert.Equal(plain[r].Take(firstEos[r] + 1), result.NewTokens[r]);
                Assert.All(rows[r].Skip(3 + firstEos[r] + 1), t => Assert.Equal(pad ?? eos, t));   // pad, or EOS when there is none
            }
        }
    }

    [Fact]
    public void TopKOneAndTinyTopPSamplingEqualGreedy()
    {
        using var model = new TinyCausalLM(seed: 29);
        long[] prompt = [2, 5, 1];
        var greedy = Generate(model, prompt, new GenerationOptions(MaxNewTokens: 10));
        Assert.Equal(greedy, Generate(model, prompt, new GenerationOptions(MaxNewTokens: 10, DoSample: true, TopK: 1, Seed: 1)));
        Assert.Equal(greedy, Generate(model, prompt, new GenerationOptions(MaxNewTokens: 10, DoSample: true, TopK: 0, TopP: 1e-6, Seed: 2)));
    }

    [Fact]
    public void TheSameSeedGivesTheSameSampleAndOtherSeedsDiffer()
    {
        using var model = new TinyCausalLM(seed: 31);
        long[] prompt = [0, 1];
        var o = new GenerationOptions(MaxNewTokens: 12, DoSample: true, Temperature: 2.0, TopK: 0);
        var first = Generate(model, prompt, o with { Seed = 42 });
        Assert.Equal(first, Generate(model, prompt, o with { Seed = 42 }));
        var others = Enumerable.Range(1, 4).Select(s => string.Join(",", Generate(model, prompt, o with { Seed = s }))).ToList();
        Assert.True(others.Distinct().Count() > 1, "four seeds gave the same sample");

        // num_return_sequences draws independent rows for one prompt, reproducibly.
        using var ids = Row(prompt);
        using var a = TextGenerator.Generate(model, ids, null, o with { Seed = 7, NumReturnSequences = 4 });
        using var b = TextGenerator.Generate(model, ids, null, o with { Seed = 7, NumReturnSequences = 4 });
        Assert.Equal(4, a.NewTokens.Count);
        Assert.Equal(Tokens(a.Sequences), Tokens(b.Sequences));
        Assert.True(a.NewTokens.Select(t => string.Join(",", t)).Distinct().Count() > 1);
    }

    [Fact]
    public void BeamSamplingIsReproducibleAndReturnsTheAskedSequences()
    {
        using var model = new TinyCausalLM(seed: 43);
        using var ids = Row(3, 0);
        var o = new GenerationOptions(MaxNewTokens: 6, NumBeams: 2, DoSample: true, Seed: 5, NumReturnSequences: 2, EosTokenIds: [5]);
        using var a = TextGenerator.Generate(model, ids, null, o);
        using var b = TextGenerator.Generate(model, ids, null, o);
        using var uncached = TextGenerator.Generate(model, ids, null, o with { UseCache = false });
        Assert.Equal(2, a.NewTokens.Count);
        Assert.Equal(Tokens(a.Sequences), Tokens(b.Sequences));
        Assert.Equal(Tokens(a.Sequences), Tokens(uncached.Sequences));
        Assert.True(a.SequenceScores![0] >= a.SequenceScores[1]);
    }

    [Fact]
    public void ALeftPaddedBatchGivesEachRowItsOwnTokens()
    {
        using var model = new TinyCausalLM(seed: 37);
        long[] longPrompt = [1, 2, 3, 4, 5], shortPrompt = [2, 4, 1];
        const long pad = 0;
        using var ids = tensor(new long[] { 1, 2, 3, 4, 5, pad, pad, 2, 4, 1 }, dtype: ScalarType.Int64).view(2, 5);
        using var mask = tensor(new long[] { 1, 1, 1, 1, 1, 0, 0, 1, 1, 1 }, dtype: ScalarType.Int64).view(2, 5);
        GenerationOptions[] cases =
        [
            new(MaxNewTokens: 8),
            new(MaxNewTokens: 8, UseCache: false),
            new(MaxNewTokens: 6, NumBeams: 3, EosTokenIds: [5], PadTokenId: (int)pad),
            new(MaxNewTokens: 6, NumBeams: 3, UseCache: false),
        ];
        foreach (var o in cases)
        {
            using var batched = TextGenerator.Generate(model, ids, mask, o);
            Assert.Equal(Generate(model, longPrompt, o), batched.NewTokens[0]);
            Assert.Equal(Generate(model, shortPrompt, o), batched.NewTokens[1]);
        }
        // Without a mask, one is inferred from the pad id (it occurs in the prompt and is no EOS id).
        using var inferred = TextGenerator.Generate(model, ids, null, new GenerationOptions(MaxNewTokens: 8, PadTokenId: (int)pad));
        Assert.Equal(Generate(model, shortPrompt, new GenerationOptions(MaxNewTokens: 8)), inferred.NewTokens[1]);
    }

    [Fact]
    public void TheLoopLeavesNoTensorBehind()
    {
        using var model = new TinyCausalLM(seed: 41);
        using var ids = Row(1, 2, 3);
        foreach (var o in new GenerationOptions[] { new(MaxNewTokens: 20), new(MaxNewTokens: 20, NumBeams: 3, EosTokenIds: [5]), new(MaxNewTokens: 20, DoSample: true, Seed: 1) })
        {
            TextGenerator.Generate(model, ids, null, o).Dispose();   // warm-up: lazily created tensors
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            TextGenerator.Generate(model, ids, null, o with { MaxNewTokens = 5 }).Dispose();
            long afterShort = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            TextGenerator.Generate(model, ids, null, o).Dispose();
            long afterLong = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            Assert.Equal(before, afterShort);
            Assert.Equal(before, afterLong);
        }
    }

    [Fact]
    public void InputsThatDoNotFitTheModelAreRejected()
    {
        using var model = new TinyCausalLM(positions: 16);
        using var ids = Row(1, 2, 3);
        var tooLong = Assert.Throws<ArgumentException>(() => TextGenerator.Generate(model, ids, null, new GenerationOptions(MaxNewTokens: 14)));
        Assert.Contains("--max-new-tokens", tooLong.Message);
        using var outside = Row(1, 9);
        Assert.Contains("vocabulary", Assert.Throws<ArgumentException>(() => TextGenerator.Generate(model, outside, null, new GenerationOptions())).Message);
        Assert.Contains("--eos-token-id", Assert.Throws<ArgumentException>(() => TextGenerator.Generate(model, ids, null, new GenerationOptions(EosTokenIds: [6]))).Message);
    }
}
