using System.Globalization;
using System.Text;

namespace QuantumPeft.Training;

/// <summary>
/// One point of a method comparison: a method with its settings, written <c>method[:key=value[:key=value...]]</c>,
/// e.g. <c>quantum:rank=8:layers=2:init=period</c>, <c>lora:rank=1</c>, <c>vera:rank=256:lr=5e-3</c>, <c>head</c>.
/// </summary>
/// <remarks>
/// Keys: rank, layers, map, init_scale, alpha, targets, head (pooler | mean), lr (the adapter learning rate; default: the method's),
/// head_lr; any other key is a config field of the method by peft's name, as <c>--set</c> (e.g. init=period for
/// Quantum-PEFT's stiefel options, n_frequency=1000 for FourierFT).
/// </remarks>
/// <param name="Label">The entry as written (the row name of the tables).</param>
/// <param name="Spec">The fine-tuning spec it stands for (seed set per run).</param>
/// <param name="LearningRate">The adapter (or backbone) learning rate.</param>
/// <param name="HeadLearningRate">The head's learning rate.</param>
public sealed record GridEntry(string Label, FineTuneSpec Spec, double LearningRate, double HeadLearningRate)
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
        double? lr = null, headLr = null;
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
                default: settings[key] = value; break;
            }
        }
        if (settings.Count > 0) spec = spec with { Settings = settings };
        return new GridEntry(text.Trim(), spec, lr ?? FineTuneSpec.DefaultLearningRate(method), headLr ?? DefaultHeadLearningRate);
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

/// <summary>An entry's runs summarised over its seeds.</summary>
public sealed record ComparisonRow(
    string Entry, string Method, long AdapterParameters, int Seeds, double ValidationMean, double TestMean, double TestStd,
    double TrainSecondsMean, double MsPerStepMean, double? StepTimeRatio, bool OnFrontier, double LearningRate);

/// <summary>
/// The results of <c>qpeft bench methods</c>: runs appended one by one to runs.csv (so an interrupted comparison
/// resumes where it stopped), summarised into methods.csv, methods.md and methods.png.
/// </summary>
public static class MethodComparison
{
    /// <summary>The header of runs.csv.</summary>
    public const string RunsHeader = "entry,method,seed,adapter_params,steps,train_seconds,ms_per_step,validation_metric,test_metric,lr";

