using QuantumPeft.Data;
using QuantumPeft.Data.Tokenizers;
using QuantumPeft.Formats;
using QuantumPeft.Generation;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>A causal LM (GPT-2, LLaMA family) being fine-tuned on (prompt, completion) pairs: the model, its tokenizer and its adapter.</summary>
/// <remarks>
/// An example is tokenized as the prompt with the tokenizer's special tokens (LLaMA's BOS), then the completion without
/// them, then the model's EOS; the loss covers the completion tokens and the EOS only. Sequences longer than the maximum
/// keep their prompt's end and their completion's start (at least one completion token).
/// </remarks>
public sealed class CausalLMFineTuner : IDisposable
{
    readonly List<(string Name, Parameter Parameter)> _adapter = [];
    readonly Dictionary<PromptCompletion, (long[] Ids, int PromptLength)> _encoded = [];

    /// <summary>The model (adapters injected in place).</summary>
    public ICausalLM Model { get; }

    /// <summary>The folder's tokenizer.</summary>
    public ModelTokenizer Tokenizer { get; }

    /// <summary>The adapter handle (null for full fine-tuning).</summary>
    public PeftModel? Peft { get; private set; }

    /// <summary>What trains.</summary>
    public FineTuneSpec Spec { get; }

    /// <summary>The base model folder.</summary>
    public string ModelFolder { get; }

    /// <summary>The model's device.</summary>
    public Device Device { get; }

    /// <summary>Longest training sequence in tokens (prompt + completion + EOS).</summary>
    public int MaxLength { get; }

    /// <summary>Token appended after every completion: the model's first EOS id (or the tokenizer's).</summary>
    public int EosTokenId { get; }

