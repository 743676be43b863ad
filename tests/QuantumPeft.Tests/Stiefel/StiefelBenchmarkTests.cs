using QuantumPeft.Stiefel;

namespace QuantumPeft.Tests.Stiefel;

public class StiefelBenchmarkTests
{
    [Fact]
    public void Small_run_writes_csv_markdown_and_png_and_reports_dense_skips()
    {
        var settings = new StiefelBenchSettings { Ns = [16, 8], K = 2, Repeats = 1, Warmup = 0, MaxDenseN = 8 };
        var skipped = new List<string>();
        var rows = StiefelBenchmark.Run(settings, _ => { }, skipped);

        Assert.Equal(6 + 4, rows.Count);   // all six maps at N = 8, the four non-dense ones at N = 16
        Assert.Equal(2, skipped.Count);
        Assert.All(skipped, s => Assert.Contains("--max-dense-n 8", s));
        Assert.All(rows, r => Assert.True(r.OrthError < 1e-5 && r.ForwardMs >= 0 && r.BackwardMs >= 0, r.ToString()));
        Assert.Equal(StiefelMaps.CountParameters(16, 2, new StiefelMapOptions()), rows.Single(r => r.Map == "pauli" && r.N == 16).Params);

        var dir = Path.Combine(Path.GetTempPath(), "qpeft-bench-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var csv = Path.Combine(dir, "stiefel.csv");
            QuantumPeft.Formats.AtomicFile.WriteAllText(csv, StiefelBenchmark.Csv(rows));
            var lines = File.ReadAllLines(csv);
            Assert.Equal("map,n,k,layers,params,forward_ms,backward_ms,orth_error", lines[0]);
            Assert.Equal(rows.Count + 1, lines.Length);
            Assert.StartsWith("pauli,8,2,1,", lines[1]);

            var md = StiefelBenchmark.Markdown(rows, settings, 1, skipped);
            Assert.Contains("| map | n | k | layers | params | forward_ms | backward_ms | orth_error |", md);
            Assert.Contains("relative to pauli", md);

            var png = Path.Combine(dir, "stiefel.png");
            StiefelBenchmark.Plot(rows, png, 2, 1);
            var head = File.ReadAllBytes(png).Take(4).ToArray();
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, head);
            Assert.Equal(new[] { "stiefel.csv", "stiefel.png" }, Directory.GetFiles(dir).Select(Path.GetFileName).Order());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Prediction_extrapolates_from_the_two_largest_smaller_cells()
    {
        var rows = new List<StiefelBenchRow>
        {
            new("cayley", 64, 4, 1, 0, 1, 0, 0, 1),
            new("cayley", 128, 4, 1, 0, 8, 0, 0, 1),   // slope 3
        };
        Assert.Equal(0.064, StiefelBenchmark.Predict(rows, 256, 2)!.Value, 9);
        Assert.Equal(0.004, StiefelBenchmark.Predict(rows.Take(1).ToList(), 256, 1)!.Value, 9);
        Assert.Null(StiefelBenchmark.Predict([], 256, 2));
    }

    [Fact]
    public void Pauli_variants_get_their_own_rows_with_their_own_counts()
    {
        var variants = new[] { new StiefelMapOptions(), new StiefelMapOptions { GateOrder = "s2d", LocalQubits = 2 }, new StiefelMapOptions { LocalQubits = 3 } };
        var settings = new StiefelBenchSettings { Ns = [24], K = 3, Repeats = 1, Warmup = 0, Maps = [StiefelMapKind.Pauli], PauliVariants = variants };
        var rows = StiefelBenchmark.Run(settings, _ => { }, []);
        Assert.Equal(new[] { "pauli", "pauli/s2d/g2", "pauli/alternating/g3" }, rows.Select(r => r.Map));
        for (int i = 0; i < variants.Length; i++)
        {
            Assert.Equal(StiefelMaps.CountParameters(24, 3, variants[i]), rows[i].Params);
            Assert.True(rows[i].OrthError < 1e-5);
        }
        Assert.NotEqual(rows[0].Params, rows[1].Params);
        Assert.Contains("| pauli/s2d/g2 |", StiefelBenchmark.Markdown(rows, settings, 1, []));
    }
}
