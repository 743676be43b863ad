using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantumPeft.Tests.Tuners;

/// <summary>Linear layers held directly by a ModuleList and a Sequential.</summary>
sealed class ListModel : Module<Tensor, Tensor>
{
    private readonly ModuleList<Module<Tensor, Tensor>> heads;
    private readonly Sequential stack;

    public ListModel() : base(nameof(ListModel))
    {
        heads = new ModuleList<Module<Tensor, Tensor>>(Linear(4, 4), Linear(4, 4));
        stack = Sequential(Linear(4, 8), Tanh(), Linear(8, 2));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var h in heads) x = x + h.forward(x);
        return stack.forward(x);
    }
}

public class ContainerTests
{
    [Fact]
    public void LinearsInsideModuleListAndSequentialAreWrapped()
    {
        torch.manual_seed(4);
        var model = new ListModel();
        var x = torch.randn(3, 4);
        var before = model.forward(x).detach().clone();
        var config = InjectionTests.Quantum() with { TargetModules = ModuleSelector.Regex(@"heads\.\d|stack\.0"), InitLambda = "random" };
        var peft = PeftModel.Inject(model, config);
        Assert.Equal(["heads.0", "heads.1", "stack.0"], peft.AdaptedLayers.Select(l => l.Path));
        var adapted = model.forward(x).detach().clone();
        Assert.True(InjectionTests.MaxDiff(before, adapted) > 1e-4, "forward must go through the wrappers");
        Assert.Contains("heads.1.base_layer.weight", model.state_dict().Keys);
        peft.MergeAndUnload();
        Assert.IsType<Linear>(ModuleTree.Get(model, "stack.0"));
        Assert.True(InjectionTests.MaxDiff(adapted, model.forward(x)) < 1e-5);
    }

    [Fact]
    public void AdapterWorksOnADoubleModelAndKeepsItsNumbersInFloat32()
    {
        var model = TinyModel.Create();
        model.to(ScalarType.Float64);
        var x = TinyModel.Input().to(ScalarType.Float64);
        var peft = PeftModel.Inject(model, InjectionTests.Lora("query") with { InitLoraWeights = System.Text.Json.JsonSerializer.SerializeToElement(false), UseRslora = true });
        Assert.All(peft.AdapterParameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        var y = model.forward(x);
        Assert.Equal(ScalarType.Float64, y.dtype);
        var branch = (LoraBranch)peft.AdaptedLayers[0].Layer["default"];
        Assert.Equal(4 / Math.Sqrt(2), branch.Scaling, 12);
        peft.Merge();
        Assert.True(InjectionTests.MaxDiff(y.detach(), model.forward(x)) < 1e-5);
    }
}
