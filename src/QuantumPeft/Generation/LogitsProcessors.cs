using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Generation;

/// <summary>One step's change to the next-token scores [N, vocab], given the sequences so far [N, L] (transformers' LogitsProcessor).</summary>
public interface ILogitsProcessor
{
    /// <summary>The processed scores (a new tensor; <paramref name="scores"/> is left as it is).</summary>
    Tensor Process(Tensor inputIds, Tensor scores);
}

/// <summary>CTRL's repetition penalty: a token already in the sequence (prompt included) has its score divided by the penalty when positive, multiplied when negative.</summary>
public sealed class RepetitionPenaltyProcessor(double penalty) : ILogitsProcessor
{
    /// <inheritdoc/>
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        using var scope = NewDisposeScope();
        var seen = scores.gather(1, inputIds);
        var penalised = where(seen.lt(0), seen * penalty, seen / penalty);
        return scores.scatter(1, inputIds, penalised).MoveToOuterDisposeScope();
    }
}

/// <summary>Bans every token that would complete an n-gram already present in the sequence (prompt and padding included, as transformers does).</summary>
public sealed class NoRepeatNGramProcessor(int ngramSize) : ILogitsProcessor
{
    /// <inheritdoc/>
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        long rows = inputIds.shape[0], length = inputIds.shape[1];
        var result = scores.clone();
        // NoRepeatNGramLogitsProcessor: nothing is banned until the sequence is at least n - 1 long.
        if (length + 1 < ngramSize) return result;
        var ids = inputIds.cpu().data<long>().ToArray();
        for (long r = 0; r < rows; r++)
        {
            var row = new ReadOnlySpan<long>(ids, (int)(r * length), (int)length);
            var prefix = row[(int)(length - ngramSize + 1)..];
            var banned = new HashSet<long>();
            for (int start = 0; start + ngramSize <= length; start++)
                if (row.Slice(start, ngramSize - 1).SequenceEqual(prefix)) banned.Add(row[start + ngramSize - 1]);
            foreach (var token in banned) result[r, token] = float.NegativeInfinity;
        }
        return result;
    }
}

/// <summary>Sets the EOS scores to -inf while fewer than <c>minNewTokens</c> tokens follow the prompt (MinNewTokensLengthLogitsProcessor).</summary>
public sealed class MinNewTokensProcessor(long promptLength, int minNewTokens, IReadOnlyList<int> eosTokenIds) : ILogitsProcessor
{
    /// <inheritdoc/>
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        var result = scores.clone();
        if (inputIds.shape[1] - promptLength >= minNewTokens) return result;
        foreach (var eos in eosTokenIds) result[.., eos] = float.NegativeInfinity;
        return result;
    }
}

/// <summary>Divides the scores by the temperature (TemperatureLogitsWarper).</summary>
public sealed class TemperatureWarper(double temperature) : ILogitsProcessor
{
    /// <inheritdoc/>
    public Tensor Process(Tensor inputIds, Tensor scores) => scores / temperature;
}

/// <summary>Keeps the scores at least as high as the k-th best, -inf elsewhere (TopKLogitsWarper; ties with the k-th are kept).</summary>
public sealed class TopKWarper(int topK, int minTokensToKeep = 1) : ILogitsProcessor
{
    /// <inheritdoc/>
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        using var scope = NewDisposeScope();
        int k = (int)Math.Min(Math.Max(topK, minTokensToKeep), scores.shape[^1]);
        var kth = scores.topk(k, dim: -1).values.narrow(-1, k - 1, 1);
        return scores.masked_fill(scores.lt(kth), float.NegativeInfinity).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Nucleus filtering (TopPLogitsWarper): sorts ascending, removes the tokens whose cumulative probability is at most
/// 1 - top_p, and always keeps the <c>minTokensToKeep</c> best.
/// </summary>
public sealed class TopPWarper(double topP, int minTokensToKeep = 1) : ILogitsProcessor
{
    /// <inheritdoc/>
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        using var scope = NewDisposeScope();
        var (sorted, order) = scores.sort(dim: -1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        var removeSorted = cumulative.le(1 - topP);
        long vocab = scores.shape[^1], keep = Math.Min(minTokensToKeep, vocab);
        removeSorted[.., TensorIndex.Slice(vocab - keep)] = false;
        var remove = removeSorted.scatter(-1, order, removeSorted);
        return scores.masked_fill(remove, float.NegativeInfinity).MoveToOuterDisposeScope();
    }
}

/// <summary>The processors of one generation, in transformers' order (GenerationMixin._get_logits_processor).</summary>
public sealed class LogitsProcessorList(IReadOnlyList<ILogitsProcessor> processors) : ILogitsProcessor
{
    /// <summary>The processors, applied first to last.</summary>
    public IReadOnlyList<ILogitsProcessor> Processors { get; } = processors;

    /// <summary>
    /// transformers' order: repetition penalty, no-repeat n-gram, min new tokens (only with EOS ids), then, when sampling,
    /// temperature, top-k, top-p. Beam sampling keeps at least one token more than there are EOS ids (two without EOS).
    /// </summary>
    public static LogitsProcessorList For(GenerationOptions o, long promptLength)
    {
        var list = new List<ILogitsProcessor>();
        if (o.RepetitionPenalty != 1.0) list.Add(new RepetitionPenaltyProcessor(o.RepetitionPenalty));
        if (o.NoRepeatNgramSize > 0) list.Add(new NoRepeatNGramProcessor(o.NoRepeatNgramSize));
        if (o.MinNewTokens > 0 && o.Eos.Count > 0) list.Add(new MinNewTokensProcessor(promptLength, o.MinNewTokens, o.Eos));
        if (o.DoSample)
        {
            int minKeep = o.NumBeams > 1 ? (o.Eos.Count > 0 ? o.Eos.Count + 1 : 2) : 1;
            if (o.Temperature != 1.0) list.Add(new TemperatureWarper(o.Temperature));
            if (o.TopK != 0) list.Add(new TopKWarper(o.TopK, minKeep));
            if (o.TopP < 1.0) list.Add(new TopPWarper(o.TopP, minKeep));
        }
        return new LogitsProcessorList(list);
    }

    /// <inheritdoc/>
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        var current = scores.alias();
        foreach (var p in Processors)
        {
            var next = p.Process(inputIds, current);
            current.Dispose();
            current = next;
        }
        return current;
    }
}
