using System.Text.Json;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Data;
using QuantumPeft.Training;
using static QuantumPeft.Tests.Cli.CliCommandTests;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Roberta;

/// <summary>The GLUE sample files (made once from the real sentiment and spam data) and a tiny RoBERTa folder, shared by the tests of this class.</summary>
public sealed class GlueSampleFixture : IDisposable
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "qpeft-glue-" + Guid.NewGuid().ToString("N"));
    public string Glue => Path.Combine(Dir, "glue");
    public string Model => Path.Combine(Dir, "tiny");
    public IReadOnlyDictionary<string, (int Train, int Dev)> Written { get; }

    public GlueSampleFixture()
    {
        Written = GlueSample.Write(Glue, train: 24, dev: 12, seed: 5);
        TinyRoberta.Write(Model);
    }

    public void Dispose()
    {
        if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
    }
}

/// <summary>scripts/glue.sh's pieces: the sample files in every task's GLUE format, and train / eval / logits through the CLI on a RoBERTa folder.</summary>
public sealed class RobertaGlueCliTests(GlueSampleFixture sample) : IClassFixture<GlueSampleFixture>
{
    static readonly string[] PairTasks = ["mrpc", "stsb", "qqp", "mnli", "mnli-mm", "qnli", "rte"];

    [Fact]
    public void TheSampleFilesReadAsEveryGlueTask()
    {
        Assert.Equal(["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE"], sample.Written.Keys);
        foreach (var name in GlueTasks.Names)
        {
            var task = GlueTasks.Load(name, sample.Glue);
            Assert.Equal(24, task.Train.Count + task.Validation.Count);
            Assert.Equal(12, task.Test.Count);
            bool pair = PairTasks.Contains(name);
            Assert.All(task.Train.Concat(task.Test), e => Assert.Equal(pair, e.TextPair is { Length: > 0 }));
            Assert.Equal(name switch { "stsb" => 1, "mnli" or "mnli-mm" => 3, _ => 2 }, task.NumLabels);
            if (task.IsRegression) Assert.All(task.Test, e => Assert.InRange(e.Label, 0f, 5f));
            else Assert.True(task.Train.Concat(task.Test).Select(e => e.Label).Distinct().Count() > 1, $"{name}: one label only");
        }
        // The matched and mismatched MNLI dev files are different draws.
        Assert.NotEqual(File.ReadAllText(Path.Combine(sample.Glue, "MNLI", "dev_matched.tsv")), File.ReadAllText(Path.Combine(sample.Glue, "MNLI", "dev_mismatched.tsv")));
    }

