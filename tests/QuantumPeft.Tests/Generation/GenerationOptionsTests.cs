using QuantumPeft.Generation;
using QuantumPeft.Models.Decoder;

namespace QuantumPeft.Tests.Generation;

public sealed class GenerationOptionsTests
{
    public static TheoryData<GenerationOptions, string> BadOptions => new()
    {
        { new GenerationOptions(TopP: 0), "--top-p" },
        { new GenerationOptions(TopP: 1.5), "--top-p" },
        { new GenerationOptions(NumBeams: 0), "--num-beams" },
        { new GenerationOptions(DoSample: true, Temperature: 0), "--temperature" },
        { new GenerationOptions(DoSample: true, Temperature: -1), "--temperature" },
        { new GenerationOptions(NumBeams: 2, NumReturnSequences: 3), "--num-return-sequences" },
        { new GenerationOptions(NumReturnSequences: 2), "--num-return-sequences" },
        { new GenerationOptions(MaxNewTokens: 5, MinNewTokens: 6), "--min-new-tokens" },
        { new GenerationOptions(MaxNewTokens: 0), "--max-new-tokens" },
        { new GenerationOptions(TopK: -1), "--top-k" },
        { new GenerationOptions(RepetitionPenalty: 0), "--repetition-penalty" },
        { new GenerationOptions(NoRepeatNgramSize: -1), "--no-repeat-ngram-size" },
        { new GenerationOptions(LengthPenalty: double.NaN), "--length-penalty" },
        { new GenerationOptions(PadTokenId: -1), "--pad-token-id" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void BadOptionsThrowNamingTheOption(GenerationOptions options, string option)
    {
        var e = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains(option, e.Message);
        using var model = new TinyCausalLM();
        using var ids = TorchSharp.torch.tensor(new long[] { 1, 2 }).unsqueeze(0);
        Assert.Contains(option, Assert.Throws<ArgumentException>(() => TextGenerator.Generate(model, ids, null, options)).Message);
    }

    [Fact]
    public void GoodOptionsPass()
    {
        new GenerationOptions().Validate();
        new GenerationOptions(Temperature: 0).Validate();   // temperature only matters when sampling
        new GenerationOptions(NumBeams: 4, NumReturnSequences: 4, DoSample: true, TopP: 1).Validate();
        new GenerationOptions(DoSample: true, NumReturnSequences: 3).Validate();
    }

    [Fact]
    public void EarlyStoppingParsesTransformersValues()
    {
        Assert.Equal(BeamEarlyStopping.Heuristic, GenerationOptions.ParseEarlyStopping("false"));
        Assert.Equal(BeamEarlyStopping.AsSoonAsComplete, GenerationOptions.ParseEarlyStopping("True"));
        Assert.Equal(BeamEarlyStopping.Never, GenerationOptions.ParseEarlyStopping("never"));
        Assert.Contains("--early-stopping", Assert.Throws<ArgumentException>(() => GenerationOptions.ParseEarlyStopping("sometimes")).Message);
    }

    [Fact]
    public void PadFallsBackToEosAndModelTokensFillTheGaps()
    {
        Assert.Equal(7, new GenerationOptions(EosTokenIds: [7, 8]).EffectivePadTokenId);
        Assert.Equal(2, new GenerationOptions(EosTokenIds: [7], PadTokenId: 2).EffectivePadTokenId);
        Assert.Null(new GenerationOptions().EffectivePadTokenId);
        var info = new CausalLMInfo("gpt2", 10, 1, null, 0, [9], null);
        var filled = new GenerationOptions().WithSpecialTokensOf(info);
        Assert.Equal(new[] { 9 }, filled.Eos);
        Assert.Equal(9, filled.EffectivePadTokenId);
        Assert.Equal(new[] { 4 }, new GenerationOptions(EosTokenIds: [4]).WithSpecialTokensOf(info).Eos);
    }
}
