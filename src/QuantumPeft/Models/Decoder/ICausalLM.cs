using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Decoder;

/// <summary>What generation and the CLI need to know about a causal LM, read from its config.json (and generation_config.json).</summary>
/// <param name="ModelType">config.json's model_type ("gpt2", "llama", "mistral", "qwen2").</param>
/// <param name="VocabSize">Rows of the output logits.</param>
/// <param name="NumLayers">Attention layers (the <see cref="KvCache"/> size).</param>
/// <param name="MaxPositions">The longest sequence the model accepts (GPT-2's n_positions), or null when unbounded (rotary models).</param>
/// <param name="BosTokenId">bos_token_id, or null.</param>
/// <param name="EosTokenIds">eos_token_id (one id or a list in config.json; generation_config.json's wins), empty when none.</param>
/// <param name="PadTokenId">pad_token_id, or null.</param>
public sealed record CausalLMInfo(
    string ModelType, int VocabSize, int NumLayers, int? MaxPositions, int? BosTokenId, IReadOnlyList<int> EosTokenIds, int? PadTokenId);

/// <summary>A decoder-only language model (GPT-2, the LLaMA family): next-token logits, with an optional KV cache.</summary>
/// <remarks>
/// Implementations are <see cref="nn.Module"/>s whose state-dict names are the Hugging Face checkpoint names, so that
/// adapters injected into them are saved under peft's CAUSAL_LM keys (base_model.model.transformer.h.0.attn.c_attn...).
/// </remarks>
public interface ICausalLM
{
    /// <summary>Sizes and special tokens.</summary>
    CausalLMInfo Info { get; }

    /// <summary>The module itself (for adapters, state dicts, device moves).</summary>
    nn.Module Module { get; }

    /// <summary>
    /// Logits [B, T, vocab] (float32) for input ids [B, T] (int64).
    /// <paramref name="attentionMask"/>: [B, past + T], 1 for tokens and 0 for padding (null: all ones); masked keys are
    /// never attended to. <paramref name="positionIds"/>: [B, T] (null: past .. past + T - 1, as transformers' forward does).
    /// <paramref name="cache"/>: when given, past keys and values are read from it and this call's are appended.
    /// </summary>
    Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null);

    /// <summary>The final hidden states [B, T, hidden] before the LM head (same arguments as <see cref="Forward"/>).</summary>
    Tensor HiddenStates(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null);

    /// <summary>An empty cache sized for this model.</summary>
    KvCache NewCache() => new(Info.NumLayers);

    /// <summary>
    /// The LM head's weight [vocab, hidden] when the head is a plain bias-free linear map (logits = hidden W^T), so that a
    /// loss may fuse it (<see cref="LinearCrossEntropy"/>); null when anything wraps or adds to it.
    /// </summary>
    Tensor? OutputWeight => null;
}
