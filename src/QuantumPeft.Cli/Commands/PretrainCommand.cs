using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using QuantumPeft.Data;
using QuantumPeft.Data.Tokenizers;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Gpt2;
using QuantumPeft.Training;
using Spectre.Console;
using TorchSharp;

namespace QuantumPeft.Cli.Commands;

/// <summary>
/// <c>qpeft pretrain</c>: trains a small GPT-2 from scratch on real public-domain text with the real GPT-2 tokenizer, through
/// the one trainer loop, and writes it as a Hugging Face folder: the offline stand-in for gpt2-medium, which cannot be
/// downloaded here.
/// </summary>
public sealed class PretrainCommand : ICliCommand
{
    public Command Build()
    {
        var corpus = new Option<string>("--corpus") { Description = $"Training text: {string.Join(", ", PretrainCorpus.Names)} (WordNet definitions outside the gloss task's validation and test splits).", DefaultValueFactory = _ => "moby-dick+wordnet" };
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 4 };
        var hidden = new Option<int>("--hidden") { DefaultValueFactory = _ => 128 };
        var heads = new Option<int>("--heads") { DefaultValueFactory = _ => 4 };
        var block = new Option<int>("--block-size") { Description = "Tokens per training block (also the model's n_positions).", DefaultValueFactory = _ => 128 };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 8 };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 2e-3 };
        var maxSteps = new Option<int?>("--max-steps") { Description = "Stop after this many steps." };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 42 };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var threads = new Option<int?>("--threads");
        var outDir = new Option<string>("--out") { Description = "Run folder (checkpoints, metrics, plot); the model goes to OUT/model.", DefaultValueFactory = _ => "out/pretrain" };
        var resume = new Option<bool>("--resume") { Description = "Continue a stopped run from the checkpoint in --out." };
        var cmd = new Command("pretrain", "Train a small GPT-2 from scratch on real public-domain text (the offline stand-in base model); writes OUT/model.");
        foreach (var o in new Option[] { corpus, layers, hidden, heads, block, epochs, batch, lr, maxSteps, seed, device, threads, outDir, resume }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            if (parse.GetValue(threads) is int t) torch.set_num_threads(t);
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            var output = Path.GetFullPath(parse.GetValue(outDir)!);
            var seedValue = parse.GetValue(seed);
            int h = parse.GetValue(hidden), nh = parse.GetValue(heads), blockSize = parse.GetValue(block);
            if (h % nh != 0) throw new ArgumentException($"--hidden {h} must be divisible by --heads {nh}.");

            // GPT-2's own tokenizer files, written once into the run folder and copied into the model folder.
            var tokenizerDir = Path.Combine(output, "tokenizer");
            if (!File.Exists(Path.Combine(tokenizerDir, ModelTokenizer.MergesFile))) Gpt2Vocabulary.WriteFiles(tokenizerDir);
            var tokenizer = ModelTokenizer.Load(tokenizerDir);
            var texts = PretrainCorpus.Load(parse.GetValue(corpus)!);
            var tokens = new List<long>();
            foreach (var text in texts)
            {
                tokens.AddRange(tokenizer.Encode(text, addSpecialTokens: false).Select(i => (long)i));
                tokens.Add(tokenizer.EosTokenId!.Value);
            }

            torch.manual_seed(seedValue);
            var config = Gpt2Config.FromJson(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["model_type"] = "gpt2", ["architectures"] = new[] { "GPT2LMHeadModel" }, ["n_embd"] = h, ["n_layer"] = parse.GetValue(layers),
                ["n_head"] = nh, ["n_positions"] = blockSize, ["vocab_size"] = tokenizer.VocabSize, ["bos_token_id"] = tokenizer.EosTokenId!.Value,
                ["eos_token_id"] = tokenizer.EosTokenId!.Value,
            }), "pretrain config");
            var model = CausalLMs.Place(new Gpt2LMHeadModel(config), new DecoderLoadOptions(dev));
            var objective = new LanguageModelingObjective(model, $"pretrain-{parse.GetValue(corpus)}", tokens, blockSize, device: dev);
            var count = QuantumPeft.Tuners.ModuleTree.CountParameters(model);
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"[bold]qpeft pretrain[/]: GPT-2 {config.NLayer} x {h} ({count:N0} parameters, vocab {config.VocabSize}) on {parse.GetValue(corpus)}: {tokens.Count:N0} tokens, {objective.Train.Count}/{objective.Validation.Count}/{objective.Test.Count} blocks of {blockSize}, device {dev}"));
            var options = new TrainerOptions
            {
                Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batch), AdapterLearningRate = parse.GetValue(lr), HeadLearningRate = 0,
                WarmupRatio = 0.05, Seed = seedValue, OutputDir = output, Resume = parse.GetValue(resume), MaxSteps = parse.GetValue(maxSteps),
                CheckpointEverySteps = 50,
            };
            var result = TrainingProgressDisplay.Train(TrainingProgressDisplay.IsInteractive, progress => new Trainer<long[]>(objective, options, progress));

            var modelDir = Path.Combine(output, "model");
            Formats.AtomicFolder.Write(modelDir, temp => CausalLMs.Save(model, temp, tokenizerDir), overwrite: true);
            var results = new Dictionary<string, object?>
            {
                ["corpus"] = parse.GetValue(corpus), ["tokens"] = tokens.Count, ["parameters"] = count, ["layers"] = config.NLayer, ["hidden"] = h, ["heads"] = nh,
                ["block_size"] = blockSize, ["steps"] = result.Steps, ["epochs"] = result.Epochs, ["lr"] = options.AdapterLearningRate, ["batch_size"] = options.BatchSize,
                ["seed"] = seedValue, ["train_seconds"] = result.TrainSeconds, ["validation_loss"] = result.BestValidationMetric,
                ["test_loss"] = result.TestMetrics["loss"], ["test_perplexity"] = result.TestMetrics["perplexity"], ["model"] = modelDir,
                ["threads"] = torch.get_num_threads(), ["device"] = dev.ToString(),
            };
            Formats.AtomicFile.WriteAllText(Path.Combine(output, "results.json"), JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"[bold green]test loss {result.TestMetrics["loss"]:F3} (perplexity {result.TestMetrics["perplexity"]:F1})[/]; {result.Steps} steps in {result.TrainSeconds:F0} s"));
            Console.WriteLine($"model: {modelDir}");
            return 0;
        });
        return cmd;
    }
}
