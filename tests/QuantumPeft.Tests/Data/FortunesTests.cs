using QuantumPeft.Data;

namespace QuantumPeft.Tests.Data;

public sealed class FortunesTests
{
    [Fact]
    public void Entries_are_the_texts_between_percent_lines_cleaned_and_distinct()
    {
        var dir = Directory.CreateTempSubdirectory("fortunes-");
        try
        {
            var path = Path.Combine(dir.FullName, "science");
            // Overstriking ("_\bx" shows x underlined), tabs, a duplicate, an empty entry and a final entry without '%'.
            File.WriteAllText(path, "First\tline\n  second line\n%\nB_\bo_\bl_\bd word\n%\n%\nFirst line second line\n%\nlast one\n");
            Assert.Equal(["First line second line", "Bold word", "last one"], Fortunes.ReadEntries(path));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void A_missing_category_file_is_named()
    {
        var dir = Directory.CreateTempSubdirectory("fortunes-");
        try
        {
            foreach (var c in Fortunes.Categories.Where(c => c != "law")) File.WriteAllText(Path.Combine(dir.FullName, c), "an entry\n%\n");
            var e = Assert.Throws<FileNotFoundException>(() => Fortunes.FromFolder(dir.FullName));
            Assert.Contains(Path.Combine(dir.FullName, "law"), e.Message);
            File.WriteAllText(Path.Combine(dir.FullName, "law"), "%\n%\n");
            var empty = Assert.Throws<InvalidDataException>(() => Fortunes.FromFolder(dir.FullName));
            Assert.Contains("law", empty.Message);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void The_real_task_has_eight_nearly_balanced_classes_in_a_fixed_split()
    {
        var task = TextTasks.Load("fortunes");
        Assert.Equal(8, task.NumLabels);
        Assert.Equal(1953, task.Train.Count + task.Validation.Count + task.Test.Count);
        Assert.Equal((1368, 293, 292), (task.Train.Count, task.Validation.Count, task.Test.Count));
        var perClass = task.Train.Concat(task.Validation).Concat(task.Test).GroupBy(e => (int)e.Label).ToDictionary(g => Fortunes.Categories[g.Key], g => g.Count());
        Assert.Equal(300, perClass["computers"]);
        Assert.Equal(147, perClass["sports"]);
        // No text is in two splits, and the split is the same on every load.
        var train = task.Train.Select(e => e.Text).ToHashSet();
        Assert.DoesNotContain(task.Test, e => train.Contains(e.Text));
        Assert.Equal(task.Test.Select(e => e.Text), TextTasks.Load("fortunes").Test.Select(e => e.Text));
        Assert.Equal("accuracy", task.MainMetric);
        Assert.Contains("macro_f1", task.MetricNames);
    }
}
