using QuantumPeft.Data;

namespace QuantumPeft.Tests.Data;

/// <summary>The gloss task from the real WordNet 3.0 (fetched once into the cache).</summary>
public sealed class WordNetGlossTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "qpeft-gloss-" + Guid.NewGuid().ToString("N"));
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, true); }

    [Fact]
    public void Fixed_seeded_splits_of_real_synsets()
    {
        var task = WordNetGloss.Load();
        Assert.Equal("gloss", task.Name);
        Assert.Equal((3000, 300, 300), (task.Train.Count, task.Validation.Count, task.Test.Count));
        Assert.Equal(3600, task.Train.Concat(task.Validation).Concat(task.Test).Select(p => p.Prompt).Distinct().Count());
        Assert.All(task.Test, p =>
        {
            Assert.Matches(@"^lemma : .+ \| pos : (noun|verb) \| hypernyms : .+ \|\|$", p.Prompt);
            Assert.StartsWith(" ", p.Completion);
            Assert.DoesNotContain("\"", p.Completion);   // examples are left out
        });
        var again = WordNetGloss.Load();
        Assert.Equal(task.Test.Select(p => p.Prompt), again.Test.Select(p => p.Prompt));
        Assert.Equal(E2eNlg.MetricNames, task.MetricNames);
    }

    [Fact]
    public void A_hand_written_data_file_gives_the_expected_pair()
    {
        Directory.CreateDirectory(_dir);
        // Two noun synsets in data.noun's layout: "dog" with a hypernym pointer (@) to "canine"; its gloss has an example.
        var lines = new List<string>
        {
            "  1 This software and database is being provided to you, the LICENSEE, by",
            "02083346 05 n 02 canine 0 canid 0 001 @ 02075296 n 0000 | any of various fissiped mammals with nonretractile claws",
            "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 002 @ 02083346 n 0000 ~ 01322604 n 0000 | a member of the genus Canis that has been domesticated by man; \"the dog barked all night\"",
        };
        File.WriteAllLines(Path.Combine(_dir, "data.noun"), lines);
        File.WriteAllLines(Path.Combine(_dir, "data.verb"), ["  1 licence"]);
        var e = Assert.Throws<InvalidDataException>(() => WordNetGloss.FromFolder(_dir));
        Assert.Contains("only 1 usable synsets", e.Message);   // "canine" has no known hypernym here; "dog" is the one pair
        File.Delete(Path.Combine(_dir, "data.verb"));
        Assert.Contains("data.verb", Assert.Throws<FileNotFoundException>(() => WordNetGloss.FromFolder(_dir)).Message);
    }
}
