using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using QuantumPeft.Formats;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Models.Bert;
using QuantumPeft.Models.Gpt2;
using QuantumPeft.Models.Llama;
using QuantumPeft.Tests.Models.Bert;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Tests.Models.Llama;
using QuantumPeft.Tests.Tuners;
using QuantumPeft.Tuners;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Hardening;

/// <summary>
/// Seeded fuzzing of every reader of a file a user hands us: each corrupt case is accepted or rejected with the
/// library's own exception naming the file (InvalidDataException; NotSupportedException for a well-formed
/// config of an architecture or option we do not implement). Never another exception, never a large allocation.
/// </summary>
public sealed class CorruptFileFuzzTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-fuzz-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }

    void Report(FuzzOutcomes o, int minAccepted, int minRejected)
    {
        output.WriteLine(o.Summary());
        Assert.True(o.Violations.Count == 0, $"{o.Violations.Count} violations:\n" + string.Join("\n", o.Violations.Take(25)));
        // A fuzzer that only ever hits one side tests nothing.
        Assert.True(o.Accepted >= minAccepted, $"only {o.Accepted} accepted");
        Assert.True(o.Cases - o.Accepted >= minRejected, $"only {o.Cases - o.Accepted} rejected");
    }

    // The timeout turns a reader that hangs into a failure instead of a stuck run.
    [Fact(Timeout = 120_000)]
    public Task Safetensors_reader_accepts_or_rejects_each_corrupt_file_naming_it() => Task.Run(() => Safetensors_reader_accepts_or_rejects_each_corrupt_file_naming_itCases());

    void Safetensors_reader_accepts_or_rejects_each_corrupt_file_naming_itCases()
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(20261201);
        var o = new FuzzOutcomes("safetensors");
        for (int i = 0; i < 2500; i++)
        {
            var file = RawSafetensors.Random(rng);
            var what = MutateSafetensors(file, rng, out var bytes);
            var path = Path.Combine(dir, $"case{i}.safetensors");
            File.WriteAllBytes(path, bytes);
            long before = GC.GetAllocatedBytesForCurrentThread();
            o.Run($"#{i} {what}", path, () =>
            {
                var (tensors, _) = SafetensorsFile.ReadWithMetadata(path);
                try
                {
                    if (what == "valid") CheckReadBack(file, tensors, o, i);
                    // What the reader accepted is a well-formed file: it tiles the data section exactly.
                    var header = SafetensorsFile.ReadHeader(path);
                    long covered = header.Entries.Sum(e => e.End - e.Begin);
                    if (header.DataOffset + covered != bytes.Length) o.Fail($"#{i} {what}", $"accepted, but its tensors cover {covered} of {bytes.Length - header.DataOffset} data bytes");
                }
                finally { foreach (var t in tensors.Values) t.Dispose(); }
            }, typeof(InvalidDataException));
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (allocated > 64L * bytes.Length + 2_000_000) o.Fail($"#{i} {what}", $"allocated {allocated} bytes for a {bytes.Length}-byte file");
            File.Delete(path);
        }
        Report(o, minAccepted: 200, minRejected: 1500);
    }

    static void CheckReadBack(RawSafetensors file, Dictionary<string, Tensor> tensors, FuzzOutcomes o, int i)
    {
        if (tensors.Count != file.Entries.Count) o.Fail($"#{i} valid", $"read {tensors.Count} tensors of {file.Entries.Count}");
        foreach (var e in file.Entries)
        {
            var t = tensors[e.Name];
            if (!t.shape.SequenceEqual(e.Shape)) o.Fail($"#{i} valid", $"{e.Name} has shape [{string.Join(",", t.shape)}], expected [{string.Join(",", e.Shape)}]");
            else if (!t.bytes.ToArray().AsSpan().SequenceEqual(file.Data.AsSpan((int)e.Begin, (int)(e.End - e.Begin)))) o.Fail($"#{i} valid", $"{e.Name} bytes differ");
        }
        // The NaN check must see exactly the float tensors that hold a non-finite value.
        int nonFinite = file.Entries.Count(e => e.DType == "F32" && Enumerable.Range(0, (int)(e.End - e.Begin) / 4)
            .Any(k => !float.IsFinite(BinaryPrimitives.ReadSingleLittleEndian(file.Data.AsSpan((int)e.Begin + 4 * k)))));
        int flagged = TensorChecks.CheckFinite(tensors.Where(p => file.Entries.First(e => e.Name == p.Key).DType == "F32").ToDictionary(), "x").Count;
        if (flagged != nonFinite) o.Fail($"#{i} valid", $"CheckFinite flagged {flagged} F32 tensors, {nonFinite} hold NaN or inf");
    }

    /// <summary>One or two corruptions of <paramref name="file"/>; returns their name.</summary>
    internal static string MutateSafetensors(RawSafetensors file, Random rng, out byte[] bytes)
    {
        string what;
        int kind = rng.Next(16);
        var entries = file.Entries;
        switch (kind)
        {
            case 0 or 1:
                what = "valid";
                break;
            case 2:
            {
                ulong[] lengths = [ulong.MaxValue, 1UL << 63, (ulong)long.MaxValue, 0, 1, 7, 100_000_001, (ulong)rng.NextInt64()];
                var headerLen = (ulong)Encoding.UTF8.GetByteCount(file.BuildHeader());
                ulong[] near = [headerLen + 1, headerLen - 1, headerLen + (ulong)file.Data.Length + 1, headerLen + (ulong)file.Data.Length];
                file.HeaderLength = rng.Next(2) == 0 ? lengths[rng.Next(lengths.Length)] : near[rng.Next(near.Length)];
                what = $"header length {file.HeaderLength}";
                break;
            }
            case 3 when entries.Count > 0:
            {
                int k = rng.Next(entries.Count);
                var e = entries[k];
                long[] deltas = [1, -1, 4, -4, 1L << 40, long.MaxValue - e.End, -e.Begin - 1];
                var d = deltas[rng.Next(deltas.Length)];
                entries[k] = rng.Next(3) switch
                {
                    0 => e with { Begin = e.Begin + d },
                    1 => e with { End = e.End + d },
                    _ => e with { Begin = e.End, End = e.Begin },
                };
                what = $"offsets of {e.Name} moved";
                break;
            }
            case 4 when entries.Count > 1:
            {
                // Two tensors share one byte range (and the file has a hole where the second one was).
                entries[1] = entries[1] with { Begin = entries[0].Begin, End = entries[0].Begin + (entries[1].End - entries[1].Begin) };
                what = "overlapping ranges";
                break;
            }
            case 5:
            {
                long[][] shapes = [[1L << 31, 1L << 31], [1L << 62], [long.MaxValue], [1L << 40, 1L << 40, 1L << 40], [3, -1], [100_000_000], [1L << 32, 0]];
                var shape = shapes[rng.Next(shapes.Length)];
                long claimed;
                try { claimed = checked(shape.Aggregate(1L, (a, b) => a * b) * 4); } catch (OverflowException) { claimed = long.MaxValue; }
                long begin = entries.Count > 0 ? entries[^1].End : 0;
                entries.Add(new RawSafetensors.Entry("huge", "F32", shape, begin, claimed == long.MaxValue ? long.MaxValue : begin + Math.Max(0, claimed)));
                what = $"huge shape [{string.Join(",", shape)}]";
                break;
            }
            case 6 when entries.Count > 0:
            {
                int k = rng.Next(entries.Count);
                var shape = entries[k].Shape.Length == 0 ? new long[] { 2 } : entries[k].Shape.Select(x => x + 1).ToArray();
                entries[k] = entries[k] with { Shape = shape };
                what = "shape does not match its byte count";
                break;
            }
            case 7 when entries.Count > 0:
            {
                string[] dtypes = ["F8_E4M3", "f32", "", "U16", "U32", "U64", "C64", "float32", "F32 ", "F4"];
                int k = rng.Next(entries.Count);
                entries[k] = entries[k] with { DType = dtypes[rng.Next(dtypes.Length)] };
                what = $"dtype '{entries[k].DType}'";
                break;
            }
            case 8:
            {
                var header = file.BuildHeader();
                var name = entries.Count > 0 ? entries[0].Name : "__metadata__";
                var first = entries.Count > 0 ? Regex.Match(header, $"\"{Regex.Escape(name)}\":\\{{[^}}]*\\}}").Value : "\"__metadata__\":{}";
                file.HeaderJson = header.Insert(header.Length - 1, (header.Length > 2 ? "," : "") + first);
                what = $"duplicate key {name}";
                break;
            }
            case 9:
            {
                int depth = rng.Next(2) == 0 ? 17 : 100_000;
                var nested = new string('[', depth) + new string(']', depth);
                file.HeaderJson = rng.Next(2) == 0 ? $"{{\"__metadata__\":{{\"a\":{nested}}}}}" : nested;
                what = $"nested {depth} deep";
                break;
            }
            case 10:
            {
                var header = file.BuildHeader();
                (string Pattern, string Replacement)[] swaps =
                [
                    ("\"shape\":\\[[^\\]]*\\]", "\"shape\":\"3\""), ("\"shape\":\\[[^\\]]*\\]", "\"shape\":[1.5]"), ("\"shape\":\\[[^\\]]*\\]", "\"shape\":[null]"),
                    ("\"shape\":\\[[^\\]]*\\]", "\"shape\":null"), ("\"shape\":\\[[^\\]]*\\]", "\"shape\":[1e300]"),
                    ("\"data_offsets\":\\[(\\d+),(\\d+)\\]", "\"data_offsets\":[$1]"), ("\"data_offsets\":\\[(\\d+),(\\d+)\\]", "\"data_offsets\":[$1,$2,$2]"),
                    ("\"data_offsets\":\\[(\\d+),(\\d+)\\]", "\"data_offsets\":[\"$1\",\"$2\"]"), ("\"data_offsets\":\\[(\\d+),(\\d+)\\]", "\"data_offsets\":[$1.0,$2.5]"),
                    ("\"data_offsets\":\\[(\\d+),(\\d+)\\]", "\"data_offsets\":{}"), ("\"dtype\":\"[^\"]*\"", "\"dtype\":4"), ("\"dtype\":\"[^\"]*\"", "\"dtype\":null"),
                    ("\"dtype\":\"[^\"]*\"", "\"dtype\":[\"F32\"]"), ("^\\{(.*)\\}$", "[{$1}]"), ("^\\{(.*)\\}$", "{\"x\":\"y\"$1}"),
                    ("\"__metadata__\":\\{[^}]*\\}", "\"__metadata__\":[]"), ("\"__metadata__\":\\{[^}]*\\}", "\"__metadata__\":{\"format\":1}"),
                    ("\"__metadata__\":\\{[^}]*\\}", "\"__metadata__\":{\"format\":{\"a\":\"b\"}}"), ("\"__metadata__\":\\{[^}]*\\}", "\"__metadata__\":\"pt\""),
                    (":\\{\"dtype\"", ":\"F32\",\"z\":{\"dtype\""),
                ];
                var (pattern, replacement) = swaps[rng.Next(swaps.Length)];
                file.HeaderJson = new Regex(pattern).Replace(header, replacement, 1);
                what = $"header {pattern} -> {replacement}";
                break;
            }
            case 11:
            {
                file.HeaderJson = JsonFuzz.Mutate(file.BuildHeader(), rng, out var m);
                what = $"header json: {m}";
                break;
            }
            case 12:
            {
                string[] texts = ["\uFEFF" + file.BuildHeader(), "   " + file.BuildHeader() + "   ", file.BuildHeader() + "\0", "{\"a\":\"\uD800\"}", "{}", "{\"a\":1"];
                file.HeaderJson = texts[rng.Next(texts.Length)];
                what = "odd header text";
                break;
            }
            case 13:
            {
                // Bytes after the last tensor, or a hole before the first.
                if (rng.Next(2) == 0 || entries.Count == 0) file.Data = [.. file.Data, .. new byte[1 + rng.Next(8)]];
                else
                {
                    for (int k = 0; k < entries.Count; k++) entries[k] = entries[k] with { Begin = entries[k].Begin + 4, End = entries[k].End + 4 };
                    file.Data = [.. new byte[4], .. file.Data];
                }
                what = "trailing bytes or a hole";
                break;
            }
            default:
            {
                what = "raw";
                break;
            }
        }
        bytes = file.ToBytes();
        if (kind == 14 && bytes.Length > 0)
        {
            int at = rng.Next(bytes.Length);
            bytes = bytes[..at];
            what = $"truncated to {at} of {file.ToBytes().Length}";
        }
        else if (kind == 15 && bytes.Length > 8)
        {
            int flips = 1 + rng.Next(3);
            for (int f = 0; f < flips; f++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
            what = $"{flips} bit flips";
        }
        return what;
    }

    [Fact(Timeout = 120_000)]
    public Task Adapter_config_parsing_accepts_or_rejects_each_mutation_naming_the_file() => Task.Run(() => Adapter_config_parsing_accepts_or_rejects_each_mutation_naming_the_fileCases());

    void Adapter_config_parsing_accepts_or_rejects_each_mutation_naming_the_fileCases()
    {
        // Every registered method's full config (all defaults written out) is a seed.
        var seeds = PeftRegistry.Names.Select(n => PeftConfig.FromJson($"{{\"peft_type\":\"{n}\",\"target_modules\":[\"query\",\"value\"]}}", []).ToJson()).ToList();
        var rng = new Random(7);
        var o = new FuzzOutcomes("adapter_config.json");
        for (int i = 0; i < 1500; i++)
        {
            var seed = seeds[rng.Next(seeds.Count)];
            var text = JsonFuzz.Mutate(seed, rng, out var what);
            var source = $"/fuzz/{i}/adapter_config.json";
            o.Run($"#{i} {what}", source, () =>
            {
                var config = PeftConfig.FromJson(text, [], source);
                // What was accepted writes and reads back to the same config.
                var again = PeftConfig.FromJson(config.ToJson(), [], source);
                if (again.ToJson() != config.ToJson()) o.Fail($"#{i} {what}", "does not survive ToJson / FromJson");
            }, typeof(InvalidDataException));
        }
        Report(o, minAccepted: 200, minRejected: 500);
    }

    [Fact(Timeout = 120_000)]
    public Task Model_config_parsing_accepts_or_rejects_each_mutation_naming_the_file() => Task.Run(() => Model_config_parsing_accepts_or_rejects_each_mutation_naming_the_fileCases());

    void Model_config_parsing_accepts_or_rejects_each_mutation_naming_the_fileCases()
    {
        var bert = TinyBert.Config().ToJson();
        var gpt2 = TinyGpt2.ConfigJson();
        var llamas = new[] { "llama", "mistral", "qwen2" }.Select(t => TinyLlama.Json(TinyLlama.Config(t))).ToList();
        (string Name, string Seed, Func<string, string, string> Parse)[] readers =
        [
            ("bert", bert, (t, s) => BertConfig.FromJson(BertConfig.FromJson(t, s).ToJson(), s).ToJson()),
            ("gpt2", gpt2, (t, s) => Gpt2Config.FromJson(Gpt2Config.FromJson(t, s).ToJson(), s).ToJson()),
            .. llamas.Select(l => ("llama", l, (Func<string, string, string>)((t, s) => LlamaConfig.FromJson(LlamaConfig.FromJson(t, s).ToJson(), s).ToJson()))),
        ];
        var rng = new Random(11);
        var o = new FuzzOutcomes("config.json");
        for (int i = 0; i < 2000; i++)
        {
            var (name, seed, parse) = readers[rng.Next(readers.Length)];
            var text = JsonFuzz.Mutate(seed, rng, out var what);
            var source = $"/fuzz/{i}/{name}/config.json";
            o.Run($"#{i} {name} {what}", source, () =>
            {
                var once = parse(text, source);
                // Accepted configs write and read back unchanged.
                if (parse(once, source) != once) o.Fail($"#{i} {name} {what}", "does not survive ToJson / FromJson");
            }, typeof(InvalidDataException), typeof(NotSupportedException));
        }
        Report(o, minAccepted: 200, minRejected: 500);
    }

    [Fact(Timeout = 120_000)]
    public Task Adapter_loader_accepts_or_rejects_each_corrupt_adapter_folder_naming_it() => Task.Run(() => Adapter_loader_accepts_or_rejects_each_corrupt_adapter_folder_naming_itCases());

    void Adapter_loader_accepts_or_rejects_each_corrupt_adapter_folder_naming_itCases()
    {
        var seeds = new List<string>();
        foreach (var (k, config) in new (int, PeftConfig)[]
                 {
                     (0, InjectionTests.Lora("query", "value") with { ModulesToSave = ["classifier"] }),
                     (1, InjectionTests.Quantum("query", "dense")),
                 })
        {
            var seedDir = Path.Combine(dir, $"seed{k}");
            PeftModel.Inject(TinyModel.Create(3 + k), config).Save(seedDir);
            seeds.Add(seedDir);
        }
        var rng = new Random(5);
        var o = new FuzzOutcomes("adapter folder");
        using var input = TinyModel.Input();
        for (int i = 0; i < 400; i++)
        {
            var seedDir = seeds[rng.Next(seeds.Count)];
            var caseDir = Path.Combine(dir, $"case{i}");
            Directory.CreateDirectory(caseDir);
            var configText = File.ReadAllText(Path.Combine(seedDir, PeftAdapterFiles.ConfigFileName));
            var weights = ReadRaw(Path.Combine(seedDir, PeftAdapterFiles.WeightsFileName));
            string what;
            byte[] bytes;
            string? nanTensor = null;
            switch (rng.Next(6))
            {
                case 0:
                    configText = JsonFuzz.Mutate(configText, rng, out what);
                    bytes = weights.ToBytes();
                    break;
                case 1:
                    what = "weights: " + MutateSafetensors(weights, rng, out bytes);
                    break;
                case 2:
                {
                    // Keys renamed, dropped or added.
                    int k = rng.Next(weights.Entries.Count);
                    var e = weights.Entries[k];
                    string[] names = [e.Name.Replace("lora_A", "lora_a"), e.Name + ".extra", "base_model.model." + e.Name, e.Name.Replace("base_model.model.", ""), ""];
                    var newName = names[rng.Next(names.Length)];
                    weights.Entries[k] = e with { Name = newName };
                    what = $"key {e.Name} -> '{newName}'";
                    bytes = weights.ToBytes();
                    break;
                }
                case 3:
                {
                    // A tensor of the right byte count but another shape, or another dtype of the same size.
                    int k = rng.Next(weights.Entries.Count);
                    var e = weights.Entries[k];
                    long n = e.Shape.Aggregate(1L, (a, b) => a * b);
                    long[][] shapes = [[n], [1, n], e.Shape.Reverse().ToArray(), [n, 1], [.. e.Shape, 1]];
                    weights.Entries[k] = rng.Next(4) == 0 ? e with { DType = "I32" } : e with { Shape = shapes[rng.Next(shapes.Length)] };
                    what = $"{e.Name} as {weights.Entries[k].DType} [{string.Join(",", weights.Entries[k].Shape)}]";
                    bytes = weights.ToBytes();
                    break;
                }
                case 4:
                {
                    // NaN or inf in one tensor: loads, with a warning that names it.
                    int k = rng.Next(weights.Entries.Count);
                    var e = weights.Entries[k];
                    BinaryPrimitives.WriteSingleLittleEndian(weights.Data.AsSpan((int)e.Begin + 4 * rng.Next((int)(e.End - e.Begin) / 4)), rng.Next(2) == 0 ? float.NaN : float.NegativeInfinity);
                    nanTensor = e.Name;
                    what = $"non-finite value in {e.Name}";
                    bytes = weights.ToBytes();
                    break;
                }
                default:
                {
                    var shapes = weights.Metadata[PeftAdapterFiles.ShapesMetadataKey];
                    if (rng.Next(3) == 0) { weights.Metadata.Remove(PeftAdapterFiles.ShapesMetadataKey); what = "no module shapes"; }
                    else { weights.Metadata[PeftAdapterFiles.ShapesMetadataKey] = JsonFuzz.Mutate(shapes, rng, out var m); what = $"module shapes: {m}"; }
                    bytes = weights.ToBytes();
                    break;
                }
            }
            File.WriteAllText(Path.Combine(caseDir, PeftAdapterFiles.ConfigFileName), configText);
            File.WriteAllBytes(Path.Combine(caseDir, PeftAdapterFiles.WeightsFileName), bytes);
            o.Run($"#{i} {what}", caseDir, () =>
            {
                var warnings = new List<string>();
                using var model = TinyModel.Create(1);
                var peft = PeftModel.Load(model, caseDir, warnings: warnings);
                using var scope = NewDisposeScope();
                var y = model.forward(input);
                if (!y.shape.SequenceEqual(new long[] { 5, 3 })) o.Fail($"#{i} {what}", $"forward gives shape [{string.Join(",", y.shape)}]");
                if (nanTensor is not null && !warnings.Any(w => w.Contains($"'{nanTensor}'") && w.Contains(caseDir)))
                    o.Fail($"#{i} {what}", $"no warning names {nanTensor}: {string.Join(" | ", warnings)}");
                if (nanTensor is null && warnings.Any(w => w.Contains("NaN") || w.Contains("infinite")))
                    o.Fail($"#{i} {what}", $"a finite adapter was warned about: {string.Join(" | ", warnings)}");
            }, typeof(InvalidDataException));
            Directory.Delete(caseDir, recursive: true);
        }
        Report(o, minAccepted: 60, minRejected: 150);
    }

    /// <summary>A real safetensors file as editable parts.</summary>
    static RawSafetensors ReadRaw(string path)
    {
        var header = SafetensorsFile.ReadHeader(path);
        var raw = new RawSafetensors { Data = File.ReadAllBytes(path)[(int)header.DataOffset..] };
        foreach (var e in header.Entries) raw.Entries.Add(new RawSafetensors.Entry(e.Name, e.DType, e.Shape, e.Begin, e.End));
        foreach (var (k, v) in header.Metadata) raw.Metadata[k] = v;
        return raw;
    }
}
