using System.Text.Json.Nodes;
using Onnx;
using static TorchSharp.torch;

namespace QuantumPeft.Formats.Onnx;

/// <summary>A BERT recovered from an ONNX export: Hugging Face weights, a config.json, and how each initializer was used.</summary>
/// <param name="Weights">Tensors under their Hugging Face names and shapes (linear weights [out, in]).</param>
/// <param name="Config">A Hugging Face config.json object for the encoder (model_type bert, the sizes read from the graph).</param>
/// <param name="Accounting">Every initializer of the graph with what it became (a weight name, or why it is not a weight).</param>
public sealed record OnnxBertImport(Dictionary<string, Tensor> Weights, JsonObject Config, IReadOnlyDictionary<string, string> Accounting);

/// <summary>Reads a BERT encoder exported to ONNX by PyTorch (as in sentence-transformers' model.onnx) back into Hugging Face weights.</summary>
/// <remarks>
/// The exporter keeps Hugging Face names for biases, LayerNorm and embedding tensors, but stores each linear
/// weight as an anonymous MatMul initializer of shape [in, out]. The MatMul's output goes into an Add with the
/// named bias (encoder.layer.0.attention.self.query.bias), so the weight's name is that name with "weight", and
/// its value the transpose. Every initializer must end up as a weight or as a recognised graph constant; anything
/// else fails the import, so nothing is silently dropped.
/// </remarks>
public static class OnnxBertReader
{
    // Ops that take shape / index arguments; an int64 initializer used only by these is part of the graph, not of the model.
    static readonly HashSet<string> ShapeOps = ["Concat", "Reshape", "Slice", "Unsqueeze", "Squeeze", "Gather", "Expand", "Range", "ConstantOfShape", "Tile"];

    /// <summary>Parses an ONNX model and recovers the BERT weights and config. <paramref name="padTokenId"/> comes from the vocabulary.</summary>
    public static OnnxBertImport Read(Stream onnx, int padTokenId = 0, string source = "model.onnx")
    {
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(onnx); }
        catch (Exception e) when (e is Google.Protobuf.InvalidProtocolBufferException or IOException)
        {
            throw new InvalidDataException($"{source}: not an ONNX model ({e.Message}).", e);
        }
        var graph = model.Graph ?? throw new InvalidDataException($"{source}: the ONNX model has no graph.");
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        var consumers = new Dictionary<string, List<NodeProto>>();
        var producer = new Dictionary<string, NodeProto>();
        foreach (var node in graph.Node)
        {
            foreach (var input in node.Input) (consumers.TryGetValue(input, out var l) ? l : consumers[input] = []).Add(node);
            foreach (var output in node.Output) producer[output] = node;
        }
        List<NodeProto> UsersOf(string name) => consumers.GetValueOrDefault(name) ?? [];

