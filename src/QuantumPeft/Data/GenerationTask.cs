namespace QuantumPeft.Data;

/// <summary>One causal-LM example: the model reads <paramref name="Prompt"/> and learns to write <paramref name="Completion"/> (the loss covers the completion only).</summary>
public sealed record PromptCompletion(string Prompt, string Completion);

/// <summary>A text-generation task: its three splits, the metrics it is judged by and the one that selects the best epoch.</summary>
/// <param name="Name">The task name (e.g. "e2e", "gloss").</param>
/// <param name="Train">Training pairs.</param>
/// <param name="Validation">Pairs for model selection; pairs with the same prompt are one input with several references.</param>
/// <param name="Test">Held-out pairs, grouped like <paramref name="Validation"/>.</param>
/// <param name="MetricNames">Generation metrics reported on validation and test (e.g. bleu, rouge_l) besides loss and perplexity.</param>
public sealed record GenerationTask(
    string Name,
    IReadOnlyList<PromptCompletion> Train,
    IReadOnlyList<PromptCompletion> Validation,
    IReadOnlyList<PromptCompletion> Test,
    IReadOnlyList<string> MetricNames)
{
    /// <summary>The distinct prompts of <paramref name="examples"/> in first-seen order, each with every reference written for it.</summary>
    public static IReadOnlyList<(string Prompt, IReadOnlyList<string> References)> Grouped(IReadOnlyList<PromptCompletion> examples)
    {
        var order = new List<string>();
        var refs = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var e in examples)
        {
            if (!refs.TryGetValue(e.Prompt, out var list)) { refs[e.Prompt] = list = []; order.Add(e.Prompt); }
            list.Add(e.Completion);
        }
        return order.Select(p => (p, (IReadOnlyList<string>)refs[p])).ToList();
    }
}
