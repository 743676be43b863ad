using System.Text.Json.Nodes;
using Onnx;
using static TorchSharp.torch;

namespace QuantumPeft.Formats.Onnx;

/// <summary>A ResNet recovered from an ONNX graph: Hugging Face weights and config.json, and what each initializer became.</summary>
/// <param name="Weights">Tensors under Hugging Face's ResNetModel names with the "resnet." prefix (resnet.embedder.embedder.convolution.weight, ...), including the num_batches_tracked buffers (0: a graph does not record them).</param>
/// <param name="Config">A config.json object (model_type resnet; sizes, depths, layer type and downsampling read from the graph).</param>
/// <param name="Accounting">Every initializer of the graph with the weight it became.</param>
/// <param name="InputName">The graph's image input ([1, C, H, W]).</param>
/// <param name="OutputName">The graph's output: the globally average-pooled features [1, hidden_sizes[-1], 1, 1].</param>
/// <param name="ImageSize">The side of the graph's (square) input.</param>
public sealed record OnnxResNetImport(Dictionary<string, Tensor> Weights, JsonObject Config, IReadOnlyDictionary<string, string> Accounting,
    string InputName, string OutputName, int ImageSize);

/// <summary>What an image-preprocessing graph (Split into channels, Concat in another order, Sub a mean image) does to its input.</summary>
/// <param name="ChannelOrder">Channel j of the output is channel ChannelOrder[j] of the input (RGB in, BGR out: [2, 1, 0]).</param>
/// <param name="MeanImage">The subtracted mean [C, H, W], in the output's channel order.</param>
/// <param name="ChannelMean">The mean image's average over each channel, in the input's channel order.</param>
/// <param name="MaxDeviation">The largest |mean image - its channel average|: what a per-channel mean leaves out.</param>
/// <param name="InputName">The graph's input (the raw image, [1, C, H, W]).</param>
/// <param name="OutputName">The graph's output (what the model graph takes).</param>
public sealed record OnnxImagePreprocessing(IReadOnlyList<int> ChannelOrder, Tensor MeanImage, IReadOnlyList<double> ChannelMean, double MaxDeviation,
    string InputName, string OutputName) : IDisposable
{
    public void Dispose() => MeanImage.Dispose();
}

/// <summary>Reads a ResNet exported to ONNX (CNTK's or PyTorch's: Conv, BatchNormalization, Relu, Add, MaxPool, average pool) into Hugging Face weights.</summary>
/// <remarks>
/// Initializer names carry no meaning (CNTK calls them Parameter91, Constant98), so the names come from walking the
/// graph from its input: the stem (Conv, BatchNormalization, Relu, MaxPool), then residual blocks, each a chain of
/// Conv, BatchNormalization, [Relu] ending in an Add with either the block's input (identity shortcut) or a 1x1 Conv
/// and BatchNormalization of it (projection shortcut), then a Relu. A block with a projection starts a new stage, as in
/// transformers (where only the first layer of a stage changes width or stride); two convolutions per block make the
/// basic layer type, three the bottleneck. Everything transformers' ResNet cannot express (a bias on a convolution, a
/// BatchNorm epsilon other than 1e-5, grouped or dilated convolutions, padding whose output differs from PyTorch's
/// kernel / 2, an unvisited node or an unused initializer) fails the import, so nothing is silently dropped.
/// </remarks>
public static class OnnxResNetReader
{
    const double BatchNormEps = 1e-5;

