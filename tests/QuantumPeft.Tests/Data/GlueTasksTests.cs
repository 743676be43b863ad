using QuantumPeft.Data;

namespace QuantumPeft.Tests.Data;

/// <summary>GLUE loaders on small files the tests write in the real GLUE TSV layouts.</summary>
public sealed class GlueTasksTests : IDisposable
{
    readonly string _root = Path.Combine(Path.GetTempPath(), $"qpeft-glue-{Guid.NewGuid():N}");
    const int TrainRows = 20, DevRows = 5;

    public GlueTasksTests()
    {
        Write("CoLA", "train.tsv", null, i => $"gj04\t{i % 2}\t{(i % 2 == 0 ? "*" : "")}\tCoLA sentence {i}.");
        Write("CoLA", "dev.tsv", null, i => $"bc01\t{(i + 1) % 2}\t\tCoLA dev {i}.");
        Write("SST-2", "train.tsv", "sentence\tlabel", i => $"sst sentence {i} \t{i % 2}");
        Write("SST-2", "dev.tsv", "sentence\tlabel", i => $"sst dev {i} \t{i % 2}");
        const string mrpc = "\uFEFFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String";
        Write("MRPC", "train.tsv", mrpc, i => $"{i % 2}\t70{i}\t80{i}\tFirst {i}.\tSecond {i}.");
        Write("MRPC", "dev.tsv", mrpc, i => $"{i % 2}\t90{i}\t91{i}\tDev first {i}.\tDev second {i}.");
        const string stsb = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore";
        Write("STS-B", "train.tsv", stsb, i => $"{i}\tmain-captions\tMSRvid\t2012test\t000{i}\tnone\tnone\tA plane {i}.\tAn air plane {i}.\t{i * 0.25:0.000}");
        Write("STS-B", "dev.tsv", stsb, i => $"{i}\tmain-captions\tMSRvid\t2012test\t000{i}\tnone\tnone\tA man {i}.\tA person {i}.\t3.800");
        const string qqp = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate";
        Write("QQP", "train.tsv", qqp, i => $"{i}\t{2 * i}\t{2 * i + 1}\tWhat is {i}?\tWhat's {i}?\t{i % 2}");
        Write("QQP", "dev.tsv", qqp, i => $"{i}\t{2 * i}\t{2 * i + 1}\tHow is {i}?\tHow's {i}?\t{i % 2}");
        const string mnliTrain = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label";
        const string mnliDev = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label";
        string[] nli = ["entailment", "neutral", "contradiction"];
        Write("MNLI", "train.tsv", mnliTrain, i => $"{i}\t1{i}\t1{i}e\tgovernment\t( ( p {i} ) )\t( h {i} )\t(ROOT (S p))\t(ROOT (S h))\tPremise {i}.\tHypothesis {i}.\t{nli[i % 3]}\t{nli[i % 3]}");
        Write("MNLI", "dev_matched.tsv", mnliDev, i => $"{i}\t2{i}\t2{i}n\ttelephone\t( p )\t( h )\t(ROOT p)\t(ROOT h)\tMatched premise {i}.\tMatched hypothesis {i}.\tneutral\tneutral\tneutral\tneutral\tneutral\t{nli[(i + 1) % 3]}");
        Write("MNLI", "dev_mismatched.tsv", mnliDev, i => $"{i}\t3{i}\t3{i}c\tletters\t( p )\t( h )\t(ROOT p)\t(ROOT h)\tMismatched premise {i}.\tMismatched hypothesis {i}.\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\t{nli[(i + 2) % 3]}");
        string[] rte = ["entailment", "not_entailment"];
        Write("QNLI", "train.tsv", "index\tquestion\tsentence\tlabel", i => $"{i}\tWhen {i}?\tIn year {i}.\t{rte[i % 2]}");
        Write("QNLI", "dev.tsv", "index\tquestion\tsentence\tlabel", i => $"{i}\tWho {i}?\tPerson {i}.\t{rte[i % 2]}");
        Write("RTE", "train.tsv", "index\tsentence1\tsentence2\tlabel", i => $"{i}\tText {i}.\tHypothesis {i}.\t{rte[i % 2]}");
        Write("RTE", "dev.tsv", "index\tsentence1\tsentence2\tlabel", i => $"{i}\tDev text {i}.\tDev hypothesis {i}.\t{rte[i % 2]}");
    }

