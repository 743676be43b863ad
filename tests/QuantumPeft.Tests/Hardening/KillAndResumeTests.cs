using System.Text.Json;
using System.Text.Json.Nodes;
using QuantumPeft.Data;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Tests.Data.Tokenizers;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Training;
using Xunit.Abstractions;

namespace QuantumPeft.Tests.Hardening;

/// <summary>
/// The real <c>qpeft train</c>, killed with SIGKILL inside its checkpoint and adapter writes (the QPEFT_TEST_PAUSE_AT hook
/// holds it there), then resumed: the checkpoint on disk is always the last complete one, and the resumed run ends with
/// exactly the numbers of a run that was never interrupted.
/// </summary>
public sealed class KillAndResumeTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-kill-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    // 3 training pairs in batches of 2: 2 steps an epoch, 3 epochs, checkpoints after steps 2, 4 and 6.
    string[] TrainArgs(string outDir, bool resume)
    {
        var eos = TokenizerFileWriter.SmallEndOfText;
        var model = Path.Combine(dir, "gpt2");
        var data = Path.Combine(dir, "e2e");
        if (!Directory.Exists(model))
        {
            using var m = TinyGpt2.Model(vocab: eos + 1, eos: eos);
            TinyGpt2.Write(m, model);
            TokenizerFileWriter.WriteGpt2(model, TokenizerFileWriter.SmallVocab(), TokenizerFileWriter.SmallMerges);
            Directory.CreateDirectory(data);
            var csv = "mr,ref\n\"name[A], food[B]\",A serves B.\n\"name[C], food[D]\",C has D.\n\"name[A], food[B]\",B at A.\n";
            foreach (var f in E2eNlg.Files) File.WriteAllText(Path.Combine(data, f), csv);
        }
        string[] args = ["train", "--task", "e2e", "--data-dir", data, "--model", model, "--method", "lora", "--epochs", "3", "--batch-size", "2",
            "--warmup-steps", "1", "--lr", "0.01", "--num-beams", "1", "--max-new-tokens", "4", "--threads", "1", "--out", outDir];
        return resume ? [.. args, "--resume"] : args;
    }

    /// <summary>The step of the checkpoint a resume would continue from (null when none), after checking that each of its files reads.</summary>
    static int? CheckpointStep(string outDir)
    {
        var found = TrainingCheckpoint.Locate(outDir);
        if (found is null) return null;
        foreach (var f in Directory.GetFiles(found, "*.safetensors")) foreach (var t in SafetensorsFile.Read(f).Values) t.Dispose();
        Assert.True(File.Exists(Path.Combine(found, "optimizer.bin")), $"{found} has no optimizer.bin");
        return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(found, "trainer_state.json")), TrainingCheckpoint.Json)!.Step;
    }

    [Fact]
    public void A_run_killed_inside_its_writes_resumes_to_the_numbers_of_an_uninterrupted_run()
    {
        Directory.CreateDirectory(dir);
        var clean = Path.Combine(dir, "clean");
        var (code, stdout, stderr) = QpeftProcess.Run(TrainArgs(clean, resume: false));
        Assert.True(code == 0, $"uninterrupted run failed ({code}):\n{stdout}\n{stderr}");

        var run = Path.Combine(dir, "killed");
        // 1. Inside the second checkpoint's first file (header written, data not yet): the first checkpoint (step 2) stands.
        QpeftProcess.RunAndKillAt("write:trainable.safetensors:2", TrainArgs(run, resume: false));
        Assert.Equal(2, CheckpointStep(run));
        Assert.NotEmpty(Directory.GetDirectories(run, "checkpoint.tmp-*"));   // the half-written one, ignored

        // 2. Resumed, then killed between the two renames of its second checkpoint (step 6): the old one (step 4) was
        //    moved aside and the new one is not in place yet; the moved-aside one is found.
        QpeftProcess.RunAndKillAt("checkpoint:swap:2", TrainArgs(run, resume: true));
        Assert.False(Directory.Exists(Path.Combine(run, "checkpoint")));
        Assert.Equal(4, CheckpointStep(run));

        // 3. Resumed, then killed while the adapter's weights are half written: the last checkpoint (step 6) stands, there is no
        //    half adapter folder, and the leftovers of the earlier kills are gone.
        QpeftProcess.RunAndKillAt("write:adapter_model.safetensors:1", TrainArgs(run, resume: true));
        Assert.Equal(6, CheckpointStep(run));
        Assert.False(Directory.Exists(Path.Combine(run, "adapter")));
        Assert.Empty(Directory.GetDirectories(run, "checkpoint.*-*"));

        // 4. Resumed, then killed while results.json is being written (its temporary file written, not renamed).
        QpeftProcess.RunAndKillAt("write:results.json:1", TrainArgs(run, resume: true));
        Assert.Equal(6, CheckpointStep(run));
        Assert.False(File.Exists(Path.Combine(run, "results.json")));

        // 5. Resumed to the end.
        (code, stdout, stderr) = QpeftProcess.Run(TrainArgs(run, resume: true));
        Assert.True(code == 0, $"resumed run failed ({code}):\n{stdout}\n{stderr}");

        // The same adapter, bit for bit.
        var a = SafetensorsFile.Read(Path.Combine(clean, "adapter", "adapter_model.safetensors"));
        var b = SafetensorsFile.Read(Path.Combine(run, "adapter", "adapter_model.safetensors"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        Assert.NotEmpty(a);
        foreach (var k in a.Keys) Assert.True(a[k].bytes.ToArray().AsSpan().SequenceEqual(b[k].bytes.ToArray()), $"adapter tensor {k} differs");
        Assert.Equal(File.ReadAllText(Path.Combine(clean, "adapter", "adapter_config.json")), File.ReadAllText(Path.Combine(run, "adapter", "adapter_config.json")));

        // Training moved the adapter (LoRA's B starts at zero), so equal tensors say something.
        Assert.Contains(a, p => p.Key.Contains("lora_B") && p.Value.abs().max().item<float>() > 0);
        // The last process resumed at step 6 and trained no step: it really continued from the checkpoint, not from scratch.
        using (var last = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "results.json"))))
            Assert.Equal(0, last.RootElement.GetProperty("train_seconds").GetDouble());
        using (var first = JsonDocument.Parse(File.ReadAllText(Path.Combine(clean, "results.json"))))
            Assert.True(first.RootElement.GetProperty("train_seconds").GetDouble() > 0);

        // The same metrics: every number but the timings.
        var cleanResults = Numbers(File.ReadAllText(Path.Combine(clean, "results.json")));
        var runResults = Numbers(File.ReadAllText(Path.Combine(run, "results.json")));
        Assert.Equal(cleanResults, runResults);
        Assert.Contains("\"steps\":6", cleanResults);
        var cleanLog = File.ReadAllLines(Path.Combine(clean, "metrics.jsonl")).Select(Numbers).ToList();
        var runLog = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(Numbers).ToList();
        Assert.Equal(cleanLog, runLog);
        output.WriteLine($"results: {cleanResults}");
        output.WriteLine($"{cleanLog.Count} metrics lines equal; {a.Count} adapter tensors equal bit for bit");
    }

    // The JSON without what depends on the clock or the folder.
    static string Numbers(string json)
    {
        var node = JsonNode.Parse(json)!.AsObject();
        foreach (var key in new[] { "train_seconds", "examples_per_second", "saved", "threads" }) node.Remove(key);
        return node.ToJsonString();
    }
}
