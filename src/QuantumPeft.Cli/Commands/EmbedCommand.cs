using System.CommandLine;
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft embed --model minilm "a" "b" ...</c>: cosine similarities of mean-pooled, normalised sentence embeddings.</summary>
public sealed class EmbedCommand : ICliCommand
{
    public Command Build()
    {
        var sentences = new Argument<string[]>("sentences") { Description = "The sentences to compare.", Arity = ArgumentArity.OneOrMore };
        var model = new Option<string>("--model") { Description = "minilm (bundled all-MiniLM-L6-v2) or a path to a Hugging Face BERT folder.", DefaultValueFactory = _ => "minilm" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per sentence at most (with [CLS] and [SEP]).", DefaultValueFactory = _ => 256 };
        var cmd = new Command("embed", "Embed sentences with a BERT sentence encoder and print their cosine-similarity matrix.");
        cmd.Arguments.Add(sentences);
        cmd.Options.Add(model);
        cmd.Options.Add(device);
        cmd.Options.Add(maxLength);
        cmd.SetAction(parse =>
        {
            var texts = parse.GetValue(sentences) ?? [];
            if (texts.Length == 0) throw new ArgumentException("give at least one sentence.");
            var dev = ParseDevice(parse.GetValue(device)!);
            var folder = ModelResolver.Resolve(parse.GetValue(model)!);
            // The model first: an unsupported architecture should be the error, not a missing vocab.txt.
            using var encoder = BertForSentenceEmbedding.FromPretrained(folder, normalize: true, device: dev);
            var encoderText = BertTextEncoder.FromFolder(folder);
            encoder.eval();

            using var noGrad = no_grad();
            using var batch = encoderText.Encode(texts, maxLength: parse.GetValue(maxLength), device: dev);
            using var embeddings = encoder.call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
            using var similarity = embeddings.matmul(embeddings.t()).cpu();
            var values = similarity.data<float>().ToArray();

            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(Path.GetFileName(folder))}: {embeddings.shape[1]}-dimensional, mean-pooled, L2-normalised; cosine similarity[/]");
            for (int i = 0; i < texts.Length; i++) AnsiConsole.MarkupLine($"  [bold]{i + 1}[/]  {Markup.Escape(texts[i])}");
            var table = new Table().Border(TableBorder.Rounded).AddColumn("");
            for (int j = 0; j < texts.Length; j++) table.AddColumn(new TableColumn($"{j + 1}").RightAligned());
            for (int i = 0; i < texts.Length; i++)
                table.AddRow([$"[bold]{i + 1}[/]", .. Enumerable.Range(0, texts.Length).Select(j => Cell(values[i * texts.Length + j], i == j))]);
            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }

    static string Cell(float value, bool diagonal)
    {
        var text = value.ToString("0.000");
        return diagonal ? $"[grey]{text}[/]" : value >= 0.5f ? $"[green]{text}[/]" : value < 0.2f ? $"[dim]{text}[/]" : text;
    }

    /// <summary>cpu, cuda, cuda:N; an unavailable CUDA is an error that says so.</summary>
    internal static Device ParseDevice(string name)
    {
        var normalized = name.Trim().ToLowerInvariant();
        if (normalized == "cpu") return CPU;
        if (normalized == "cuda" || normalized.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new ArgumentException($"device '{name}' is not available: this TorchSharp build has no CUDA (use --device cpu).");
            return device(normalized);
        }
        throw new ArgumentException($"unknown device '{name}' (valid: cpu, cuda, cuda:N).");
    }
}
