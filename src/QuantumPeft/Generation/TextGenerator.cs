using QuantumPeft.Models.Decoder;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Generation;

/// <summary>Text generation for a causal LM: greedy decoding, multinomial sampling and beam search, as transformers' <c>generate</c> does them.</summary>
/// <remarks>
/// The rules follow transformers' generation/utils.py (<c>_sample</c>, <c>_beam_search</c> and its helpers after the
/// vectorised rewrite, <c>_prepare_attention_mask_for_generation</c>, <c>prepare_inputs_for_generation</c>) and
/// logits_process.py. Sampling draws from a seeded TorchSharp <see cref="Generator"/>: the same seed gives the same tokens
/// here, but not the tokens PyTorch would draw for that seed (the generators' streams and call patterns differ).
/// Every step runs under <c>no_grad</c> in its own dispose scope; only the running state survives a step.
/// </remarks>
public static class TextGenerator
{
    // transformers' "minus infinity that stays finite" for beams that must not be picked.
    const double Excluded = -1.0e9;

    /// <summary>
    /// Generates from <paramref name="inputIds"/> [B, T] (int64; left-padded when <paramref name="attentionMask"/> [B, T]
    /// has zeros). One beam without sampling is greedy decoding, one beam with sampling is multinomial sampling, more
    /// beams are beam search (or beam sampling), as transformers picks its generation mode.
    /// </summary>
    /// <exception cref="ArgumentException">An option is out of range (the message names it), or the inputs do not fit the model.</exception>
    public static GenerationResult Generate(ICausalLM model, Tensor inputIds, Tensor? attentionMask, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options.NumBeams > 1 ? BeamSearch(model, inputIds, attentionMask, options) : SampleOrGreedy(model, inputIds, attentionMask, options);
    }

