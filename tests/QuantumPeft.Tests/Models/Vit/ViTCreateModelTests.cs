using QuantumPeft.Cli.Commands;
using QuantumPeft.Models.Vision;
using QuantumPeft.Models.Vit;
using QuantumPeft.Tests.Cli;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Vit;

/// <summary>qpeft create-model --type vit writes a random-weight ViT folder that the image registry loads.</summary>
public sealed class ViTCreateModelTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("qpeft-vit-create-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_written_vit_folder_loads_with_the_sizes_asked_for()
    {
        var folder = Path.Combine(_dir, "vit");
        var (code, output) = CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", "vit", "--layers", "2", "--hidden", "24",
            "--heads", "3", "--image-size", "12", "--patch-size", "3", "--labels", "7", "--seed", "2", "--out", folder);
        Assert.Equal(0, code);
        Assert.Contains("2 layers", output);
        var (model, report) = ImageClassifiers.LoadWithReport(folder, new ImageLoadOptions(Log: _ => { }));
        using var _ = model;
        Assert.True(report.IsClean);
        Assert.Empty(report.NewlyInitialized);
        var vit = Assert.IsType<ViTForImageClassification>(model);
        Assert.Equal((2, 24, 3, 12, 3, 96), (vit.Config.NumHiddenLayers, vit.Config.HiddenSize, vit.Config.NumAttentionHeads, vit.Config.ImageSize, vit.Config.PatchSize, vit.Config.IntermediateSize));
        Assert.Equal(7, model.NumLabels);
        // The count printed is the count loaded: 16 patches + [CLS] positions, two blocks, the head.
        long expected = 24 + 17 * 24 + (3 * 3 * 3 * 24 + 24) + 2 * (4 * (24 * 24 + 24) + 24 * 96 + 96 + 96 * 24 + 24 + 4 * 24) + 2 * 24 + 7 * 24 + 7;
        Assert.Equal(expected, model.Module.parameters().Sum(p => p.numel()));
        Assert.Contains($"{expected:N0} parameters", output);
        using var noGrad = no_grad();
        using var logits = model.Logits(randn(2, 3, 12, 12));
        Assert.Equal(new long[] { 2, 7 }, logits.shape);

        var e = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", "vit",
            "--image-size", "10", "--patch-size", "4", "--out", Path.Combine(_dir, "odd")));
        Assert.Contains("--image-size 10 must be a positive multiple of --patch-size 4", e.Message);
    }
}
