using QuantumPeft.Models.Decoder;

namespace QuantumPeft.Generation;

/// <summary>When beam search stops (transformers' <c>early_stopping</c>: <c>False</c>, <c>True</c> or <c>"never"</c>).</summary>
public enum BeamEarlyStopping
{
    /// <summary><c>early_stopping=False</c> (the default): stop once the best running beam, scored at the current length, cannot beat the worst finished one.</summary>
    Heuristic,

    /// <summary><c>early_stopping=True</c>: stop as soon as <c>num_beams</c> hypotheses are finished.</summary>
    AsSoonAsComplete,

    /// <summary><c>early_stopping="never"</c>: stop only when no running beam can still beat the worst finished one at any reachable length.</summary>
    Never,
}

/// <summary>How to generate: the subset of transformers' <c>GenerationConfig</c> this library implements, with its defaults.</summary>
/// <param name="MaxNewTokens">Tokens to generate at most (transformers' max_new_tokens).</param>
/// <param name="MinNewTokens">EOS is suppressed until this many tokens are generated (MinNewTokensLengthLogitsProcessor).</param>
/// <param name="DoSample">Multinomial sampling instead of argmax (or instead of top-k in beam search: beam sampling).</param>
/// <param name="Temperature">Divides the scores before sampling (only with <paramref name="DoSample"/>; 1 = off).</param>
/// <param name="TopK">Keep the k best tokens before sampling (0 = off; transformers' default 50).</param>
/// <param name="TopP">Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p (1 = off).</param>
/// <param name="NumBeams">Beam width (1 = greedy or sampling).</param>
/// <param name="LengthPenalty">Finished beams score sum_logprobs / generated_length ** length_penalty.</param>
/// <param name="NoRepeatNgramSize">No n-gram of this size occurs twice in a sequence, prompt included (0 = off).</param>
/// <param name="EarlyStopping">When beam search stops.</param>
/// <param name="RepetitionPenalty">CTRL's penalty on tokens already in the sequence (1 = off).</param>
/// <param name="EosTokenIds">End-of-sequence ids; empty = none (generation then always runs <paramref name="MaxNewTokens"/>).</param>
/// <param name="PadTokenId">Written after a sequence's EOS; null = the first EOS id, as transformers falls back.</param>
/// <param name="Seed">Seeds the sampling generator (null: the global torch generator). The same seed gives the same tokens
/// here; it does not give the tokens PyTorch samples for that seed.</param>
/// <param name="UseCache">Reuse past keys and values (false re-runs the whole sequence each step: same tokens, slower).</param>
/// <param name="NumReturnSequences">Sequences per prompt: the best ones for beams (at most <paramref name="NumBeams"/>), independent samples when sampling.</param>
public sealed record GenerationOptions(
    int MaxNewTokens = 20,
    int MinNewTokens = 0,
    bool DoSample = false,
    double Temperature = 1.0,
    int TopK = 50,
    double TopP = 1.0,
    int NumBeams = 1,
    double LengthPenalty = 1.0,
    int NoRepeatNgramSize = 0,
    BeamEarlyStopping EarlyStopping = BeamEarlyStopping.Heuristic,
    double RepetitionPenalty = 1.0,
    IReadOnlyList<int>? EosTokenIds = null,
    int? PadTokenId = null,
    long? Seed = null,
    bool UseCache = true,
    int NumReturnSequences = 1)
{
    /// <summary>The EOS ids (never null).</summary>
    public IReadOnlyList<int> Eos => EosTokenIds ?? [];

    /// <summary>The id written after EOS: <see cref="PadTokenId"/>, else the first EOS id (transformers' fallback), else null.</summary>
    public int? EffectivePadTokenId => PadTokenId ?? (Eos.Count > 0 ? Eos[0] : null);

    /// <summary>These options with the model's EOS ids and pad id where these options name none.</summary>
    public GenerationOptions WithSpecialTokensOf(CausalLMInfo info) => this with
    {
        EosTokenIds = Eos.Count > 0 ? Eos : info.EosTokenIds,
        PadTokenId = PadTokenId ?? info.PadTokenId,
    };

    /// <summary>Parses transformers' early_stopping values: "true", "false" or "never".</summary>
    public static BeamEarlyStopping ParseEarlyStopping(string value) => value.Trim().ToLowerInvariant() switch
    {
        "false" or "heuristic" => BeamEarlyStopping.Heuristic,
        "true" => BeamEarlyStopping.AsSoonAsComplete,
        "never" => BeamEarlyStopping.Never,
        _ => throw new ArgumentException($"--early-stopping '{value}' is not valid; choose true, false or never.", nameof(value)),
    };

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        // The rules of transformers' GenerationConfig.validate() and of the processors' constructors (logits_process.py).
        if (MaxNewTokens < 1) Fail($"--max-new-tokens must be at least 1 (got {MaxNewTokens}).");
        if (MinNewTokens < 0) Fail($"--min-new-tokens must be >= 0 (got {MinNewTokens}).");
        if (MinNewTokens > MaxNewTokens) Fail($"--min-new-tokens ({MinNewTokens}) must not exceed --max-new-tokens ({MaxNewTokens}).");
        if (NumBeams < 1) Fail($"--num-beams must be at least 1 (got {NumBeams}).");
        if (DoSample && !(Temperature > 0 && double.IsFinite(Temperature)))
            Fail($"--temperature must be a finite number > 0 when sampling (got {Temperature}); for deterministic output leave sampling off instead.");
        if (TopK < 0) Fail($"--top-k must be >= 0, 0 turning it off (got {TopK}).");
        if (!(TopP > 0 && TopP <= 1)) Fail($"--top-p must be in (0, 1] (got {TopP}).");
        if (!double.IsFinite(LengthPenalty)) Fail($"--length-penalty must be a finite number (got {LengthPenalty}).");
        if (NoRepeatNgramSize < 0) Fail($"--no-repeat-ngram-size must be >= 0, 0 turning it off (got {NoRepeatNgramSize}).");
        if (!(RepetitionPenalty > 0 && double.IsFinite(RepetitionPenalty)))
            Fail($"--repetition-penalty must be a finite number > 0, 1 turning it off (got {RepetitionPenalty}).");
        if (NumReturnSequences < 1) Fail($"--num-return-sequences must be at least 1 (got {NumReturnSequences}).");
        if (NumBeams > 1 && NumReturnSequences > NumBeams)
            Fail($"--num-return-sequences ({NumReturnSequences}) must not exceed --num-beams ({NumBeams}).");
        if (NumBeams == 1 && !DoSample && NumReturnSequences > 1)
            Fail($"--num-return-sequences ({NumReturnSequences}) > 1 needs --do-sample or --num-beams > 1: greedy decoding has one answer.");
        foreach (var id in Eos)
            if (id < 0) Fail($"--eos-token-id must be >= 0 (got {id}).");
        if (PadTokenId is < 0) Fail($"--pad-token-id must be >= 0 (got {PadTokenId}).");
    }

    static void Fail(string message) => throw new ArgumentException(message);
}
