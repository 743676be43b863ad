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
        var gateOrders = new Option<string>("--gate-order") { Description = "Pauli circuit layouts to time, comma-separated: alternating, full, s2d.", DefaultValueFactory = _ => "alternating" };
        var localQubits = new Option<string>("--local-qubits") { Description = "Pauli circuit qubits per local rotation g to time, comma-separated (1 = RY gates; g > 1: full SO(2^g) rotations).", DefaultValueFactory = _ => "1" };
        var outDir = new Option<string>("--out") { Description = "Output folder for stiefel.csv, stiefel.md, stiefel.png.", DefaultValueFactory = _ => "out/stiefel" };

        var cmd = new Command("stiefel", "Time forward + backward of each Stiefel map against N; write CSV, Markdown and a log-log PNG.");
        foreach (var o in new Option[] { n, k, layers, repeats, warmup, threads, maps, gateOrders, localQubits, device, maxDense, maxCell, outDir }) cmd.Options.Add(o);
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

            var layouts = parse.GetValue(gateOrders)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var variants = (from g in ParseInts(parse.GetValue(localQubits)!, "--local-qubits") from o in layouts
                            select new StiefelMapOptions { GateOrder = o, LocalQubits = g }).Distinct().ToList();
            if (variants.Count == 0) throw new ArgumentException("--gate-order: no layout given (alternating, full, s2d).");
            foreach (var v in variants)
            {
                try { StiefelMaps.ValidateOptions(v); }
                catch (ArgumentException e) { throw new ArgumentException($"--{(e.ParamName == "LocalQubits" ? "local-qubits" : "gate-order")}: {e.Message.Split(" (Parameter ")[0]}"); }
            }

            var settings = new StiefelBenchSettings
            {
                Ns = ns, K = kv, Layers = lv, Repeats = rv, Warmup = wv, Maps = kinds, PauliVariants = variants, Device = dev,
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