    /// <summary>Loads <paramref name="modelFolder"/> and its tokenizer and injects the adapter of <paramref name="spec"/> (quantum, lora or full).</summary>
    public CausalLMFineTuner(string modelFolder, FineTuneSpec spec, int maxLength = 256, Device? device = null)
    {
        if (spec.Method == "head" || !FineTuneSpec.Methods.Contains(spec.Method))
            throw new ArgumentException($"method '{spec.Method}' does not apply to a causal LM (valid: {string.Join(", ", FineTuneSpec.Methods.Where(m => m != "head"))}).", nameof(spec));
        if (maxLength < 4) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "max length must be at least 4 tokens.");
        Spec = spec;
        ModelFolder = modelFolder;
        Device = device ?? CPU;
        MaxLength = maxLength;
        Tokenizer = ModelTokenizer.TryLoad(modelFolder)
            ?? throw new FileNotFoundException($"'{modelFolder}' has no tokenizer files: fine-tuning on text needs them (tokenizer.json, vocab.json + merges.txt or tokenizer.model).");
        Model = CausalLMs.Load(modelFolder, new DecoderLoadOptions(Device));
        if (Model.Info.MaxPositions is { } positions) MaxLength = Math.Min(MaxLength, positions);   // GPT-2's learned positions end there
        EosTokenId = Model.Info.EosTokenIds.Count > 0 ? Model.Info.EosTokenIds[0]
            : Tokenizer.EosTokenId ?? throw new InvalidDataException($"'{modelFolder}': neither config.json nor the tokenizer names an EOS token; a completion needs one to end.");
        if (spec.Method == "full")
        {
            _adapter.AddRange(ModuleTree.DistinctParameters(Model.Module));
            foreach (var (_, p) in _adapter) p.requires_grad = true;
            return;
        }
        // IA3 on a decoder: peft's default layers (GPT-2: c_attn, mlp.c_proj; LLaMA: k_proj, v_proj, down_proj; the MLP's output layer scaled on its input).
        var ia3Defaults = spec.Method == "ia3" && spec.Targets == ModuleSelector.AllLinearShorthand;
        var gpt2 = Model.Info.ModelType == "gpt2";
        var config = (ia3Defaults ? spec with { Targets = gpt2 ? "c_attn,mlp.c_proj" : "k_proj,v_proj,down_proj" } : spec)
            .AdapterConfig(modelFolder, "CAUSAL_LM", null, ia3Defaults ? [gpt2 ? "mlp.c_proj" : "down_proj"] : null);
        // GPT-2's Conv1D layers: say so up front, as peft's users do, instead of being corrected with a warning.
        if (config is LoraConfig lora && Model.Info.ModelType == "gpt2") config = lora with { FanInFanOut = true };
        Peft = PeftModel.Inject(Model.Module, config);
        Model.Module.to(Device);
        _adapter.AddRange(Peft.NamedAdapterParameters());
    }

    /// <summary>Trainable parameters (adapter, or every weight for full fine-tuning).</summary>
    public IReadOnlyList<Parameter> Parameters => _adapter.Select(p => p.Parameter).ToList();

    /// <summary>The adapter's scale parameters (Quantum-PEFT's lambda), for a learning rate of their own.</summary>
    public IReadOnlyList<Parameter> ScaleParameters => Peft?.NamedScaleParameters().Select(p => p.Parameter).ToList() ?? [];

    /// <summary>Adapter numbers (every weight for full fine-tuning) and all numbers of the model.</summary>
    public (long Trainable, long Total) Counts() => (_adapter.Sum(p => p.Parameter.numel()), Tuners.ModuleTree.CountParameters(Model.Module));

    /// <summary>The token ids of an example and how many of them are prompt (cached).</summary>
    public (long[] Ids, int PromptLength) Encode(PromptCompletion example)
    {
        if (_encoded.TryGetValue(example, out var cached)) return cached;
        if (string.IsNullOrWhiteSpace(example.Completion))
            throw new ArgumentException($"an example has an empty completion (prompt '{Shorten(example.Prompt)}'): there is nothing to learn.", nameof(example));
        var prompt = Tokenizer.Encode(example.Prompt, addSpecialTokens: true).Select(i => (long)i).ToList();
        var completion = Tokenizer.Encode(example.Completion, addSpecialTokens: false).Select(i => (long)i).Append(EosTokenId).ToList();
        if (prompt.Count + completion.Count > MaxLength)
        {
            // Keep the prompt's end (the text nearest the completion) and the completion's start.
            int keepCompletion = Math.Max(1, Math.Min(completion.Count, MaxLength - Math.Min(prompt.Count, MaxLength - 1)));
            completion = completion.Take(keepCompletion).ToList();
            prompt = prompt.Skip(Math.Max(0, prompt.Count - (MaxLength - completion.Count))).ToList();
        }
        var result = (prompt.Concat(completion).ToArray(), prompt.Count);
        _encoded[example] = result;
        return result;
    }

    /// <summary>
    /// Logits of a right-padded batch, and the token targets: [B, T - 1] ids with -100 wherever the loss does not look
    /// (prompt and padding). Position t predicts token t + 1.
    /// </summary>
    public (Tensor Logits, Tensor Targets) ForwardForLoss(IReadOnlyList<PromptCompletion> batch)
    {
        var encoded = batch.Select(Encode).ToList();
        int length = encoded.Max(e => e.Ids.Length);
        var ids = new long[batch.Count * length];
        var mask = new long[batch.Count * length];
        var targets = new long[batch.Count * (length - 1)];
        Array.Fill(targets, -100L);
        for (int b = 0; b < batch.Count; b++)
        {
            var (row, promptLength) = encoded[b];
            for (int t = 0; t < row.Length; t++) { ids[b * length + t] = row[t]; mask[b * length + t] = 1; }
            for (int t = Math.Max(1, promptLength); t < row.Length; t++) targets[b * (length - 1) + t - 1] = row[t];
        }
        using var idTensor = tensor(ids, [batch.Count, length], device: Device);
        using var maskTensor = tensor(mask, [batch.Count, length], device: Device);
        var logits = Model.Forward(idTensor, maskTensor);
        return (logits[.., ..^1], tensor(targets, [batch.Count, length - 1], device: Device));
    }

    /// <summary>The text the model writes after <paramref name="prompt"/> (special tokens dropped, trimmed).</summary>
    public string Generate(string prompt, GenerationOptions options)
    {
        var ids = Tokenizer.Encode(prompt, addSpecialTokens: true).Select(i => (long)i).ToArray();
        if (Model.Info.MaxPositions is { } max && ids.Length + options.MaxNewTokens > max)
        {
            // Learned positions end at n_positions: keep the prompt's end, and at least half the room for the prompt.
            options = options with { MaxNewTokens = Math.Min(options.MaxNewTokens, Math.Max(1, max / 2)), MinNewTokens = Math.Min(options.MinNewTokens, Math.Max(1, max / 2)) };
            ids = ids[Math.Max(0, ids.Length - (max - options.MaxNewTokens))..];
        }
        using var input = tensor(ids, [1, ids.Length], device: Device);
        using var result = TextGenerator.Generate(Model, input, null, options.WithSpecialTokensOf(Model.Info) with { EosTokenIds = [EosTokenId] });
        return Tokenizer.Decode(result.NewTokens[0].Select(i => (int)i)).Trim();
    }

    /// <summary>Switches dropout on or off.</summary>
    public void SetTraining(bool training) => Model.Module.train(training);

    /// <summary>The trainable tensors by name (checkpoints, keep-best).</summary>
    public IReadOnlyDictionary<string, Tensor> GetTrainableState() => _adapter.ToDictionary(p => p.Name, p => (Tensor)p.Parameter);

    /// <summary>Copies a state of <see cref="GetTrainableState"/>'s names into the parameters.</summary>
    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state) => TrainableState.Load(_adapter, state);

    /// <summary>Saves the adapter in peft's layout (CAUSAL_LM keys).</summary>
    public void SaveAdapter(string directory) =>
        (Peft ?? throw new InvalidOperationException("full fine-tuning has no adapter; save the model with SaveModel.")).Save(directory);

    /// <summary>Writes the model (merging the adapter in, after which <see cref="Peft"/> is null) as a plain Hugging Face folder with the tokenizer files.</summary>
    public void SaveModel(string folder, bool overwrite = false)
    {
        AtomicFolder.EnsureWritable(folder, overwrite);
        if (Peft is { } peft) { peft.MergeAndUnload(); Peft = null; _adapter.Clear(); }
        AtomicFolder.Write(folder, temp => CausalLMs.Save(Model, temp, ModelFolder), overwrite);
    }

    static string Shorten(string s) => s.Length <= 60 ? s : s[..57] + "...";

    public void Dispose() => Model.Module.Dispose();
}