    /// <summary>Beam search with <see cref="GenerationOptions.NumBeams"/> beams, even one (which <see cref="Generate"/> would decode greedily).</summary>
    public static GenerationResult BeamSearch(ICausalLM model, Tensor inputIds, Tensor? attentionMask, GenerationOptions o)
    {
        o.Validate();
        using var noGrad = no_grad();
        using var outer = NewDisposeScope();
        int k = o.NumBeams;
        var (flatIds, mask) = Prepare(model, inputIds, attentionMask, o, expand: k);
        long batch = flatIds.shape[0] / k, prompt = flatIds.shape[1], maxLength = prompt + o.MaxNewTokens, vocab = model.Info.VocabSize;
        var device = flatIds.device;
        var eos = o.Eos;
        long fill = o.EffectivePadTokenId ?? -1;

        // _beam_search keeps max(2, 1 + #eos) * num_beams candidates per step, so that num_beams of them can still run on
        // when the best ones all end in EOS (one EOS id: the classic 2 * num_beams).
        int keep = (int)Math.Min(Math.Max(2, 1 + eos.Count) * (long)k, k * vocab);
        var topBeamMask = arange(keep, device: device).lt(k);
        var batchOffset = (arange(batch, dtype: ScalarType.Int64, device: device) * k).unsqueeze(1);

        // Per batch row and beam: the running sequences (padded to max length) and the finished pool, with scores.
        // Beam 0 starts at 0 and the others at -1e9, so the first step does not pick the same token from identical beams.
        var running = full([batch, k, maxLength], fill, dtype: ScalarType.Int64, device: device);
        running.narrow(2, 0, prompt).copy_(flatIds.view(batch, k, prompt));
        var finished = running.clone();
        var runningScores = zeros(batch, k, dtype: ScalarType.Float32, device: device);
        if (k > 1) runningScores.narrow(1, 1, k - 1).fill_(Excluded);
        var finishedScores = full([batch, k], Excluded, dtype: ScalarType.Float32, device: device);
        var isFinished = zeros(batch, k, dtype: ScalarType.Bool, device: device);
        var improvable = ones(batch, 1, dtype: ScalarType.Bool, device: device);
        // Which flat beam each generated token came from (-1 where nothing was generated): the cache reorder and the output length.
        var runningOrigin = full([batch, k, (long)o.MaxNewTokens], -1L, dtype: ScalarType.Int64, device: device);
        var finishedOrigin = runningOrigin.clone();

        var processors = LogitsProcessorList.For(o, prompt);
        using var generator = SamplingGenerator(o, device);
        using var cache = o.UseCache ? model.NewCache() : null;
        long cur = prompt;
        while (true)
        {
            using var step = NewDisposeScope();
            var flat = running.narrow(2, 0, cur).reshape(batch * k, cur);
            var logits = NextTokenLogits(model, flat, mask, cache);
            if (logits.shape[1] != vocab)
                throw new InvalidOperationException($"the model returned {logits.shape[1]} logits per token but its Info.VocabSize is {vocab}.");
            // Beam scores are log-probabilities of the raw float32 logits; the processors act on those.
            var logProbs = processors.Process(flat, logits.log_softmax(-1));
            var accumulated = (logProbs.view(batch, k, vocab) + runningScores.unsqueeze(2)).view(batch, k * vocab);

            Tensor topScores, topIndex;
            if (o.DoSample)
            {
                topIndex = multinomial(accumulated.softmax(-1), keep, replacement: false, generator: generator);
                topScores = accumulated.gather(1, topIndex);
            }
            else (topScores, topIndex) = accumulated.topk(keep, dim: 1);
            var fromBeam = topIndex.div(vocab, rounding_mode: RoundingMode.floor);
            var token = topIndex.remainder(vocab);
            var topSeqs = GatherBeams(running, fromBeam);
            topSeqs.select(2, cur).copy_(token);
            var topOrigin = GatherBeams(runningOrigin, fromBeam);
            topOrigin.select(2, cur - prompt).copy_(fromBeam + batchOffset);

            // Stopping criteria on each candidate: it ends in EOS, or it reached max length.
            var hits = cur + 1 >= maxLength ? ones_like(token, dtype: ScalarType.Bool) : IsEos(token, eos);

            // The num_beams best candidates that did not stop run on (_get_running_beams_for_next_iteration).
            var runScores = topScores + hits.to(ScalarType.Float32) * Excluded;
            var runPick = runScores.topk(k, dim: 1).indexes;
            var nextRunning = GatherBeams(topSeqs, runPick);
            var nextRunningScores = runScores.gather(1, runPick);
            var nextRunningOrigin = GatherBeams(topOrigin, runPick);

            // A stopped candidate joins the finished pool only if it ranks in the top num_beams of this step's candidates,
            // scored sum_logprobs / (tokens generated, its last one included) ** length_penalty (_update_finished_beams).
            var justFinished = hits.logical_and(topBeamMask.unsqueeze(0));
            var scored = topScores / Math.Pow(cur + 1 - prompt, o.LengthPenalty);
            if (o.EarlyStopping == BeamEarlyStopping.AsSoonAsComplete)
                scored = scored + isFinished.all(1, keepdim: true).to(ScalarType.Float32) * Excluded;
            scored = scored + improvable.logical_not().to(ScalarType.Float32) * Excluded;
            scored = scored + justFinished.logical_not().to(ScalarType.Float32) * Excluded;
            var mergedScores = cat([finishedScores, scored], 1);
            var poolPick = mergedScores.topk(k, dim: 1).indexes;
            var nextFinished = GatherBeams(cat([finished, topSeqs], 1), poolPick);
            var nextFinishedScores = mergedScores.gather(1, poolPick);
            var nextFinishedOrigin = GatherBeams(cat([finishedOrigin, topOrigin], 1), poolPick);
            var nextIsFinished = cat([isFinished, justFinished], 1).gather(1, poolPick);

            cache?.Reorder(nextRunningOrigin.select(2, cur - prompt).flatten());
            var nextMask = mask is null ? null : cat([mask, ones(batch * k, 1, dtype: mask.dtype, device: device)], 1);
            cur++;

            // Can a running beam still beat the worst finished one (_check_early_stop_heuristic)? "never" with a positive
            // penalty measures the best running beam at max length, every other case at the current length.
            double bestLength = o.EarlyStopping == BeamEarlyStopping.Never && o.LengthPenalty > 0 ? maxLength - prompt : cur - prompt;
            var bestPossible = nextRunningScores.narrow(1, 0, 1) / Math.Pow(bestLength, o.LengthPenalty);
            var worstFinished = nextFinishedScores.min(1, keepdim: true).values.expand(batch, k).masked_fill(nextIsFinished.logical_not(), Excluded);
            var nextImprovable = improvable.logical_and(bestPossible.gt(worstFinished).any(1, keepdim: true));

            Keep(ref running, nextRunning);
            Keep(ref runningScores, nextRunningScores);
            Keep(ref runningOrigin, nextRunningOrigin);
            Keep(ref finished, nextFinished);
            Keep(ref finishedScores, nextFinishedScores);
            Keep(ref finishedOrigin, nextFinishedOrigin);
            Keep(ref isFinished, nextIsFinished);
            Keep(ref improvable, nextImprovable);
            KeepOptional(ref mask, nextMask);

            // _beam_search_has_unfinished_sequences: go on while improvement is possible, early_stopping=True still has an
            // open slot, and some candidate did not stop.
            bool improvementPossible = improvable.any().item<bool>();
            bool openBeam = !(o.EarlyStopping == BeamEarlyStopping.AsSoonAsComplete && isFinished.all().item<bool>());
            bool validContinuations = !hits.all().item<bool>();
            if (!(improvementPossible && openBeam && validContinuations)) break;
        }

        // The pool is sorted best first: return the num_return_sequences best, cropped to the longest one returned.
        int n = o.NumReturnSequences;
        var origin = finishedOrigin.narrow(1, 0, n).reshape(batch * n, o.MaxNewTokens);
        long generated = origin.ne(-1).sum(1).max().item<long>();
        var sequences = finished.narrow(1, 0, n).reshape(batch * n, maxLength).narrow(1, 0, prompt + generated).clone();
        var scores = finishedScores.narrow(1, 0, n).reshape(batch * n).cpu().data<float>().ToArray();
        return Result(sequences, prompt, eos, scores);
    }

