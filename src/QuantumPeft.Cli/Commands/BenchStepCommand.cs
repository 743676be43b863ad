using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using QuantumPeft.Data;
using QuantumPeft.Data.Images;
using QuantumPeft.Models;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Vision;
using QuantumPeft.Tuners;
using QuantumPeft.Stiefel;
using QuantumPeft.Training;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft bench step</c>: training-step time of Quantum-PEFT against LoRA of the same rank, on the same batches
/// (an encoder classifier on sentiment, or on seeded random token ids and the paper's six matrices when the folder has no tokenizer; for a causal-LM folder, the gloss task on its query and value projections; for an image
/// classifier folder, Fashion-MNIST images on its default targets).</summary>
public sealed class BenchStepCommand : ICliCommand
{
    public string? Parent => "bench";

    public Command Build()
    {
        var model = new Option<string>("--model") { DefaultValueFactory = _ => "minilm" };
        var rank = new Option<int>("--rank") { DefaultValueFactory = _ => 4 };
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 16 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 64 };
        var steps = new Option<int>("--steps") { Description = "Timed steps per method per round.", DefaultValueFactory = _ => 5 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds over the batches; methods alternate step by step so drift hits both.", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { DefaultValueFactory = _ => 2 };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var outDir = new Option<string>("--out") { DefaultValueFactory = _ => "out/bench-step" };
        var groupDim = new Option<int?>("--group-dimension") { Description = "Largest Kronecker factor of a batched Pauli circuit evaluation (PauliCircuitMap.BatchedGroupDimension, default 8)." };
        var unbatched = new Option<bool>("--unbatched") { Description = "Also time Quantum-PEFT with each circuit evaluated alone (no PauliCircuitBatch)." };
        var cmd = new Command("step", "Time training steps of Quantum-PEFT vs LoRA (same rank, same batches); writes step.csv and step.md.");
        foreach (var o in new Option[] { model, rank, layers, batch, maxLength, steps, rounds, threads, device, outDir, unbatched, groupDim }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            int nSteps = parse.GetValue(steps), nRounds = parse.GetValue(rounds), bs = parse.GetValue(batch);
            if (nSteps < 1 || nRounds < 1 || bs < 1) throw new ArgumentException("--steps, --rounds and --batch-size must be at least 1.");
            torch.set_num_threads(parse.GetValue(threads));
            if (parse.GetValue(groupDim) is int g)
            {
                if (g < 2) throw new ArgumentException($"--group-dimension must be at least 2 (rows of the largest Kronecker factor; 2 = one qubit per pass), got {g}.");
                PauliCircuitMap.BatchedGroupDimension = g;
            }
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            var folder = ModelResolver.Resolve(parse.GetValue(model)!);
            // "quantum-unbatched" is the same adapter with every Pauli circuit evaluated on its own.
            var methods = parse.GetValue(unbatched) ? new[] { "quantum", "lora", "quantum-unbatched" } : new[] { "quantum", "lora" };
            FineTuneSpec Spec(string m, string targets) => new() { Method = m.Split('-')[0], Rank = parse.GetValue(rank), Layers = parse.GetValue(layers), Targets = targets };
            // One runner per method over the same batches: a BERT classifier on sentiment, or a causal LM on the gloss task
            // (its LoRA-paper targets: query and value), through the objectives the trainer uses.
            Dictionary<string, Runner> runners;
            int batchCount;
            if (CausalLMs.IsCausalLM(folder))
            {
                var task = WordNetGloss.Load();
                var batches = Enumerable.Range(0, nSteps).Select(i => task.Train.Skip(i * bs).Take(bs).ToList()).ToList();
                batchCount = batches.Count;
                var targets = CausalLMs.DefaultTargets(folder);
                runners = methods.ToDictionary(m => m, m =>
                {
                    var lm = new CausalLMFineTuner(folder, Spec(m, targets), parse.GetValue(maxLength), dev);
                    var objective = new CausalLMObjective(lm, task);
                    return new Runner(i => objective.Loss(batches[i]), lm.Parameters, lm.Peft, lm.Counts().Trainable, lm.SetTraining, lm);
                });
            }
            else if (ImageClassifiers.IsImageClassifier(folder))
            {
                // Real Fashion-MNIST images, processed to the model's size; the folder's default targets (ViT query,value; ResNet every convolution).
                var task = MnistTasks.Load("fashion-mnist");
                var batches = Enumerable.Range(0, nSteps).Select(i => task.Train.Skip(i * bs).Take(bs).ToList()).ToList();
                batchCount = batches.Count;
                var targets = ImageClassifiers.DefaultTargets(folder);
                runners = methods.ToDictionary(m => m, m =>
                {
                    var tuner = new ImageClassifierFineTuner(folder, task.ClassNames.Count, Spec(m, targets), dev, log: _ => { });
                    var objective = new ImageClassificationObjective(tuner, task);
                    return new Runner(i => objective.Loss(batches[i]), [.. tuner.AdapterParameters, .. tuner.HeadParameters], tuner.Peft,
                        tuner.Counts().Adapter, tuner.SetTraining, tuner);
                });
            }
            else if (!HasTokenizer(folder))
            {
                // A random-weight folder without tokenizer files (qpeft create-model --type deberta-v2): seeded random token ids, all positions real.
                var arch = TextEncoders.For(folder);
                int vocab = arch.VocabSize(folder), len = parse.GetValue(maxLength);
                var generator = new Generator(20261201);
                var ids = Enumerable.Range(0, nSteps).Select(_ => randint(4, vocab, [bs, len], dtype: ScalarType.Int64, generator: generator)).ToList();
                var labels = Enumerable.Range(0, nSteps).Select(_ => randint(0, 2, [bs], dtype: ScalarType.Int64, generator: generator)).ToList();
                batchCount = ids.Count;
                runners = methods.ToDictionary(m => m, m =>
                {
                    var classifier = new TextClassifier(folder, 2, Spec(m, TextEncoders.PaperTargetsShorthand), len, dev);
                    Tensor Loss(int i) => nn.functional.cross_entropy(
                        classifier.Model.forward(ids[i].to(dev), ones_like(ids[i]).to(dev), zeros_like(ids[i]).to(dev)), labels[i].to(dev));
                    return new Runner(Loss, [.. classifier.AdapterParameters, .. classifier.HeadParameters], classifier.Peft,
                        classifier.Counts().Adapter, classifier.SetTraining, classifier);
                });
            }
            else
            {
                var train = TextTasks.Load("sentiment").Train;
                var batches = Enumerable.Range(0, nSteps).Select(i => train.Skip(i * bs).Take(bs).ToList()).ToList();
                batchCount = batches.Count;
                runners = methods.ToDictionary(m => m, m =>
                {
                    var classifier = new TextClassifier(folder, 2, Spec(m, "all-linear"), parse.GetValue(maxLength), dev);
                    var objective = new ClassificationObjective(classifier, new TextTask("sentiment", train, train, train, 2, ["negative", "positive"], ["accuracy"], "accuracy"));
                    return new Runner(i => objective.Loss(batches[i]), [.. classifier.AdapterParameters, .. classifier.HeadParameters], classifier.Peft,
                        classifier.Counts().Adapter, classifier.SetTraining, classifier);
                });
            }
            var optimizers = runners.ToDictionary(kv => kv.Key, kv => optim.AdamW(kv.Value.Parameters, 1e-3));
            var times = methods.ToDictionary(m => m, _ => new List<double>());
            // Where a step's time goes: forward (with the loss), backward, optimizer step.
            var phases = methods.ToDictionary(m => m, _ => new[] { new List<double>(), new List<double>(), new List<double>() });

            void Sync() { if (dev.type == DeviceType.CUDA) cuda.synchronize(); }

            void Step(string m, int b, bool timed)
            {
                using var scope = NewDisposeScope();
                PauliCircuitBatch.Enabled = m != "quantum-unbatched";
                var runner = runners[m];
                runner.SetTraining(true);
                var sw = Stopwatch.StartNew();
                var loss = runner.Loss(b);
                Sync();
                var forward = sw.Elapsed.TotalMilliseconds;
                optimizers[m].zero_grad();
                loss.backward();
                Sync();
                var backward = sw.Elapsed.TotalMilliseconds;
                NoGcRegion.Run(() => optimizers[m].step());
                Sync();
                if (!timed) return;
                var end = sw.Elapsed.TotalMilliseconds;
                phases[m][0].Add(forward);
                phases[m][1].Add(backward - forward);
                phases[m][2].Add(end - backward);
            }

            foreach (var m in methods) Step(m, 0, timed: false);   // warm-up
            // Methods alternate step by step (in turn first and last), so that the machine's drift hits them alike.
            for (int r = 0; r < nRounds; r++)
                for (int i = 0; i < batchCount; i++)
                    foreach (var m in (r + i) % 2 == 0 ? methods : methods.Reverse().ToArray())
                    {
                        var sw = Stopwatch.StartNew();
                        Step(m, i, timed: true);
                        times[m].Add(sw.Elapsed.TotalMilliseconds);
                    }

            var inv = CultureInfo.InvariantCulture;
            var output = Path.GetFullPath(parse.GetValue(outDir)!);
            Directory.CreateDirectory(output);
            string Phase(string m, int i) => StiefelBenchmark.Median(phases[m][i]).ToString("F1", inv);
            var csv = "method,rank,adapter_params,steps,median_step_ms,median_forward_ms,median_backward_ms,median_optimizer_ms\n" + string.Concat(methods.Select(m =>
                string.Create(inv, $"{m},{parse.GetValue(rank)},{runners[m].AdapterParams},{times[m].Count},{StiefelBenchmark.Median(times[m]):F1},{Phase(m, 0)},{Phase(m, 1)},{Phase(m, 2)}\n")));
            double ratio = StiefelBenchmark.Median(times["quantum"]) / StiefelBenchmark.Median(times["lora"]);
            // The part of a quantum step that LoRA does not have: U and V of every adapted layer, forward + backward.
            PauliCircuitBatch.Enabled = true;
            var branches = runners["quantum"].Peft!.AdaptedLayers.SelectMany(l => FusedPartsBranch.Leaves(l.Layer["default"])).Cast<QuantumBranch>().ToList();
            var factorTimes = new List<double>();
            for (int i = 0; i < 2 + nSteps * nRounds; i++)
            {
                using var scope = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                var total = stack(branches.Select(b => { var (u, v, _) = b.Factors(); return u.sum() + v.sum(); }).ToArray()).sum();
                total.backward();
                Sync();
                if (i >= 2) factorTimes.Add(sw.Elapsed.TotalMilliseconds);
            }
            var md = "| method | rank | adapter params | timed steps | median step (ms) | forward | backward | optimizer |\n|---|---:|---:|---:|---:|---:|---:|---:|\n" + string.Concat(methods.Select(m =>
                string.Create(inv, $"| {m} | {parse.GetValue(rank)} | {runners[m].AdapterParams:N0} | {times[m].Count} | {StiefelBenchmark.Median(times[m]):F1} | {Phase(m, 0)} | {Phase(m, 1)} | {Phase(m, 2)} |\n")))
                + string.Create(inv, $"\nquantum / lora step-time ratio (same run, same batches, alternating steps): **{ratio:F3}**\n")
                + string.Create(inv, $"U and V of all {branches.Count} adapted layers (forward + backward, Pauli group dimension {PauliCircuitMap.BatchedGroupDimension}): {StiefelBenchmark.Median(factorTimes):F1} ms per step\n")
                + (times.ContainsKey("quantum-unbatched") ? string.Create(inv, $"quantum-unbatched / quantum (what batching the circuits saves): {StiefelBenchmark.Median(times["quantum-unbatched"]) / StiefelBenchmark.Median(times["quantum"]):F3}\n") : "");
            Formats.AtomicFile.WriteAllText(Path.Combine(output, "step.csv"), csv);
            Formats.AtomicFile.WriteAllText(Path.Combine(output, "step.md"), md);
            Console.Write(md);
            foreach (var r in runners.Values) r.Owner.Dispose();
            return 0;
        });
        return cmd;
    }

    // True when the encoder folder's tokenizer files load (a random-weight folder written by create-model has none).
    static bool HasTokenizer(string folder)
    {
        try { TextEncoders.For(folder).Tokenizer(folder); return true; }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException or DirectoryNotFoundException or ArgumentException) { return false; }
    }

    // One method's training step, whatever the model: its loss on batch i, what the optimizer steps, its adapter.
    sealed record Runner(Func<int, Tensor> Loss, IReadOnlyList<TorchSharp.Modules.Parameter> Parameters, PeftModel? Peft, long AdapterParams,
        Action<bool> SetTraining, IDisposable Owner);
}
