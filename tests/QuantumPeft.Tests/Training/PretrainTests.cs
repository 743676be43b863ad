using System.Text.Json;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Data;
using QuantumPeft.Data.Tokenizers;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Tests.Cli;
using QuantumPeft.Tests.Data.Tokenizers;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Training;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

/// <summary>Pretraining from scratch on real text (Moby-Dick) through the one trainer loop, and the qpeft pretrain command.</summary>
public sealed class PretrainTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "qpeft-pretrain-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, true); }

    [Fact]
    public void Moby_dick_reads_in_book_order()
    {
        var texts = PretrainCorpus.Load("moby-dick");
        Assert.True(texts.Count > 135);
        Assert.Contains(texts, t => t.Contains("Call me Ishmael."));
        Assert.True(texts.Sum(t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length) > 200_000);
        Assert.Contains("unknown corpus", Assert.Throws<ArgumentException>(() => PretrainCorpus.Load("wiki")).Message);
    }

    [Fact]
    public void The_wordnet_corpus_never_holds_what_the_gloss_task_scores()
    {
        var texts = PretrainCorpus.Load("moby-dick+wordnet");
        var definitions = texts.SelectMany(t => t.Split('\n')).Where(l => l.Contains(" : ")).Select(l => l[(l.IndexOf(" : ") + 3)..]).ToHashSet();
        Assert.True(definitions.Count > 50_000);
        var gloss = WordNetGloss.Load();
        Assert.DoesNotContain(gloss.Test.Concat(gloss.Validation), p => definitions.Contains(p.Completion.Trim()));
        Assert.Contains(gloss.Train, p => definitions.Contains(p.Completion.Trim()));   // training definitions may be seen
    }

    [Fact]
    public void A_slice_of_real_text_lowers_the_loss_of_a_model_trained_from_scratch()
    {
        var eos = TokenizerFileWriter.SmallEndOfText;
        var folder = Path.Combine(_dir, "tok");
        TokenizerFileWriter.WriteGpt2(folder, TokenizerFileWriter.SmallVocab(), TokenizerFileWriter.SmallMerges);
        var tokenizer = ModelTokenizer.Load(folder);
        var chapter = PretrainCorpus.Load("moby-dick").First(t => t.Contains("Call me Ishmael."));
        var tokens = tokenizer.Encode(chapter[..4000], addSpecialTokens: false).Select(i => (long)i).ToList();
        using var model = TinyGpt2.Model(vocab: eos + 1, eos: eos);
        using (no_grad()) foreach (var p in model.parameters()) p.mul_(0.1);   // back to a normal initial scale
        var objective = new LanguageModelingObjective(model, "slice", tokens, 32, validationShare: 0.1);
        var before = objective.Evaluate(objective.Validation, 8)["loss"];
        var result = new Trainer<long[]>(objective, new TrainerOptions { Epochs = 3, BatchSize = 8, AdapterLearningRate = 6e-3, HeadLearningRate = 0, Seed = 1 }).Run();
        Assert.True(result.BestValidationMetric < before - 0.5, $"validation loss {before:F2} -> {result.BestValidationMetric:F2}");
    }

    [Fact]
    public void A_tied_head_is_one_tensor_and_one_adamw_step_moves_it_once()
    {
        using var model = TinyGpt2.Model();
        using (no_grad()) foreach (var p in model.parameters()) p.mul_(0.1);
        var tokens = Enumerable.Range(0, 400).Select(i => (long)(i * 7 % TinyGpt2.Vocab)).ToList();
        var objective = new LanguageModelingObjective(model, "tied", tokens, 16, validationShare: 0.1);
        // TorchSharp lists lm_head.weight beside transformer.wte.weight, as two wrappers of one tensor; the objective keeps one.
        Assert.Equal(model.named_parameters().Count() - 1, objective.AdapterParameters.Count);
        var wte = model.named_parameters().First(p => p.name == "transformer.wte.weight").parameter;
        using var before = wte.detach().clone();
        const double lr = 1e-3;
        new Trainer<long[]>(objective, new TrainerOptions
        {
            Epochs = 1, MaxSteps = 1, BatchSize = 4, AdapterLearningRate = lr, HeadLearningRate = 0, WeightDecay = 0, WarmupRatio = 0, MaxGradNorm = 0, Seed = 1,
        }).Run();
        // AdamW's first step moves every number with a gradient by lr (m / sqrt(v) = +-1); stepped twice it would be 2 lr.
        var moved = (wte.detach() - before).abs().max().item<float>();
        Assert.InRange(moved, 0.9 * lr, 1.1 * lr);
    }

    [Fact]
    public void The_command_writes_a_gpt2_folder_with_the_real_tokenizer()
    {
        var outDir = Path.Combine(_dir, "run");
        var (code, output) = CliCommandTests.Run(new PretrainCommand(), "pretrain", "--corpus", "moby-dick", "--layers", "1", "--hidden", "16", "--heads", "2", "--block-size", "32",
            "--batch-size", "2", "--max-steps", "2", "--out", outDir);
        Assert.Equal(0, code);
        Assert.Contains("model:", output);   // (the coloured summary goes through Spectre's own console)
        var model = Path.Combine(outDir, "model");
        var lm = CausalLMs.Load(model);
        Assert.Equal(50257, lm.Info.VocabSize);
        Assert.Equal([50256], lm.Info.EosTokenIds);
        Assert.Equal([15496, 995, 0], ModelTokenizer.Load(model).Encode("Hello world!"));
        using var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")));
        Assert.Equal(2, results.RootElement.GetProperty("steps").GetInt32());
        Assert.True(results.RootElement.GetProperty("tokens").GetInt32() > 250_000);
    }
}
