using System.Text.Json;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Data.Images;
using QuantumPeft.Tests.Cli;
using QuantumPeft.Tests.Data.Images;
using QuantumPeft.Training;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Training;

/// <summary>qpeft train, eval, logits, merge and inspect on a tiny image model and a folder of PNGs, run in-process.</summary>
public sealed class ImageCommandsTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-image-cli-" + Guid.NewGuid().ToString("N"));

    public ImageCommandsTests()
    {
        Directory.CreateDirectory(dir);
        TinyImageModel.Register();
    }

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    (string Model, string Images) Setup()
    {
        var model = TinyImageModel.WriteFolder(Path.Combine(dir, "tiny"), numLabels: 10, channels: 3, imageSize: 8, hidden: 16, seed: 11);
        var images = Path.Combine(dir, "images");
        var task = ImageClassifierTrainingTests.HalvesTask(train: 40, eval: 0);
        for (int i = 0; i < task.Train.Count; i++)
            ImageFiles.WritePng(task.Train[i], Path.Combine(images, task.ClassNames[task.Train[i].Label], $"{i:D3}.png"));
        return (model, images);
    }

    static float[] Row(JsonElement logits, int row) => logits[row].EnumerateArray().Select(v => v.GetSingle()).ToArray();

    [Fact]
    public void TrainEvalLogitsMergeAndInspectAnImageModel()
    {
        var (model, images) = Setup();
        var outDir = Path.Combine(dir, "run");
        var (code, trainOutput) = CliCommandTests.Run(new TrainCommand(), "train", "--task", "images", "--data-dir", images, "--model", model,
            "--method", "lora", "--rank", "2", "--epochs", "3", "--batch-size", "4", "--lr", "0.01", "--head-lr", "0.05", "--augment", "flip", "--out", outDir);
        Assert.Equal(0, code);
        Assert.Contains("images (32/4/4 train/validation/test images, 2 classes)", trainOutput);
        Assert.Contains("defaults (no preprocessor_config.json: 8 x 8", trainOutput);
        var adapter = Path.Combine(outDir, "adapter");
        using var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")));
        var testAccuracy = results.RootElement.GetProperty("test_metric").GetDouble();
        Assert.Equal(8, results.RootElement.GetProperty("image_size").GetInt32());
        Assert.Equal(24, results.RootElement.GetProperty("steps").GetInt32());   // 32 / 4 x 3

        // eval reads the same test split and the saved adapter: the same accuracy as training reported.
        var metricsFile = Path.Combine(dir, "metrics.json");
        var (evalCode, evalOutput) = CliCommandTests.Run(new EvalCommand(), "eval", "--task", "images", "--data-dir", images, "--model", model,
            "--adapter", adapter, "--split", "both", "--out", metricsFile);
        Assert.Equal(0, evalCode);
        Assert.Contains("test (4 examples): accuracy", evalOutput);
        using (var metrics = JsonDocument.Parse(File.ReadAllText(metricsFile)))
            Assert.Equal(testAccuracy, metrics.RootElement.GetProperty("metrics").GetProperty("test").GetProperty("accuracy").GetDouble(), 1e-12);

        // logits --image runs the processor; --inputs pixel_values skips it; both equal the library's forward pass.
        var png = Directory.EnumerateFiles(Path.Combine(images, "right")).Order().First();
        var (logitsCode, logitsOutput) = CliCommandTests.Run(new LogitsCommand(), "logits", "--model", model, "--adapter", adapter, "--image", png, "--json");
        Assert.Equal(0, logitsCode);
        using var fromImage = JsonDocument.Parse(logitsOutput);
        var imageRow = Row(fromImage.RootElement.GetProperty("logits"), 0);
        Assert.Equal(2, imageRow.Length);
        float[] expected, pixelList;
        using (var direct = ImageClassifierFineTuner.FromAdapter(model, adapter))
        {
            direct.SetTraining(false);
            using var _ = no_grad();
            var example = ImageFiles.Read(png);
            expected = direct.Logits([example]).data<float>().ToArray();
            pixelList = direct.PixelValues([example]).data<float>().ToArray();
        }
        for (int i = 0; i < 2; i++) Assert.Equal(expected[i], imageRow[i], 1e-5f);
        var nested = Enumerable.Range(0, 3).Select(c => Enumerable.Range(0, 8).Select(y => Enumerable.Range(0, 8).Select(x => pixelList[c * 64 + y * 8 + x]).ToArray()).ToArray()).ToArray();
        var inputs = Path.Combine(dir, "pixels.json");
        File.WriteAllText(inputs, JsonSerializer.Serialize(new { pixel_values = new[] { nested, nested } }));
        var (inputsCode, inputsOutput) = CliCommandTests.Run(new LogitsCommand(), "logits", "--model", model, "--adapter", adapter, "--inputs", inputs, "--json");
        Assert.Equal(0, inputsCode);
        using var fromPixels = JsonDocument.Parse(inputsOutput);
        for (int row = 0; row < 2; row++)
            for (int i = 0; i < 2; i++) Assert.Equal(expected[i], Row(fromPixels.RootElement.GetProperty("logits"), row)[i], 1e-5f);

        // merge writes a plain folder that evaluates to the same accuracy without the adapter; inspect describes it.
        var merged = Path.Combine(dir, "merged");
        var (mergeCode, mergeOutput) = CliCommandTests.Run(new MergeCommand(), "merge", "--model", model, "--adapter", adapter, "--out", merged);
        Assert.Equal(0, mergeCode);
        Assert.Contains("into 2 layers", mergeOutput);   // embed and dense
        Assert.True(File.Exists(Path.Combine(merged, ImageProcessor.FileName)));
        var (mergedEvalCode, mergedEval) = CliCommandTests.Run(new EvalCommand(), "eval", "--task", "images", "--data-dir", images, "--model", merged);
        Assert.Equal(0, mergedEvalCode);
        Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"accuracy {testAccuracy:F4}"), mergedEval);
        var (inspectCode, inspectOutput) = CliCommandTests.Run(new InspectCommand(), "inspect", merged);
        Assert.Equal(0, inspectCode);
        Assert.Contains("model_type: tiny-image", inspectOutput);
        Assert.Contains("classes: 2 || channels: 3 || image size: 8 || head modules: classifier", inspectOutput);
        Assert.Contains("| classifier | 2 | 34 |", inspectOutput);
        var (adapterInspectCode, adapterInspect) = CliCommandTests.Run(new InspectCommand(), "inspect", adapter);
        Assert.Equal(0, adapterInspectCode);
        Assert.Contains("base_model.model.classifier.weight", adapterInspect);
    }

    [Fact]
    public void Cifar10BatchesTrainOnSeededSubsetsWithCropAndFlip()
    {
        // CIFAR-10's binary layout: a label byte, then the R, G and B planes of 32 x 32; class 0 dark, class 1 bright.
        var cifar = Path.Combine(dir, "cifar");
        Directory.CreateDirectory(cifar);
        var rng = new Random(3);
        byte[] Records(int n) => Enumerable.Range(0, n).SelectMany(i =>
            new[] { (byte)(i % 2) }.Concat(Enumerable.Range(0, 3072).Select(_ => (byte)((i % 2 == 0 ? 60 : 190) + rng.Next(-50, 51))))).ToArray();
        foreach (var f in Cifar10.TrainFiles) File.WriteAllBytes(Path.Combine(cifar, f), Records(8));
        File.WriteAllBytes(Path.Combine(cifar, Cifar10.TestFile), Records(10));
        File.WriteAllText(Path.Combine(cifar, Cifar10.MetaFile), "dark\nbright\n");
        var model = TinyImageModel.WriteFolder(Path.Combine(dir, "tiny32"), numLabels: 10, channels: 3, imageSize: 32, hidden: 8, seed: 4);
        var outDir = Path.Combine(dir, "cifar-run");
        var (code, output) = CliCommandTests.Run(new TrainCommand(), "train", "--task", "cifar10", "--data-dir", cifar, "--model", model, "--method", "lora",
            "--rank", "2", "--epochs", "2", "--batch-size", "4", "--train-limit", "20", "--eval-limit", "6", "--augment", "crop,flip", "--out", outDir);
        Assert.Equal(0, code);
        // 40 training records: 4 held out for validation, 36 left, 20 kept; validation 4 (under the limit); test 10 -> 6.
        Assert.Contains("cifar10 (20/4/6 train/validation/test images, 2 classes)", output);
        Assert.Contains("augmentation: crop True (padding 4), flip True", output);
        using var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")));
        Assert.Equal(10, results.RootElement.GetProperty("steps").GetInt32());
        Assert.Equal(20, results.RootElement.GetProperty("train_examples").GetInt32());
        Assert.Equal(2, ImageClassifierFineTuner.ReadAdapterNumLabels(Path.Combine(outDir, "adapter")));
        var (evalCode, evalOutput) = CliCommandTests.Run(new EvalCommand(), "eval", "--task", "cifar10", "--data-dir", cifar, "--model", model,
            "--adapter", Path.Combine(outDir, "adapter"), "--eval-limit", "6");
        Assert.Equal(0, evalCode);
        Assert.Contains("test (6 examples): accuracy " + results.RootElement.GetProperty("test_metric").GetDouble().ToString("F4", System.Globalization.CultureInfo.InvariantCulture), evalOutput);
    }

    [Fact]
    public void ARandomViTTrainsWithLoraAndItsMergeGivesTheAdaptersLogits()
    {
        var (_, images) = Setup();
        var vit = Path.Combine(dir, "vit");
        Assert.Equal(0, CliCommandTests.Run(new CreateModelCommand(), "create-model", "--type", "vit", "--image-size", "16", "--patch-size", "4",
            "--hidden", "32", "--layers", "1", "--heads", "2", "--labels", "10", "--out", vit).Code);
        var outDir = Path.Combine(dir, "vit-run");
        var (code, output) = CliCommandTests.Run(new TrainCommand(), "train", "--task", "images", "--data-dir", images, "--model", vit,
            "--method", "lora", "--rank", "2", "--epochs", "1", "--batch-size", "8", "--out", outDir);
        Assert.Equal(0, code);
        Assert.Contains("(vit), method lora", output);
        Assert.Contains("16 x 16", output);   // no preprocessor_config.json: the model's image size
        using var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")));
        Assert.Equal("query,value", results.RootElement.GetProperty("targets").GetString());   // peft's ViT recipe
        Assert.Equal(2.0, results.RootElement.GetProperty("alpha").GetDouble());               // alpha = rank

        var adapter = Path.Combine(outDir, "adapter");
        var merged = Path.Combine(dir, "vit-merged");
        Assert.Equal(0, CliCommandTests.Run(new MergeCommand(), "merge", "--model", vit, "--adapter", adapter, "--out", merged).Code);
        var png = Directory.EnumerateFiles(Path.Combine(images, "left")).Order().First();
        using var a = JsonDocument.Parse(CliCommandTests.Run(new LogitsCommand(), "logits", "--model", vit, "--adapter", adapter, "--image", png, "--json").Output);
        using var m = JsonDocument.Parse(CliCommandTests.Run(new LogitsCommand(), "logits", "--model", merged, "--image", png, "--json").Output);
        var (ra, rm) = (Row(a.RootElement.GetProperty("logits"), 0), Row(m.RootElement.GetProperty("logits"), 0));
        Assert.Equal(2, ra.Length);
        for (int i = 0; i < 2; i++) Assert.Equal(ra[i], rm[i], 1e-5f);
    }

    [Fact]
    public void HeadOnlyTrainingSavesTheModelAndBadInputsGetClearErrors()
    {
        var (model, images) = Setup();
        var outDir = Path.Combine(dir, "head");
        var (code, _) = CliCommandTests.Run(new TrainCommand(), "train", "--task", "images", "--data-dir", images, "--model", model,
            "--method", "head", "--epochs", "1", "--batch-size", "8", "--image-size", "8", "--out", outDir);
        Assert.Equal(0, code);
        Assert.True(File.Exists(Path.Combine(outDir, "model", "config.json")));

        var wrongDir = Path.Combine(dir, "missing");
        var e = Assert.Throws<DirectoryNotFoundException>(() => CliCommandTests.Run(new TrainCommand(), "train", "--task", "images", "--data-dir", wrongDir, "--model", model, "--out", outDir));
        Assert.Contains(wrongDir, e.Message);
        var text = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new TrainCommand(), "train", "--task", "sentiment", "--model", model, "--out", outDir));
        Assert.Contains("is an image classifier", text.Message);
        var both = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new LogitsCommand(), "logits", "--model", model, "--json"));
        Assert.Contains("--image FILE", both.Message);
        var corrupt = Path.Combine(dir, "corrupt.jpg");
        File.WriteAllText(corrupt, "not a jpeg");
        var bad = Assert.Throws<InvalidDataException>(() => CliCommandTests.Run(new LogitsCommand(), "logits", "--model", model, "--image", corrupt));
        Assert.Contains(corrupt, bad.Message);
        var wrongLabels = Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new EvalCommand(), "eval", "--task", "images", "--data-dir", images, "--model", model));
        Assert.Contains("10 classes", wrongLabels.Message);
    }
}
