using static TorchSharp.torch;

namespace QuantumPeft.Generation;

/// <summary>What <see cref="TextGenerator.Generate"/> returns; dispose it to free <see cref="Sequences"/>.</summary>
/// <param name="Sequences">Prompt plus new tokens [batch * num_return_sequences, prompt + generated] (int64), rows after their EOS filled with the pad id, as transformers returns them.</param>
/// <param name="NewTokens">Per sequence, the generated tokens up to and including the first EOS (the padding after it left out).</param>
/// <param name="SequenceScores">Beam search only: each returned sequence's sum of log-probabilities / generated_length ** length_penalty; null otherwise.</param>
/// <param name="PromptLength">Columns of <see cref="Sequences"/> that are the (padded) prompt.</param>
public sealed record GenerationResult(Tensor Sequences, IReadOnlyList<long[]> NewTokens, IReadOnlyList<float>? SequenceScores, long PromptLength)
    : IDisposable
{
    /// <summary>Frees <see cref="Sequences"/>.</summary>
    public void Dispose() => Sequences.Dispose();
}
