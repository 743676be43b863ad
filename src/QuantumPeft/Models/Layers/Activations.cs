using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Layers;

/// <summary>transformers' ACT2FN: the activation functions config.json files name.</summary>
public static class Activations
{
    /// <summary>Every name <see cref="Get"/> knows.</summary>
    public static readonly IReadOnlyList<string> Names = ["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish", "tanh"];

    /// <summary>The function for <paramref name="name"/>; "gelu" is the exact (erf) GELU, gelu_new / gelu_pytorch_tanh / gelu_fast the tanh form.</summary>
    /// <param name="name">The config value.</param>
    /// <param name="key">The config key, for the error message (hidden_act, activation_function).</param>
    public static Func<Tensor, Tensor> Get(string name, string key = "hidden_act") => name switch
    {
        "gelu" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, GELU.Approximate.tanh),
        "relu" => x => nn.functional.relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        "tanh" => x => x.tanh(),
        _ => throw new NotSupportedException($"{key} '{name}' is not supported (supported: {string.Join(", ", Names)})."),
    };
}
