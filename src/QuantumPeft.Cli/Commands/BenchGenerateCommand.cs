using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using QuantumPeft.Generation;
using QuantumPeft.Models;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Gpt2;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft bench generate</c>: greedy decoding speed with and without the KV cache; writes generate.csv (every step) and generate.md.</summary>
public sealed class BenchGenerateCommand : ICliCommand
{
    public string? Parent => "bench";

    public Command Build()
    {
        var model = new Option<string?>("--model") { Description = "A causal-LM folder; default: a GPT-2-small-shaped model (12 x 768, vocab 50257) with random weights." };
        var promptLength = new Option<int>("--prompt-length") { DefaultValueFactory = _ => 32 };
        var newTokens = new Option<int>("--new-tokens") { DefaultValueFactory = _ => 256 };
        var skipUncached = new Option<bool>("--cached-only") { Description = "Time only the cached decoding (the uncached run re-reads the whole sequence every step)." };
        var threads = new Option<int>("--threads") { DefaultValueFactory = _ => 2 };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var outDir = new Option<string>("--out") { DefaultValueFactory = _ => "out/bench-generate" };
        var cmd = new Command("generate", "Time greedy decoding per token with and without the KV cache; writes generate.csv and generate.md.");
        foreach (var o in new Option[] { model, promptLength, newTokens, skipUncached, threads, device, seed, outDir }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            int prompt = parse.GetValue(promptLength), tokens = parse.GetValue(newTokens);
            if (prompt < 1 || tokens < 2) throw new ArgumentException("--prompt-length must be at least 1 and --new-tokens at least 2.");
            torch.set_num_threads(parse.GetValue(threads));
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            manual_seed(parse.GetValue(seed));
            var folder = parse.GetValue(model);
            ICausalLM lm = folder is null
                ? CausalLMs.Place(new Gpt2LMHeadModel(new Gpt2Config { ResidPdrop = 0, EmbdPdrop = 0, AttnPdrop = 0 }), new DecoderLoadOptions(dev))
                : CausalLMs.Load(ModelResolver.Resolve(folder), new DecoderLoadOptions(dev));
            lm.Module.eval();
            var name = folder ?? "gpt2-small shape, random weights";
            if (lm.Info.MaxPositions is { } max && prompt + tokens > max)
                throw new ArgumentException($"--prompt-length + --new-tokens = {prompt + tokens} exceeds the model's {max} positions.");
            using var ids = randint(lm.Info.VocabSize, [1, prompt], dtype: ScalarType.Int64, device: dev);
            var options = new GenerationOptions(MaxNewTokens: tokens, MinNewTokens: tokens, EosTokenIds: []);

            var runs = new List<(string Mode, List<double> Ms, double Total, long PeakBytes, long[] Tokens)>();
            foreach (var (mode, cache) in parse.GetValue(skipUncached) ? new[] { ("cached", true) } : [("cached", true), ("uncached", false)])
            {
                var timed = new TimedCausalLM(lm, dev);
                var clock = Stopwatch.StartNew();
                using var result = TextGenerator.Generate(timed, ids, null, options with { UseCache = cache });
                var total = clock.Elapsed.TotalSeconds;
                using var self = Process.GetCurrentProcess();
                runs.Add((mode, timed.Milliseconds, total, self.PeakWorkingSet64, result.NewTokens[0]));
                Console.WriteLine($"{mode}: {tokens} tokens in {total:F2} s ({tokens / total:F1} tokens/s); first step {timed.Milliseconds[0]:F1} ms, " +
                    $"median of the last 32 steps {Median(timed.Milliseconds.TakeLast(32)):F1} ms");
            }

            var dir = parse.GetValue(outDir)!;
            Directory.CreateDirectory(dir);
            var inv = CultureInfo.InvariantCulture;
            var csv = new StringBuilder("mode,step,sequence_length,ms\n");
            foreach (var run in runs)
                for (int i = 0; i < run.Ms.Count; i++) csv.Append(inv, $"{run.Mode},{i},{(i == 0 ? prompt : prompt + i)},{run.Ms[i]:F3}\n");
            QuantumPeft.Formats.AtomicFile.WriteAllText(Path.Combine(dir, "generate.csv"), csv.ToString());

            var md = new StringBuilder("# Greedy decoding: time per token with and without the KV cache\n\n");
            md.AppendLine(string.Create(inv, $"Model: {name}; prompt {prompt} tokens, {tokens} new tokens (EOS off), batch 1, {parse.GetValue(threads)} threads, device {dev}."));
            md.AppendLine("Step 0 reads the whole prompt; every later step adds one token. Times are the model's forward per step (median over the steps named).\n");
            md.AppendLine("| mode | tokens/s | step 0 (prompt) | steps 1-32 | last 32 steps | last 32 / steps 1-32 | peak working set |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var run in runs)
            {
                double early = Median(run.Ms.Skip(1).Take(32)), late = Median(run.Ms.TakeLast(32));
                md.AppendLine(string.Create(inv, $"| {run.Mode} | {tokens / run.Total:F1} | {run.Ms[0]:F1} ms | {early:F1} ms | {late:F1} ms | {late / early:F2} | {run.PeakBytes / 1048576.0:F0} MiB |"));
            }
            if (runs.Count == 2)
            {
                md.AppendLine();
                md.AppendLine(string.Create(inv, $"Speed-up of the cache over this run: {runs[1].Total / runs[0].Total:F1}x. Same tokens with and without the cache: {(runs[0].Tokens.SequenceEqual(runs[1].Tokens) ? "yes" : "NO")}."));
                md.AppendLine("The peak working set is the process's peak so far (the cached run comes first).");
            }
            QuantumPeft.Formats.AtomicFile.WriteAllText(Path.Combine(dir, "generate.md"), md.ToString());
            Console.WriteLine($"wrote {Path.Combine(dir, "generate.csv")} and generate.md");
            return 0;
        });
        return cmd;
    }

    static double Median(IEnumerable<double> values) => Stiefel.StiefelBenchmark.Median(values.ToList());

    // Times each forward call of the model it wraps (synchronising CUDA), so the benchmark sees the cost of every step.
    sealed class TimedCausalLM(ICausalLM inner, Device device) : ICausalLM
    {
        public List<double> Milliseconds { get; } = [];
        public CausalLMInfo Info => inner.Info;
        public nn.Module Module => inner.Module;
        public KvCache NewCache() => inner.NewCache();

        public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
        {
            var clock = Stopwatch.StartNew();
            var logits = inner.Forward(inputIds, attentionMask, positionIds, cache);
            if (device.type == DeviceType.CUDA) cuda.synchronize();
            else _ = logits[0, -1, 0].item<float>();   // wait for the values, not just the graph
            Milliseconds.Add(clock.Elapsed.TotalMilliseconds);
            return logits;
        }

        public Tensor HiddenStates(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null) =>
            inner.HiddenStates(inputIds, attentionMask, positionIds, cache);
    }
}
