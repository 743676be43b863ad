using QuantumPeft.Stiefel;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Tuners;

public class InjectionTests
{
    internal static LoraConfig Lora(params string[] targets) => new() { R = 2, LoraAlpha = 4, TargetModules = ModuleSelector.Of(targets) };

    internal static QuantumPeftConfig Quantum(params string[] targets) => new()
    {
        R = 2, Alpha = 2, TargetModules = ModuleSelector.Of(targets),
        StiefelU = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1 },
        StiefelV = new StiefelMapOptions { Kind = StiefelMapKind.Pauli, Layers = 1 },
    };

    internal static double MaxDiff(Tensor a, Tensor b) => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();

    [Fact]
    public void SuffixTargetsWrapNestedListAndSequentialLayers()
    {
        var model = TinyModel.Create();
        var peft = PeftModel.Inject(model, Lora("query", "value", "fc1", "dense"));
        var paths = peft.AdaptedLayers.Select(l => l.Path).ToList();
        Assert.Equal(["layers.0.query", "layers.0.value", "layers.0.output.dense", "layers.0.mlp.fc1",
                      "layers.1.query", "layers.1.value", "layers.1.output.dense", "layers.1.mlp.fc1"], paths);
        var names = model.state_dict().Keys.ToList();
        Assert.Contains("layers.0.query.base_layer.weight", names);
        Assert.Contains("layers.1.mlp.fc1.base_layer.bias", names);
        Assert.Contains("layers.0.query.adapters.default.lora_A.weight", names);
        Assert.DoesNotContain("layers.0.query.weight", names);
    }

    [Fact]
    public void AdaptedModelEqualsBaseAtInit()
    {
        foreach (var config in new PeftConfig[] { Lora("query", "value", "fc2"), Quantum("query", "value", "fc2") })
        {
            var model = TinyModel.Create();
            var x = TinyModel.Input();
            var before = model.forward(x).detach().clone();
            var peft = PeftModel.Inject(model, config);
            Assert.True(peft.AdaptedLayers.Count == 6);
            Assert.Equal(0, MaxDiff(before, model.forward(x)), 6);
        }
    }

    [Fact]
    public void TrainingStepsChangeOnlyAdapterAndHeadParameters()
    {
        var model = TinyModel.Create();
        var peft = PeftModel.Inject(model, Quantum("query", "value") with { ModulesToSave = ["classifier"] });
        var before = model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());
        var adapterNames = peft.NamedAdapterParameters().Select(p => p.Name).ToHashSet();
        var headNames = peft.NamedOtherTrainableParameters().Select(p => p.Name).ToHashSet();
        Assert.Equal(["classifier.bias", "classifier.weight"], headNames.Order());
        Assert.All(adapterNames, n => Assert.Contains(".adapters.default.", n));
        var opt = torch.optim.Adam(peft.AdapterParameters().Concat(peft.OtherTrainableParameters()), lr: 0.05);
        var x = TinyModel.Input();
        var target = torch.tensor(new long[] { 0, 1, 2, 0, 1 });
        for (var i = 0; i < 3; i++)
        {
            using var scope = torch.NewDisposeScope();
            opt.zero_grad();
            nn.functional.cross_entropy(model.forward(x), target).backward();
            opt.step();
        }
        var after = model.state_dict();
        foreach (var (name, t) in before)
        {
            var changed = MaxDiff(t, after[name]) > 0;
            var shouldChange = adapterNames.Contains(name) || headNames.Contains(name);
            if (!shouldChange) Assert.False(changed, $"{name} changed");
        }
        Assert.True(MaxDiff(before["layers.0.query.adapters.default.qpeft_lambda"], after["layers.0.query.adapters.default.qpeft_lambda"]) > 0);
        Assert.True(MaxDiff(before["classifier.weight"], after["classifier.weight"]) > 0);
    }

    [Fact]
    public void TypoInTargetIsAnErrorListingLinearLayers()
    {
        var model = TinyModel.Create();
        var e = Assert.Throws<ArgumentException>(() => PeftModel.Inject(model, Lora("qurey", "value")));
        Assert.Contains("'qurey'", e.Message);
        Assert.Contains("query", e.Message);
        Assert.Contains("fc1", e.Message);
        Assert.Contains("classifier", e.Message);
        // Nothing was wrapped.
        Assert.DoesNotContain(model.named_modules(), m => m.module is AdaptedLinear);
    }

    [Fact]
    public void TargetMatchingANonLinearNamesIt()
    {
        var e = Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Lora("output")));
        Assert.Contains("layers.0.output", e.Message);
        Assert.Contains("not a Linear", e.Message);
    }

    [Fact]
    public void LinearTypedFieldFailsWithAClearMessage()
    {
        var e = Assert.Throws<ArgumentException>(() => PeftModel.Inject(new TypedLinearModel(), Lora("proj")));
        Assert.Contains("TypedLinearModel.proj", e.Message);
        Assert.Contains("Module<Tensor, Tensor>", e.Message);
    }

    [Fact]
    public void AllLinearSkipsTheHeadAndRegexIsAFullMatch()
    {
        var peft = PeftModel.Inject(TinyModel.Create(), Lora() with { TargetModules = ModuleSelector.AllLinear });
        var paths = peft.AdaptedLayers.Select(l => l.Path).ToList();
        Assert.Equal(11, paths.Count); // embed + 2 x (query, value, dense, fc1, fc2)
        Assert.DoesNotContain("classifier", paths);

        var rx = PeftModel.Inject(TinyModel.Create(), Lora() with { TargetModules = ModuleSelector.Regex(@"layers\.1\.(query|value)") });
        Assert.Equal(["layers.1.query", "layers.1.value"], rx.AdaptedLayers.Select(l => l.Path));

        var ex = PeftModel.Inject(TinyModel.Create(), Lora("query", "value") with { ExcludeModules = ModuleSelector.Of("layers.0.value") });
        Assert.Equal(["layers.0.query", "layers.1.query", "layers.1.value"], ex.AdaptedLayers.Select(l => l.Path));

        Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Lora() with { TargetModules = ModuleSelector.Regex("query") }));
    }

    [Fact]
    public void MergeUnmergeAndUnloadAreExact()
    {
        foreach (var config in new PeftConfig[] { Lora("query", "value", "fc2") with { InitLoraWeights = System.Text.Json.JsonSerializer.SerializeToElement(false) },
                                                  Quantum("query", "value", "fc2") with { InitLambda = "random" } })
        {
            var model = TinyModel.Create();
            var x = TinyModel.Input();
            var baseOut = model.forward(x).detach().clone();
            var baseW = model.state_dict()["layers.0.query.weight"].detach().clone();
            var peft = PeftModel.Inject(model, config);
            var adapted = model.forward(x).detach().clone();
            Assert.True(MaxDiff(adapted, baseOut) > 1e-3, "the adapter should change the output");

            peft.Merge();
            Assert.True(MaxDiff(adapted, model.forward(x)) < 1e-5);
            peft.Unmerge();
            Assert.True(MaxDiff(baseW, model.state_dict()["layers.0.query.base_layer.weight"]) < 1e-6);
            Assert.True(MaxDiff(adapted, model.forward(x)) < 1e-5);

            using (peft.WithAdaptersDisabled()) Assert.True(MaxDiff(baseOut, model.forward(x)) < 1e-6);
            Assert.True(MaxDiff(adapted, model.forward(x)) < 1e-6);

            var plain = peft.MergeAndUnload();
            Assert.DoesNotContain(plain.named_modules(), m => m.module is AdaptedLinear);
            Assert.Contains("layers.0.query.weight", plain.state_dict().Keys);
            Assert.IsType<Linear>(ModuleTree.Get(plain, "layers.0.query"));
            Assert.True(MaxDiff(adapted, model.forward(x)) < 1e-5);
        }
    }

    [Fact]
    public void SeveralAdaptersOneActiveAndDelete()
    {
        var model = TinyModel.Create();
        var x = TinyModel.Input();
        var baseOut = model.forward(x).detach().clone();
        var peft = PeftModel.Inject(model, Quantum("query", "value") with { InitLambda = "random" }, "a");
        var outA = model.forward(x).detach().clone();
        peft.AddAdapter("b", Lora("value", "fc1") with { InitLoraWeights = System.Text.Json.JsonSerializer.SerializeToElement(false) });
        Assert.Equal("a", peft.ActiveAdapter);
        Assert.True(MaxDiff(outA, model.forward(x)) < 1e-6);
        Assert.All(peft.AdapterParameters(), p => Assert.True(p.requires_grad));
        peft.SetAdapter("b");
        var outB = model.forward(x).detach().clone();
        Assert.True(MaxDiff(outA, outB) > 1e-3);
        Assert.Equal(2 * 2 * (8 + 8) + 2 * 2 * (8 + 16), peft.AdapterParameters().Sum(p => p.numel()));
        var lambdaA = model.named_parameters().First(p => p.name == "layers.0.query.adapters.a.qpeft_lambda").parameter;
        Assert.False(lambdaA.requires_grad);
        peft.DeleteAdapter("b");
        Assert.Equal("a", peft.ActiveAdapter);
        Assert.True(MaxDiff(outA, model.forward(x)) < 1e-6);
        Assert.IsType<Linear>(ModuleTree.Get(model, "layers.0.mlp.fc1"));
        Assert.DoesNotContain(model.state_dict().Keys, k => k.Contains(".adapters.b."));
        peft.DeleteAdapter("a");
        Assert.True(MaxDiff(baseOut, model.forward(x)) < 1e-6);
    }

    [Fact]
    public void ReportCountsAdapterAndHeadSeparately()
    {
        var model = TinyModel.Create();
        var total = model.parameters().Sum(p => p.numel());
        var peft = PeftModel.Inject(model, Lora("query", "value") with { ModulesToSave = ["classifier"] });
        var r = peft.Report();
        Assert.Equal(4 * LoraBranch.CountParameters(8, 8, 2), r.AdapterParams);
        Assert.Equal(8 * 3 + 3, r.OtherTrainableParams);
        Assert.Equal(r.AdapterParams + r.OtherTrainableParams, r.TrainableParams);
        Assert.Equal(total + r.AdapterParams, r.TotalParams);
        Assert.StartsWith($"trainable params: {r.TrainableParams:N0} || all params: {r.TotalParams:N0} || trainable%: ", r.Summary);
        Assert.Equal(5, r.Modules.Count);
        Assert.Contains("| layers.0.query | lora | 8 | 8 | 32 |", r.ToTable());
        Assert.Null(r.AdapterQuantizedBits);
    }

    [Fact]
    public void TrainableStateRoundTrips()
    {
        var model = TinyModel.Create();
        var peft = PeftModel.Inject(model, Quantum("query") with { InitLambda = "random", ModulesToSave = ["classifier"] });
        var x = TinyModel.Input();
        var state = peft.GetTrainableState();
        Assert.Contains("classifier.weight", state.Keys);
        Assert.Contains("layers.1.query.adapters.default.qpeft_lambda", state.Keys);
        var expected = model.forward(x).detach().clone();
        using (torch.no_grad()) foreach (var p in peft.AdapterParameters().Concat(peft.OtherTrainableParameters())) p.add_(0.1);
        Assert.True(MaxDiff(expected, model.forward(x)) > 1e-4);
        peft.SetTrainableState(state);
        Assert.Equal(0, MaxDiff(expected, model.forward(x)), 7);
        var bad = new Dictionary<string, Tensor>(state) { ["nope"] = torch.zeros(1) };
        Assert.Contains("nope", Assert.Throws<ArgumentException>(() => peft.SetTrainableState(bad)).Message);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-2.0)]
    [InlineData(double.NaN)]
    public void NonPositiveAlphaIsRejectedByName(double alpha)
    {
        var q = Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Quantum("query") with { Alpha = alpha }));
        Assert.Contains("alpha must be a positive number", q.Message);
        var l = Assert.Throws<ArgumentException>(() => PeftModel.Inject(TinyModel.Create(), Lora("query") with { LoraAlpha = alpha }));
        Assert.Contains("lora_alpha must be a positive number", l.Message);
    }
}