/// <summary>
/// Causal-LM fine-tuning on a <see cref="GenerationTask"/>: label-smoothed cross-entropy over the completion tokens;
/// evaluation reports the completion tokens' mean loss and perplexity, and, when a scorer and decoding options are given,
/// the task's generation metrics on text generated for each distinct prompt against all of its references.
/// </summary>
public sealed class CausalLMObjective : ITrainingObjective<PromptCompletion>
{
    readonly CausalLMFineTuner _lm;
    readonly GenerationTask _task;
    readonly double _labelSmoothing;
    readonly GenerationOptions? _decode;
    readonly Func<IReadOnlyList<string>, IReadOnlyList<IReadOnlyList<string>>, IReadOnlyDictionary<string, double>>? _scorer;
    readonly Tuners.IAdapterTrainingHook? _hook;

    /// <summary>
    /// <paramref name="mainMetric"/>: "loss" (default; lower is better), "perplexity", or one of the task's generation metrics
    /// (then <paramref name="decode"/> and <paramref name="scorer"/> are required; higher is better).
    /// </summary>
    public CausalLMObjective(CausalLMFineTuner lm, GenerationTask task, double labelSmoothing = 0, string mainMetric = "loss",
        GenerationOptions? decode = null, Func<IReadOnlyList<string>, IReadOnlyList<IReadOnlyList<string>>, IReadOnlyDictionary<string, double>>? scorer = null)
    {
        _lm = lm ?? throw new ArgumentNullException(nameof(lm));
        _task = task ?? throw new ArgumentNullException(nameof(task));
        if (labelSmoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "label smoothing must be in [0, 1).");
        _labelSmoothing = labelSmoothing;
        _decode = decode;
        _scorer = scorer;
        var valid = new[] { "loss", "perplexity" }.Concat(scorer is null ? [] : task.MetricNames).ToList();
        if (!valid.Contains(mainMetric))
            throw new ArgumentException($"main metric '{mainMetric}' is not available for task '{task.Name}' (available: {string.Join(", ", valid)}" +
                (scorer is null ? "; generation metrics need decoding options and a scorer" : "") + ").", nameof(mainMetric));
        if (scorer is not null && decode is null) throw new ArgumentException("a scorer needs decoding options (decode).", nameof(decode));
        MainMetric = mainMetric;
        _hook = lm.Peft?.CreateTrainingHook();
    }

