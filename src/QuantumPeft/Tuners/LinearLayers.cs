using QuantumPeft.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>The layer kinds an adapter wraps as "a linear map": <c>Linear</c> (weight [out, in]) and GPT-2's <c>Conv1D</c> (weight [in, out]).</summary>
/// <remarks>peft treats Conv1D as a Linear with fan_in_fan_out = true: the update is the same out x in matrix, transposed
/// into the stored weight on merge. Adapter files are therefore the same for both (lora_A [r, in], lora_B [out, r]).</remarks>
public static class LinearLayers
{
    /// <summary>True for a Linear or a Conv1D.</summary>
    public static bool IsLinear(nn.Module module) => module is Linear or Conv1D;

    /// <summary>True for a layer an adapter can wrap: a Linear, a Conv1D, or a Conv2d (its kernel seen as an out x (in * kh * kw) matrix, <see cref="ConvLayers"/>).</summary>
    public static bool IsAdaptable(nn.Module module) => IsLinear(module) || ConvLayers.IsConv2d(module);

    /// <summary>True for a Conv1D (peft's fan_in_fan_out layout).</summary>
    public static bool IsFanInFanOut(nn.Module module) => module is Conv1D;

    /// <summary>(in_features, out_features) of a Linear or Conv1D; of a Conv2d, (in * kh * kw, out).</summary>
    public static (int In, int Out) Shape(nn.Module module) => module switch
    {
        Linear l => ((int)l.in_features, (int)l.out_features),
        Conv1D c => (c.InFeatures, c.OutFeatures),
        Conv2d => (ConvLayers.Shape(module).MatrixIn, ConvLayers.Shape(module).OutChannels),
        _ => throw new ArgumentException($"{module.GetType().Name} is not a Linear or Conv1D layer.", nameof(module)),
    };

    /// <summary>The weight seen as [out, in] (a transposed view for Conv1D, [out, in * kh * kw] for Conv2d: views, so in-place updates reach the stored weight).</summary>
    public static Tensor WeightOutIn(nn.Module module) => module switch
    {
        Linear l => l.weight!,
        Conv1D c => c.Weight.t(),
        Conv2d => ConvLayers.WeightOutIn(module),
        _ => throw new ArgumentException($"{module.GetType().Name} is not a Linear or Conv1D layer.", nameof(module)),
    };

    /// <summary>The bias [out], or null when the layer has none.</summary>
    public static Tensor? Bias(nn.Module module) => module switch
    {
        Linear l => l.bias,
        Conv1D c => c.Bias,
        Conv2d c => c.bias,
        _ => throw new ArgumentException($"{module.GetType().Name} is not a Linear or Conv1D layer.", nameof(module)),
    };
}
