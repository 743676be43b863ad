using QuantumPeft.Data;
using QuantumPeft.Tests.Data.Tokenizers;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Training;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

/// <summary>Causal-LM fine-tuning through the one trainer: completion-only loss, evaluation, keep-best by loss, exact resume.</summary>
public sealed class CausalLMTrainingTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "qpeft-clm-train-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, true); }

    // A tiny GPT-2 (vocab 272: the small byte-level BPE of the tokenizer tests) with its vocab.json + merges.txt.
    string Folder(string name = "base")
    {
        var eos = TokenizerFileWriter.SmallEndOfText;
        using var model = TinyGpt2.Model(vocab: eos + 1, eos: eos);
        var folder = TinyGpt2.Write(model, Path.Combine(_dir, name));
        TokenizerFileWriter.WriteGpt2(folder, TokenizerFileWriter.SmallVocab(), TokenizerFileWriter.SmallMerges);
        return folder;
    }

    // Facts written as a data-to-text task: the completion depends on the prompt, so a model can learn it.
    static GenerationTask Task()
    {
        string[] names = ["anna", "ben", "cleo", "dan", "eva", "finn", "gus", "hana", "ivo", "jules", "kai", "lea"];
        string[] colours = ["red", "blue", "green"];
        var pairs = names.Select((n, i) => new PromptCompletion($"{n} ||", $" {colours[i % 3]} .")).ToList();
        return new GenerationTask("facts", pairs.Take(8).ToList(), pairs.Skip(8).Take(2).ToList(), pairs.Skip(10).ToList(), ["bleu"]);
    }

    static TrainerOptions Options(string? dir, int epochs = 6) => new()
    {
        Epochs = epochs, BatchSize = 4, AdapterLearningRate = 1e-2, HeadLearningRate = 0, Seed = 3, WarmupRatio = 0, OutputDir = dir, LogEverySteps = 1,
    };

    [Fact]
    public void The_loss_covers_completion_tokens_and_eos_only()
    {
        using var lm = new CausalLMFineTuner(Folder(), new FineTuneSpec { Method = "lora", Rank = 2, Targets = "c_attn" }, maxLength: 64);
        var short1 = new PromptCompletion("hello ||", " world");
        var long1 = new PromptCompletion("name : the hello | world ||", " the world 's");
        var (ids, promptLength) = lm.Encode(short1);
        Assert.Equal(lm.Tokenizer.Encode("hello ||").Count, promptLength);
        Assert.Equal(lm.EosTokenId, ids[^1]);
        using var _ = no_grad();
        var (logits, targets) = lm.ForwardForLoss([short1, long1]);
        var row = targets[0].data<long>().ToArray();
        // Position t predicts token t + 1: the first target is the first completion token, then -100 after the EOS (padding).
        Assert.All(row[..(promptLength - 1)], t => Assert.Equal(-100, t));
        Assert.Equal(ids[promptLength..], row[(promptLength - 1)..(ids.Length - 1)]);
        Assert.All(row[(ids.Length - 1)..], t => Assert.Equal(-100, t));

        // The objective's loss equals a cross-entropy over exactly those positions, written out here.
        var task = new GenerationTask("t", [short1, long1], [short1], [short1], []);
        var objective = new CausalLMObjective(lm, task, labelSmoothing: 0.1);
        var loss = objective.Loss([short1, long1]).item<float>();
        var logp = logits.log_softmax(-1);
        double sum = 0; int count = 0;
        for (int b = 0; b < 2; b++)
            foreach (var (t, target) in targets[b].data<long>().ToArray().Select((v, i) => (i, v)))
            {
                if (target < 0) continue;
                var lp = logp[b, t];
                sum += -(0.9 * lp[target].item<float>() + 0.1 * lp.mean().item<float>());
                count++;
            }
        Assert.Equal(sum / count, loss, 4);
    }

    [Fact]
    public void Training_lowers_the_validation_loss_and_keeps_the_best_epoch()
    {
        using var lm = new CausalLMFineTuner(Folder(), new FineTuneSpec { Method = "quantum", Rank = 2, Targets = "all-linear", Alpha = 8 }, maxLength: 64);
        var objective = new CausalLMObjective(lm, Task(), labelSmoothing: 0.1);
        var before = objective.Evaluate(Task().Validation, 4)["loss"];
        var result = new Trainer<PromptCompletion>(objective, Options(Path.Combine(_dir, "run"))).Run();
        Assert.Equal("loss", result.MainMetric);
        Assert.True(result.BestValidationMetric < before - 0.05, $"validation loss {before:F3} -> {result.BestValidationMetric:F3}");
        Assert.Equal(result.History.Where(h => h.Kind == "eval" && h.Split == "validation").Min(h => h.Metrics!["loss"]), result.BestValidationMetric);
        Assert.Equal(Math.Exp(result.TestMetrics["loss"]), result.TestMetrics["perplexity"], 6);
        lm.SaveAdapter(Path.Combine(_dir, "adapter"));
        Assert.Contains("CAUSAL_LM", File.ReadAllText(Path.Combine(_dir, "adapter", "adapter_config.json")));
    }

    [Fact]
    public void A_slice_of_the_real_gloss_task_lowers_the_validation_loss()
    {
        var gloss = WordNetGloss.Load();
        var slice = gloss with { Train = gloss.Train.Take(24).ToList(), Validation = gloss.Validation.Take(8).ToList(), Test = gloss.Test.Take(8).ToList() };
        using var lm = new CausalLMFineTuner(Folder(), new FineTuneSpec { Method = "lora", Rank = 4, Targets = "c_attn[q,v],c_fc", Alpha = 8 }, maxLength: 64);
        var objective = new CausalLMObjective(lm, slice, labelSmoothing: 0.1);
        var before = objective.Evaluate(slice.Validation, 8)["loss"];
        var result = new Trainer<PromptCompletion>(objective, Options(null, epochs: 4)).Run();
        Assert.True(result.BestValidationMetric < before - 0.05, $"validation loss {before:F3} -> {result.BestValidationMetric:F3}");
    }

    [Fact]
    public void Generation_metrics_are_computed_on_grouped_references()
    {
        using var lm = new CausalLMFineTuner(Folder(), new FineTuneSpec { Method = "lora", Rank = 2, Targets = "c_attn" }, maxLength: 64);
        var task = Task() with { Validation = [new("a ||", " one"), new("b ||", " two"), new("a ||", " uno")] };
        var seen = new List<(IReadOnlyList<string> Hyps, IReadOnlyList<IReadOnlyList<string>> Refs)>();
        var objective = new CausalLMObjective(lm, task, 0, "bleu", new QuantumPeft.Generation.GenerationOptions(MaxNewTokens: 3),
            (h, r) => { seen.Add((h, r)); return new Dictionary<string, double> { ["bleu"] = 0.5 }; });
        var metrics = objective.Evaluate(task.Validation, 2);
        Assert.Equal(0.5, metrics["bleu"]);
        Assert.False(objective.LowerIsBetter);
        var (hyps, refs) = Assert.Single(seen);
        Assert.Equal(2, hyps.Count);   // one hypothesis per distinct prompt
        Assert.Equal(["one", "uno"], refs[0]);
        Assert.Equal(["two"], refs[1]);
        Assert.Contains("available: loss, perplexity", Assert.Throws<ArgumentException>(() => new CausalLMObjective(lm, task, 0, "bleu")).Message);
    }

    [Fact]
    public void A_stopped_and_resumed_causal_lm_run_ends_where_an_uninterrupted_run_ends()
    {
        var folder = Folder();
        var spec = new FineTuneSpec { Method = "lora", Rank = 2, Targets = "c_attn[q,v],c_fc" };
        manual_seed(7);   // LoRA's A comes from the global generator, as in peft: both runs start from the same adapter
        using var straight = new CausalLMFineTuner(folder, spec, 64);
        var expected = new Trainer<PromptCompletion>(new CausalLMObjective(straight, Task()), Options(Path.Combine(_dir, "a"), epochs: 3)).Run();

        var options = Options(Path.Combine(_dir, "b"), epochs: 3) with { CheckpointEverySteps = 2 };
        manual_seed(7);
        using var first = new CausalLMFineTuner(folder, spec, 64);
        using var cts = new CancellationTokenSource();
        var stopper = new SyncProgress(p => { if (p.Phase == "train" && p.Step == 3) cts.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => new Trainer<PromptCompletion>(new CausalLMObjective(first, Task()), options, stopper).Run(cts.Token));

        manual_seed(1234);   // a new process: different random state, adapter from the checkpoint
        using var resumedModel = new CausalLMFineTuner(folder, spec, 64);
        var resumed = new Trainer<PromptCompletion>(new CausalLMObjective(resumedModel, Task()), options with { Resume = true }).Run();
        Assert.Equal(expected.Steps, resumed.Steps);
        Assert.Equal(expected.TestMetrics["loss"], resumed.TestMetrics["loss"], 6);
        foreach (var (name, t) in straight.GetTrainableState())
            Assert.True((t - resumedModel.GetTrainableState()[name]).abs().max().item<float>() < 1e-6, name);
    }

    [Fact]
    public void Empty_completions_and_other_methods_are_refused_by_name()
    {
        var folder = Folder();
        Assert.Contains("valid: quantum, lora, full", Assert.Throws<ArgumentException>(() => new CausalLMFineTuner(folder, new FineTuneSpec { Method = "head" })).Message);
        using var lm = new CausalLMFineTuner(folder, new FineTuneSpec { Method = "lora", Rank = 2, Targets = "c_attn" }, 64);
        Assert.Contains("empty completion", Assert.Throws<ArgumentException>(() => lm.Encode(new PromptCompletion("x ||", " "))).Message);
        var noTokenizer = TinyGpt2.Write(TinyGpt2.Model(), Path.Combine(_dir, "bare"));
        Assert.Contains("no tokenizer files", Assert.Throws<FileNotFoundException>(() => new CausalLMFineTuner(noTokenizer, new FineTuneSpec { Method = "lora" })).Message);
    }
}