        var weights = new Dictionary<string, Tensor>();
        var accounting = new Dictionary<string, string>();
        var unexplained = new List<string>();
        try
        {
            foreach (var init in graph.Initializer)
            {
                var users = UsersOf(init.Name);
                if (init.DataType == (int)TensorProto.Types.DataType.Float && IsHfName(init.Name))
                {
                    Add(weights, init.Name, ToTensor(init, source), source);
                    accounting[init.Name] = init.Name;
                }
                else if (init.DataType == (int)TensorProto.Types.DataType.Float && LinearWeightName(init, users, UsersOf, initializers) is { } hfName)
                {
                    using var inOut = ToTensor(init, source);
                    Add(weights, hfName, inOut.t().contiguous(), source);
                    accounting[init.Name] = hfName;
                }
                else if (init.Name.EndsWith("position_ids", StringComparison.Ordinal) && init.DataType == (int)TensorProto.Types.DataType.Int64)
                {
                    using var ids = ToTensor(init, source);
                    using var expected = arange(ids.numel(), dtype: ScalarType.Int64).view(ids.shape);
                    if (!ids.eq(expected).all().item<bool>()) throw new InvalidDataException($"{source}: '{init.Name}' is not 0, 1, 2, ...: a position buffer this reader does not understand.");
                    accounting[init.Name] = "buffer (positions 0..n-1, recomputed by the model)";
                }
                else if (init.DataType == (int)TensorProto.Types.DataType.Int64 && users.Count > 0 && users.All(n => ShapeOps.Contains(n.OpType)))
                    accounting[init.Name] = $"graph constant ({string.Join("/", users.Select(u => u.OpType).Distinct())} argument)";
                else
                    unexplained.Add($"{init.Name} [{string.Join(", ", init.Dims)}] used by {string.Join(", ", users.Select(u => u.OpType).DefaultIfEmpty("nothing"))}");
            }
            if (unexplained.Count > 0)
                throw new InvalidDataException($"{source}: {unexplained.Count} initializers are neither BERT weights nor graph constants: {string.Join("; ", unexplained.Take(8))}.");

            var config = ReadConfig(graph, weights, initializers, producer, padTokenId, source);
            return new OnnxBertImport(weights, config, accounting);
        }
        catch
        {
            foreach (var t in weights.Values) t.Dispose();
            throw;
        }
    }

    static void Add(Dictionary<string, Tensor> weights, string name, Tensor tensor, string source)
    {
        if (!weights.TryAdd(name, tensor))
        {
            tensor.Dispose();
            throw new InvalidDataException($"{source}: two initializers both become '{name}'.");
        }
    }

    // Hugging Face names are dotted paths (embeddings.LayerNorm.weight); the exporter's anonymous ones are numbers.
    static bool IsHfName(string name) => name.Contains('.') && !name.All(c => char.IsDigit(c) || c == '.');

    /// <summary>W of x @ W + b: a 2-D initializer that is the right operand of one MatMul whose only consumer is an Add with a named bias of size out.</summary>
    static string? LinearWeightName(TensorProto init, List<NodeProto> users, Func<string, List<NodeProto>> usersOf, Dictionary<string, TensorProto> initializers)
    {
        if (init.Dims.Count != 2 || users is not [{ OpType: "MatMul" } matmul] || matmul.Input[1] != init.Name) return null;
        if (usersOf(matmul.Output[0]) is not [{ OpType: "Add" } add]) return null;
        var bias = add.Input.FirstOrDefault(i => i != matmul.Output[0]);
        if (bias is null || !bias.EndsWith(".bias", StringComparison.Ordinal) || !initializers.TryGetValue(bias, out var b)
            || b.Dims.Count != 1 || b.Dims[0] != init.Dims[1]) return null;
        return bias[..^".bias".Length] + ".weight";
    }

    static JsonObject ReadConfig(GraphProto graph, Dictionary<string, Tensor> w, Dictionary<string, TensorProto> initializers,
        Dictionary<string, NodeProto> producer, int padTokenId, string source)
    {
        Tensor Need(string name) => w.TryGetValue(name, out var t) ? t : throw new InvalidDataException($"{source}: no '{name}' among the weights: not a BERT export.");
        var words = Need("embeddings.word_embeddings.weight");
        long hidden = words.shape[1];
        int layers = w.Keys.Where(k => k.StartsWith("encoder.layer.", StringComparison.Ordinal))
            .Select(k => int.Parse(k.Split('.')[2])).Distinct().Count();
        if (layers == 0) throw new InvalidDataException($"{source}: no encoder.layer.N tensors: not a BERT export.");

        // Heads: the Reshape of a projection to [batch, length, heads, head_size] takes heads and head_size as int64 constants.
        long heads = 0;
        foreach (var concat in graph.Node.Where(n => n.OpType == "Concat"))
        {
            var constants = concat.Input.Where(initializers.ContainsKey).Select(i => initializers[i])
                .Where(t => t.DataType == (int)TensorProto.Types.DataType.Int64 && t.Dims.Count == 1 && t.Dims[0] == 1)
                .Select(t => { using var v = ToTensor(t, source); return v.item<long>(); }).ToList();
            if (constants.Count == 2 && constants[0] > 0 && constants[0] * constants[1] == hidden) { heads = constants[0]; break; }
        }
        if (heads == 0) throw new InvalidDataException($"{source}: could not find the attention head count (a Reshape to [.., heads, {hidden} / heads]).");

        // GELU exported exactly is x * 0.5 * (1 + erf(x / sqrt 2)); the tanh form has no Erf.
        var act = graph.Node.Any(n => n.OpType == "Erf") ? "gelu"
            : throw new InvalidDataException($"{source}: no Erf node: the activation is not the exact GELU this reader recognises.");

        // LayerNorm is exported as (x - mean) / sqrt(var + eps): eps is the constant added before the first Sqrt.
        double eps = 1e-12;
        if (graph.Node.FirstOrDefault(n => n.OpType == "Sqrt") is { } sqrt && producer.TryGetValue(sqrt.Input[0], out var add) && add.OpType == "Add")
            foreach (var input in add.Input)
                if (producer.TryGetValue(input, out var c) && c.OpType == "Constant" && c.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } value)
                {
                    using var e = ToTensor(value, source);
                    eps = e.item<float>();
                }

        return new JsonObject
        {
            ["architectures"] = new JsonArray("BertModel"),
            ["model_type"] = "bert",
            ["vocab_size"] = words.shape[0],
            ["hidden_size"] = hidden,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads,
            ["intermediate_size"] = Need("encoder.layer.0.intermediate.dense.bias").shape[0],
            ["hidden_act"] = act,
            // Training-time settings an export does not carry: Hugging Face's BERT defaults.
            ["hidden_dropout_prob"] = 0.1,
            ["attention_probs_dropout_prob"] = 0.1,
            ["max_position_embeddings"] = Need("embeddings.position_embeddings.weight").shape[0],
            ["type_vocab_size"] = Need("embeddings.token_type_embeddings.weight").shape[0],
            ["initializer_range"] = 0.02,
            ["layer_norm_eps"] = Math.Round(eps, 15),
            ["pad_token_id"] = padTokenId,
            ["position_embedding_type"] = "absolute",
        };
    }

    /// <summary>An ONNX tensor (raw little-endian bytes or typed float/int64 fields) as a CPU tensor.</summary>
    internal static Tensor ToTensor(TensorProto t, string source)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"{source}: initializer '{t.Name}' lives in an external data file, which this reader does not follow.");
        var shape = t.Dims.ToArray();
        var (type, size) = t.DataType switch
        {
            (int)TensorProto.Types.DataType.Float => (ScalarType.Float32, 4),
            (int)TensorProto.Types.DataType.Int64 => (ScalarType.Int64, 8),
            _ => throw new InvalidDataException($"{source}: initializer '{t.Name}' has ONNX data type {t.DataType}; only float32 and int64 are read."),
        };
        if (!t.RawData.IsEmpty)
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            if (t.RawData.Length != count * size)
                throw new InvalidDataException($"{source}: initializer '{t.Name}' [{string.Join(", ", shape)}] has {t.RawData.Length} bytes, expected {count * size}.");
            var tensor = empty(shape, type);
            var bytes = tensor.bytes;
            t.RawData.Span.CopyTo(bytes);
            tensor.bytes = bytes;
            return tensor;
        }
        return type == ScalarType.Float32 ? tensor(t.FloatData.ToArray(), shape) : tensor(t.Int64Data.ToArray(), shape);
    }
}
