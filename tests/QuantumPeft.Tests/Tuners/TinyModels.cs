using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantumPeft.Tests.Tuners;

/// <summary>A small transformer-like block: linear fields typed Module&lt;Tensor, Tensor&gt;, a nested module and a Sequential.</summary>
sealed class TinyBlock : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> query;
    private readonly Module<Tensor, Tensor> value;
    private readonly TinyOutput output;
    private readonly Sequential mlp;

    public TinyBlock(int d) : base(nameof(TinyBlock))
    {
        query = Linear(d, d);
        value = Linear(d, d);
        output = new TinyOutput(d);
        mlp = Sequential(("fc1", Linear(d, 2 * d)), ("act", ReLU()), ("fc2", Linear(2 * d, d)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = x + value.forward(x) * functional.sigmoid(query.forward(x));
        h = output.forward(h);
        return h + mlp.forward(h);
    }
}

sealed class TinyOutput : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> dense;
    public TinyOutput(int d) : base(nameof(TinyOutput)) { dense = Linear(d, d); RegisterComponents(); }
    public override Tensor forward(Tensor x) => x + functional.tanh(dense.forward(x));
}

/// <summary>embed -> 2 blocks in a ModuleList -> classifier.</summary>
sealed class TinyModel : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> embed;
    private readonly ModuleList<Module<Tensor, Tensor>> layers;
    private readonly Module<Tensor, Tensor> classifier;

    public TinyModel(int inputs = 6, int d = 8, int classes = 3, int blocks = 2) : base(nameof(TinyModel))
    {
        embed = Linear(inputs, d);
        layers = new ModuleList<Module<Tensor, Tensor>>(Enumerable.Range(0, blocks).Select(_ => (Module<Tensor, Tensor>)new TinyBlock(d)).ToArray());
        classifier = Linear(d, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = embed.forward(x);
        foreach (var l in layers) h = l.forward(h);
        return classifier.forward(h);
    }

    public static TinyModel Create(long seed = 1)
    {
        torch.manual_seed(seed);
        return new TinyModel();
    }

    public static Tensor Input(long seed = 2, int batch = 5)
    {
        var g = new Generator((ulong)seed);
        return torch.randn(batch, 6, generator: g);
    }
}

/// <summary>A model whose linear sits in a field typed Linear (cannot hold a wrapper).</summary>
sealed class TypedLinearModel : Module<Tensor, Tensor>
{
    private readonly Linear proj;
    public TypedLinearModel() : base(nameof(TypedLinearModel)) { proj = Linear(4, 4); RegisterComponents(); }
    public override Tensor forward(Tensor x) => proj.forward(x);
}
