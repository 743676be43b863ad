using System.CommandLine;
using QuantumPeft.Stiefel;
using TorchSharp;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft bench stiefel</c>: forward + backward time of every Stiefel map against N (the paper's Fig. 6).</summary>
public sealed class BenchStiefelCommand : ICliCommand
{
    public string? Parent => "bench";

    public Command Build()
    {
        var n = new Option<string>("--n") { Description = "Comma-separated values of N.", DefaultValueFactory = _ => "64,256,1024,4096,16384" };
        var k = new Option<int>("--k") { Description = "Columns K (rank).", DefaultValueFactory = _ => 4 };
        var layers = new Option<int>("--layers") { Description = "Pauli layers L.", DefaultValueFactory = _ => 1 };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs per cell (median reported).", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed runs before timing.", DefaultValueFactory = _ => 1 };
        var threads = new Option<int>("--threads") { Description = "Fixed torch thread count.", DefaultValueFactory = _ => 1 };
        var maps = new Option<string>("--maps") { Description = "Comma-separated subset of: pauli, taylor, matrix_exp, cayley, householder, givens.", DefaultValueFactory = _ => "all" };
        var device = new Option<string>("--device") { Description = "Device: cpu, cuda, cuda:N.", DefaultValueFactory = _ => "cpu" };
        var maxDense = new Option<int>("--max-dense-n") { Description = "Skip the O(N^3) maps (matrix_exp, cayley) above this N.", DefaultValueFactory = _ => 4096 };
        var maxCell = new Option<double>("--max-cell-seconds") { Description = "Skip a cell whose single run is predicted (from smaller N) to take longer.", DefaultValueFactory = _ => 120 };
        var outDir = new Option<string>("--out") { Description = "Output folder for stiefel.csv, stiefel.md, stiefel.png.", DefaultValueFactory = _ => "out/stiefel" };

        var cmd = new Command("stiefel", "Time forward + backward of each Stiefel map against N; write CSV, Markdown and a log-log PNG.");
        foreach (var o in new Option[] { n, k, layers, repeats, warmup, threads, maps, device, maxDense, maxCell, outDir }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var ns = ParseInts(parse.GetValue(n)!, "--n");
            int kv = parse.GetValue(k);
            if (kv < 1) throw new ArgumentException($"--k must be >= 1, got {kv}.");
            if (ns.Min() < Math.Max(2, kv)) throw new ArgumentException($"--n values must be >= max(2, --k = {kv}); got {ns.Min()}.");
            int lv = parse.GetValue(layers);
            if (lv < 0) throw new ArgumentException($"--layers must be >= 0, got {lv}.");
            int rv = parse.GetValue(repeats), wv = parse.GetValue(warmup), tv = parse.GetValue(threads);
            if (rv < 1) throw new ArgumentException($"--repeats must be >= 1, got {rv}.");
            if (wv < 0) throw new ArgumentException($"--warmup must be >= 0, got {wv}.");
            if (tv < 1) throw new ArgumentException($"--threads must be >= 1, got {tv}.");
            var mapText = parse.GetValue(maps)!;
            var kinds = mapText.Trim() == "all"
                ? StiefelMaps.All
                : mapText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(StiefelMaps.Parse).Distinct().ToList();
            var dev = parse.GetValue(device)!;
            try { _ = new torch.Device(dev); }
            catch (Exception e) { throw new ArgumentException($"--device '{dev}' is not a device (cpu, cuda, cuda:N): {e.Message}"); }
            if (dev.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) && !torch.cuda.is_available())
                throw new ArgumentException($"--device {dev}: CUDA is not available in this TorchSharp build.");
            var dir = parse.GetValue(outDir)!;
            if (string.IsNullOrWhiteSpace(dir)) throw new ArgumentException("--out: an output folder is required.");
            if (parse.GetValue(maxCell) <= 0) throw new ArgumentException($"--max-cell-seconds must be > 0, got {parse.GetValue(maxCell)}.");

            var settings = new StiefelBenchSettings
            {
                Ns = ns, K = kv, Layers = lv, Repeats = rv, Warmup = wv, Maps = kinds, Device = dev,
                MaxDenseN = parse.GetValue(maxDense), MaxCellSeconds = parse.GetValue(maxCell),
            };
            torch.set_num_threads(tv);
            Directory.CreateDirectory(dir);
            Console.WriteLine($"bench stiefel: N = {string.Join(",", ns)}, K = {kv}, L = {lv}, threads = {tv}, device = {dev}");
            var skipped = new List<string>();
            var rows = StiefelBenchmark.Run(settings, Console.WriteLine, skipped);
            QuantumPeft.Formats.AtomicFile.WriteAllText(Path.Combine(dir, "stiefel.csv"), StiefelBenchmark.Csv(rows));
            QuantumPeft.Formats.AtomicFile.WriteAllText(Path.Combine(dir, "stiefel.md"), StiefelBenchmark.Markdown(rows, settings, tv, skipped));
            StiefelBenchmark.Plot(rows, Path.Combine(dir, "stiefel.png"), kv, lv);
            Console.WriteLine($"wrote {Path.Combine(dir, "stiefel.csv")}, stiefel.md, stiefel.png");
            return 0;
        });
        return cmd;
    }

    static List<int> ParseInts(string text, string option)
    {
        var list = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, out var v)) throw new ArgumentException($"{option}: '{part}' is not an integer (expected e.g. 64,256,1024).");
            list.Add(v);
        }
        if (list.Count == 0) throw new ArgumentException($"{option}: no values given (expected e.g. 64,256,1024).");
        return list;
    }
}
