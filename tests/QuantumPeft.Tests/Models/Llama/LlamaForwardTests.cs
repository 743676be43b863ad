using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Llama;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Llama;

public sealed class LlamaForwardTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-llama-fwd-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    int _count;

    LlamaForCausalLM Load(Dictionary<string, object?> c, long seed = 1)
    {
        var folder = Path.Combine(_dir, $"m{_count++}");
        TinyLlama.Write(folder, c, seed);
        var (model, _) = HfLlamaLoader.LoadForCausalLM(folder, new DecoderLoadOptions(Log: _ => { }));
        model.eval();
        return model;
    }

    static Dictionary<string, object?> Config(string variant)
    {
        var c = TinyLlama.Config(variant.Split('-')[0]);
        switch (variant)
        {
            case "llama-gqa": c["head_dim"] = 6; c["attention_bias"] = true; break;
            case "mistral-window": c["sliding_window"] = 3; break;
            case "qwen2-mixed":
                c["use_sliding_window"] = true;
                c["sliding_window"] = 3;
                c["max_window_layers"] = 1;   // layer 0 full, layer 1 sliding
                break;
        }
        return c;
    }

    public static TheoryData<string> Variants => ["llama-gqa", "mistral-window", "qwen2-mixed"];

    [Theory]
    [MemberData(nameof(Variants))]
    public void CachedForwardOneTokenAtATimeEqualsTheFullForward(string variant)
    {
        var model = Load(Config(variant));
        using var noGrad = no_grad();
        var ids = TinyLlama.Ids(12);
        var full = model.Forward(ids);
        using var cache = model.NewCache();
        var steps = new List<Tensor> { model.Forward(ids[.., ..5], cache: cache) };
        Assert.Equal(5, cache.Length);
        for (int t = 5; t < 12; t++)
        {
            using var scope = NewDisposeScope();
            steps.Add(model.Forward(ids[.., t..(t + 1)], cache: cache).MoveToOuterDisposeScope());
        }
        Assert.Equal(12, cache.Length);
        var (k, v) = cache.Get(1);
        Assert.Equal(new long[] { 1, 2, 12, model.Config.HeadSize }, k!.shape);   // kv heads, before repeat_kv
        double diff = TinyLlama.MaxAbsDiff(full, cat(steps, 1));
        output.WriteLine($"{variant}: cached vs full max |diff| = {diff:E2}");
        Assert.True(diff < 1e-5, $"{variant}: cached forward differs by {diff}");
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void LeftPaddedRowGivesTheLogitsOfTheSequenceAlone(string variant)
    {
        var model = Load(Config(variant));
        using var noGrad = no_grad();
        var longRow = TinyLlama.Ids(9, seed: 7);
        var shortRow = TinyLlama.Ids(6, seed: 8);
        var ids = cat([longRow, cat([full(1, 3, 0L, dtype: ScalarType.Int64), shortRow], 1)], 0);
        var mask = tensor(new long[,] { { 1, 1, 1, 1, 1, 1, 1, 1, 1 }, { 0, 0, 0, 1, 1, 1, 1, 1, 1 } });
        var batched = model.Forward(ids, mask, CausalMask.PositionsFromMask(mask));
        Assert.False(batched.isnan().any().item<bool>());
        double padded = TinyLlama.MaxAbsDiff(batched[1, ^1], model.Forward(shortRow)[0, ^1]);
        double unpadded = TinyLlama.MaxAbsDiff(batched[0], model.Forward(longRow)[0]);
        output.WriteLine($"{variant}: padded row {padded:E2}, unpadded row {unpadded:E2}");
        Assert.True(padded < 1e-4, $"{variant}: padded row's last logits differ by {padded}");
        Assert.True(unpadded < 1e-4, $"{variant}: full row differs by {unpadded}");

        // Generation continues from the padded prompt through the cache with the mask grown by one.
        using var cache = model.NewCache();
        model.Forward(ids, mask, CausalMask.PositionsFromMask(mask), cache);
        var next = tensor(new long[,] { { 5 }, { 6 } });
        var grown = cat([mask, ones(2, 1, dtype: ScalarType.Int64)], 1);
        var step = model.Forward(next, grown, CausalMask.PositionsFromMask(grown)[.., ^1..], cache);
        var alone = model.Forward(cat([shortRow, tensor(new long[,] { { 6 } })], 1));
        Assert.True(TinyLlama.MaxAbsDiff(step[1, ^1], alone[0, ^1]) < 1e-4);
    }

    [Fact]
    public void SlidingWindowHidesTokensBeyondItsReach()
    {
        // 2 layers, window 3: the last position (9) reads positions 7..9 of layer 1, which read 5..9 of the input.
        var windowed = Load(Config("mistral-window"));
        var c = Config("mistral-window");
        c["sliding_window"] = null;
        var unwindowed = Load(c);
        using var noGrad = no_grad();
        var ids = TinyLlama.Ids(10);
        Tensor Changed(int position)
        {
            var x = ids.clone();
            x[0, position] = tensor((ids[0, position].item<long>() + 1) % 37 + 3);
            return x;
        }
        var last = windowed.Forward(ids)[0, ^1];
        Assert.True(TinyLlama.MaxAbsDiff(last, windowed.Forward(Changed(4))[0, ^1]) < 1e-6, "token 4 is beyond the window's reach");
        Assert.True(TinyLlama.MaxAbsDiff(last, windowed.Forward(Changed(0))[0, ^1]) < 1e-6, "token 0 is beyond the window's reach");
        Assert.True(TinyLlama.MaxAbsDiff(last, windowed.Forward(Changed(5))[0, ^1]) > 1e-3, "token 5 is within reach");
        var lastFull = unwindowed.Forward(ids)[0, ^1];
        Assert.True(TinyLlama.MaxAbsDiff(lastFull, unwindowed.Forward(Changed(0))[0, ^1]) > 1e-3, "without a window every token counts");
        // Positions up to the window's size see everything either way.
        Assert.True(TinyLlama.MaxAbsDiff(windowed.Forward(ids)[0, ..3], unwindowed.Forward(ids)[0, ..3]) < 1e-6);
    }

    [Fact]
    public void Qwen2SlidesOnlyWithUseSlidingWindowAndOnlyFromMaxWindowLayers()
    {
        using var noGrad = no_grad();
        var ids = TinyLlama.Ids(10);
        Tensor Run(bool use, int maxWindowLayers)
        {
            var c = Config("qwen2");
            c["sliding_window"] = 3;
            c["use_sliding_window"] = use;
            c["max_window_layers"] = maxWindowLayers;
            return Load(c).Forward(ids);
        }
        var plain = Run(false, 0);
        Assert.Equal(0.0, TinyLlama.MaxAbsDiff(plain, Run(true, 2)));       // no layer index reaches 2
        Assert.True(TinyLlama.MaxAbsDiff(plain, Run(true, 1)) > 1e-3);        // layer 1 slides
        Assert.True(TinyLlama.MaxAbsDiff(Run(true, 1), Run(true, 0)) > 1e-3); // both slide
    }

    [Fact]
    public void LinearRopeScalingEqualsDefaultRopeAtScaledPositions()
    {
        var c = Config("llama");
        var plain = Load(c);
        c["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "linear", ["factor"] = 2.0 };
        var scaled = Load(c);
        using var noGrad = no_grad();
        var ids = TinyLlama.Ids(8);
        var positions = arange(8, dtype: ScalarType.Int64).unsqueeze(0);
        Assert.True(TinyLlama.MaxAbsDiff(scaled.Forward(ids, positionIds: positions * 2), plain.Forward(ids, positionIds: positions)) < 1e-5);
        Assert.True(TinyLlama.MaxAbsDiff(scaled.Forward(ids), plain.Forward(ids)) > 1e-3);
    }

    [Fact]
    public void TrainingModeGivesGradientsToEveryWeight()
    {
        var model = Load(Config("llama-gqa"));
        model.train();
        var logits = model.Forward(TinyLlama.Ids(6));
        nn.functional.cross_entropy(logits.reshape(-1, 40), TinyLlama.Ids(6, seed: 9).reshape(-1)).backward();
        Assert.All(model.named_parameters(), p => Assert.True(p.parameter.grad is not null && p.parameter.grad.abs().sum().item<float>() > 0, p.name));
    }
}
