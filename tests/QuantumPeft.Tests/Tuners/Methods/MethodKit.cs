using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Layers;
using QuantumPeft.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners.Methods;

/// <summary>The checks every adapter method must pass, on <see cref="TinyModel"/> (query/value 8x8, fc1 8->16) and on a Conv1D.</summary>
static class MethodKit
{
    public static double MaxDiff(Tensor a, Tensor b) => InjectionTests.MaxDiff(a, b);

    /// <summary>Moves every adapter parameter by seeded noise, so that the update is not trivial.</summary>
    public static void Perturb(PeftModel peft, double scale = 0.1, ulong seed = 11)
    {
        using var _ = no_grad();
        var g = new Generator(seed);
        foreach (var p in peft.AdapterParameters()) p.add_(torch.randn(p.shape, generator: g) * scale);
    }

    public static void InitEqualsBase(PeftConfig config)
    {
        var model = TinyModel.Create();
        model.eval();
        var x = TinyModel.Input();
        var before = model.forward(x).detach().clone();
        PeftModel.Inject(model, config);
        Assert.True(MaxDiff(before, model.forward(x)) < 1e-6, "the adapted model differs from the base model at initialisation");
    }

    /// <summary>Merge gives the unmerged output (1e-5); unmerge restores every base weight; MergeAndUnload keeps the output.</summary>
    public static void MergeMatchesForward(PeftConfig config, Action<PeftModel>? perturb = null)
    {
        var model = TinyModel.Create();
        model.eval();
        var x = TinyModel.Input();
        var baseWeights = model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());
        var peft = PeftModel.Inject(model, config);
        (perturb ?? (p => Perturb(p)))(peft);
        var adapted = model.forward(x).detach().clone();
        Assert.True(MaxDiff(adapted, baseWeights.Count > 0 ? Base(x) : adapted) > 1e-4, "the perturbed adapter changes nothing");
        peft.Merge();
        Assert.True(MaxDiff(adapted, model.forward(x)) < 1e-5, "merged output differs from the unmerged one");
        peft.Unmerge();
        foreach (var (k, v) in model.state_dict().Where(p => p.Key.Contains(".base_layer.")))
        {
            var original = baseWeights[k.Replace(".base_layer.", ".")];
            Assert.True(MaxDiff(original, v) < 1e-5, $"unmerge did not restore {k}");
        }
        Assert.True(MaxDiff(adapted, model.forward(x)) < 1e-5);
        peft.MergeAndUnload();
        Assert.True(MaxDiff(adapted, model.forward(x)) < 1e-5);
    }

    private static Tensor Base(Tensor x) { var m = TinyModel.Create(); m.eval(); return m.forward(x).detach(); }

    /// <summary>Save, load into a fresh model: identical outputs and numbers; returns the saved tensors (for key assertions).</summary>
    public static Dictionary<string, Tensor> RoundTrip(PeftConfig config, string dir, Action<PeftModel>? perturb = null)
    {
        var model = TinyModel.Create();
        model.eval();
        var peft = PeftModel.Inject(model, config);
        (perturb ?? (p => Perturb(p)))(peft);
        var x = TinyModel.Input();
        var expected = model.forward(x).detach().clone();
        peft.Save(dir);
        var fresh = TinyModel.Create();
        fresh.eval();
        var warnings = new List<string>();
        var loaded = PeftModel.Load(fresh, dir, warnings: warnings);
        Assert.Empty(warnings);
        Assert.Equal(config.PeftType, loaded.ActiveConfig.PeftType);
        Assert.Equal(0, MaxDiff(expected, fresh.forward(x)));
        var trainable = PeftModel.Load(TinyModel.Create(), dir, isTrainable: true);
        Assert.Equal(peft.Report().TrainableParams, trainable.Report().TrainableParams);
        var file = SafetensorsFile.Read(Path.Combine(dir, "adapter_model.safetensors"));
        foreach (var (k, t) in loaded.AdapterStateDict()) Assert.Equal(0, MaxDiff(file[k], t));
        return file;
    }

    /// <summary>The module keys peft writes for query, value and fc1 of both TinyModel blocks, each suffix.</summary>
    public static List<string> Keys(IEnumerable<string> modules, params string[] suffixes) =>
        (from l in new[] { "0", "1" } from m in modules from s in suffixes select $"base_model.model.layers.{l}.{m}.{s}").ToList();

    /// <summary>Every branch's ParameterCount equals <paramref name="formula"/>(in, out), and the report sums them.</summary>
    public static void CountMatches(PeftConfig config, Func<string, int, int, long> formula)
    {
        var peft = PeftModel.Inject(TinyModel.Create(), config);
        long sum = 0;
        foreach (var (path, layer) in peft.AdaptedLayers)
        {
            var expected = formula(path, layer.InFeatures, layer.OutFeatures);
            Assert.Equal(expected, layer[peft.ActiveAdapter!].ParameterCount);
            sum += expected;
        }
        Assert.Equal(sum, peft.Report().AdapterParams);
        Assert.Equal(sum, peft.AdapterParameters().Sum(p => p.numel()));
    }

    /// <summary>The same adapter on a Conv1D (weight [in, out]) and on the equivalent Linear gives the same output, merged or not.</summary>
    public static void Conv1DMatchesLinear(PeftConfig config, Action<PeftModel>? perturb = null)
    {
        torch.manual_seed(5);
        var conv = new ConvNet(useConv: true);
        var linear = new ConvNet(useConv: false);
        linear.CopyFrom(conv);
        conv.eval(); linear.eval();
        var pc = PeftModel.Inject(conv, config);
        var pl = PeftModel.Inject(linear, config);
        (perturb ?? (p => Perturb(p)))(pc);
        var state = pc.AdapterStateDict();
        using (no_grad())
            foreach (var (name, p) in pl.NamedAdapterParameters())
                p.copy_(pc.NamedAdapterParameters().Single(q => q.Name == name).Parameter);
        var x = torch.randn(3, 8, generator: new Generator(4));
        var yc = conv.forward(x).detach().clone();
        Assert.True(MaxDiff(yc, linear.forward(x)) < 1e-5, "Conv1D and Linear adapters disagree");
        pc.Merge();
        Assert.True(MaxDiff(yc, conv.forward(x)) < 1e-5, "merged Conv1D adapter differs");
        pc.Unmerge();
        Assert.True(MaxDiff(yc, conv.forward(x)) < 1e-5);
        Assert.NotEmpty(state);
    }
}

/// <summary>proj (8 -> 12) as a Conv1D or a Linear, then a fixed Linear head.</summary>
sealed class ConvNet : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> proj;
    private readonly nn.Module<Tensor, Tensor> head;

    public ConvNet(bool useConv) : base(nameof(ConvNet))
    {
        proj = useConv ? new Conv1D(8, 12) : nn.Linear(8, 12);
        head = nn.Linear(12, 3);
        using (no_grad()) if (useConv) ((Conv1D)proj).Bias.normal_(0, 0.1);
        RegisterComponents();
    }

    public void CopyFrom(ConvNet other)
    {
        using var _ = no_grad();
        var c = (Conv1D)other.proj;
        var l = (Linear)proj;
        l.weight!.copy_(c.Weight.t());
        l.bias!.copy_(c.Bias);
        ((Linear)head).weight!.copy_(((Linear)other.head).weight!);
        ((Linear)head).bias!.copy_(((Linear)other.head).bias!);
    }

    public override Tensor forward(Tensor x) => head.forward(nn.functional.tanh(proj.forward(x)));
}
