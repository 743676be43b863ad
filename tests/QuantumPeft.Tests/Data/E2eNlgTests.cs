using QuantumPeft.Data;

namespace QuantumPeft.Tests.Data;

public sealed class E2eNlgTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "qpeft-e2e-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, true); }

    // The challenge's CSV layout: a header mr,ref; fields quoted because MRs contain commas; a reference with a quote.
    const string Train = "mr,ref\r\n" +
        "\"name[The Vaults], eatType[pub], priceRange[more than £30]\",\"The Vaults pub, near Café Adriatic, is expensive.\"\r\n" +
        "\"name[The Vaults], eatType[pub], priceRange[more than £30]\",\"An \"\"expensive\"\" pub: The Vaults.\"\r\n" +
        "\"name[Loch Fyne], food[Japanese]\",Loch Fyne serves Japanese food.\r\n";

    void Write(string name, string text) { Directory.CreateDirectory(_dir); File.WriteAllText(Path.Combine(_dir, name), text); }

    [Fact]
    public void The_challenge_files_read_as_prompts_with_grouped_references()
    {
        foreach (var f in E2eNlg.Files) Write(f, Train);
        var task = E2eNlg.Load(_dir);
        Assert.Equal("e2e", task.Name);
        Assert.Equal(3, task.Train.Count);
        Assert.Equal("name : The Vaults | eatType : pub | priceRange : more than £30 ||", task.Train[0].Prompt);
        Assert.Equal(" The Vaults pub, near Café Adriatic, is expensive.", task.Train[0].Completion);
        Assert.Equal(" An \"expensive\" pub: The Vaults.", task.Train[1].Completion);
        Assert.Equal(" Loch Fyne serves Japanese food.", task.Train[2].Completion);
        var groups = GenerationTask.Grouped(task.Test);
        Assert.Equal(2, groups.Count);
        Assert.Equal(2, groups[0].References.Count);
        Assert.Equal(["bleu", "nist", "meteor", "rouge_l", "cider"], task.MetricNames);
    }

    [Fact]
    public void Bad_folders_and_files_are_named()
    {
        Assert.Contains("--data-dir", Assert.Throws<ArgumentException>(() => E2eNlg.Load(null)).Message);
        Assert.Contains("does not exist", Assert.Throws<DirectoryNotFoundException>(() => E2eNlg.Load(Path.Combine(_dir, "none"))).Message);
        Write("trainset.csv", Train);
        Assert.Contains("devset.csv", Assert.Throws<FileNotFoundException>(() => E2eNlg.Load(_dir)).Message);
        Write("cols.csv", "meaning,text\n\"a[b]\",c\n");
        Assert.Contains("expected 'mr' and 'ref'", Assert.Throws<InvalidDataException>(() => E2eNlg.ReadFile(Path.Combine(_dir, "cols.csv"))).Message);
        Write("empty-ref.csv", "mr,ref\n\"name[A]\",\"  \"\n");
        Assert.Contains("row 2 has an empty ref", Assert.Throws<InvalidDataException>(() => E2eNlg.ReadFile(Path.Combine(_dir, "empty-ref.csv"))).Message);
        Write("quote.csv", "mr,ref\n\"name[A],x\n");
        Assert.Contains("never closed", Assert.Throws<InvalidDataException>(() => E2eNlg.ReadFile(Path.Combine(_dir, "quote.csv"))).Message);
        Write("mr.csv", "mr,ref\nname A,text\n");
        Assert.Contains("key[value]", Assert.Throws<InvalidDataException>(() => E2eNlg.ReadFile(Path.Combine(_dir, "mr.csv"))).Message);
    }
}
