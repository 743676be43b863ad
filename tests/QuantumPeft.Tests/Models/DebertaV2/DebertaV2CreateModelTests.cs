using QuantumPeft.Cli.Commands;
using QuantumPeft.Models.DebertaV2;
using QuantumPeft.Tests.Cli;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.DebertaV2;

/// <summary>qpeft create-model --type deberta-v2 writes a DeBERTa-v3-layout base folder that the classifier loader reads.</summary>
public sealed class DebertaV2CreateModelTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-deberta-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WrittenFolderHasTheShapeAskedForAndLoadsAsAClassifier()
    {
        var folder = Path.Combine(_dir, "v3");
        var (code, output) = CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", "deberta-v2", "--layers", "2", "--hidden", "32",
            "--heads", "4", "--vocab", "50", "--positions", "64", "--out", folder);
        Assert.Equal(0, code);
        Assert.Contains("deberta-v2, 2 layers", output);
        var config = HfDebertaV2Loader.LoadConfig(folder);
        Assert.Equal((2, 32, 4, 50, 32, 128), (config.NumHiddenLayers, config.HiddenSize, config.NumAttentionHeads, config.VocabSize, config.PositionBuckets, config.IntermediateSize));
        Assert.True(config.RelativeAttention && config.ShareAttKey && config.C2P && config.P2C && !config.PositionBiasedInput);
        var (model, report) = HfDebertaV2Loader.LoadForSequenceClassification(folder, 2, log: _ => { });
        using var _ = model;
        Assert.True(report.IsClean);
        Assert.Equal(4, report.NewlyInitialized.Count);
        model.eval();
        // No absolute positions: a sequence longer than max_position_embeddings still runs.
        using var ids = randint(1, 50, [1, 80], dtype: ScalarType.Int64);
        using var logits = model.call(ids, null, null);
        Assert.Equal([1L, 2], logits.shape);
        Assert.False(logits.isnan().any().item<bool>());
    }
}
