using System.Globalization;
using System.Text;

namespace QuantumPeft.Training;

/// <summary>
/// One point of a method comparison: a method with its settings, written <c>method[:key=value[:key=value...]]</c>,
/// e.g. <c>quantum:rank=8:layers=2:init=period</c>, <c>lora:rank=1</c>, <c>vera:rank=256:lr=5e-3</c>, <c>head</c>.
/// </summary>
/// <remarks>
/// Keys: rank, layers, map, init_scale, alpha, targets, head (pooler | mean), lr (the adapter learning rate; default: the method's),
/// head_lr, lambda_lr (Quantum-PEFT's lambda at a learning rate of its own, as <c>train --lambda-lr</c>); any other key is a config field of the method by peft's name, as <c>--set</c> (e.g. init=period for
/// Quantum-PEFT's stiefel options, n_frequency=1000 for FourierFT).
/// </remarks>
/// <param name="Label">The entry as written (the row name of the tables).</param>
/// <param name="Spec">The fine-tuning spec it stands for (seed set per run).</param>
/// <param name="LearningRate">The adapter (or backbone) learning rate.</param>
/// <param name="HeadLearningRate">The head's learning rate.</param>
/// <param name="ScaleLearningRate">The learning rate of the adapter's scale parameters (lambda); null: the adapter's.</param>
public sealed record GridEntry(string Label, FineTuneSpec Spec, double LearningRate, double HeadLearningRate, double? ScaleLearningRate = null)
{
    /// <summary>The head learning rate unless an entry names one (the trainer's classifier default).</summary>
    public const double DefaultHeadLearningRate = 2e-3;

