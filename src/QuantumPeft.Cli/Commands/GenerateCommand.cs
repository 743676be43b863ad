using System.CommandLine;
using System.Text.Json;
using QuantumPeft.Data.Tokenizers;
using QuantumPeft.Generation;
using QuantumPeft.Models;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Tuners;
using static TorchSharp.torch;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft generate</c>: text generation from a causal-LM folder, with or without an adapter, as transformers' generate does it.</summary>
/// <remarks>
/// Contract: <c>qpeft generate --model DIR [--adapter DIR] --input-ids 5,17,3 --max-new-tokens 20 --min-new-tokens 20 --json</c>
/// prints one JSON object with <c>input_ids</c> and <c>generated_ids</c> (greedy unless sampling or beams are asked for), and
/// <c>text</c> (the decoded generated tokens) when the folder has a tokenizer; <c>--prompt TEXT</c> tokenizes instead of
/// <c>--input-ids</c>. With <c>--num-return-sequences</c> above 1, <c>generated_ids</c> and <c>text</c> are lists, one per sequence.
/// EOS and pad ids come from the folder's config.json and generation_config.json; its sampling defaults are not applied.
/// </remarks>
public sealed class GenerateCommand : ICliCommand
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "A causal-LM folder (GPT-2, LLaMA, Mistral, Qwen2).", Required = true };
        var adapter = new Option<string?>("--adapter") { Description = "An adapter folder (peft's layout: LoRA from Python's peft, or Quantum-PEFT)." };
        var inputIds = new Option<string?>("--input-ids") { Description = "The prompt as comma-separated token ids, e.g. 5,17,3." };
        var prompt = new Option<string?>("--prompt") { Description = "The prompt as text (needs the folder's tokenizer; special tokens added as transformers does)." };
        var maxNew = new Option<int>("--max-new-tokens") { DefaultValueFactory = _ => 20 };
        var minNew = new Option<int>("--min-new-tokens") { DefaultValueFactory = _ => 0 };
        var sample = new Option<bool>("--do-sample") { Description = "Sample instead of taking the most likely token." };
        var temperature = new Option<double>("--temperature") { DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int>("--top-k") { Description = "With sampling: keep the k most likely tokens (0: off).", DefaultValueFactory = _ => 50 };
        var topP = new Option<double>("--top-p") { Description = "With sampling: nucleus mass to keep (1: off).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long?>("--seed") { Description = "Seed of the sampling generator." };
        var beams = new Option<int>("--num-beams") { DefaultValueFactory = _ => 1 };
        var lengthPenalty = new Option<double>("--length-penalty") { DefaultValueFactory = _ => 1.0 };
        var noRepeat = new Option<int>("--no-repeat-ngram-size") { DefaultValueFactory = _ => 0 };
        var early = new Option<string>("--early-stopping") { Description = "Beam search: false, true or never (transformers' values).", DefaultValueFactory = _ => "false" };
        var repetition = new Option<double>("--repetition-penalty") { DefaultValueFactory = _ => 1.0 };
        var returns = new Option<int>("--num-return-sequences") { DefaultValueFactory = _ => 1 };
        var noCache = new Option<bool>("--no-cache") { Description = "Recompute the whole sequence every step (same tokens, slower)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = "Weights: float32, float16 or bfloat16.", DefaultValueFactory = _ => "float32" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (input_ids, generated_ids, text)." };

        var cmd = new Command("generate", "Generate tokens from a causal LM (greedy, sampling or beam search), with or without an adapter.");
        foreach (var o in new Option[] { model, adapter, inputIds, prompt, maxNew, minNew, sample, temperature, topK, topP, seed, beams, lengthPenalty,
                     noRepeat, early, repetition, returns, noCache, device, dtype, json })
            cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var idsText = parse.GetValue(inputIds);
            var promptText = parse.GetValue(prompt);
            if ((idsText is null) == (promptText is null)) throw new ArgumentException("give the prompt as --input-ids 5,17,3 or as --prompt TEXT (one of them).");
            var options = new GenerationOptions(
                MaxNewTokens: parse.GetValue(maxNew), MinNewTokens: parse.GetValue(minNew), DoSample: parse.GetValue(sample),
                Temperature: parse.GetValue(temperature), TopK: parse.GetValue(topK), TopP: parse.GetValue(topP), NumBeams: parse.GetValue(beams),
                LengthPenalty: parse.GetValue(lengthPenalty), NoRepeatNgramSize: parse.GetValue(noRepeat),
                EarlyStopping: GenerationOptions.ParseEarlyStopping(parse.GetValue(early)!), RepetitionPenalty: parse.GetValue(repetition),
                Seed: parse.GetValue(seed), UseCache: !parse.GetValue(noCache), NumReturnSequences: parse.GetValue(returns));
            options.Validate();

            var folder = ModelResolver.Resolve(parse.GetValue(model)!);
            if (!CausalLMs.IsCausalLM(folder))
                throw new ArgumentException($"'{folder}' is not a causal LM (config.json model_type '{CausalLMs.ReadModelType(folder) ?? "(none)"}'; generate needs one of {string.Join(", ", CausalLMs.ModelTypes)}).");
            var dev = EmbedCommand.ParseDevice(parse.GetValue(device)!);
            var tokenizer = ModelTokenizer.TryLoad(folder);
            var ids = idsText is not null ? ParseIds(idsText)
                : (tokenizer ?? throw new ArgumentException($"--prompt needs a tokenizer, and '{folder}' has none; give --input-ids instead.")).Encode(promptText!).Select(i => (long)i).ToArray();
            if (ids.Length == 0) throw new ArgumentException("the prompt is empty: give at least one token.");

            var lm = CausalLMs.Load(folder, new DecoderLoadOptions(dev, DecoderLoadOptions.ParseDType(parse.GetValue(dtype)!)));
            foreach (var id in ids)
                if (id >= lm.Info.VocabSize) throw new ArgumentException($"token id {id} is outside the vocabulary of '{folder}' (0 .. {lm.Info.VocabSize - 1}).");
            if (parse.GetValue(adapter) is { } a) PeftModel.Load(lm.Module, Path.GetFullPath(a));
            lm.Module.eval();
            if (lm.Info.MaxPositions is { } max && ids.Length + options.MaxNewTokens > max)
                throw new ArgumentException($"prompt ({ids.Length}) + --max-new-tokens ({options.MaxNewTokens}) exceeds the model's {max} positions.");

            using var input = tensor(ids, [1, ids.Length], device: dev);
            using var result = TextGenerator.Generate(lm, input, null, options.WithSpecialTokensOf(lm.Info));
            var generated = result.NewTokens.Select(t => t.ToArray()).ToList();
            var texts = tokenizer is null ? null : generated.Select(g => tokenizer.Decode(g.Select(i => (int)i))).ToList();
            if (parse.GetValue(json)) Console.WriteLine(ToJson(ids, generated, texts, result.SequenceScores));
            else
            {
                Console.WriteLine($"input_ids: {string.Join(",", ids)}");
                for (int i = 0; i < generated.Count; i++)
                {
                    Console.WriteLine($"generated_ids{(generated.Count > 1 ? $"[{i}]" : "")}: {string.Join(",", generated[i])}");
                    if (texts is not null) Console.WriteLine($"text{(generated.Count > 1 ? $"[{i}]" : "")}: {texts[i]}");
                }
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>"5,17,3" to ids; throws naming the bad entry.</summary>
    internal static long[] ParseIds(string text) =>
        text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(s => long.TryParse(s, out var v) && v >= 0 ? v : throw new ArgumentException($"--input-ids: '{s}' is not a token id (expected comma-separated non-negative integers, e.g. 5,17,3)."))
            .ToArray();

    static string ToJson(long[] input, List<long[]> generated, List<string>? texts, IReadOnlyList<float>? scores)
    {
        var obj = new Dictionary<string, object?> { ["input_ids"] = input };
        obj["generated_ids"] = generated.Count == 1 ? generated[0] : generated;
        if (texts is not null) obj["text"] = texts.Count == 1 ? texts[0] : texts;
        if (scores is not null) obj["sequence_scores"] = scores.Count == 1 ? scores[0] : scores;
        return JsonSerializer.Serialize(obj);
    }
}
