using QuantumPeft.Cli.Commands;
using QuantumPeft.Tuners.Lora;

namespace QuantumPeft.Tests.Cli;

/// <summary>qpeft bench step on an image classifier folder: Fashion-MNIST batches through the image objective, on ViT's query and value.</summary>
public sealed class BenchStepImageTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-bench-step-img-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    [Fact]
    public void Times_quantum_against_lora_on_query_and_value_of_a_vit()
    {
        var folder = Path.Combine(dir, "vit");
        var (code, _) = CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", "vit", "--layers", "2", "--hidden", "16", "--heads", "2",
            "--image-size", "16", "--patch-size", "4", "--out", folder);
        Assert.Equal(0, code);
        var outDir = Path.Combine(dir, "bench");
        (code, var output) = CliCommandTests.Run(new BenchStepCommand(), "step", "--model", folder, "--rank", "2", "--steps", "1", "--rounds", "1", "--batch-size", "2", "--out", outDir);
        Assert.Equal(0, code);
        var csv = File.ReadAllLines(Path.Combine(outDir, "step.csv"));
        Assert.Equal(3, csv.Length);
        // query and value of both layers: LoRA r = 2 on four 16 x 16 maps.
        Assert.Contains(csv, l => l.StartsWith("lora,2," + 4 * LoraBranch.CountParameters(16, 16, 2) + ",", StringComparison.Ordinal));
        Assert.Contains("U and V of all 4 adapted layers", output);
    }
}

/// <summary>qpeft bench step on a random-weight DeBERTa-v2 folder without tokenizer files: seeded random token ids, the paper's six matrices.</summary>
public sealed class BenchStepDebertaTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-bench-step-deberta-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    [Fact]
    public void Times_quantum_against_lora_on_the_six_matrices_of_a_random_deberta()
    {
        var folder = Path.Combine(dir, "deberta");
        var (code, _) = CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", "deberta-v2", "--layers", "2", "--hidden", "16", "--heads", "2",
            "--vocab", "50", "--positions", "32", "--out", folder);
        Assert.Equal(0, code);
        var outDir = Path.Combine(dir, "bench");
        (code, var output) = CliCommandTests.Run(new BenchStepCommand(), "step", "--model", folder, "--rank", "2", "--steps", "1", "--rounds", "1",
            "--batch-size", "2", "--max-length", "8", "--out", outDir);
        Assert.Equal(0, code);
        var csv = File.ReadAllLines(Path.Combine(outDir, "step.csv"));
        // Six matrices in each of 2 layers (intermediate 4 x 16 = 64): LoRA r = 2.
        long lora = 2 * (4 * LoraBranch.CountParameters(16, 16, 2) + LoraBranch.CountParameters(16, 64, 2) + LoraBranch.CountParameters(64, 16, 2));
        Assert.Contains(csv, l => l.StartsWith("lora,2," + lora + ",", StringComparison.Ordinal));
        Assert.Contains("U and V of all 12 adapted layers", output);
    }
}