    /// <summary>Parses one entry; <paramref name="defaultRank"/> applies when the entry names no rank.</summary>
    /// <exception cref="ArgumentException">An unknown method, a key without a value, or a value that is not a number where one is needed.</exception>
    public static GridEntry Parse(string text, int defaultRank = 8)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        var parts = text.Trim().Split(':');
        var method = parts[0].Trim().ToLowerInvariant();
        if (!FineTuneSpec.Methods.Contains(method))
            throw new ArgumentException($"grid entry '{text}': unknown method '{method}' (valid: {string.Join(", ", FineTuneSpec.Methods)}).");
        var spec = new FineTuneSpec { Method = method, Rank = defaultRank };
        double? lr = null, headLr = null, lambdaLr = null;
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in parts.Skip(1))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0 || eq == part.Length - 1)
                throw new ArgumentException($"grid entry '{text}': '{part}' is not KEY=VALUE (e.g. rank=8, layers=2, lr=1e-3).");
            var (key, value) = (part[..eq].Trim().ToLowerInvariant(), part[(eq + 1)..].Trim());
            switch (key)
            {
                case "rank": spec = spec with { Rank = Int(text, key, value) }; break;
                case "layers": spec = spec with { Layers = Int(text, key, value) }; break;
                case "map": spec = spec with { Map = value }; break;
                case "init_scale": spec = spec with { InitScale = Number(text, key, value) }; break;
                case "alpha": spec = spec with { Alpha = Number(text, key, value) }; break;
                case "targets": spec = spec with { Targets = value }; break;
                case "head": spec = spec with { Head = value }; break;
                case "lr": lr = Number(text, key, value); break;
                case "head_lr": headLr = Number(text, key, value); break;
                case "lambda_lr": lambdaLr = Number(text, key, value); break;
                default: settings[key] = value; break;
            }
        }
        if (settings.Count > 0) spec = spec with { Settings = settings };
        return new GridEntry(text.Trim(), spec, lr ?? FineTuneSpec.DefaultLearningRate(method), headLr ?? DefaultHeadLearningRate, lambdaLr);
    }

    static int Int(string entry, string key, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v
            : throw new ArgumentException($"grid entry '{entry}': {key}={value} is not a positive integer.");

    static double Number(string entry, string key, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v
            : throw new ArgumentException($"grid entry '{entry}': {key}={value} is not a number.");
}

/// <summary>One finished run of a comparison: an entry on one seed.</summary>
public sealed record ComparisonRun(
    string Entry, string Method, long Seed, long AdapterParameters, int Steps, double TrainSeconds, double MsPerStep,
    double Validation, double Test, double LearningRate);

/// <summary>
/// An entry's training step timed against the reference entry's on the same batches, stepping in turn
/// (<see cref="StepTiming.Alternate{TExample}"/>).
/// </summary>
/// <param name="Entry">The grid entry.</param>
/// <param name="Steps">Timed steps of each of the two.</param>
/// <param name="MedianMs">The entry's median step.</param>
/// <param name="ReferenceMedianMs">The reference's median step, timed in the same window.</param>
/// <param name="Threads">torch's CPU threads during the timing.</param>
public sealed record SameBatchStepTime(string Entry, int Steps, double MedianMs, double ReferenceMedianMs, int Threads)
{
    /// <summary>The entry's median step over the reference's.</summary>
    public double Ratio => MedianMs / ReferenceMedianMs;
}

/// <summary>An entry's runs summarised over its seeds, with its same-batch step time when one was measured.</summary>
public sealed record ComparisonRow(
    string Entry, string Method, long AdapterParameters, int Seeds, double ValidationMean, double TestMean, double TestStd,
    double TrainSecondsMean, double MsPerStepMean, SameBatchStepTime? StepTime, bool OnFrontier, double LearningRate)
{
    /// <summary>The same-batch step time over the reference's; null when not measured.</summary>
    public double? StepTimeRatio => StepTime?.Ratio;
}

/// <summary>
/// The results of <c>qpeft bench methods</c>: runs appended one by one to runs.csv (so an interrupted comparison
/// resumes where it stopped), summarised into methods.csv, methods.md and methods.png.
/// </summary>
public static class MethodComparison
{
    /// <summary>The header of runs.csv.</summary>
    public const string RunsHeader = "entry,method,seed,adapter_params,steps,train_seconds,ms_per_step,validation_metric,test_metric,lr";

    /// <summary>The header of steps.csv (same-batch step times).</summary>
    public const string StepTimesHeader = "entry,timed_steps,median_ms,reference_median_ms,ratio,threads";

    /// <summary>The runs already in <paramref name="path"/> (none when it does not exist).</summary>
    /// <exception cref="InvalidDataException">The file is not a runs.csv this command wrote.</exception>
    public static List<ComparisonRun> ReadRuns(string path)
    {
        var inv = CultureInfo.InvariantCulture;
        return ReadTable(path, RunsHeader, "runs", f => new ComparisonRun(f[0], f[1], long.Parse(f[2], inv), long.Parse(f[3], inv), int.Parse(f[4], inv),
            double.Parse(f[5], inv), double.Parse(f[6], inv), double.Parse(f[7], inv), double.Parse(f[8], inv), double.Parse(f[9], inv)));
    }

    /// <summary>Appends one run to <paramref name="path"/> (rewritten under a temporary name and renamed, so a kill loses at most this run).</summary>
    public static void AppendRun(string path, ComparisonRun run) =>
        WriteTable(path, RunsHeader, [.. ReadRuns(path), run], r => string.Create(CultureInfo.InvariantCulture,
            $"{Csv(r.Entry)},{r.Method},{r.Seed},{r.AdapterParameters},{r.Steps},{r.TrainSeconds:R},{r.MsPerStep:R},{r.Validation:R},{r.Test:R},{r.LearningRate:R}"));

    /// <summary>The same-batch step times already in <paramref name="path"/> (none when it does not exist).</summary>
    /// <exception cref="InvalidDataException">The file is not a steps.csv this command wrote.</exception>
    public static List<SameBatchStepTime> ReadStepTimes(string path)
    {
        var inv = CultureInfo.InvariantCulture;
        return ReadTable(path, StepTimesHeader, "step-times", f => new SameBatchStepTime(f[0], int.Parse(f[1], inv), double.Parse(f[2], inv), double.Parse(f[3], inv), int.Parse(f[5], inv)));
    }

    /// <summary>Appends one entry's same-batch step time to <paramref name="path"/> (written under a temporary name and renamed).</summary>
    public static void AppendStepTime(string path, SameBatchStepTime time) =>
        WriteTable(path, StepTimesHeader, [.. ReadStepTimes(path), time], t => string.Create(CultureInfo.InvariantCulture,
            $"{Csv(t.Entry)},{t.Steps},{t.MedianMs:R},{t.ReferenceMedianMs:R},{t.Ratio:F4},{t.Threads}"));

    static List<T> ReadTable<T>(string path, string header, string what, Func<List<string>, T> parse)
    {
        if (!File.Exists(path)) return [];
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || lines[0] != header)
            throw new InvalidDataException($"{path}: not a {what} file of qpeft bench methods (expected the header '{header}'); use another --out.");
        int fields = header.Split(',').Length;
        var rows = new List<T>();
        for (int i = 1; i < lines.Length; i++)
        {
            if (lines[i].Length == 0) continue;
            var f = SplitCsv(lines[i]);
            if (f.Count != fields) throw new InvalidDataException($"{path}: line {i + 1} has {f.Count} fields, expected {fields}.");
            try { rows.Add(parse(f)); }
            catch (FormatException e) { throw new InvalidDataException($"{path}: line {i + 1}: {e.Message}", e); }
        }
        return rows;
    }

    static void WriteTable<T>(string path, string header, IEnumerable<T> rows, Func<T, string> line)
    {
        var sb = new StringBuilder(header).Append('\n');
        foreach (var r in rows) sb.Append(line(r)).Append('\n');
        Formats.AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>
    /// Summarises runs per entry (in <paramref name="order"/>): mean and sample standard deviation of the test metric over
    /// seeds, the entry's same-batch step time from <paramref name="stepTimes"/> when there is one, and the
    /// accuracy-parameter frontier (no other entry reaches a higher mean test metric with as few or fewer adapter parameters).
    /// </summary>
    public static List<ComparisonRow> Summarise(IReadOnlyList<ComparisonRun> runs, IReadOnlyList<string> order,
        IReadOnlyList<SameBatchStepTime>? stepTimes = null, bool lowerIsBetter = false)
    {
        var rows = new List<ComparisonRow>();
        foreach (var entry in order)
        {
            var rs = runs.Where(r => r.Entry == entry).ToList();
            if (rs.Count == 0) continue;
            var tests = rs.Select(r => r.Test).ToList();
            double mean = tests.Average();
            double std = tests.Count > 1 ? Math.Sqrt(tests.Sum(t => (t - mean) * (t - mean)) / (tests.Count - 1)) : 0;
            rows.Add(new ComparisonRow(entry, rs[0].Method, rs[0].AdapterParameters, rs.Count, rs.Average(r => r.Validation), mean, std,
                rs.Average(r => r.TrainSeconds), rs.Average(r => r.MsPerStep), stepTimes?.LastOrDefault(t => t.Entry == entry), false, rs[0].LearningRate));
        }
        double Better(double a) => lowerIsBetter ? -a : a;
        return rows.Select(r => r with
        {
            OnFrontier = !rows.Any(o => !ReferenceEquals(o, r) &&
                ((o.AdapterParameters <= r.AdapterParameters && Better(o.TestMean) > Better(r.TestMean)) ||
                 (o.AdapterParameters < r.AdapterParameters && Better(o.TestMean) >= Better(r.TestMean)))),
        }).ToList();
    }

    /// <summary>methods.csv: one row per entry.</summary>
    public static string ToCsv(IReadOnlyList<ComparisonRow> rows)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder("entry,method,adapter_params,seeds,validation_mean,test_mean,test_std,train_seconds,ms_per_step,same_batch_ms_per_step,same_batch_reference_ms_per_step,step_time_vs_reference,on_frontier,lr\n");
        foreach (var r in rows)
            sb.Append(inv,
                $"{Csv(r.Entry)},{r.Method},{r.AdapterParameters},{r.Seeds},{r.ValidationMean:F4},{r.TestMean:F4},{r.TestStd:F4},{r.TrainSecondsMean:F1},{r.MsPerStepMean:F1},") 
              .Append(inv, $"{(r.StepTime is { } t ? string.Create(inv, $"{t.MedianMs:F1},{t.ReferenceMedianMs:F1},{t.Ratio:F3}") : ",,")},{(r.OnFrontier ? 1 : 0)},{r.LearningRate:R}\n");
        return sb.ToString();
    }

    /// <summary>methods.md: the table, with the frontier starred and the setting of the comparison above it.</summary>
    public static string ToMarkdown(IReadOnlyList<ComparisonRow> rows, string title, string setting, string metric, string? reference)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder($"# {title}\n\n{setting}\n\n");
        var refName = reference ?? "reference";
        var refParams = rows.FirstOrDefault(r => r.Entry == reference)?.AdapterParameters;
        string Fewer(ComparisonRow r)
        {
            if (refParams is not > 0 || r.AdapterParameters <= 0) return "";
            double x = (double)refParams.Value / r.AdapterParameters;
            // Entries larger than the reference (full fine-tuning, AdaLoRA) get three decimals rather than "0.0".
            return x.ToString(x >= 1 ? "0.0" : "0.###", inv);
        }
        sb.AppendLine($"| entry | adapter params | x fewer than {refName} | seeds | validation {metric} (mean) | test {metric} (mean ± sd) | train s (mean) | ms / step in training | ms / step, same batches | {refName} ms / step, same batches | step time vs {refName} | frontier |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|");
        foreach (var r in rows)
            sb.AppendLine(string.Create(inv,
                $"| {r.Entry} | {r.AdapterParameters:N0} | {Fewer(r)} | {r.Seeds} | {r.ValidationMean:F4} | {r.TestMean:F4} ± {r.TestStd:F4} | {r.TrainSecondsMean:F1} | {r.MsPerStepMean:F1} | ") +
                (r.StepTime is { } t ? string.Create(inv, $"{t.MedianMs:F1} | {t.ReferenceMedianMs:F1} | {t.Ratio:F2}") : " |  | ") + $" | {(r.OnFrontier ? "★" : "")} |");
        sb.AppendLine().AppendLine("★: on the accuracy-parameter frontier (no entry has a higher mean test metric with as few adapter parameters, or the same with fewer). " +
            "Standard deviations are over seeds (sample sd; 0 with one seed).");
        sb.AppendLine().AppendLine($"Step time: each entry's training step (the trainer's, with its learning-rate groups and clipping) and {refName}'s, " +
            "timed in turn on the same batches in one process (the order reversed every other batch), medians; the ratio compares the two medians of one window. " +
            "ms / step in training is the mean over each run's whole training, which may have run at other times or thread counts.");
        return sb.ToString();
    }

    /// <summary>methods.png: mean test metric against adapter parameters (log axis), error bars of one sd, the frontier joined by a line.</summary>
    public static void SavePlot(string path, IReadOnlyList<ComparisonRow> rows, string title, string metric)
    {
        var plot = new ScottPlot.Plot();
        // Head-only and similar entries have no adapter numbers: drawn at 1 on the log axis.
        static double X(ComparisonRow r) => Math.Log10(Math.Max(1, r.AdapterParameters));
        var palette = new ScottPlot.Palettes.Category10();
        int i = 0;
        foreach (var group in rows.GroupBy(r => r.Method))
        {
            var color = palette.GetColor(i++);
            var pts = group.ToList();
            var scatter = plot.Add.Scatter(pts.Select(X).ToArray(), pts.Select(r => r.TestMean).ToArray());
            scatter.LineWidth = 0;
            scatter.MarkerSize = 9;
            scatter.Color = color;
            scatter.LegendText = group.Key;
            var bars = plot.Add.ErrorBar(pts.Select(X).ToArray(), pts.Select(r => r.TestMean).ToArray(), pts.Select(r => r.TestStd).ToArray());
            bars.Color = color;
        }
        var frontier = rows.Where(r => r.OnFrontier).OrderBy(r => r.AdapterParameters).ToList();
        if (frontier.Count > 1)
        {
            var line = plot.Add.Scatter(frontier.Select(X).ToArray(), frontier.Select(r => r.TestMean).ToArray());
            line.MarkerSize = 0;
            line.LinePattern = ScottPlot.LinePattern.Dashed;
            line.Color = ScottPlot.Colors.Gray;
            line.LegendText = "frontier";
        }
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        if (rows.Count > 0)
        {
            int lo = (int)Math.Floor(rows.Min(X)), hi = (int)Math.Ceiling(rows.Max(X));
            for (int p = lo; p <= Math.Max(hi, lo + 1); p++) ticks.AddMajor(p, Math.Pow(10, p).ToString("N0", CultureInfo.InvariantCulture));
        }
        plot.Axes.Bottom.TickGenerator = ticks;
        plot.Title(title);
        plot.Axes.Bottom.Label.Text = "adapter parameters (log scale)";
        plot.Axes.Left.Label.Text = $"test {metric} (mean ± sd over seeds)";
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        Formats.AtomicFile.WriteAllBytes(path, plot.GetImageBytes(1000, 600, ScottPlot.ImageFormat.Png));
    }

    static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    static List<string> SplitCsv(string line)
    {
        var fields = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else sb.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(c);
        }
        fields.Add(sb.ToString());
        return fields;
    }
}
