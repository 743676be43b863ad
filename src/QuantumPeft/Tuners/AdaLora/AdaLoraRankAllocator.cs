using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners.AdaLora;

/// <summary>AdaLoRA's importance-based rank allocation (peft's RankAllocator and AdaLoraModel.update_and_allocate) and its orthogonality regulariser.</summary>
/// <remarks>
/// Call <see cref="UpdateAndAllocate"/> once per training step after the backward pass and the optimizer step, before the
/// gradients are zeroed (the scores use |p * grad|). Budget: init_r x layers up to step tinit, then the cubic decrease
/// budget = (init - target) (1 - (t - tinit) / (total - tfinal - tinit))^3 + target (truncated), pruning every deltaT steps, fixed
/// at target_r x layers from step total_step - tfinal on (where the final rank_pattern is written into the adapter's config).
/// </remarks>
public sealed class AdaLoraRankAllocator
{
    private readonly PeftModel peft;
    private readonly string adapter;
    private readonly List<(string Path, AdaLoraBranch Branch)> layers;
    private readonly Dictionary<Parameter, (Tensor Avg, Tensor Unc)> scores = new(ReferenceEqualityComparer.Instance);

    /// <summary>The total initial budget, init_r x layers.</summary>
    public int InitialBudget { get; }

    /// <summary>The final budget, target_r x layers.</summary>
    public int TargetBudget { get; }

    /// <summary>The budget of the last <see cref="UpdateAndAllocate"/> call.</summary>
    public int Budget { get; private set; }

    /// <summary>Tracks the AdaLoRA adapter <paramref name="adapterName"/> (default: the active one) of <paramref name="peftModel"/>.</summary>
    public AdaLoraRankAllocator(PeftModel peftModel, string? adapterName = null)
    {
        peft = peftModel ?? throw new ArgumentNullException(nameof(peftModel));
        adapter = adapterName ?? peft.ActiveAdapter ?? throw new InvalidOperationException("The model has no adapter.");
        if (peft.Configs[adapter] is not AdaLoraConfig c) throw new ArgumentException($"Adapter '{adapter}' is {peft.Configs[adapter].PeftType}, not ADALORA.", nameof(adapterName));
        if (c.TotalStep is null) throw new ArgumentException("AdaLoRA needs total_step (> 0) in its config to schedule the budget.", nameof(peftModel));
        layers = peft.AdaptedLayers.Where(l => l.Layer.HasAdapter(adapter))
            .SelectMany(l => FusedPartsBranch.Leaves(l.Layer[adapter]).OfType<AdaLoraBranch>()
                .Select((b, i) => (l.Layer[adapter] is FusedPartsBranch f ? $"{l.Path}.{f.Parts.ElementAt(i).Part}" : l.Path, b)))
            .OrderBy(p => p.Item1, StringComparer.Ordinal).ToList();
        if (layers.Any(l => l.Branch.Rank != c.InitR))
            throw new InvalidOperationException("This AdaLoRA adapter was loaded already pruned (its rank_pattern shrank the layers); the allocator runs on a fresh adapter with init_r triplets per layer.");
        InitialBudget = layers.Sum(l => l.Branch.Rank);
        TargetBudget = c.TargetR * layers.Count;
        Budget = InitialBudget;
    }

    private AdaLoraConfig Config => (AdaLoraConfig)peft.Configs[adapter];

    /// <summary>peft's budget_schedule: the budget at <paramref name="step"/> and whether to prune at that step.</summary>
    public (int Budget, bool Mask) BudgetSchedule(int step)
    {
        var c = Config;
        int total = c.TotalStep!.Value;
        if (step <= c.Tinit) return (InitialBudget, false);
        if (step > total - c.Tfinal) return (TargetBudget, true);
        var mul = 1 - (double)(step - c.Tinit) / (total - c.Tfinal - c.Tinit);
        var budget = (int)((InitialBudget - TargetBudget) * Math.Pow(mul, 3) + TargetBudget);
        return (budget, step % c.DeltaT == 0);
    }

    /// <summary>peft's update_and_allocate for <paramref name="globalStep"/>: update the scores, prune to the budget when scheduled,
    /// and keep the config's rank_pattern current; returns the budget.</summary>
    public int UpdateAndAllocate(int globalStep)
    {
        var c = Config;
        int final = c.TotalStep!.Value - c.Tfinal;
        if (globalStep < final)
        {
            UpdateScores();
            var (budget, mask) = BudgetSchedule(globalStep);
            Budget = budget;
            if (mask) SetPattern(MaskToBudget(budget));
        }
        else if (globalStep == final)
        {
            var (budget, _) = BudgetSchedule(globalStep);
            Budget = budget;
            SetPattern(MaskToBudget(budget));
            scores.Clear(); // peft: reset_ipt
        }
        else
        {
            Budget = TargetBudget;
            // peft: mask_using_rank_pattern, so pruned triplets stay zero while the rest trains on.
            if (c.RankPattern is { } pattern)
                foreach (var (path, b) in layers)
                    if (pattern.TryGetValue(path + ".lora_E", out var keep)) b.ApplyMask(keep);
        }
        return Budget;
    }

