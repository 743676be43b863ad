using System.Text.RegularExpressions;
using QuantumPeft.Data;
using QuantumPeft.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

/// <summary>
/// A small real text classifier for trainer tests: a hashed bag of words (mean of word one-hots over 4096
/// buckets) times an embedding matrix (the "adapter" group), tanh, dropout, then a linear head.
/// </summary>
sealed partial class HashedBagOfWords : nn.Module, ITrainableClassifier
{
    readonly Parameter embedding;
    readonly Linear head;
    readonly Dropout dropout;
    readonly int _buckets;
    int _trainingForwards;

    /// <summary>When >= 0, every training forward after this many returns NaN logits (a diverging model).</summary>
    public int NanAfterTrainingForwards { get; set; } = -1;

    public HashedBagOfWords(int numLabels, long seed, int buckets = 4096, int dim = 32, Device? device = null) : base("bow")
    {
        _buckets = buckets;
        var generator = new Generator((ulong)seed);
        embedding = new Parameter(torch.randn([buckets, dim], generator: generator) * 0.1f);
        using (torch.no_grad())
        {
            head = nn.Linear(dim, numLabels);
            head.weight!.copy_(torch.randn([numLabels, dim], generator: generator) * 0.1f);
            head.bias!.zero_();
        }
        dropout = nn.Dropout(0.1);
        RegisterComponents();
        if (device is not null) this.to(device);
    }

    [GeneratedRegex("[a-z0-9']+")]
    private static partial Regex Word();

    static uint Fnv1a(string s)
    {
        uint h = 2166136261;
        foreach (var c in s) { h ^= c; h *= 16777619; }
        return h;
    }

    public Tensor Forward(IReadOnlyList<TextExample> batch)
    {
        var bag = new float[batch.Count * _buckets];
        for (int i = 0; i < batch.Count; i++)
        {
            var words = Word().Matches((batch[i].Text + " " + batch[i].TextPair).ToLowerInvariant()).Select(m => m.Value).ToList();
            foreach (var w in words) bag[i * _buckets + (int)(Fnv1a(w) % (uint)_buckets)] += 1f / words.Count;
        }
        var x = torch.tensor(bag, [batch.Count, _buckets], device: Device);
        var logits = head.forward(dropout.forward(x.matmul(embedding).tanh()));
        if (training && NanAfterTrainingForwards >= 0 && ++_trainingForwards > NanAfterTrainingForwards)
            logits = logits * float.NaN;
        return logits;
    }

    public IReadOnlyList<Parameter> AdapterParameters => [embedding];
    public IReadOnlyList<Parameter> HeadParameters => [head.weight!, head.bias!];
    public void SetTraining(bool training) => train(training);
    public Device Device => embedding.device;

    public IReadOnlyDictionary<string, Tensor> GetTrainableState() =>
        named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state)
    {
        using var _ = torch.no_grad();
        foreach (var (name, p) in named_parameters())
            p.copy_(state.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"State has no '{name}'."));
    }
}

/// <summary>Reports synchronously (System.Progress posts to the thread pool, too late to cancel at an exact step).</summary>
sealed class SyncProgress(Action<TrainingProgress> onReport) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value) => onReport(value);
}