    /// <summary>Parses an ONNX ResNet and recovers its Hugging Face weights and config; <paramref name="source"/> names it in errors.</summary>
    public static OnnxResNetImport Read(Stream onnx, string source = "model.onnx")
    {
        var walk = new Walk(Parse(onnx, source), source);
        try { return walk.Run(); }
        catch
        {
            foreach (var t in walk.Weights.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>Parses a preprocessing graph of the form Split(axis 1) -> Concat(axis 1) -> Sub(mean image), as ML.NET's ResNetPreprocess.onnx.</summary>
    public static OnnxImagePreprocessing ReadPreprocessing(Stream onnx, string source = "preprocess.onnx")
    {
        var graph = Parse(onnx, source);
        var inits = graph.Initializer.ToDictionary(t => t.Name);
        string Fail(string what) => throw new InvalidDataException($"{source}: {what}; expected Split (axis 1) -> Concat (axis 1) -> Sub (mean image).");
        if (graph.Node.Count != 3) Fail($"{graph.Node.Count} nodes");
        var (split, concat, sub) = (graph.Node[0], graph.Node[1], graph.Node[2]);
        if (split.OpType != "Split" || concat.OpType != "Concat" || sub.OpType != "Sub") Fail($"nodes {split.OpType}, {concat.OpType}, {sub.OpType}");
        if (Int(split, "axis", 0) != 1 || Int(concat, "axis", 0) != 1) Fail("a split or concat not over channels");
        var input = graph.Input.Single(i => !inits.ContainsKey(i.Name)).Name;
        if (split.Input[0] != input) Fail("the Split does not read the graph input");
        var order = concat.Input.Select(i => split.Output.IndexOf(i)).ToList();
        if (order.Count != split.Output.Count || order.Any(i => i < 0) || order.Distinct().Count() != order.Count) Fail("the Concat is not a reordering of the Split's outputs");
        if (sub.Input[0] != concat.Output[0] || !inits.TryGetValue(sub.Input[1], out var meanProto)) Fail("the Sub does not take a constant from the reordered channels");
        if (graph.Output.Count != 1 || graph.Output[0].Name != sub.Output[0]) Fail("the graph's output is not the Sub's");

        using var raw = OnnxBertReader.ToTensor(meanProto!, source);
        int channels = order.Count;
        if (raw.numel() % channels != 0 || (raw.dim() == 4 && raw.shape[1] != channels) || (raw.dim() == 3 && raw.shape[0] != channels))
            Fail($"a mean of shape [{string.Join(", ", raw.shape)}] for {channels} channels");
        var mean = raw.reshape(channels, -1, raw.dim() >= 2 ? raw.shape[^1] : 1);
        using var perChannel = mean.mean([1, 2]);
        using var deviation = (mean - perChannel.view(channels, 1, 1)).abs().max();
        var channelMean = new double[channels];
        for (int j = 0; j < channels; j++) channelMean[order[j]] = perChannel[j].item<float>();
        return new OnnxImagePreprocessing(order, mean, channelMean, deviation.item<float>(), input, sub.Output[0]);
    }

    /// <summary>
    /// The stem convolution's weight [out, C, k, k] rearranged to take the preprocessing graph's input channels: a model that
    /// reads channel ChannelOrder[j] as its j-th input (BGR from RGB) then reads the raw order itself, exactly.
    /// </summary>
    public static Tensor FoldChannelOrder(Tensor stemWeight, IReadOnlyList<int> channelOrder)
    {
        if (stemWeight.dim() != 4 || stemWeight.shape[1] != channelOrder.Count)
            throw new ArgumentException($"stem weight [{string.Join(", ", stemWeight.shape)}] does not take {channelOrder.Count} channels.", nameof(stemWeight));
        // Input channel i of the folded weight is the original's channel j with channelOrder[j] = i.
        var inverse = new long[channelOrder.Count];
        for (int j = 0; j < channelOrder.Count; j++) inverse[channelOrder[j]] = j;
        using var index = tensor(inverse, device: stemWeight.device);
        return stemWeight.index_select(1, index).contiguous();
    }

    static GraphProto Parse(Stream onnx, string source)
    {
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(onnx); }
        catch (Exception e) when (e is Google.Protobuf.InvalidProtocolBufferException or IOException)
        {
            throw new InvalidDataException($"{source}: not an ONNX model ({e.Message}).", e);
        }
        return model.Graph ?? throw new InvalidDataException($"{source}: the ONNX model has no graph.");
    }

    static long Int(NodeProto node, string name, long fallback) => node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : fallback;

    static long[]? Ints(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.Ints.ToArray() : null;

    static string Describe(NodeProto node) => $"{node.OpType} '{(node.Name.Length > 0 ? node.Name : node.Output.FirstOrDefault())}'";

    /// <summary>One conv layer as read: the tensor after it, its shape and stride, and whether a Relu ends it.</summary>
    sealed record ConvLayer(string Output, long In, long Out, long Kernel, long Stride, bool Activated);

    sealed class Walk
    {
        readonly GraphProto graph;
        readonly string source;
        readonly Dictionary<string, TensorProto> initializers;
        readonly Dictionary<string, List<NodeProto>> consumers = [];
        readonly HashSet<NodeProto> visited = [];
        readonly Dictionary<string, string> accounting = [];
        public Dictionary<string, Tensor> Weights { get; } = [];

        public Walk(GraphProto graph, string source)
        {
            this.graph = graph;
            this.source = source;
            initializers = graph.Initializer.ToDictionary(t => t.Name);
            foreach (var node in graph.Node)
                foreach (var input in node.Input)
                    (consumers.TryGetValue(input, out var l) ? l : consumers[input] = []).Add(node);
        }

        List<NodeProto> Users(string tensor) => consumers.GetValueOrDefault(tensor) ?? [];

        InvalidDataException Error(string what) => new($"{source}: {what}.");

        NodeProto Only(string tensor, string op, string what)
        {
            var users = Users(tensor);
            if (users is not [var node] || node.OpType != op)
                throw Error($"{what}: expected one {op} reading '{tensor}', found {(users.Count == 0 ? "nothing" : string.Join(", ", users.Select(Describe)))}");
            visited.Add(node);
            return node;
        }

        public OnnxResNetImport Run()
        {
            var inputs = graph.Input.Where(i => !initializers.ContainsKey(i.Name)).ToList();
            if (inputs.Count != 1) throw Error($"{inputs.Count} graph inputs; a ResNet has one image input");
            var dims = inputs[0].Type?.TensorType?.Shape?.Dim.Select(d => d.DimValue).ToArray() ?? [];
            if (dims.Length != 4 || dims[2] <= 0 || dims[2] != dims[3])
                throw Error($"input '{inputs[0].Name}' has shape [{string.Join(", ", dims)}]; expected [N, C, H, H] with a known square size");
            long size = dims[2];

            var stem = ReadConvLayer(Only(inputs[0].Name, "Conv", "the stem"), "resnet.embedder.embedder", ref size);
            if (!stem.Activated) throw Error("the stem convolution has no Relu");
            var pool = Only(stem.Output, "MaxPool", "the stem");
            size = ReadMaxPool(pool, size);

            string x = pool.Output[0];
            long channels = stem.Out;
            var hiddenSizes = new List<long>();
            var depths = new List<int>();
            string? layerType = null;
            bool downsampleInFirstStage = false;
            bool? downsampleInBottleneck = null;
            NodeProto? average = null;
            for (int block = 0; average is null; block++)
            {
                var users = Users(x);
                if (block > 0 && users is [{ OpType: "AveragePool" or "GlobalAveragePool" } avg])
                {
                    average = avg;
                    visited.Add(avg);
                    break;
                }
                var convs = users.Where(n => n.OpType == "Conv").ToList();
                NodeProto main;
                NodeProto? projection = null;
                if (convs.Count == 2 && users.Count == 2)
                {
                    // The projection's BatchNorm feeds the Add directly; the main path's first BatchNorm feeds a Relu.
                    bool FeedsAdd(NodeProto c) => Users(c.Output[0]) is [{ OpType: "BatchNormalization" } b] && Users(b.Output[0]) is [{ OpType: "Add" }];
                    var shortcuts = convs.Where(FeedsAdd).ToList();
                    if (shortcuts.Count != 1) throw Error($"block {block}: cannot tell the shortcut from the main path among {string.Join(", ", convs.Select(Describe))}");
                    projection = shortcuts[0];
                    main = convs.Single(c => c != projection);
                }
                else if (convs.Count == 1 && users.Count == 2 && users.Any(n => n.OpType == "Add")) main = convs[0];
                else throw Error($"block {block}: '{x}' is read by {string.Join(", ", users.Select(Describe).DefaultIfEmpty("nothing"))}; expected a residual block or the final average pool");
                visited.Add(main);

                bool newStage = block == 0 || projection is not null;
                if (newStage)
                {
                    hiddenSizes.Add(0);
                    depths.Add(0);
                }
                int stage = hiddenSizes.Count - 1, index = depths[stage];
                string prefix = $"resnet.encoder.stages.{stage}.layers.{index}";

                long inSize = size;
                var layers = new List<ConvLayer>();
                for (var conv = main; ;)
                {
                    var layer = ReadConvLayer(conv, $"{prefix}.layer.{layers.Count}", ref size);
                    layers.Add(layer);
                    if (!layer.Activated) break;
                    if (layers.Count == 3) throw Error($"{prefix}: more than three convolutions before the residual Add");
                    conv = Only(layer.Output, "Conv", $"{prefix}.layer.{layers.Count}");
                }
                string residual = x;
                long projectionStride = 1;
                if (projection is not null)
                {
                    visited.Add(projection);
                    long s = inSize;
                    var shortcut = ReadConvLayer(projection, $"{prefix}.shortcut", ref s);
                    if (shortcut.Kernel != 1 || shortcut.In != channels || shortcut.Out != layers[^1].Out || s != size)
                        throw Error($"{prefix}.shortcut: a {shortcut.Kernel}x{shortcut.Kernel} convolution {shortcut.In} -> {shortcut.Out} does not project {channels} -> {layers[^1].Out} channels");
                    residual = shortcut.Output;
                    projectionStride = shortcut.Stride;
                }
                var add = Only(layers[^1].Output, "Add", $"{prefix}: the residual sum");
                if (add.Input.Count != 2 || !add.Input.Contains(residual))
                    throw Error($"{prefix}: {Describe(add)} adds [{string.Join(", ", add.Input)}], not the block's output and its shortcut '{residual}'");
                var relu = Only(add.Output[0], "Relu", $"{prefix}: after the residual sum");

                string type = layers.Count switch
                {
                    2 => "basic",
                    3 => "bottleneck",
                    _ => throw Error($"{prefix}: {layers.Count} convolutions before the residual Add; expected 2 (basic) or 3 (bottleneck)"),
                };
                if (layerType is not null && type != layerType) throw Error($"{prefix}: a {type} layer after {layerType} ones; transformers' ResNet has one layer type");
                layerType = type;
                long outChannels = layers[^1].Out, stride = layers.Max(l => l.Stride);
                if (type == "basic")
                {
                    if (layers[0].Kernel != 3 || layers[1].Kernel != 3 || layers[1].Stride != 1)
                        throw Error($"{prefix}: a basic layer is a 3x3 convolution (with the stride) then a 3x3 one");
                }
                else
                {
                    if (layers[0].Kernel != 1 || layers[1].Kernel != 3 || layers[2].Kernel != 1 || layers[2].Stride != 1 || (layers[0].Stride > 1 && layers[1].Stride > 1))
                        throw Error($"{prefix}: a bottleneck layer is 1x1, 3x3, 1x1 with the stride on one of the first two");
                    if (layers[0].Out != outChannels / 4 || layers[1].Out != layers[0].Out)
                        throw Error($"{prefix}: a bottleneck of width {layers[0].Out} for {outChannels} outputs; transformers' is a quarter ({outChannels / 4})");
                    if (stride > 1)
                    {
                        bool inFirst = layers[0].Stride > 1;
                        if (downsampleInBottleneck is { } known && known != inFirst) throw Error($"{prefix}: the stride moves between the bottleneck's 1x1 and 3x3 convolutions");
                        downsampleInBottleneck = inFirst;
                    }
                }
                if ((projection is not null) != (channels != outChannels || stride != 1) || (projection is not null && projectionStride != stride))
                    throw Error($"{prefix}: {(projection is null ? "an identity" : "a projection")} shortcut for a block {channels} -> {outChannels} channels with stride {stride}; transformers projects exactly when either changes");
                if (stride > 2) throw Error($"{prefix}: stride {stride}; transformers' stages downsample by 2");
                if (newStage && stage == 0) downsampleInFirstStage = stride == 2;
                else if (newStage && stride != 2) throw Error($"{prefix}: stage {stage} starts with stride {stride}; transformers' stages after the first downsample by 2");
                else if (!newStage && stride != 1) throw Error($"{prefix}: stride {stride} inside a stage");
                hiddenSizes[stage] = outChannels;
                depths[stage]++;
                x = relu.Output[0];
                channels = outChannels;
            }

            if (average.OpType == "AveragePool")
            {
                var kernel = Ints(average, "kernel_shape") ?? [];
                var pads = Ints(average, "pads") ?? [0, 0, 0, 0];
                if (kernel.Length != 2 || kernel[0] != size || kernel[1] != size || pads.Any(p => p != 0))
                    throw Error($"{Describe(average)} pools [{string.Join(", ", kernel)}] over a {size}x{size} map; expected a global average pool");
            }
            string output = average.Output[0];
            if (!graph.Output.Any(o => o.Name == output)) throw Error($"the average pool's output '{output}' is not the graph's output (a head after it is not read)");
            var skipped = graph.Node.Where(n => !visited.Contains(n)).ToList();
            if (skipped.Count > 0) throw Error($"{skipped.Count} nodes are not part of the ResNet this reader walked: {string.Join(", ", skipped.Take(6).Select(Describe))}");
            var unused = graph.Initializer.Where(t => !accounting.ContainsKey(t.Name)).ToList();
            if (unused.Count > 0) throw Error($"{unused.Count} initializers are not ResNet weights: {string.Join(", ", unused.Take(6).Select(t => t.Name))}");

            var config = new JsonObject
            {
                ["architectures"] = new JsonArray("ResNetModel"),
                ["model_type"] = "resnet",
                ["num_channels"] = dims[1],
                ["embedding_size"] = stem.Out,
                ["hidden_sizes"] = new JsonArray(hiddenSizes.Select(h => (JsonNode)h).ToArray()),
                ["depths"] = new JsonArray(depths.Select(d => (JsonNode)d).ToArray()),
                ["layer_type"] = layerType,
                ["hidden_act"] = "relu",
                ["downsample_in_first_stage"] = downsampleInFirstStage,
                ["downsample_in_bottleneck"] = downsampleInBottleneck ?? false,
                ["image_size"] = dims[2],
            };
            return new OnnxResNetImport(Weights, config, accounting, inputs[0].Name, output, (int)dims[2]);
        }

        /// <summary>Conv (no bias), BatchNormalization, and a Relu if one follows: their tensors under <paramref name="prefix"/>.convolution / .normalization.</summary>
        ConvLayer ReadConvLayer(NodeProto conv, string prefix, ref long size)
        {
            visited.Add(conv);
            if (conv.Input.Count < 2 || !initializers.TryGetValue(conv.Input[1], out var weight) || weight.Dims.Count != 4)
                throw Error($"{Describe(conv)} ({prefix}) has no constant 4-d weight");
            if (conv.Input.Count > 2 && conv.Input[2].Length > 0) throw Error($"{Describe(conv)} ({prefix}) has a bias; transformers' ResNet convolutions have none");
            long outChannels = weight.Dims[0], inChannels = weight.Dims[1], k = weight.Dims[2];
            if (weight.Dims[3] != k) throw Error($"{Describe(conv)} ({prefix}) has a {k}x{weight.Dims[3]} kernel; expected a square one");
            if (Int(conv, "group", 1) != 1) throw Error($"{Describe(conv)} ({prefix}) is a grouped convolution");
            if ((Ints(conv, "dilations") ?? [1, 1]).Any(d => d != 1)) throw Error($"{Describe(conv)} ({prefix}) is dilated");
            if (conv.Attribute.FirstOrDefault(a => a.Name == "auto_pad") is { } autoPad && autoPad.S.ToStringUtf8() is not ("NOTSET" or ""))
                throw Error($"{Describe(conv)} ({prefix}) uses auto_pad {autoPad.S.ToStringUtf8()}; only explicit pads are read");
            var strides = Ints(conv, "strides") ?? [1, 1];
            if (strides.Length != 2 || strides[0] != strides[1]) throw Error($"{Describe(conv)} ({prefix}) has strides [{string.Join(", ", strides)}]");
            size = PaddedOutput(conv, prefix, size, k, strides[0], k / 2);

            var norm = Only(conv.Output[0], "BatchNormalization", prefix);
            double eps = norm.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? BatchNormEps;
            if (Math.Abs(eps - BatchNormEps) > 1e-9) throw Error($"{Describe(norm)} ({prefix}) has epsilon {eps}; transformers' BatchNorm2d uses {BatchNormEps}");
            if (Int(norm, "spatial", 1) != 1) throw Error($"{Describe(norm)} ({prefix}) is not spatial (per-pixel statistics)");
            if (norm.Output.Skip(1).Any(o => o.Length > 0 && Users(o).Count > 0)) throw Error($"{Describe(norm)} ({prefix}) is in training mode");

            Take(weight, $"{prefix}.convolution.weight", [outChannels, inChannels, k, k]);
            string[] parts = ["weight", "bias", "running_mean", "running_var"];
            for (int i = 0; i < 4; i++)
            {
                if (norm.Input.Count <= i + 1 || !initializers.TryGetValue(norm.Input[i + 1], out var t))
                    throw Error($"{Describe(norm)} ({prefix}) input {i + 1} is not a constant");
                Take(t, $"{prefix}.normalization.{parts[i]}", [outChannels]);
            }
            // A graph does not carry the count of training batches; transformers' checkpoints do, as a 0-d int64.
            Weights[$"{prefix}.normalization.num_batches_tracked"] = tensor(0L);

            var after = Users(norm.Output[0]);
            if (after is [{ OpType: "Relu" } relu])
            {
                visited.Add(relu);
                return new ConvLayer(relu.Output[0], inChannels, outChannels, k, strides[0], true);
            }
            return new ConvLayer(norm.Output[0], inChannels, outChannels, k, strides[0], false);
        }

        long ReadMaxPool(NodeProto pool, long size)
        {
            var kernel = Ints(pool, "kernel_shape") ?? [];
            var strides = Ints(pool, "strides") ?? [1, 1];
            if (kernel is not [3, 3] || strides is not [2, 2] || Int(pool, "ceil_mode", 0) != 0 || (Ints(pool, "dilations") ?? [1, 1]).Any(d => d != 1))
                throw Error($"{Describe(pool)}: kernel [{string.Join(", ", kernel)}], strides [{string.Join(", ", strides)}]; transformers' stem pools 3x3 with stride 2");
            return PaddedOutput(pool, "the stem max pool", size, 3, 2, 1);
        }

        // ONNX pads begin and end separately (CNTK pads the end of a stride-2 window one less); the result equals PyTorch's
        // symmetric padding exactly when the begin pads are PyTorch's and the output has the same size.
        long PaddedOutput(NodeProto node, string what, long size, long k, long stride, long torchPad)
        {
            var pads = Ints(node, "pads") ?? [0, 0, 0, 0];
            if (pads.Length != 4 || pads[0] != pads[1] || pads[2] != pads[3] || pads[0] != torchPad)
                throw Error($"{Describe(node)} ({what}) pads [{string.Join(", ", pads)}]; expected {torchPad} before each axis, as PyTorch pads a {k}x{k} window");
            long onnx = (size + pads[0] + pads[2] - k) / stride + 1, torch = (size + 2 * torchPad - k) / stride + 1;
            if (onnx != torch) throw Error($"{Describe(node)} ({what}) gives {onnx}x{onnx} from {size}x{size} where PyTorch's padding gives {torch}x{torch}");
            return onnx;
        }

        void Take(TensorProto proto, string name, long[] shape)
        {
            if (!proto.Dims.SequenceEqual(shape)) throw Error($"'{proto.Name}' ({name}) has shape [{string.Join(", ", proto.Dims)}], expected [{string.Join(", ", shape)}]");
            if (accounting.TryGetValue(proto.Name, out var other)) throw Error($"'{proto.Name}' is used as both {other} and {name}");
            if (proto.DataType != (int)TensorProto.Types.DataType.Float) throw Error($"'{proto.Name}' ({name}) is not float32");
            Weights.Add(name, OnnxBertReader.ToTensor(proto, source));
            accounting[proto.Name] = name;
        }
    }
}
