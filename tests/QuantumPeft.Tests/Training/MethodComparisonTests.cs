using QuantumPeft.Cli.Commands;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Models.Bert;
using QuantumPeft.Tests.Cli;
using QuantumPeft.Training;

namespace QuantumPeft.Tests.Training;

public sealed class MethodComparisonTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-bench-methods-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    [Fact]
    public void Grid_entries_parse_into_specs_with_their_learning_rates()
    {
        var q = GridEntry.Parse("quantum:rank=4:layers=2:lr=0.01:init_scale=0.5");
        Assert.Equal(("quantum", 4, 2, 0.5), (q.Spec.Method, q.Spec.Rank, q.Spec.Layers, q.Spec.InitScale));
        Assert.Equal(0.01, q.LearningRate);
        Assert.Null(q.ScaleLearningRate);
        Assert.Equal(0.2, GridEntry.Parse("quantum:layers=16:lambda_lr=0.2").ScaleLearningRate);
        Assert.Contains("lambda_lr=x is not a number", Assert.Throws<ArgumentException>(() => GridEntry.Parse("quantum:lambda_lr=x")).Message);
        var vera = GridEntry.Parse("vera", defaultRank: 16);
        Assert.Equal((16, FineTuneSpec.DefaultLearningRate("vera"), GridEntry.DefaultHeadLearningRate), (vera.Spec.Rank, vera.LearningRate, vera.HeadLearningRate));
        var fourier = GridEntry.Parse("fourierft:n_frequency=100");
        Assert.Equal("100", fourier.Spec.Settings["n_frequency"]);
        Assert.Contains("valid: quantum, lora", Assert.Throws<ArgumentException>(() => GridEntry.Parse("loraa:rank=2")).Message);
        Assert.Contains("'rank' is not KEY=VALUE", Assert.Throws<ArgumentException>(() => GridEntry.Parse("lora:rank")).Message);
        Assert.Contains("rank=0 is not a positive integer", Assert.Throws<ArgumentException>(() => GridEntry.Parse("lora:rank=0")).Message);
    }

    [Fact]
    public void Summary_gives_mean_sd_step_ratio_and_the_frontier()
    {
        ComparisonRun Run(string entry, long seed, long p, double ms, double test) => new(entry, entry.Split(':')[0], seed, p, 10, ms / 100, ms, test, test, 1e-3);
        var runs = new List<ComparisonRun>
        {
            Run("lora:rank=8", 1, 1000, 20, 0.90), Run("lora:rank=8", 2, 1000, 20, 0.92),
            Run("quantum", 1, 100, 22, 0.86), Run("quantum", 2, 100, 26, 0.88),
            Run("vera", 1, 500, 30, 0.85), Run("vera", 2, 500, 30, 0.85),   // dominated: quantum is cheaper and better
            Run("full", 1, 9000, 50, 0.905),                                  // dominated by lora (fewer parameters, 0.91 mean)
            Run("oft", 1, 2000, 40, 0.86), Run("oft", 2, 2000, 40, 0.88),     // ties quantum with more parameters: dominated
        };
        var stepTimes = new List<SameBatchStepTime> { new("quantum", 10, 24, 20, 2), new("lora:rank=8", 10, 21, 20, 2) };
        var rows = MethodComparison.Summarise(runs, ["quantum", "vera", "lora:rank=8", "full", "oft"], stepTimes);
        Assert.Equal(["quantum", "vera", "lora:rank=8", "full", "oft"], rows.Select(r => r.Entry));
        var q = rows[0];
        Assert.Equal(0.87, q.TestMean, 12);
        Assert.Equal(Math.Sqrt(2 * 0.01 * 0.01), q.TestStd, 12);   // sample sd of 0.86, 0.88
        Assert.Equal(24.0 / 20, q.StepTimeRatio!.Value, 12);      // from the same-batch timing, not the runs' 24 / 20 ms
        Assert.Equal(1.05, rows[2].StepTimeRatio!.Value, 12);
        Assert.Null(rows[1].StepTimeRatio);                          // vera was not timed
        Assert.Equal(24.0, q.MsPerStepMean, 12);
        Assert.Equal([true, false, true, false, false], rows.Select(r => r.OnFrontier));
        Assert.Equal(0, rows[3].TestStd);
        var md = MethodComparison.ToMarkdown(rows, "t", "s", "accuracy", "lora:rank=8");
        Assert.Contains("| quantum | 100 | 10.0 | 2 | 0.8700 | 0.8700 ± 0.0141 | 0.2 | 24.0 | 24.0 | 20.0 | 1.20 | ★ |", md);
        Assert.Contains("| vera | 500 | 2.0 | 2 | 0.8500 | 0.8500 ± 0.0000 | 0.3 | 30.0 |  |  |  |  |", md);
        Assert.Contains("| full | 9,000 | 0.111 | 1 | 0.9050 |", md);   // larger than the reference: 1000 / 9000, not "0.1"
        var csv = MethodComparison.ToCsv(rows).Split('\n');
        Assert.StartsWith("quantum,quantum,100,2,0.8700,0.8700,0.0141,0.2,24.0,24.0,20.0,1.200,1,", csv[1]);
        Assert.StartsWith("vera,vera,500,2,0.8500,0.8500,0.0000,0.3,30.0,,,,0,", csv[2]);
    }

    [Fact]
    public void Bench_methods_writes_its_files_and_resumes_where_it_stopped()
    {
        var folder = Path.Combine(dir, "bert");
        using (var bert = new BertModel(QuantumPeft.Tests.Models.Bert.TinyBert.Config(), addPoolingLayer: false, seed: 3))
            HfBertLoader.Save(folder, bert);
        string[] words = ["the", "a", "and", "of", "to", "is", "it", "this", "film", "movie", "good", "bad", "great", "not", "was", "i",
            "very", "food", "service", "place", "phone", "but", "for", "with", "my", "one", "love", "worst", "best", "time", "just", "so",
            "like", "would", "no", "all", "well", "ever", "nice", "poor", "works", "quality", "excellent", "terrible", "product"];
        File.WriteAllLines(Path.Combine(folder, "vocab.txt"), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", .. words]);
        var outDir = Path.Combine(dir, "bench");
        string[] common = ["methods", "--model", folder, "--task", "sentiment", "--seeds", "1", "--steps", "2", "--batch-size", "4", "--max-length", "16", "--timed-steps", "2", "--out", outDir];

        var (code, output) = CliCommandTests.Run(new BenchMethodsCommand(), [.. common, "--grid", "lora:rank=1,head"]);
        Assert.Equal(0, code);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(outDir, "runs.csv")).Length);
        Assert.Contains("[2/2] head seed 1: adapter params 0", output);
        Assert.Contains("step time head: ", output);
        var times = MethodComparison.ReadStepTimes(Path.Combine(outDir, "steps.csv"));
        Assert.Equal(["lora:rank=1", "head"], times.Select(t => t.Entry));
        Assert.All(times, t => Assert.True(t.Steps == 2 && t.MedianMs > 0 && t.ReferenceMedianMs > 0 && t.Threads >= 1, $"{t}"));

        // A second call with one more entry runs only that one (the other two are in runs.csv).
        (code, output) = CliCommandTests.Run(new BenchMethodsCommand(), [.. common, "--grid", "lora:rank=1,head,quantum:rank=2"]);
        Assert.Equal(0, code);
        Assert.Contains("[1/3] lora:rank=1 seed 1: in runs.csv, skipped", output);
        Assert.Contains("[3/3] quantum:rank=2 seed 1: adapter params", output);
        Assert.DoesNotContain("step time head", output);            // timed already: steps.csv has it
        Assert.Contains("step time quantum:rank=2: ", output);
        Assert.Equal(["lora:rank=1", "head", "quantum:rank=2"], MethodComparison.ReadStepTimes(Path.Combine(outDir, "steps.csv")).Select(t => t.Entry));
        var runs = MethodComparison.ReadRuns(Path.Combine(outDir, "runs.csv"));
        Assert.Equal(["lora:rank=1", "head", "quantum:rank=2"], runs.Select(r => r.Entry));
        // LoRA r = 1 on every linear layer of the tiny BERT: 2 layers x (q, k, v, attention output 16x16; intermediate 16->24; output 24->16),
        // and the pooler's dense 16x16 (transformers' head, the default: all-linear takes it, as peft's does; only the classifier is excluded).
        Assert.Equal(2 * (4 * (16 + 16) + (16 + 24) + (24 + 16)) + (16 + 16), runs[0].AdapterParameters);
        var csv = File.ReadAllLines(Path.Combine(outDir, "methods.csv"));
        Assert.Equal(4, csv.Length);
        var md = File.ReadAllText(Path.Combine(outDir, "methods.md"));
        Assert.Contains("| quantum:rank=2 |", md);
        Assert.Contains("step time vs lora:rank=8 |", md);
        Assert.Equal(14, csv[1].Split(',').Length);
        Assert.False(string.IsNullOrEmpty(csv[1].Split(',')[11]), csv[1]);   // the same-batch ratio is filled in
        Assert.True(new FileInfo(Path.Combine(outDir, "methods.png")).Length > 1000);
        var foreign = Path.Combine(dir, "foreign");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "steps.csv"), "garbage\n");
        Assert.Contains("not a step-times file", Assert.ThrowsAny<Exception>(() => CliCommandTests.Run(new BenchMethodsCommand(), [.. common[..^2], "--out", foreign])).Message);
        Assert.False(File.Exists(Path.Combine(foreign, "runs.csv")));   // refused before any run
        Assert.Contains("--timed-steps must be 0", Assert.ThrowsAny<Exception>(() => CliCommandTests.Run(new BenchMethodsCommand(), [.. common[..^4], "--timed-steps", "-1", "--out", outDir])).Message);
        Assert.Contains("--grid: entry 'head' is given twice", Assert.ThrowsAny<Exception>(() => CliCommandTests.Run(new BenchMethodsCommand(), [.. common, "--grid", "head,head"])).Message);
    }
}