    static GenerationResult SampleOrGreedy(ICausalLM model, Tensor inputIds, Tensor? attentionMask, GenerationOptions o)
    {
        using var noGrad = no_grad();
        using var outer = NewDisposeScope();
        // Sampling draws num_return_sequences independent rows per prompt (_expand_inputs_for_generation).
        var (sequences, mask) = Prepare(model, inputIds, attentionMask, o, expand: o.DoSample ? o.NumReturnSequences : 1);
        long rows = sequences.shape[0], prompt = sequences.shape[1], maxLength = prompt + o.MaxNewTokens;
        var device = sequences.device;
        var eos = o.Eos;
        long pad = o.EffectivePadTokenId ?? 0;
        var processors = LogitsProcessorList.For(o, prompt);
        using var generator = SamplingGenerator(o, device);
        using var cache = o.UseCache ? model.NewCache() : null;
        var unfinished = ones(rows, dtype: ScalarType.Int64, device: device);
        while (true)
        {
            using var step = NewDisposeScope();
            var logits = NextTokenLogits(model, sequences, mask, cache);
            var scores = processors.Process(sequences, logits);
            var next = o.DoSample
                ? multinomial(scores.softmax(-1), 1, replacement: false, generator: generator).squeeze(1)
                : scores.argmax(-1);
            // _sample: a finished row gets the pad token (pad_token_id, else the first EOS id).
            if (eos.Count > 0) next = next * unfinished + pad * (1 - unfinished);
            var nextSequences = cat([sequences, next.unsqueeze(1)], 1);
            var nextMask = mask is null ? null : cat([mask, ones(rows, 1, dtype: mask.dtype, device: device)], 1);
            var nextUnfinished = eos.Count > 0 ? unfinished * IsEos(next, eos).logical_not().to(ScalarType.Int64) : unfinished.clone();
            Keep(ref sequences, nextSequences);
            KeepOptional(ref mask, nextMask);
            Keep(ref unfinished, nextUnfinished);
            // Stop at max length or when every row has produced an EOS.
            if (sequences.shape[1] >= maxLength || unfinished.max().item<long>() == 0) break;
        }
        return Result(sequences, prompt, eos, null);
    }

    /// <summary>
    /// The float32 logits [N, vocab] of the next token. With a cache only the tokens it has not seen are run; positions
    /// come from the mask as cumsum(mask) - 1 for a padded batch, sliced to those tokens (prepare_inputs_for_generation),
    /// and are left to the model (past .. past + T - 1) when nothing is padded.
    /// </summary>
    static Tensor NextTokenLogits(ICausalLM model, Tensor sequences, Tensor? mask, KvCache? cache)
    {
        long seen = cache?.Length ?? 0, length = sequences.shape[1];
        var ids = seen == 0 ? sequences : sequences.narrow(1, seen, length - seen);
        Tensor? positions = null;
        if (mask is not null)
        {
            var all = CausalMask.PositionsFromMask(mask);
            positions = seen == 0 ? all : all.narrow(1, seen, length - seen);
        }
        var logits = model.Forward(ids, mask, positions, cache);
        return logits.select(1, logits.shape[1] - 1).to(ScalarType.Float32);
    }

