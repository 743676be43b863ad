using System.CommandLine;
using System.Text.Json;
using QuantumPeft.Models.DebertaV2;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Gpt2;
using QuantumPeft.Models.Llama;
using QuantumPeft.Models.Vit;
using static TorchSharp.torch;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft create-model</c>: a causal LM, a ViT image classifier or a DeBERTa-v2 encoder with seeded random weights, written as a Hugging Face folder, to try the commands (and bench step) without a download.</summary>
public sealed class CreateModelCommand : ICliCommand
{
    public Command Build()
    {
        var type = new Option<string>("--type") { Description = "gpt2, llama, mistral, qwen2, vit or deberta-v2.", DefaultValueFactory = _ => "gpt2" };
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 2 };
        var hidden = new Option<int>("--hidden") { DefaultValueFactory = _ => 64 };
        var heads = new Option<int>("--heads") { DefaultValueFactory = _ => 4 };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "LLaMA family: key/value heads (default heads / 2: grouped-query attention)." };
        var vocab = new Option<int>("--vocab") { DefaultValueFactory = _ => 1000 };
        var positions = new Option<int>("--positions") { DefaultValueFactory = _ => 256 };
        var imageSize = new Option<int>("--image-size") { Description = "vit: the image side (config.json's image_size).", DefaultValueFactory = _ => 32 };
        var patchSize = new Option<int>("--patch-size") { Description = "vit: the patch side (divides --image-size).", DefaultValueFactory = _ => 4 };
        var labels = new Option<int>("--labels") { Description = "vit: classes of the classifier head.", DefaultValueFactory = _ => 10 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var outDir = new Option<string>("--out") { Required = true };
        var force = new Option<bool>("--force") { Description = "Replace --out if it is not empty." };
        var cmd = new Command("create-model", "Write a small random-weight causal LM (GPT-2 or LLaMA family), ViT classifier or DeBERTa-v2 encoder as a Hugging Face folder, for trying generate/logits/merge/bench step.");
        foreach (var o in new Option[] { type, layers, hidden, heads, kvHeads, vocab, positions, imageSize, patchSize, labels, seed, outDir, force }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var t = parse.GetValue(type)!;
            int l = parse.GetValue(layers), h = parse.GetValue(hidden), nh = parse.GetValue(heads), v = parse.GetValue(vocab), p = parse.GetValue(positions);
            if (l < 1 || h < 1 || nh < 1 || v < 2 || p < 2) throw new ArgumentException("--layers, --hidden and --heads must be at least 1, --vocab and --positions at least 2.");
            if (h % nh != 0) throw new ArgumentException($"--hidden {h} must be divisible by --heads {nh}.");
            if (t == "deberta-v2") return WriteDebertaV2(parse.GetValue(outDir)!, parse.GetValue(force), l, h, nh, v, p, parse.GetValue(seed));
            if (t is not ("gpt2" or "llama" or "mistral" or "qwen2" or "vit"))
                throw new ArgumentException($"--type '{t}' is not a model this library writes; choose gpt2, llama, mistral, qwen2, vit or deberta-v2.");
            int side = parse.GetValue(imageSize), patch = parse.GetValue(patchSize), classes = parse.GetValue(labels);
            if (t == "vit" && (side < 1 || patch < 1 || side % patch != 0 || classes < 1))
                throw new ArgumentException($"--image-size {side} must be a positive multiple of --patch-size {patch}, and --labels at least 1.");
            var output = Path.GetFullPath(parse.GetValue(outDir)!);
            try { QuantumPeft.Formats.AtomicFolder.EnsureWritable(output, parse.GetValue(force)); }
            catch (IOException e) { throw new ArgumentException($"--out: {e.Message} Pass --force to replace it.", e); }
            manual_seed(parse.GetValue(seed));
            if (t == "vit")
            {
                // ViT-B/16 is --layers 12 --hidden 768 --heads 12 --image-size 224 --patch-size 16.
                var config = ViTConfig.FromJson(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["model_type"] = "vit", ["hidden_size"] = h, ["num_hidden_layers"] = l, ["num_attention_heads"] = nh, ["intermediate_size"] = 4 * h,
                    ["image_size"] = side, ["patch_size"] = patch, ["encoder_stride"] = patch, ["num_channels"] = 3,
                }), "--type vit");
                using var vit = new ViTForImageClassification(config, classes, seed: parse.GetValue(seed));
                QuantumPeft.Formats.AtomicFolder.Write(output, temp => vit.Save(temp), parse.GetValue(force));
                Console.WriteLine($"wrote {output}: vit, {l} layers, hidden {h}, {nh} heads, image {side}, patch {patch}, {classes} labels, " +
                    $"{QuantumPeft.Tuners.ModuleTree.CountParameters(vit):N0} parameters (random weights, seed {parse.GetValue(seed)})");
                return 0;
            }
            ICausalLM model = t switch
            {
                "gpt2" => new Gpt2LMHeadModel(Gpt2Config.FromJson(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["model_type"] = "gpt2", ["n_embd"] = h, ["n_layer"] = l, ["n_head"] = nh, ["n_positions"] = p, ["vocab_size"] = v,
                    ["bos_token_id"] = v - 1, ["eos_token_id"] = v - 1,
                }), "--type gpt2")),
                "llama" or "mistral" or "qwen2" => new LlamaForCausalLM(LlamaConfig.FromJson(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["model_type"] = t, ["hidden_size"] = h, ["num_hidden_layers"] = l, ["num_attention_heads"] = nh,
                    ["num_key_value_heads"] = parse.GetValue(kvHeads) ?? Math.Max(1, nh / 2), ["intermediate_size"] = 4 * h,
                    ["max_position_embeddings"] = p, ["vocab_size"] = v, ["bos_token_id"] = 1, ["eos_token_id"] = 2,
                    ["architectures"] = new[] { t switch { "mistral" => "MistralForCausalLM", "qwen2" => "Qwen2ForCausalLM", _ => "LlamaForCausalLM" } },
                }), $"--type {t}"), parse.GetValue(seed)),
                _ => throw new ArgumentException($"--type '{t}' is not a causal LM this library writes; choose gpt2, llama, mistral or qwen2."),
            };
            QuantumPeft.Formats.AtomicFolder.Write(output, temp => CausalLMs.Save(model, temp, null), parse.GetValue(force));
            var count = QuantumPeft.Tuners.ModuleTree.CountParameters(model.Module);
            Console.WriteLine($"wrote {output}: {t}, {l} layers, hidden {h}, {nh} heads, vocab {v}, {count:N0} parameters (random weights, seed {parse.GetValue(seed)})");
            return 0;
        });
        return cmd;
    }

    // An encoder, not a causal LM: DeBERTa-v3's layout (relative attention over 256 log buckets, shared position keys,
    // LayerNorm'd relative embeddings, no absolute positions or token types) at the given size, e.g. DeBERTaV3-base with
    // --layers 12 --hidden 768 --heads 12 --vocab 128100 --positions 512, for qpeft bench step and the classifier commands.
    static int WriteDebertaV2(string outDir, bool force, int layers, int hidden, int heads, int vocab, int positions, long seed)
    {
        var output = Path.GetFullPath(outDir);
        try { QuantumPeft.Formats.AtomicFolder.EnsureWritable(output, force); }
        catch (IOException e) { throw new ArgumentException($"--out: {e.Message} Pass --force to replace it.", e); }
        var config = DebertaV2Config.FromJson(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model_type"] = DebertaV2Config.DebertaV2ModelType, ["hidden_size"] = hidden, ["num_hidden_layers"] = layers, ["num_attention_heads"] = heads,
            ["intermediate_size"] = 4 * hidden, ["vocab_size"] = vocab, ["max_position_embeddings"] = positions, ["relative_attention"] = true,
            ["position_buckets"] = Math.Min(256, positions / 2), ["max_relative_positions"] = -1, ["pos_att_type"] = new[] { "p2c", "c2p" },
            ["share_att_key"] = true, ["norm_rel_ebd"] = "layer_norm", ["position_biased_input"] = false, ["type_vocab_size"] = 0,
            ["layer_norm_eps"] = 1e-7, ["pad_token_id"] = 0,
        }), "--type deberta-v2");
        using var model = new DebertaV2Model(config, seed);
        QuantumPeft.Formats.AtomicFolder.Write(output, temp => HfDebertaV2Loader.Save(temp, model), force);
        var count = QuantumPeft.Tuners.ModuleTree.CountParameters(model);
        Console.WriteLine($"wrote {output}: deberta-v2, {layers} layers, hidden {hidden}, {heads} heads, vocab {vocab}, {count:N0} parameters (random weights, seed {seed})");
        return 0;
    }
}
