using QuantumPeft.Models.Bert;
using QuantumPeft.Tests.Models;

namespace QuantumPeft.Tests.Models.Bert;

[Collection("MiniLM")]
public sealed class BertTextEncoderTests(MiniLmFixture minilm)
{
    static long[] Row(TorchSharp.torch.Tensor t, int row) => t[row].data<long>().ToArray();

    [Theory]
    [InlineData("hello world", new long[] { 101, 7592, 2088, 102 })]
    [InlineData("Hello, World!", new long[] { 101, 7592, 1010, 2088, 999, 102 })]
    [InlineData("The quick brown fox.", new long[] { 101, 1996, 4248, 2829, 4419, 1012, 102 })]
    [InlineData("I love you", new long[] { 101, 1045, 2293, 2017, 102 })]
    public void IdsAreTheBertUncasedIds(string text, long[] ids)
    {
        using var batch = minilm.Text.Encode([text]);
        Assert.Equal(ids, Row(batch.InputIds, 0));
        Assert.All(Row(batch.AttentionMask, 0), m => Assert.Equal(1, m));
        Assert.All(Row(batch.TokenTypeIds, 0), m => Assert.Equal(0, m));
    }

    [Fact]
    public void LowerCasingStripsAccentsAsTransformersDoes()
    {
        using var a = minilm.Text.Encode(["Café Déjà Vu"]);
        using var b = minilm.Text.Encode(["cafe deja vu"]);
        Assert.Equal(Row(b.InputIds, 0), Row(a.InputIds, 0));
        Assert.True(minilm.Text.LowerCase);
    }

    [Fact]
    public void PairsGetSeparatorsAndSegmentIds()
    {
        using var batch = minilm.Text.Encode(["hello world"], ["the quick brown fox"]);
        Assert.Equal(new long[] { 101, 7592, 2088, 102, 1996, 4248, 2829, 4419, 102 }, Row(batch.InputIds, 0));
        Assert.Equal(new long[] { 0, 0, 0, 0, 1, 1, 1, 1, 1 }, Row(batch.TokenTypeIds, 0));
    }

    [Fact]
    public void PairsTruncateTheLongerSideFirst()
    {
        using var batch = minilm.Text.Encode(["hello world"], ["the quick brown fox"], maxLength: 7);
        Assert.Equal(new long[] { 101, 7592, 2088, 102, 1996, 4248, 102 }, Row(batch.InputIds, 0));
        using var even = minilm.Text.Encode(["the quick brown fox"], ["hello world"], maxLength: 6);
        Assert.Equal(new long[] { 101, 1996, 4248, 102, 7592, 102 }, Row(even.InputIds, 0));
    }

    [Fact]
    public void SinglesTruncateToMaxLengthKeepingSep()
    {
        using var batch = minilm.Text.Encode(["the quick brown fox"], maxLength: 4);
        Assert.Equal(new long[] { 101, 1996, 4248, 102 }, Row(batch.InputIds, 0));
    }

    [Fact]
    public void BatchesPadToTheLongestRowNotToMaxLength()
    {
        using var batch = minilm.Text.Encode(["hello world", "the quick brown fox"], maxLength: 64);
        Assert.Equal(new long[] { 2, 6 }, batch.InputIds.shape);
        Assert.Equal(new long[] { 101, 7592, 2088, 102, 0, 0 }, Row(batch.InputIds, 0));
        Assert.Equal(new long[] { 1, 1, 1, 1, 0, 0 }, Row(batch.AttentionMask, 0));
        Assert.Equal(TorchSharp.torch.ScalarType.Int64, batch.AttentionMask.dtype);
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        Assert.Equal("maxLength", Assert.Throws<ArgumentOutOfRangeException>(() => minilm.Text.Encode(["a"], ["b"], maxLength: 3)).ParamName);
        Assert.Equal("pairs", Assert.Throws<ArgumentException>(() => minilm.Text.Encode(["a", "b"], ["c"])).ParamName);
        var e = Assert.Throws<FileNotFoundException>(() => BertTextEncoder.FromFolder(Path.GetTempPath()));
        Assert.Contains("vocab.txt", e.Message);
    }
}
