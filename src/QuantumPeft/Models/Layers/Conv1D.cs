using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Models.Layers;

/// <summary>Hugging Face's <c>Conv1D</c> (GPT-2): a linear layer whose weight is stored [in, out], y = x W + b.</summary>
/// <remarks>The transpose of <c>nn.Linear</c>'s layout; checkpoint names are <c>weight</c> and <c>bias</c>. Adapters treat it
/// as a Linear with peft's fan_in_fan_out: the update is computed as out x in and transposed into the weight on merge.</remarks>
public sealed class Conv1D : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;

    /// <summary>A layer from <paramref name="inFeatures"/> to <paramref name="outFeatures"/>, weight N(0, 0.02) and bias 0 as transformers initialises it.</summary>
    public Conv1D(int inFeatures, int outFeatures) : base(nameof(Conv1D))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        weight = new Parameter(torch.empty(inFeatures, outFeatures).normal_(0, 0.02));
        bias = new Parameter(torch.zeros(outFeatures));
        RegisterComponents();
    }

    /// <summary>Input features (rows of the weight).</summary>
    public int InFeatures { get; }

    /// <summary>Output features (columns of the weight).</summary>
    public int OutFeatures { get; }

    /// <summary>The weight, [in, out].</summary>
    public Parameter Weight => weight;

    /// <summary>The bias, [out].</summary>
    public Parameter Bias => bias;

    public override Tensor forward(Tensor x) => torch.addmm(bias, x.reshape(-1, InFeatures), weight, 1, 1).reshape([.. x.shape[..^1], OutFeatures]);
}