    static JsonElement Json(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement.Clone();

    string Train(string task, string outName, string method = "lora")
    {
        var output = Path.Combine(sample.Dir, outName);
        var (code, text) = Run(new TrainCommand(), "train", "--model", sample.Model, "--task", task, "--data-dir", sample.Glue, "--method", method,
            "--rank", "2", "--epochs", "1", "--batch-size", "8", "--max-length", "32", "--out", output);
        Assert.Equal(0, code);
        Assert.Contains("adapter params:", text);
        return output;
    }

    [Fact]
    public void Quantum_on_a_classification_task_defaults_to_the_main_jobs_validated_circuit()
    {
        var results = Json(Path.Combine(Train("rte", "rte-quantum", "quantum"), "results.json"));
        // qpeft train's Pauli default: L = 16, full-period angles, s = alpha / K = 8 (TrainCommand.MainJob*).
        Assert.Equal(TrainCommand.MainJobAlphaPerRank * 2, results.GetProperty("alpha").GetDouble());
        Assert.Equal(64.0 / 8, TrainCommand.MainJobAlphaPerRank);
        Assert.Equal("period", results.GetProperty("init").GetString());
    }

    [Fact]
    public void TrainThenEvalOfAPairTaskGiveTheSameDevMetrics()
    {
        var output = Train("rte", "rte");
        var results = Json(Path.Combine(output, "results.json"));
        // LoRA r = 2 on the 12 linear layers of the tiny model (all-linear leaves the head out).
        Assert.Equal(2 * (4 * 2 * 32 + 2 * 40 + 2 * 40), results.GetProperty("adapter_params").GetInt64());
        var trained = results.GetProperty("test_metrics").GetProperty("accuracy").GetDouble();

        var metricsFile = Path.Combine(sample.Dir, "rte-eval.json");
        var (code, text) = Run(new EvalCommand(), "eval", "--model", sample.Model, "--adapter", Path.Combine(output, "adapter"), "--task", "rte",
            "--data-dir", sample.Glue, "--split", "test", "--max-length", "32", "--out", metricsFile);
        Assert.Equal(0, code);
        Assert.Contains("classifier head", text);
        var evaluated = Json(metricsFile).GetProperty("metrics").GetProperty("test").GetProperty("accuracy").GetDouble();
        Assert.Equal(trained, evaluated, 6);
    }

    [Fact]
    public void StsbTrainsAsARegressionAndMnliEvaluatesOnTheMismatchedDevSet()
    {
        var stsb = Json(Path.Combine(Train("stsb", "stsb"), "results.json")).GetProperty("test_metrics");
        Assert.True(stsb.TryGetProperty("pearson", out _) && stsb.TryGetProperty("spearman", out _));

        var mnli = Train("mnli", "mnli", method: "head");
        var metricsFile = Path.Combine(sample.Dir, "mnli-mm.json");
        var (code, _) = Run(new EvalCommand(), "eval", "--model", Path.Combine(mnli, "model"), "--task", "mnli-mm",
            "--data-dir", sample.Glue, "--split", "test", "--max-length", "32", "--out", metricsFile);
        Assert.Equal(0, code);
        var m = Json(metricsFile);
        Assert.Equal(3, m.GetProperty("num_labels").GetInt32());
        Assert.Equal(12, m.GetProperty("examples").GetProperty("test").GetInt32());
        Assert.InRange(m.GetProperty("metrics").GetProperty("test").GetProperty("accuracy").GetDouble(), 0, 1);
    }

    [Fact]
    public void LogitsOfAPaddedBatchMatchTheClassifierRowByRow()
    {
        var output = Train("sst2", "sst2");
        var adapter = Path.Combine(output, "adapter");
        var inputs = Path.Combine(sample.Dir, "inputs.json");
        // RoBERTa pads with <pad> = 1; the second row is shorter.
        File.WriteAllText(inputs, """{"input_ids": [[0, 270, 17, 45, 2], [0, 88, 2, 1, 1]], "attention_mask": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]}""");
        var (code, text) = Run(new LogitsCommand(), "logits", "--model", sample.Model, "--adapter", adapter, "--inputs", inputs, "--json");
        Assert.Equal(0, code);
        var rows = JsonDocument.Parse(text).RootElement.GetProperty("logits").EnumerateArray()
            .Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        Assert.Equal(2, rows.Length);

        using var classifier = TextClassifier.FromAdapter(sample.Model, adapter);
        using var _ = no_grad();
        long[][] ids = [[0, 270, 17, 45, 2], [0, 88, 2]];
        for (int r = 0; r < 2; r++)
        {
            var alone = classifier.Model.forward(tensor(ids[r]).unsqueeze(0), null, null);
            for (int j = 0; j < 2; j++) Assert.Equal(alone[0, j].item<float>(), rows[r][j], 4);
        }

        // A base RoBERTa folder without an adapter has no head: its last hidden state, [2, T, H].
        (code, text) = Run(new LogitsCommand(), "logits", "--model", sample.Model, "--inputs", inputs, "--json");
        Assert.Equal(0, code);
        var hidden = JsonDocument.Parse(text).RootElement.GetProperty("last_hidden_state");
        Assert.Equal((2, 5, TinyRoberta.Hidden), (hidden.GetArrayLength(), hidden[0].GetArrayLength(), hidden[0][0].GetArrayLength()));
    }

    [Fact]
    public void APairTaskGivenSingleSentencesIsOneClearError()
    {
        var rte = Path.Combine(sample.Dir, "single-rte", "RTE");
        Directory.CreateDirectory(rte);
        File.WriteAllText(Path.Combine(rte, "train.tsv"), "index\tsentence1\tlabel\n0\tgood film\tentailment\n");
        File.WriteAllText(Path.Combine(rte, "dev.tsv"), "index\tsentence1\tlabel\n0\tbad film\tnot_entailment\n");
        var e = Assert.Throws<InvalidDataException>(() => Run(new TrainCommand(), "train", "--model", sample.Model, "--task", "rte",
            "--data-dir", Path.GetDirectoryName(rte)!, "--out", Path.Combine(sample.Dir, "never")));
        Assert.Contains("no column 'sentence2'", e.Message);

        using var classifier = new TextClassifier(sample.Model, 2, new FineTuneSpec { Method = "head" }, maxLength: 16);
        var mixed = Assert.Throws<ArgumentException>(() => classifier.Forward([new TextExample("a", "b", 0), new TextExample("c", null, 1)]));
        Assert.Contains("mixes sentence pairs and single sentences", mixed.Message);
    }
}
