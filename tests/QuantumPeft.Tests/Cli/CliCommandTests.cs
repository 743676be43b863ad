using System.CommandLine;
using QuantumPeft.Cli;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Tests.Tuners;
using QuantumPeft.Training;
using QuantumPeft.Tuners;

namespace QuantumPeft.Tests.Cli;

/// <summary>qpeft commands run in-process (parsed by System.CommandLine), their console output captured.</summary>
public sealed class CliCommandTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-cli-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    // Test collections run one at a time (xunit.runner.json), so swapping Console.Out is safe here.
    internal static (int Code, string Output) Run(ICliCommand command, params string[] args)
    {
        var root = new RootCommand("test");
        root.Subcommands.Add(command.Build());
        var previous = Console.Out;
        var output = new StringWriter();
        Console.SetOut(output);
        try
        {
            var code = root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = output });
            return (code, output.ToString());
        }
        finally { Console.SetOut(previous); }
    }

    [Fact]
    public void InspectCountsTheTensorsOfASavedAdapter()
    {
        var peft = PeftModel.Inject(TinyModel.Create(), InjectionTests.Quantum("query", "value") with { ModulesToSave = ["classifier"] });
        peft.Save(dir);
        var expected = peft.AdapterStateDict().Count;

        var (code, output) = Run(new InspectCommand(), "inspect", dir);
        Assert.Equal(0, code);
        Assert.Contains("peft_type: QUANTUM_PEFT", output);
        Assert.Contains($"{expected} tensors", output);
        Assert.Contains("base_model.model.classifier.weight", output);
    }

    [Fact]
    public void EvalOfAMissingAdapterNamesTheFolder()
    {
        var missing = Path.Combine(dir, "no-adapter");
        var e = Assert.Throws<DirectoryNotFoundException>(() => Run(new EvalCommand(), "eval", "--adapter", missing, "--task", "sentiment"));
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void MergeRefusesANonEmptyOutputWithoutForce()
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "x");
        var e = Assert.Throws<ArgumentException>(() => Run(new MergeCommand(), "merge", "--adapter", Path.Combine(dir, "a"), "--out", dir));
        Assert.Contains("--force", e.Message);
        Assert.True(File.Exists(Path.Combine(dir, "keep.txt")));
    }

    [Fact]
    public void RedirectedTrainingProgressPrintsAboutTenLinesAndEveryEpochEnd()
    {
        var output = new StringWriter();
        var plain = new TrainingProgressDisplay.PlainLines(output) { StepsPerEpoch = 40 };
        for (int step = 1; step <= 95; step++)
        {
            plain.Report(new TrainingProgress("train", step, 95, (step - 1) / 40 + 1, 3, 0.5, 12.0, TimeSpan.FromSeconds(95 - step), 1e-3));
            if (step % 40 == 0)
            {
                plain.Report(new TrainingProgress("evaluating", step, 95, step / 40, 3, 0.5, 12.0, null, 1e-3, Split: "validation"));
                plain.Report(new TrainingProgress("eval", step, 95, step / 40, 3, 0.5, 12.0, null, 1e-3, new Dictionary<string, double> { ["accuracy"] = 0.75 }, "validation"));
            }
        }
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var steps = lines.Where(l => l.Contains("] step ")).Select(l => int.Parse(l.Split("step ")[1].Split('/')[0])).ToList();
        Assert.Equal([10, 20, 30, 40, 50, 60, 70, 80, 90, 95], steps);
        Assert.Equal(2, lines.Count(l => l.Contains("validation: accuracy 0.7500")));
        Assert.Equal(12, lines.Length);   // the "evaluating" reports print nothing
    }

    [Fact]
    public void ReportTabulatesResultsAndNamesAFolderWithoutThem()
    {
        void Write(string name, string method, int rank, long adapter, double metric, double seconds)
        {
            Directory.CreateDirectory(Path.Combine(dir, name));
            File.WriteAllText(Path.Combine(dir, name, "results.json"), System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["task"] = "sentiment", ["method"] = method, ["rank"] = rank, ["layers"] = 1, ["map"] = "pauli",
                ["adapter_params"] = adapter, ["trainable_params"] = adapter + 770, ["test_metric_name"] = "accuracy",
                ["test_metric"] = metric, ["train_seconds"] = seconds, ["examples_per_second"] = 20.5, ["lr"] = 0.02, ["epochs"] = 3, ["seed"] = 42,
            }));
        }
        Write("q", "quantum", 8, 2088, 0.9167, 212.4);
        Write("l", "lora", 8, 331776, 0.9283, 201.0);

        var table = Path.Combine(dir, "table");
        var (code, output) = Run(new ReportCommand(), "report", Path.Combine(dir, "q"), Path.Combine(dir, "l"), "--out", table);
        Assert.Equal(0, code);
        Assert.Contains("| Quantum-PEFT, pauli K = 8, L = 1 | 42 | 2,088 | 2,858 | accuracy 91.67% | 212 s |", output);
        Assert.Contains("| LoRA r = 8 | 42 | 331,776 | 332,546 | accuracy 92.83% | 201 s |", output);
        Assert.Equal(3, File.ReadAllLines(table + ".csv").Length);

        var missing = Path.Combine(dir, "none");
        var e = Assert.Throws<FileNotFoundException>(() => Run(new ReportCommand(), "report", missing));
        Assert.Contains("results.json", e.Message);
    }
}
