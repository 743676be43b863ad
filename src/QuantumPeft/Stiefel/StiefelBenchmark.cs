using System.Diagnostics;
using System.Globalization;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>Settings of the Stiefel-map timing benchmark (the paper's Fig. 6).</summary>
public sealed record StiefelBenchSettings
{
    /// <summary>Values of N to time.</summary>
    public IReadOnlyList<int> Ns { get; init; } = [64, 256, 1024, 4096, 16384];
    /// <summary>Columns K.</summary>
    public int K { get; init; } = 4;
    /// <summary>Pauli layers L.</summary>
    public int Layers { get; init; } = 1;
    /// <summary>Timed runs per cell (the median is reported).</summary>
    public int Repeats { get; init; } = 5;
    /// <summary>Untimed runs before the timed ones.</summary>
    public int Warmup { get; init; } = 1;
    /// <summary>Maps to time, in table order.</summary>
    public IReadOnlyList<StiefelMapKind> Maps { get; init; } = StiefelMaps.All;
    /// <summary>Pauli circuit variants timed wherever pauli is (their gate order and local qubits; kind and layers come from here).</summary>
    public IReadOnlyList<StiefelMapOptions> PauliVariants { get; init; } = [new()];
    /// <summary>Device string ("cpu", "cuda", "cuda:1").</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>The O(N^3) maps (matrix_exp, cayley) are skipped above this N.</summary>
    public int MaxDenseN { get; init; } = 4096;
    /// <summary>When one warm-up run takes longer than this, it becomes the single (cold) measurement.</summary>
    public double SlowRunSeconds { get; init; } = 5;
    /// <summary>A cell whose run is predicted (from the same map at smaller N) to take longer than this is skipped.</summary>
    public double MaxCellSeconds { get; init; } = 120;
}

/// <summary>One benchmark cell: median forward and backward time of one map at one N.</summary>
public sealed record StiefelBenchRow(string Map, int N, int K, int Layers, long Params, double ForwardMs, double BackwardMs, double OrthError, int Runs);

/// <summary>Times forward + backward of each Stiefel map and writes CSV, Markdown and a log-log PNG.</summary>
public static class StiefelBenchmark
{
    /// <summary>The CSV header (fixed; other tools read it).</summary>
    public const string CsvHeader = "map,n,k,layers,params,forward_ms,backward_ms,orth_error";

    /// <summary>Whether a map is one of the O(N^3) dense ones that <see cref="StiefelBenchSettings.MaxDenseN"/> limits.</summary>
    public static bool IsDense(StiefelMapKind kind) => kind is StiefelMapKind.MatrixExp or StiefelMapKind.Cayley;

    /// <summary>Runs every (map, N) cell; skipped cells are reported through <paramref name="log"/> and in <paramref name="skipped"/>.</summary>
    public static List<StiefelBenchRow> Run(StiefelBenchSettings s, Action<string> log, List<string> skipped)
    {
        var device = new Device(s.Device);
        var rows = new List<StiefelBenchRow>();
        foreach (var n in s.Ns.Order())
        foreach (var (kind, variant) in s.Maps.SelectMany(k => k == StiefelMapKind.Pauli
                     ? s.PauliVariants.Select(v => (k, v))
                     : [(k, new StiefelMapOptions())]))
        {
            var name = kind == StiefelMapKind.Pauli ? VariantName(variant) : StiefelMaps.Name(kind);
            string? why = null;
            if (IsDense(kind) && n > s.MaxDenseN) why = $"{name} at N={n} skipped: O(N^3) map above --max-dense-n {s.MaxDenseN}";
            else if (Predict(rows.Where(r => r.Map == name).ToList(), n, IsDense(kind) ? 3 : 2) is { } p && p > s.MaxCellSeconds)
                why = string.Create(CultureInfo.InvariantCulture, $"{name} at N={n} skipped: one run predicted to take {p:0} s (extrapolated from smaller N) > --max-cell-seconds {s.MaxCellSeconds:0}");
            if (why is not null)
            {
                skipped.Add(why);
                log(why);
                continue;
            }
            var row = Time(kind, n, s, device, variant, name);
            rows.Add(row);
            log($"{name,-12} N={n,6}  params={row.Params,7}  forward={Fmt(row.ForwardMs),10} ms  backward={Fmt(row.BackwardMs),10} ms  orth={row.OrthError:0.0E+00}  runs={row.Runs}");
        }
        return rows;
    }

    /// <summary>The map column of a Pauli variant: "pauli" for the default circuit, else e.g. "pauli/s2d/g2".</summary>
    public static string VariantName(StiefelMapOptions o) =>
        o.GateOrder == "alternating" && o.LocalQubits == 1 ? "pauli" : $"pauli/{o.GateOrder}{(o.LocalQubits > 1 ? $"/g{o.LocalQubits}" : "")}";

    /// <summary>
    /// Seconds one forward + backward run at N is expected to take, from the log-log slope of the same map's
    /// two largest smaller cells (clamped to [1, 3]; one cell: the given exponent); null without data.
    /// </summary>
    internal static double? Predict(List<StiefelBenchRow> done, int n, double defaultExponent)
    {
        var prev = done.Where(r => r.N < n).OrderBy(r => r.N).TakeLast(2).ToList();
        if (prev.Count == 0) return null;
        double Sec(StiefelBenchRow r) => (r.ForwardMs + r.BackwardMs) / 1000;
        var last = prev[^1];
        double slope = prev.Count == 2 && Sec(prev[0]) > 0
            ? Math.Clamp(Math.Log(Sec(last) / Sec(prev[0])) / Math.Log((double)last.N / prev[0].N), 1, 3)
            : defaultExponent;
        return Sec(last) * Math.Pow((double)n / last.N, slope);
    }

    static StiefelBenchRow Time(StiefelMapKind kind, int n, StiefelBenchSettings s, Device device, StiefelMapOptions variant, string name)
    {
        var options = variant with { Kind = kind, Layers = s.Layers };
        using var map = StiefelMaps.Create(n, s.K, options, seed: 1);
        Randomize(map, seed: n);
        map.to(device);
        using var weights = randn(n, s.K, generator: new Generator(2)).to(device);
        var forward = new List<double>();
        var backward = new List<double>();
        double orth = double.NaN;

        (double F, double B) Once()
        {
            using var scope = NewDisposeScope();
            map.zero_grad();
            var sw = Stopwatch.StartNew();
            var u = map.Compute();
            Sync(device);
            double f = sw.Elapsed.TotalMilliseconds;
            var loss = (u * weights).sum();
            sw.Restart();
            loss.backward();
            Sync(device);
            double b = sw.Elapsed.TotalMilliseconds;
            orth = OrthError(u.detach());
            return (f, b);
        }

        for (int w = 0; w < Math.Max(1, s.Warmup); w++)
        {
            var (f, b) = Once();
            if ((f + b) / 1000 > s.SlowRunSeconds) { forward.Add(f); backward.Add(b); break; }
        }
        if (forward.Count == 0)
            for (int r = 0; r < s.Repeats; r++) { var (f, b) = Once(); forward.Add(f); backward.Add(b); }
        return new StiefelBenchRow(name, n, s.K, s.Layers, map.ParameterCount,
            Median(forward), Median(backward), orth, forward.Count);
    }

    /// <summary>
    /// Sets parameters to uniform values of a size met in training rather than the near-identity start:
    /// angles in +-pi (Pauli, Givens), reflector entries in +-1, skew entries scaled so that ||A||_F is about 2.
    /// </summary>
    public static void Randomize(StiefelMap map, int seed)
    {
        double scale = map.Kind switch
        {
            "pauli" or "givens" => Math.PI,
            "householder" => 1.0,
            _ => 2.0 * Math.Sqrt(3.0 / (2.0 * map.N * map.K)),
        };
        var random = new Random(seed);
        using var _ = no_grad();
        foreach (var p in map.parameters())
        {
            var values = new float[p.numel()];
            for (int i = 0; i < values.Length; i++) values[i] = (float)((2 * random.NextDouble() - 1) * scale);
            p.copy_(tensor(values, p.shape, ScalarType.Float32).to(p.dtype).to(p.device));
        }
    }

    /// <summary>max |U^T U - I_K|, computed in float64.</summary>
    public static double OrthError(Tensor u)
    {
        using var scope = NewDisposeScope();
        var d = u.to(ScalarType.Float64);
        return (d.t().matmul(d) - eye(u.shape[1], dtype: ScalarType.Float64, device: u.device)).abs().max().item<double>();
    }

    static void Sync(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    /// <summary>Median of timings (shared with <c>qpeft bench step</c>).</summary>
    internal static double Median(IReadOnlyList<double> xs)
    {
        var sorted = xs.OrderBy(x => x).ToArray();
        int m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    static string Fmt(double ms) => ms.ToString(ms < 10 ? "F3" : ms < 1000 ? "F1" : "F0", CultureInfo.InvariantCulture);

    /// <summary>The CSV text (invariant culture).</summary>
    public static string Csv(IEnumerable<StiefelBenchRow> rows)
    {
        var sb = new StringBuilder(CsvHeader).Append('\n');
        foreach (var r in rows)
            sb.Append(string.Create(CultureInfo.InvariantCulture,
                $"{r.Map},{r.N},{r.K},{r.Layers},{r.Params},{r.ForwardMs:F4},{r.BackwardMs:F4},{r.OrthError:0.000E+00}\n"));
        return sb.ToString();
    }

    /// <summary>The Markdown table, a settings line, skipped cells and the time ratios against pauli of the same run.</summary>
    public static string Markdown(IReadOnlyList<StiefelBenchRow> rows, StiefelBenchSettings s, int threads, IEnumerable<string> skipped)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("| map | n | k | layers | params | forward_ms | backward_ms | orth_error |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            sb.AppendLine(string.Create(inv, $"| {r.Map} | {r.N} | {r.K} | {r.Layers} | {r.Params} | {Fmt(r.ForwardMs)} | {Fmt(r.BackwardMs)} | {r.OrthError:0.0E+00} |"));
        sb.AppendLine();
        sb.AppendLine(
            string.Create(inv, $"Machine: {Environment.ProcessorCount} logical CPUs, {RuntimeInfo()}, device {s.Device}, torch threads {threads}; ") +
            string.Create(inv, $"median of {s.Repeats} timed runs after {s.Warmup} warm-up (a cell whose warm-up took over {s.SlowRunSeconds:0} s is that single cold run; cells predicted over {s.MaxCellSeconds:0} s per run are skipped); ") +
            "parameters uniform random of training size (angles in +-pi, ||A||_F about 2).");
        var single = rows.Where(r => r.Runs == 1 && s.Repeats > 1).Select(r => $"{r.Map} N={r.N}").ToList();
        if (single.Count > 0) sb.AppendLine().AppendLine($"Single cold run: {string.Join(", ", single)}.");
        var skips = skipped.ToList();
        if (skips.Count > 0) sb.AppendLine().AppendLine($"Skipped: {string.Join("; ", skips)}.");
        var pauli = rows.Where(r => r.Map == "pauli").ToDictionary(r => r.N, r => r.ForwardMs + r.BackwardMs);
        if (pauli.Count > 0)
        {
            sb.AppendLine().AppendLine("Forward + backward time relative to pauli in the same run:").AppendLine();
            var ns = rows.Select(r => r.N).Distinct().Where(pauli.ContainsKey).ToList();
            sb.AppendLine("| map | " + string.Join(" | ", ns.Select(n => $"N={n}")) + " |");
            sb.AppendLine("|---|" + string.Concat(ns.Select(_ => "---:|")));
            foreach (var map in rows.Select(r => r.Map).Distinct().Where(m => m != "pauli"))
            {
                var cells = ns.Select(n => rows.FirstOrDefault(r => r.Map == map && r.N == n) is { } r
                    ? string.Create(inv, $"{(r.ForwardMs + r.BackwardMs) / pauli[n]:0.#}x") : "-");
                sb.AppendLine($"| {map} | {string.Join(" | ", cells)} |");
            }
        }
        return sb.ToString();
    }

    static string RuntimeInfo() => $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription.Trim()}, .NET {Environment.Version}";

    /// <summary>Writes time (forward + backward) against N on log-log axes, one line per map.</summary>
    public static void Plot(IReadOnlyList<StiefelBenchRow> rows, string path, int k, int layers)
    {
        var plt = new ScottPlot.Plot();
        foreach (var group in rows.GroupBy(r => r.Map))
        {
            var pts = group.OrderBy(r => r.N).ToArray();
            var line = plt.Add.Scatter(pts.Select(r => Math.Log10(r.N)).ToArray(),
                pts.Select(r => Math.Log10(Math.Max(r.ForwardMs + r.BackwardMs, 1e-4))).ToArray());
            line.LegendText = group.Key;
            line.LineWidth = 2;
            line.MarkerSize = 7;
        }
        foreach (var axis in new ScottPlot.IAxis[] { plt.Axes.Bottom, plt.Axes.Left })
            axis.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                LabelFormatter = v => Math.Pow(10, v).ToString("0.###", CultureInfo.InvariantCulture),
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
            };
        plt.Title($"Stiefel maps: forward + backward time (K = {k}, L = {layers})");
        plt.XLabel("N (log scale)");
        plt.YLabel("time, ms (log scale)");
        plt.ShowLegend(ScottPlot.Alignment.UpperLeft);
        Formats.AtomicFile.WriteAllBytes(path, plt.GetImageBytes(900, 600, ScottPlot.ImageFormat.Png));
    }
}
