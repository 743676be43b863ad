using QuantumPeft.Models.Decoder;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Generation;

/// <summary>
/// A small but real causal LM for generation tests: token and position embeddings, one single-head causal attention
/// layer with a KV cache, a tanh feed-forward and an LM head, seeded random weights. It honours ICausalLM's contract:
/// masked keys are never attended, positions default to past .. past + T - 1, the cache grows by each call.
/// </summary>
sealed class TinyCausalLM : nn.Module<Tensor, Tensor>, ICausalLM
{
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
    private readonly Linear ff;
    private readonly Linear lm_head;
    private readonly int dim;

    public TinyCausalLM(int vocab = 6, int dim = 16, int positions = 64, long seed = 1) : base("tiny_causal_lm")
    {
        this.dim = dim;
        wte = nn.Embedding(vocab, dim);
        wpe = nn.Embedding(positions, dim);
        q_proj = nn.Linear(dim, dim);
        k_proj = nn.Linear(dim, dim);
        v_proj = nn.Linear(dim, dim);
        o_proj = nn.Linear(dim, dim);
        ff = nn.Linear(dim, dim);
        lm_head = nn.Linear(dim, vocab);
        RegisterComponents();
        Info = new CausalLMInfo("tiny", vocab, 1, positions, null, [], null);

        var g = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            // Large enough weights that next-token distributions are peaked and differ from step to step.
            double std = name.StartsWith("wte") ? 1.0 : name.StartsWith("wpe") ? 0.7 : name.StartsWith("lm_head") ? 3.0 / Math.Sqrt(dim) : 1.5 / Math.Sqrt(dim);
            p.copy_(randn(p.shape, generator: g) * std);
        }
        eval();
    }

    public CausalLMInfo Info { get; }

    public nn.Module Module => this;

    public override Tensor forward(Tensor inputIds) => Forward(inputIds);

    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        return lm_head.call(HiddenStates(inputIds, attentionMask, positionIds, cache)).MoveToOuterDisposeScope();
    }

    public Tensor HiddenStates(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        long batch = inputIds.shape[0], length = inputIds.shape[1], past = cache?.Length ?? 0;
        var positions = positionIds ?? arange(past, past + length, dtype: ScalarType.Int64).unsqueeze(0).expand(batch, length);
        var x = wte.call(inputIds) + wpe.call(positions);
        var q = q_proj.call(x).unsqueeze(1);                       // [B, 1, T, D]: one head
        var k = k_proj.call(x).unsqueeze(1);
        var v = v_proj.call(x).unsqueeze(1);
        if (cache is not null) (k, v) = cache.Append(0, k, v);
        var scores = q.matmul(k.transpose(-1, -2)) / Math.Sqrt(dim);
        var mask = CausalMask.Build(attentionMask, batch, length, past, null, ScalarType.Float32, x.device);
        if (mask is not null) scores = scores + mask;
        var attended = scores.softmax(-1).matmul(v).squeeze(1);
        var h = x + o_proj.call(attended);
        h = h + ff.call(h).tanh();
        return h.MoveToOuterDisposeScope();
    }
}
