using Google.Protobuf;
using Onnx;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Formats.Onnx;
using QuantumPeft.Models.ResNet;
using QuantumPeft.Tests.Cli;

namespace QuantumPeft.Tests.Models.ResNet;

public sealed class OnnxResNetReaderTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-onnx-resnet-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    static InvalidDataException ReadFails(ModelProto model)
    {
        using var stream = new MemoryStream(model.ToByteArray());
        return Assert.Throws<InvalidDataException>(() => OnnxResNetReader.Read(stream, "changed.onnx"));
    }

    [Fact]
    public void WhatTransformersResNetCannotExpressFailsTheImportByName()
    {
        using (var junk = new MemoryStream([1, 2, 3, 4, 5]))
            Assert.Contains("junk.onnx: not an ONNX model", Assert.Throws<InvalidDataException>(() => OnnxResNetReader.Read(junk, "junk.onnx")).Message);

        ModelProto original;
        using (var stream = BundledResNet18.Open(BundledResNet18.OnnxPath)) original = ModelProto.Parser.ParseFrom(stream);

        // A BatchNorm epsilon transformers' BatchNorm2d does not have.
        var eps = original.Clone();
        var norm = eps.Graph.Node.First(n => n.OpType == "BatchNormalization");
        norm.Attribute.First(a => a.Name == "epsilon").F = 1e-3f;
        var e = ReadFails(eps);
        Assert.Contains("epsilon 0.001", e.Message);
        Assert.Contains("resnet.embedder.embedder", e.Message);

        // An initializer nothing reads would be silently dropped: it is named instead.
        var extra = original.Clone();
        extra.Graph.Initializer.Add(new TensorProto { Name = "Stray1", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 1 }, FloatData = { 0.5f } });
        Assert.Contains("1 initializers are not ResNet weights: Stray1", ReadFails(extra).Message);

        // A convolution padded differently from PyTorch's kernel / 2.
        var pads = original.Clone();
        var conv = pads.Graph.Node.Where(n => n.OpType == "Conv").ElementAt(1);
        var attr = conv.Attribute.First(a => a.Name == "pads");
        attr.Ints.Clear();
        attr.Ints.Add([0, 0, 0, 0]);
        Assert.Contains("expected 1 before each axis", ReadFails(pads).Message);

        // The network graph is not a preprocessing graph.
        using (var stream = BundledResNet18.Open(BundledResNet18.OnnxPath))
            Assert.Contains("expected Split (axis 1)", Assert.Throws<InvalidDataException>(() => OnnxResNetReader.ReadPreprocessing(stream, "ResNet18.onnx")).Message);
    }

    [Fact]
    public void ImportCommandWritesTheFolder()
    {
        var (code, output) = CliCommandTests.Run(new ImportCommand(), "import", "resnet18", "--out", dir);
        Assert.Equal(0, code);
        Assert.Contains("132 tensors, 15,897,152 parameters", output);
        Assert.Contains("110 ONNX initializers: 110 weights", output);
        foreach (var file in new[] { "config.json", "model.safetensors", "preprocessor_config.json", "qpeft-import.json" })
            Assert.True(File.Exists(Path.Combine(dir, file)), file);

        // A second import into the same, now non-empty, folder needs --force.
        Assert.Contains("--force", Assert.Throws<IOException>(() => CliCommandTests.Run(new ImportCommand(), "import", "resnet18", "--out", dir)).Message);
        Assert.Contains("available: minilm, resnet18", Assert.Throws<ArgumentException>(() => CliCommandTests.Run(new ImportCommand(), "import", "vgg16", "--out", dir)).Message);
    }
}