    // peft's update_ipt: ipt = |p * grad|, exp_avg_ipt = b1 avg + (1 - b1) ipt, exp_avg_unc = b2 unc + (1 - b2) |ipt - exp_avg_ipt|.
    private void UpdateScores()
    {
        var c = Config;
        using var _ = no_grad();
        foreach (var (_, b) in layers)
            foreach (var p in new[] { b.A, b.B, b.E })
            {
                var grad = p.grad ?? throw new InvalidOperationException("AdaLoRA's allocator needs the gradients: call UpdateAndAllocate after backward() and before zero_grad().");
                var ipt = (p.detach() * grad).abs();
                if (!scores.TryGetValue(p, out var s)) s = (torch.zeros_like(p), torch.zeros_like(p));
                var avg = s.Avg * c.Beta1 + ipt * (1 - c.Beta1);
                var unc = s.Unc * c.Beta2 + (ipt - avg).abs() * (1 - c.Beta2);
                s.Avg.Dispose(); s.Unc.Dispose();
                scores[p] = (avg.DetachFromDisposeScope(), unc.DetachFromDisposeScope());
            }
    }

    private Tensor ElementScore(Parameter p) => scores.TryGetValue(p, out var s) ? s.Avg * s.Unc : torch.zeros_like(p);

    // peft's mask_to_budget: triplet score = score(E) + mean score of A's row + mean score of B's column; the lowest
    // (init_budget - budget) are pruned (score <= the k-th smallest).
    private Dictionary<string, bool[]> MaskToBudget(int budget)
    {
        using var _ = no_grad();
        var triplets = layers.Select(l => (l.Path, l.Branch,
            Score: (ElementScore(l.Branch.E).view(-1) + ElementScore(l.Branch.A).mean([1]) + ElementScore(l.Branch.B).mean([0])).detach())).ToList();
        var k = InitialBudget - budget;
        var pattern = new Dictionary<string, bool[]>(StringComparer.Ordinal);
        if (k <= 0)
        {
            foreach (var t in triplets) pattern[t.Path + ".lora_E"] = Enumerable.Repeat(true, t.Branch.Rank).ToArray();
            return pattern;
        }
        var threshold = torch.kthvalue(torch.cat(triplets.Select(t => t.Score).ToList(), 0), k, 0).values.item<float>();
        foreach (var t in triplets)
        {
            var keep = t.Score.data<float>().Select(v => !(v <= threshold)).ToArray();
            t.Branch.ApplyMask(keep);
            pattern[t.Path + ".lora_E"] = keep;
        }
        return pattern;
    }

    private void SetPattern(Dictionary<string, bool[]> pattern) => peft.UpdateConfig(adapter, Config with { RankPattern = pattern });

    /// <summary>peft's regulariser: orth_reg_weight x the mean over A and B of ||A A^T - I||_F and ||B^T B - I||_F (add it to the loss).</summary>
    public Tensor OrthogonalRegularization() => OrthogonalRegularization(peft, adapter);

    /// <summary>The regulariser of adapter <paramref name="adapterName"/> (default: the active one).</summary>
    public static Tensor OrthogonalRegularization(PeftModel peftModel, string? adapterName = null)
    {
        var name = adapterName ?? peftModel.ActiveAdapter ?? throw new InvalidOperationException("The model has no adapter.");
        if (peftModel.Configs[name] is not AdaLoraConfig c) throw new ArgumentException($"Adapter '{name}' is not ADALORA.", nameof(adapterName));
        var terms = new List<Tensor>();
        foreach (var (_, layer) in peftModel.AdaptedLayers.Where(l => l.Layer.HasAdapter(name)))
            foreach (var b in FusedPartsBranch.Leaves(layer[name]).OfType<AdaLoraBranch>())
            {
                var covA = b.A.matmul(b.A.t());
                var covB = b.B.t().matmul(b.B);
                terms.Add((covA - torch.eye(covA.shape[0], device: covA.device)).norm());
                terms.Add((covB - torch.eye(covB.shape[0], device: covB.device)).norm());
            }
        if (terms.Count == 0) return torch.zeros(1).squeeze();
        return torch.stack(terms).mean() * c.OrthRegWeight;
    }
}
