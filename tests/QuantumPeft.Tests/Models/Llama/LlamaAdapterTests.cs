using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Llama;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Llama;

public sealed class LlamaAdapterTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-llama-peft-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void EveryProjectionAndTheTiedHeadTakeAnAdapterWithPeftNames()
    {
        var folder = Path.Combine(_dir, "qwen2");
        TinyLlama.Write(folder, TinyLlama.Config("qwen2"));   // tied head
        var (model, _) = HfLlamaLoader.LoadForCausalLM(folder, new DecoderLoadOptions(Log: _ => { }));
        model.eval();
        var ids = TinyLlama.Ids(7);
        Tensor before;
        using (no_grad()) before = model.Forward(ids);

        string[] targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"];
        var peft = PeftModel.Inject(model, new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ModuleSelector.Of(targets) });
        Assert.Equal(2 * 7 + 1, peft.AdaptedLayers.Count);
        var names = model.state_dict().Keys.ToList();
        Assert.Contains("model.layers.1.self_attn.q_proj.base_layer.bias", names);
        Assert.Contains("model.layers.0.mlp.down_proj.adapters.default.lora_A.weight", names);
        Assert.Contains("lm_head.adapters.default.lora_B.weight", names);
        using (no_grad()) Assert.True(TinyLlama.MaxAbsDiff(before, model.Forward(ids)) < 1e-6);

        // One step moves the adapters only, and the output with them.
        model.train();
        var opt = optim.Adam(peft.AdapterParameters(), lr: 0.05);
        nn.functional.cross_entropy(model.Forward(ids).reshape(-1, 40), TinyLlama.Ids(7, seed: 2).reshape(-1)).backward();
        opt.step();
        model.eval();
        using (no_grad()) Assert.True(TinyLlama.MaxAbsDiff(before, model.Forward(ids)) > 1e-4);
    }
}
