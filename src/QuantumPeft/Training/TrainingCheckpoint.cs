using System.Text.Json;
using QuantumPeft.Formats.Safetensors;
using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Training;

/// <summary>The trainer's position and bookkeeping, stored as checkpoint/trainer_state.json.</summary>
internal sealed record TrainerState
{
    public int Version { get; init; } = 1;
    /// <summary>Optimiser steps done.</summary>
    public int Step { get; init; }
    /// <summary>The epoch to continue in (1-based) and the batch index inside it to continue from.</summary>
    public int Epoch { get; init; }
    public int BatchInEpoch { get; init; }
    public int EpochsDone { get; init; }
    public int TotalSteps { get; init; }
    public int StepsPerEpoch { get; init; }
    public int TrainCount { get; init; }
    public int BatchSize { get; init; }
    public long Seed { get; init; }
    public string Task { get; init; } = "";
    public string MainMetric { get; init; } = "";
    public double? BestMetric { get; init; }
    public int BestEpoch { get; init; }
    public List<TrainingLogEntry> History { get; init; } = [];
}

/// <summary>
/// Checkpoint folder DIR/checkpoint: trainer_state.json, trainable.safetensors (trainable tensors),
/// best.safetensors (keep-best tensors) and optimizer.bin (AdamW moments, TorchSharp's own format). Written
/// into a temporary folder, then swapped in by rename, so a crash leaves either the old or the new checkpoint, never a half-written one.
/// A process killed at any point (tests/Hardening/KillAndResumeTests kills the real qpeft train inside these writes) resumes from
/// the last complete checkpoint; the next save removes what the killed one left (checkpoint.tmp-*, checkpoint.old-*).
/// </summary>
internal static class TrainingCheckpoint
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    const string Folder = "checkpoint", StateFile = "trainer_state.json", TrainableFile = "trainable.safetensors",
        BestFile = "best.safetensors", OptimizerFile = "optimizer.bin";

    public static string PathIn(string outputDir) => Path.Combine(outputDir, Folder);

    public static void Save(string outputDir, TrainerState state, IReadOnlyDictionary<string, Tensor> trainable,
        IReadOnlyDictionary<string, Tensor>? best, TorchSharp.Modules.OptimizerHelper optimizer)
    {
        // The copies made while writing (CPU/contiguous views, the optimizer's state dict) are freed here, not by the GC:
        // a checkpoint every 50 steps otherwise kept a copy of AdamW's moments each time (about 2 MB a step on a 13.7M model).
        using var scope = torch.NewDisposeScope();
        Directory.CreateDirectory(outputDir);
        var tmp = Path.Combine(outputDir, $"{Folder}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            SafetensorsFile.Write(Path.Combine(tmp, TrainableFile), trainable);
            Formats.TestHooks.Reach("checkpoint:files");
            if (best is not null) SafetensorsFile.Write(Path.Combine(tmp, BestFile), best);
            optimizer.save_state_dict(Path.Combine(tmp, OptimizerFile));
            // Written last: a folder with trainer_state.json is a complete checkpoint (Locate relies on it).
            File.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(state, Json));
        }
        catch
        {
            // A failed write (disk full) leaves the previous checkpoint as it was and no half folder beside it.
            DeleteQuietly(tmp);
            throw;
        }

        var final = PathIn(outputDir);
        var old = Path.Combine(outputDir, $"{Folder}.old-{Guid.NewGuid():N}");
        if (Directory.Exists(final)) Directory.Move(final, old);
        Formats.TestHooks.Reach("checkpoint:swap");
        Directory.Move(tmp, final);
        // Also what earlier runs killed mid-write left: half-written temporary folders and checkpoints moved aside.
        foreach (var stale in Directory.GetDirectories(outputDir, $"{Folder}.old-*").Concat(Directory.GetDirectories(outputDir, $"{Folder}.tmp-*")))
            DeleteQuietly(stale);
    }

    static void DeleteQuietly(string folder)
    {
        try { if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>
    /// The newest complete checkpoint folder, or null: DIR/checkpoint, else (a run killed between the two renames of
    /// <see cref="Save"/>) the checkpoint moved aside, the one with the most steps if several were left.
    /// </summary>
    internal static string? Locate(string outputDir)
    {
        var final = PathIn(outputDir);
        if (File.Exists(Path.Combine(final, StateFile))) return final;
        if (!Directory.Exists(outputDir)) return null;
        return Directory.GetDirectories(outputDir, $"{Folder}.old-*")
            .Where(d => File.Exists(Path.Combine(d, StateFile)))
            .Select(d => (Dir: d, Step: StepOf(d)))
            .OrderByDescending(p => p.Step).ThenBy(p => p.Dir, StringComparer.Ordinal)
            .Select(p => p.Dir).FirstOrDefault();
    }

    static int StepOf(string dir)
    {
        try { return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(dir, StateFile)), Json)?.Step ?? -1; }
        catch (Exception e) when (e is JsonException or IOException) { return -1; }
    }

    public static bool Exists(string outputDir) => Locate(outputDir) is not null;

    public static (TrainerState State, Dictionary<string, Tensor> Trainable, Dictionary<string, Tensor>? Best) Load(
        string outputDir, TorchSharp.Modules.OptimizerHelper optimizer)
    {
        var dir = Locate(outputDir) ?? throw new FileNotFoundException($"No checkpoint in '{outputDir}'.", PathIn(outputDir));
        var statePath = Path.Combine(dir, StateFile);
        TrainerState state;
        try { state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(statePath), Json) ?? throw new InvalidDataException("null"); }
        catch (JsonException e) { throw new InvalidDataException($"Checkpoint state '{statePath}' is not valid JSON: {e.Message}", e); }
        var trainablePath = Path.Combine(dir, TrainableFile);
        var trainable = SafetensorsFile.Read(trainablePath);
        foreach (var m in Formats.TensorChecks.CheckFinite(trainable, trainablePath)) Tuners.PeftWarnings.Report(null, m);
        var bestPath = Path.Combine(dir, BestFile);
        var best = File.Exists(bestPath) ? SafetensorsFile.Read(bestPath) : null;
        optimizer.load_state_dict(Path.Combine(dir, OptimizerFile));
        return (state, trainable, best);
    }
}
