using System.Globalization;
using QuantumPeft.Training;
using Spectre.Console;

namespace QuantumPeft.Cli;

/// <summary>Training progress for <c>qpeft train</c>: a live Spectre.Console bar on a terminal, plain periodic lines when output is redirected.</summary>
public static class TrainingProgressDisplay
{
    /// <summary>True when stdout is an interactive terminal (not a pipe, file or CI log).</summary>
    public static bool IsInteractive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Creates the trainer with a progress sink (live when <paramref name="live"/>, else <see cref="PlainLines"/>) and runs it.</summary>
    public static TrainingResult Train<TExample>(bool live, Func<IProgress<TrainingProgress>, Trainer<TExample>> createTrainer)
    {
        if (!live)
        {
            var plain = new PlainLines(Console.Out);
            var trainer = createTrainer(plain);
            plain.StepsPerEpoch = trainer.StepsPerEpoch;
            return trainer.Run();
        }
        return AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training");
                var trainer = createTrainer(new Live(task));
                task.MaxValue = Math.Max(1, trainer.TotalSteps);
                return trainer.Run();
            });
    }

    /// <summary>The text of a train report: step, epoch, loss, (learning rate,) throughput, ETA.</summary>
    public static string Describe(TrainingProgress p, bool withLearningRate = true)
    {
        var eta = p.Eta is { } e ? $"{(int)e.TotalMinutes}:{e.Seconds:00}" : "--:--";
        var lr = withLearningRate ? string.Create(CultureInfo.InvariantCulture, $" lr {p.LearningRate:E1}") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"step {p.Step}/{p.TotalSteps} epoch {p.Epoch}/{p.Epochs} loss {p.Loss:F4}{lr} {p.ExamplesPerSecond:F1} ex/s ETA {eta}");
    }

    /// <summary>The line printed after an evaluation, or null for a train report.</summary>
    public static string? EvalLine(TrainingProgress p) =>
        p.Phase == "eval" && p.Metrics is { } metrics
            ? $"  epoch {p.Epoch}/{p.Epochs} {p.Split}: {string.Join(", ", metrics.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}")))}"
            : null;

    /// <summary>
    /// One line about every tenth of the run and at each epoch end (and every evaluation), so redirected logs stay
    /// short. Writes synchronously: Progress&lt;T&gt; would post to the thread pool and reorder lines.
    /// </summary>
    public sealed class PlainLines(TextWriter output) : IProgress<TrainingProgress>
    {
        /// <summary>Steps per epoch (a line at each epoch end); 0 when unknown.</summary>
        public int StepsPerEpoch { get; set; }

        /// <summary>Writes the line for <paramref name="p"/> when it is due.</summary>
        public void Report(TrainingProgress p)
        {
            if (EvalLine(p) is { } line)
            {
                output.WriteLine(line);
                return;
            }
            int every = Math.Max(1, (int)Math.Ceiling(p.TotalSteps / 10.0));
            bool epochEnd = StepsPerEpoch > 0 && p.Step % StepsPerEpoch == 0;
            if (p.Phase != "train") return;
            if (p.Step % every != 0 && !epochEnd && p.Step != p.TotalSteps) return;
            int width = 30, filled = p.TotalSteps == 0 ? 0 : (int)Math.Round(width * (double)p.Step / p.TotalSteps);
            output.WriteLine($"  [{new string('#', filled)}{new string('.', width - filled)}] {Describe(p)}");
        }
    }

    sealed class Live(ProgressTask task) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress p)
        {
            if (EvalLine(p) is { } line)
            {
                // Written through AnsiConsole so the live display prints it above the bar.
                AnsiConsole.MarkupLine(Markup.Escape(line));
                return;
            }
            if (p.Phase == "evaluating")
            {
                task.Description = Markup.Escape($"epoch {p.Epoch}/{p.Epochs}: evaluating {p.Split}...");
                return;
            }
            task.MaxValue = Math.Max(1, p.TotalSteps);
            task.Value = p.Step;
            // No learning rate here: the line must fit a terminal next to the bar.
            task.Description = Markup.Escape(Describe(p, withLearningRate: false));
        }
    }
}
