using System.CommandLine;
using QuantumPeft.Models;
using QuantumPeft.Models.Decoder;
using QuantumPeft.Models.Vision;
using QuantumPeft.Training;
using QuantumPeft.Tuners;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft merge</c>: a base model plus an adapter folder into one plain Hugging Face folder (a BERT classifier, or a causal LM).</summary>
public sealed class MergeCommand : ICliCommand
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "minilm, or the Hugging Face folder (BERT, RoBERTa, GPT-2, LLaMA, Mistral, Qwen2, an image classifier) the adapter was trained on.", DefaultValueFactory = _ => "minilm" };
        var adapter = new Option<string>("--adapter") { Description = "Adapter folder written by qpeft train (OUT/adapter).", Required = true };
        var outDir = new Option<string>("--out") { Description = "Folder to write (config.json, model.safetensors, tokenizer files).", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace --out if it is not empty." };

        var cmd = new Command("merge", "Merge an adapter (and its classifier head) into the base weights; write a plain Hugging Face folder (BertForSequenceClassification, RobertaForSequenceClassification, or the causal LM's class).");
        foreach (var o in new Option[] { model, adapter, outDir, force })
            cmd.Options.Add(o);

        cmd.SetAction(parse =>
        {
            var output = Path.TrimEndingDirectorySeparator(Path.GetFullPath(parse.GetValue(outDir)!));
            var adapterDir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(parse.GetValue(adapter)!));
            var overwrite = parse.GetValue(force);
            // The write checks it again; checked here too so that a taken --out fails before the model loads.
            try { Formats.AtomicFolder.EnsureWritable(output, overwrite); }
            catch (IOException e) { throw new ArgumentException($"--out: {e.Message}{(Directory.Exists(output) && !overwrite ? " Pass --force to replace it." : "")}", e); }
            var folder = Path.TrimEndingDirectorySeparator(ModelResolver.Resolve(parse.GetValue(model)!));
            if (output == folder || output == adapterDir)
                throw new ArgumentException($"--out '{output}' is the {(output == folder ? "--model" : "--adapter")} folder; write the merged model to a new folder.");

            if (CausalLMs.IsCausalLM(folder))
            {
                var lm = CausalLMs.Load(folder);
                var peft = PeftModel.Load(lm.Module, adapterDir);
                var count = peft.AdaptedLayers.Count;
                var type = peft.ActiveConfig.PeftType;
                peft.MergeAndUnload();
                Formats.AtomicFolder.Write(output, temp => CausalLMs.Save(lm, temp, folder), overwrite);
                Console.WriteLine($"merged {type} adapter {adapterDir} into {count} layers of {folder} ({lm.Info.ModelType})");
                PrintSaved(output);
                return 0;
            }
            if (ImageClassifiers.IsImageClassifier(folder))
            {
                using var images = ImageClassifierFineTuner.FromAdapter(folder, adapterDir);
                var adapted = images.Peft!.AdaptedLayers.Count;
                images.SaveMerged(output, overwrite);
                Console.WriteLine($"merged {images.Spec.Method} adapter {adapterDir} into {adapted} layers of {folder} ({images.Model.ModelType}, {images.Model.NumLabels} classes)");
                PrintSaved(output);
                return 0;
            }
            if (!TextClassifier.AdapterHasHead(adapterDir, folder))
            {
                // An encoder-only adapter (peft's FEATURE_EXTRACTION on a bare BertModel): the plain base model folder, updated.
                var arch = TextEncoders.For(folder);
                var save = arch.SaveEncoder ?? throw new NotSupportedException($"'{adapterDir}' has no classifier head, and writing a bare {arch.Name} encoder folder is not supported; merge an adapter saved with its classifier.");
                using var encoder = arch.LoadEncoder!(folder, TorchSharp.torch.CPU);
                var peft = PeftModel.Load(encoder, adapterDir);
                var count = peft.AdaptedLayers.Count;
                var type = peft.ActiveConfig.PeftType;
                peft.MergeAndUnload();
                Formats.AtomicFolder.Write(output, temp => save(temp, encoder, folder), overwrite);
                Console.WriteLine($"merged {type} adapter {adapterDir} (no classifier: the bare encoder) into {count} layers of {folder}");
                PrintSaved(output);
                return 0;
            }
            var (numLabels, head) = TextClassifier.ReadAdapterHead(adapterDir, folder);
            using var classifier = TextClassifier.FromAdapter(folder, adapterDir);
            var layers = classifier.Peft!.AdaptedLayers.Count;
            classifier.SaveMerged(output, overwrite);
            Console.WriteLine($"merged {classifier.Spec.Method} adapter {adapterDir} into {layers} layers of {folder} ({numLabels} label(s), {head} head)");
            PrintSaved(output);
            return 0;
        });
        return cmd;
    }

    // The files of the written folder, sorted (the last line of every merge).
    static void PrintSaved(string output) =>
        Console.WriteLine($"saved: {output} ({string.Join(", ", Directory.EnumerateFiles(output).Select(Path.GetFileName).Order(StringComparer.Ordinal))})");
}
