namespace QuantumPeft.Data;

/// <summary>One example of a text task: a sentence (or a pair) and its label (class index, or a score for regression).</summary>
public sealed record TextExample(string Text, string? TextPair, float Label);
