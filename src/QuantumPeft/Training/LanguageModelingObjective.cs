using TorchSharp;
using TorchSharp.Modules;
using QuantumPeft.Models.Decoder;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>
/// Next-token prediction on fixed-length blocks of a token stream (pretraining a causal LM from scratch): every weight
/// trains, the loss is the mean cross-entropy over all positions, evaluation reports loss and perplexity.
/// </summary>
public sealed class LanguageModelingObjective : ITrainingObjective<long[]>
{
    readonly ICausalLM _model;
    readonly List<(string Name, Parameter Parameter)> _params;

    /// <summary>Cuts <paramref name="tokens"/> into blocks of <paramref name="blockSize"/> + 1 tokens; the last <paramref name="validationShare"/> of them validates and tests.</summary>
    public LanguageModelingObjective(ICausalLM model, string name, IReadOnlyList<long> tokens, int blockSize, double validationShare = 0.05, Device? device = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        if (blockSize < 2) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be at least 2.");
        if (model.Info.MaxPositions is { } max && blockSize > max)
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, $"block size exceeds the model's {max} positions.");
        var blocks = new List<long[]>();
        for (int start = 0; start + blockSize + 1 <= tokens.Count; start += blockSize)
            blocks.Add(tokens.Skip(start).Take(blockSize + 1).ToArray());
        int held = Math.Max(2, (int)Math.Round(blocks.Count * validationShare));
        if (blocks.Count < held + 1) throw new ArgumentException($"the corpus gives {blocks.Count} block(s) of {blockSize + 1} tokens; at least {held + 1} are needed.", nameof(tokens));
        Train = blocks.Take(blocks.Count - held).ToList();
        Validation = blocks.Skip(blocks.Count - held).Take(held / 2).ToList();
        Test = blocks.Skip(blocks.Count - held + held / 2).ToList();
        TaskName = name;
        Device = device ?? CPU;
        _params = Tuners.ModuleTree.DistinctParameters(model.Module);
        foreach (var (_, p) in _params) p.requires_grad = true;
    }

    public string TaskName { get; }
    public IReadOnlyList<long[]> Train { get; }
    public IReadOnlyList<long[]> Validation { get; }
    public IReadOnlyList<long[]> Test { get; }
    public string MainMetric => "loss";
    public bool LowerIsBetter => true;
    public IReadOnlyList<Parameter> AdapterParameters => _params.Select(p => p.Parameter).ToList();
    public IReadOnlyList<Parameter> HeadParameters => [];
    public Device Device { get; }
    public void SetTraining(bool training) => _model.Module.train(training);

    // A batch of blocks as ids [B, width] on the device: positions ..^1 are the inputs, 1.. the targets.
    Tensor Ids(IReadOnlyList<long[]> batch) => tensor(batch.SelectMany(b => b).ToArray(), [batch.Count, batch[0].Length], device: Device);

    Tensor BatchLoss(IReadOnlyList<long[]> batch, nn.Reduction reduction)
    {
        using var ids = Ids(batch);
        var logits = _model.Forward(ids[.., ..^1]);
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), ids[.., 1..].reshape(-1), reduction: reduction);
    }

    /// <summary>
    /// The training loss: the mean next-token cross-entropy, with the LM head fused into it (<see cref="LinearCrossEntropy"/>)
    /// when the head is a plain float32 linear map and <see cref="FusedHead"/> is on, else <c>cross_entropy</c> of the
    /// logits. Both give the same loss and gradients.
    /// </summary>
    public Tensor Loss(IReadOnlyList<long[]> batch)
    {
        if (!FusedHead || _model.OutputWeight is not { dtype: ScalarType.Float32 } weight) return BatchLoss(batch, nn.Reduction.Mean);
        // The hidden states are the head's input, so they share its float32 type.
        using var ids = Ids(batch);
        var hidden = _model.HiddenStates(ids[.., ..^1]);
        return _fused.Mean(hidden.reshape(-1, hidden.shape[^1]), weight, ids[.., 1..].reshape(-1));
    }

    readonly LinearCrossEntropy _fused = new();

    /// <summary>Whether <see cref="Loss"/> may fuse the LM head into the loss (default true; false: autograd's cross_entropy of the logits).</summary>
    public bool FusedHead { get; init; } = true;

    public Dictionary<string, double> Evaluate(IReadOnlyList<long[]> examples, int batchSize)
    {
        _model.Module.train(false);
        double sum = 0;
        long count = 0;
        using (no_grad())
            for (int start = 0; start < examples.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var batch = examples.Skip(start).Take(batchSize).ToList();
                sum += BatchLoss(batch, nn.Reduction.Sum).item<float>();
                count += batch.Sum(b => b.Length - 1L);
            }
        var loss = sum / count;
        return new() { ["loss"] = loss, ["perplexity"] = Math.Exp(loss) };
    }

    public IReadOnlyDictionary<string, Tensor> GetTrainableState() => _params.ToDictionary(p => p.Name, p => (Tensor)p.Parameter);

    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state) => TrainableState.Load(_params, state);
}