    /// <summary>The runs already in <paramref name="path"/> (none when it does not exist).</summary>
    /// <exception cref="InvalidDataException">The file is not a runs.csv this command wrote.</exception>
    public static List<ComparisonRun> ReadRuns(string path)
    {
        if (!File.Exists(path)) return [];
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || lines[0] != RunsHeader)
            throw new InvalidDataException($"{path}: not a runs file of qpeft bench methods (expected the header '{RunsHeader}'); use another --out.");
        var runs = new List<ComparisonRun>();
        var inv = CultureInfo.InvariantCulture;
        for (int i = 1; i < lines.Length; i++)
        {
            if (lines[i].Length == 0) continue;
            var f = SplitCsv(lines[i]);
            if (f.Count != 10) throw new InvalidDataException($"{path}: line {i + 1} has {f.Count} fields, expected 10.");
            try
            {
                runs.Add(new ComparisonRun(f[0], f[1], long.Parse(f[2], inv), long.Parse(f[3], inv), int.Parse(f[4], inv),
                    double.Parse(f[5], inv), double.Parse(f[6], inv), double.Parse(f[7], inv), double.Parse(f[8], inv), double.Parse(f[9], inv)));
            }
            catch (FormatException e) { throw new InvalidDataException($"{path}: line {i + 1}: {e.Message}", e); }
        }
        return runs;
    }

    /// <summary>Appends one run to <paramref name="path"/> (rewritten under a temporary name and renamed, so a kill loses at most this run).</summary>
    public static void AppendRun(string path, ComparisonRun run)
    {
        var runs = ReadRuns(path);
        runs.Add(run);
        var sb = new StringBuilder(RunsHeader).Append('\n');
        foreach (var r in runs)
            sb.Append(CultureInfo.InvariantCulture, $"{Csv(r.Entry)},{r.Method},{r.Seed},{r.AdapterParameters},{r.Steps},{r.TrainSeconds:R},{r.MsPerStep:R},{r.Validation:R},{r.Test:R},{r.LearningRate:R}\n");
        Formats.AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>
    /// Summarises runs per entry (in <paramref name="order"/>): mean and sample standard deviation of the test metric over
    /// seeds, step time against <paramref name="reference"/>'s, and the accuracy-parameter frontier (no other entry
    /// reaches a higher mean test metric with as few or fewer adapter parameters).
    /// </summary>
    public static List<ComparisonRow> Summarise(IReadOnlyList<ComparisonRun> runs, IReadOnlyList<string> order, string? reference, bool lowerIsBetter = false)
    {
        var rows = new List<ComparisonRow>();
        var refMs = reference is null ? null : runs.Where(r => r.Entry == reference).Select(r => r.MsPerStep).DefaultIfEmpty(double.NaN).Average() is var m && double.IsFinite(m) ? (double?)m : null;
        foreach (var entry in order)
        {
            var rs = runs.Where(r => r.Entry == entry).ToList();
            if (rs.Count == 0) continue;
            var tests = rs.Select(r => r.Test).ToList();
            double mean = tests.Average();
            double std = tests.Count > 1 ? Math.Sqrt(tests.Sum(t => (t - mean) * (t - mean)) / (tests.Count - 1)) : 0;
            double ms = rs.Average(r => r.MsPerStep);
            rows.Add(new ComparisonRow(entry, rs[0].Method, rs[0].AdapterParameters, rs.Count, rs.Average(r => r.Validation), mean, std,
                rs.Average(r => r.TrainSeconds), ms, refMs is { } rm && rm > 0 ? ms / rm : null, false, rs[0].LearningRate));
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
        var sb = new StringBuilder("entry,method,adapter_params,seeds,validation_mean,test_mean,test_std,train_seconds,ms_per_step,step_time_vs_reference,on_frontier,lr\n");
        foreach (var r in rows)
            sb.Append(CultureInfo.InvariantCulture,
                $"{Csv(r.Entry)},{r.Method},{r.AdapterParameters},{r.Seeds},{r.ValidationMean:F4},{r.TestMean:F4},{r.TestStd:F4},{r.TrainSecondsMean:F1},{r.MsPerStepMean:F1},{(r.StepTimeRatio is { } x ? x.ToString("F3", CultureInfo.InvariantCulture) : "")},{(r.OnFrontier ? 1 : 0)},{r.LearningRate:R}\n");
        return sb.ToString();
    }

    /// <summary>methods.md: the table, with the frontier starred and the setting of the comparison above it.</summary>
    public static string ToMarkdown(IReadOnlyList<ComparisonRow> rows, string title, string setting, string metric, string? reference)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder($"# {title}\n\n{setting}\n\n");
        sb.AppendLine($"| entry | adapter params | seeds | validation {metric} (mean) | test {metric} (mean ± sd) | train s (mean) | ms / step | step time vs {reference ?? "reference"} | frontier |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|:---:|");
        foreach (var r in rows)
            sb.AppendLine(string.Create(inv,
                $"| {r.Entry} | {r.AdapterParameters:N0} | {r.Seeds} | {r.ValidationMean:F4} | {r.TestMean:F4} ± {r.TestStd:F4} | {r.TrainSecondsMean:F1} | {r.MsPerStepMean:F1} | {(r.StepTimeRatio is { } x ? x.ToString("F2", inv) : "")} | {(r.OnFrontier ? "★" : "")} |"));
        sb.AppendLine().AppendLine("★: on the accuracy-parameter frontier (no entry has a higher mean test metric with as few adapter parameters, or the same with fewer). " +
            "Standard deviations are over seeds (sample sd; 0 with one seed).");
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