    /// <summary>
    /// int64 ids [B * expand, T] and the attention mask (null when nothing is padded), each prompt repeated
    /// <paramref name="expand"/> times in a row. Without a mask one is inferred from the pad id when it occurs in the
    /// prompt and is not an EOS id (_prepare_attention_mask_for_generation).
    /// </summary>
    static (Tensor Ids, Tensor? Mask) Prepare(ICausalLM model, Tensor inputIds, Tensor? attentionMask, GenerationOptions o, int expand)
    {
        if (inputIds.ndim != 2 || inputIds.shape[0] < 1 || inputIds.shape[1] < 1)
            throw new ArgumentException($"input ids have shape [{string.Join(", ", inputIds.shape)}]; expected [batch, prompt length], both at least 1.", nameof(inputIds));
        var ids = inputIds.to(ScalarType.Int64).clone();
        long vocab = model.Info.VocabSize, promptLength = ids.shape[1];
        long lo = ids.min().item<long>(), hi = ids.max().item<long>();
        if (lo < 0 || hi >= vocab)
            throw new ArgumentException($"prompt token id {(lo < 0 ? lo : hi)} is outside the model's vocabulary of {vocab}.", nameof(inputIds));
        foreach (var id in o.Eos)
            if (id >= vocab) throw new ArgumentException($"--eos-token-id {id} is outside the model's vocabulary of {vocab}.");
        if (o.PadTokenId is { } padId && padId >= vocab) throw new ArgumentException($"--pad-token-id {padId} is outside the model's vocabulary of {vocab}.");
        if (model.Info.MaxPositions is { } maxPositions && promptLength + o.MaxNewTokens > maxPositions)
            throw new ArgumentException(
                $"the prompt ({promptLength} tokens) plus --max-new-tokens ({o.MaxNewTokens}) exceeds the {maxPositions} positions of this {model.Info.ModelType} model.");

        Tensor? mask;
        if (attentionMask is not null)
        {
            if (attentionMask.ndim != 2 || attentionMask.shape[0] != ids.shape[0] || attentionMask.shape[1] != promptLength)
                throw new ArgumentException(
                    $"attention mask has shape [{string.Join(", ", attentionMask.shape)}]; expected the input ids' [{ids.shape[0]}, {promptLength}].", nameof(attentionMask));
            mask = attentionMask.to(ScalarType.Int64, ids.device).clone();
        }
        else if (o.EffectivePadTokenId is { } pad && !o.Eos.Contains(pad) && ids.eq(pad).any().item<bool>())
            mask = ids.ne(pad).to(ScalarType.Int64);
        else mask = null;
        // An all-ones mask gives positions 0..T-1, what the model does without one.
        if (mask is not null && mask.min().item<long>() != 0) mask = null;

        if (expand > 1)
        {
            ids = ids.repeat_interleave(expand, 0);
            mask = mask?.repeat_interleave(expand, 0);
        }
        return (ids, mask);
    }

    static Generator? SamplingGenerator(GenerationOptions o, Device device) =>
        o.DoSample && o.Seed is { } seed ? new Generator(unchecked((ulong)seed), device) : null;

    /// <summary>True where <paramref name="tokens"/> is one of the EOS ids.</summary>
    static Tensor IsEos(Tensor tokens, IReadOnlyList<int> eos)
    {
        var hit = zeros_like(tokens, dtype: ScalarType.Bool);
        foreach (var id in eos) hit = hit.logical_or(tokens.eq(id));
        return hit;
    }

    /// <summary>Rows <paramref name="index"/> [B, K'] of dim 1 of <paramref name="t"/> [B, K, ...] (transformers' _gather_beams).</summary>
    static Tensor GatherBeams(Tensor t, Tensor index)
    {
        if (t.ndim == 2) return t.gather(1, index);
        var shape = t.shape.ToArray();
        shape[1] = index.shape[1];
        return t.gather(1, index.unsqueeze(-1).expand(shape));
    }

    /// <summary>Moves this step's <paramref name="next"/> out of the step scope and frees the state it replaces.</summary>
    static void Keep(ref Tensor slot, Tensor next)
    {
        next.MoveToOuterDisposeScope();
        slot.Dispose();
        slot = next;
    }

    static void KeepOptional(ref Tensor? slot, Tensor? next)
    {
        next?.MoveToOuterDisposeScope();
        slot?.Dispose();
        slot = next;
    }

    static GenerationResult Result(Tensor sequences, long prompt, IReadOnlyList<int> eos, IReadOnlyList<float>? scores)
    {
        long rows = sequences.shape[0], length = sequences.shape[1];
        var data = sequences.cpu().data<long>().ToArray();
        var newTokens = new List<long[]>((int)rows);
        for (long r = 0; r < rows; r++)
        {
            var row = new List<long>();
            for (long c = prompt; c < length; c++)
            {
                long token = data[r * length + c];
                row.Add(token);
                if (eos.Contains((int)token)) break;
            }
            newTokens.Add([.. row]);
        }
        return new GenerationResult(sequences.MoveToOuterDisposeScope(), newTokens, scores, prompt);
    }
}