    void Write(string folder, string file, string? header, Func<int, string> row)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_root, folder)).FullName;
        int rows = file == "train.tsv" ? TrainRows : DevRows;
        var lines = (header is null ? [] : new[] { header }).Concat(Enumerable.Range(0, rows).Select(row));
        File.WriteAllText(Path.Combine(dir, file), string.Join("\n", lines) + "\n");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("cola", 2, false, "mcc")]
    [InlineData("sst2", 2, false, "accuracy")]
    [InlineData("mrpc", 2, true, "f1")]
    [InlineData("stsb", 1, true, "pearson")]
    [InlineData("qqp", 2, true, "f1")]
    [InlineData("mnli", 3, true, "accuracy")]
    [InlineData("mnli-mm", 3, true, "accuracy")]
    [InlineData("qnli", 2, true, "accuracy")]
    [InlineData("rte", 2, true, "accuracy")]
    public void Every_task_loads_from_the_GLUE_root(string name, int numLabels, bool pairs, string mainMetric)
    {
        var task = TextTasks.Load(name, _root);
        Assert.Equal(name, task.Name);
        // 10 % of the 20 train rows are held out as validation; dev.tsv is the test split.
        Assert.Equal((18, 2, DevRows), (task.Train.Count, task.Validation.Count, task.Test.Count));
        Assert.Equal(numLabels, task.NumLabels);
        Assert.Equal(mainMetric, task.MainMetric);
        var all = task.Train.Concat(task.Validation).Concat(task.Test).ToList();
        Assert.All(all, e => Assert.Equal(pairs, e.TextPair is not null));
        Assert.All(all, e => Assert.False(string.IsNullOrEmpty(e.Text)));
        if (numLabels > 1) Assert.All(all, e => Assert.InRange(e.Label, 0, numLabels - 1));
        // Held-out rows are train rows, not lost and not duplicated.
        Assert.Equal(TrainRows, task.Train.Concat(task.Validation).Select(e => e.Text).Distinct().Count());
    }

    [Fact]
    public void Columns_and_labels_are_read_as_GLUE_defines_them()
    {
        var cola = GlueTasks.Load("cola", _root);
        var colaAll = cola.Train.Concat(cola.Validation).ToDictionary(e => e.Text);
        Assert.Equal(0, colaAll["CoLA sentence 4."].Label);
        Assert.Equal(1, colaAll["CoLA sentence 7."].Label);

        var mrpc = GlueTasks.Load("mrpc", _root);
        Assert.Equal(new TextExample("Dev first 3.", "Dev second 3.", 1), mrpc.Test[3]);

        var stsb = GlueTasks.Load("stsb", _root);
        Assert.Equal(3.8f, stsb.Test[0].Label);
        Assert.Equal(2.25f, stsb.Train.Concat(stsb.Validation).Single(e => e.Text == "A plane 9.").Label);

        // MNLI: entailment 0, neutral 1, contradiction 2 from gold_label (not label1); matched vs mismatched dev.
        var m = GlueTasks.Load("mnli", _root);
        Assert.Equal(new TextExample("Matched premise 0.", "Matched hypothesis 0.", 1), m.Test[0]);
        var mm = GlueTasks.Load("mnli-mm", _root);
        Assert.Equal(new TextExample("Mismatched premise 0.", "Mismatched hypothesis 0.", 2), mm.Test[0]);
        Assert.Equal(["entailment", "neutral", "contradiction"], mm.LabelNames);

        var qnli = GlueTasks.Load("qnli", _root);
        Assert.Equal(new TextExample("Who 1?", "Person 1.", 1), qnli.Test[1]);
        Assert.Equal(["f1", "accuracy"], GlueTasks.Load("qqp", _root).MetricNames);
    }

    [Fact]
    public void A_task_folder_itself_can_be_named()
    {
        var task = GlueTasks.Load("rte", Path.Combine(_root, "RTE"));
        Assert.Equal(DevRows, task.Test.Count);
    }

    [Fact]
    public void The_validation_slice_is_fixed()
    {
        var a = GlueTasks.Load("sst2", _root).Validation.Select(e => e.Text);
        Assert.Equal(a, GlueTasks.Load("sst2", _root).Validation.Select(e => e.Text));
    }

    [Fact]
    public void A_malformed_row_names_the_file_and_line()
    {
        var path = Path.Combine(_root, "RTE", "train.tsv");
        var lines = File.ReadAllLines(path);
        lines[3] = "2\tText with a missing column.\tentailment";
        File.WriteAllLines(path, lines);
        var e = Assert.Throws<InvalidDataException>(() => GlueTasks.Load("rte", _root));
        Assert.Contains(path, e.Message);
        Assert.Contains("line 4 has 3 tab-separated fields; expected 4", e.Message);
    }

    [Fact]
    public void An_unknown_label_names_the_file_line_and_valid_labels()
    {
        var path = Path.Combine(_root, "QNLI", "dev.tsv");
        File.AppendAllText(path, "9\tWhy?\tBecause.\tmaybe\n");
        var e = Assert.Throws<InvalidDataException>(() => GlueTasks.Load("qnli", _root));
        Assert.Contains($"{path}: line 7 has label 'maybe'", e.Message);
        Assert.Contains("entailment, not_entailment", e.Message);
    }

    [Fact]
    public void A_header_without_the_expected_column_is_reported()
    {
        var path = Path.Combine(_root, "SST-2", "train.tsv");
        File.WriteAllText(path, "text\tlabel\nfine\t1\n");
        var e = Assert.Throws<InvalidDataException>(() => GlueTasks.Load("sst2", _root));
        Assert.Contains("no column 'sentence'", e.Message);
    }

    [Fact]
    public void A_missing_folder_or_file_names_the_path_and_the_expected_files()
    {
        var missing = Path.Combine(_root, "no-such-folder");
        var e = Assert.Throws<FileNotFoundException>(() => TextTasks.Load("sst2", missing));
        Assert.Equal(missing, e.FileName);
        Assert.Contains("train.tsv and dev.tsv", e.Message);

        File.Delete(Path.Combine(_root, "MNLI", "dev_mismatched.tsv"));
        e = Assert.Throws<FileNotFoundException>(() => TextTasks.Load("mnli-mm", _root));
        Assert.Equal(Path.Combine(_root, "MNLI", "dev_mismatched.tsv"), e.FileName);
        Assert.Contains("train.tsv and dev_mismatched.tsv", e.Message);
    }

    [Fact]
    public void An_unknown_task_lists_the_valid_tasks()
    {
        var e = Assert.Throws<ArgumentException>(() => TextTasks.Load("squad", _root));
        Assert.Equal("name", e.ParamName);
        Assert.Contains("sentiment, spam, fortunes, cola, sst2, mrpc, stsb, qqp, mnli, mnli-mm, qnli, rte", e.Message);
        Assert.Throws<ArgumentException>(() => GlueTasks.Load("wnli", _root));
    }

    [Fact]
    public void A_GLUE_task_without_a_folder_asks_for_one()
    {
        var e = Assert.Throws<ArgumentException>(() => TextTasks.Load("cola"));
        Assert.Contains("--data-dir", e.Message);
        Assert.Contains("CoLA/train.tsv", e.Message);
    }
}