    public string TaskName => _task.Name;
    public IReadOnlyList<PromptCompletion> Train => _task.Train;
    public IReadOnlyList<PromptCompletion> Validation => _task.Validation;
    public IReadOnlyList<PromptCompletion> Test => _task.Test;
    public string MainMetric { get; }
    public bool LowerIsBetter => MainMetric is "loss" or "perplexity";
    public IReadOnlyList<Parameter> AdapterParameters => _lm.Parameters;
    public IReadOnlyList<Parameter> HeadParameters => [];
    public IReadOnlyList<Parameter> ScaleParameters => _lm.ScaleParameters;
    public Device Device => _lm.Device;
    public void SetTraining(bool training) => _lm.SetTraining(training);
    public IReadOnlyDictionary<string, Tensor> GetTrainableState() => _lm.GetTrainableState();
    public void LoadTrainableState(IReadOnlyDictionary<string, Tensor> state) => _lm.LoadTrainableState(state);

    public Tensor Loss(IReadOnlyList<PromptCompletion> batch)
    {
        var (logits, targets) = _lm.ForwardForLoss(batch);
        var loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1), ignore_index: -100, label_smoothing: _labelSmoothing);
        return _hook?.Regularization() is { } extra ? loss + extra : loss;
    }

    public void AfterStep(int step) => _hook?.AfterOptimizerStep(step);

    public Dictionary<string, double> Evaluate(IReadOnlyList<PromptCompletion> examples, int batchSize)
    {
        if (examples.Count == 0) throw new ArgumentException($"task '{_task.Name}': no examples to evaluate.", nameof(examples));
        _lm.SetTraining(false);
        double nll = 0;
        long tokens = 0;
        using (no_grad())
            for (int start = 0; start < examples.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var batch = examples.Skip(start).Take(batchSize).ToList();
                var (logits, targets) = _lm.ForwardForLoss(batch);
                var flat = targets.reshape(-1);
                nll += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), flat, ignore_index: -100, reduction: nn.Reduction.Sum).item<float>();
                tokens += flat.ne(-100).sum().item<long>();
            }
        var loss = nll / Math.Max(1, tokens);
        var metrics = new Dictionary<string, double> { ["loss"] = loss, ["perplexity"] = Math.Exp(loss) };
        // Validation is decoded only when a generation metric picks the best epoch; the test split always is (when scored).
        bool decodeThis = !ReferenceEquals(examples, _task.Validation) || !LowerIsBetter;
        if (_scorer is not null && _decode is not null && decodeThis)
        {
            var groups = GenerationTask.Grouped(examples);
            var hypotheses = new List<string>(groups.Count);
            using (no_grad())
                foreach (var (prompt, _) in groups) hypotheses.Add(_lm.Generate(prompt, _decode));
            foreach (var (k, v) in _scorer(hypotheses, groups.Select(g => (IReadOnlyList<string>)g.References.Select(r => r.Trim()).ToList()).ToList()))
                metrics[k] = v;
        }
        return metrics;
    }
}
