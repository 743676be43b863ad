using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace QuantumPeft.Formats.Safetensors;

/// <summary>One tensor's entry in a safetensors header: dtype, shape and byte range within the data section.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>A validated safetensors header: the entries (in file order) and the free-form <c>__metadata__</c>.</summary>
public sealed record SafetensorsHeader(IReadOnlyList<SafetensorsEntry> Entries, IReadOnlyDictionary<string, string> Metadata, long DataOffset);

/// <summary>Reads and writes the safetensors format (Hugging Face), validating every header field before allocating.</summary>
/// <remarks>
/// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
/// <c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}</c>, then the
/// data section. Offsets are relative to the data section. Like the reference implementation we require the
/// ranges to tile the data section exactly (no overlap, no hole, nothing trailing), so a truncated, padded or
/// hostile file is rejected before any tensor is created.
/// </remarks>
public static class SafetensorsFile
{
    /// <summary>Largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>Reads every tensor of a file onto the CPU (or <paramref name="device"/>).</summary>
    public static Dictionary<string, Tensor> Read(string path, Device? device = null) => ReadWithMetadata(path, device).Tensors;

    /// <summary>Reads every tensor and the <c>__metadata__</c> map.</summary>
    public static (Dictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata) ReadWithMetadata(string path, Device? device = null)
    {
        using var stream = OpenForRead(path);
        var header = ReadHeader(stream, path);
        var tensors = new Dictionary<string, Tensor>(header.Entries.Count);
        try
        {
            foreach (var entry in header.Entries)
                tensors[entry.Name] = ReadEntry(stream, header, entry, path, device);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return (tensors, header.Metadata);
    }

    /// <summary>Reads and validates only the header (cheap: no tensor data is touched).</summary>
    public static SafetensorsHeader ReadHeader(string path)
    {
        using var stream = OpenForRead(path);
        return ReadHeader(stream, path);
    }

    /// <summary>Reads the named tensors only (for sharded checkpoints and partial loads).</summary>
    public static Dictionary<string, Tensor> Read(string path, IEnumerable<string> names, Device? device = null)
    {
        using var stream = OpenForRead(path);
        var header = ReadHeader(stream, path);
        var byName = header.Entries.ToDictionary(e => e.Name);
        var result = new Dictionary<string, Tensor>();
        foreach (var name in names)
        {
            if (!byName.TryGetValue(name, out var entry))
                throw new KeyNotFoundException($"safetensors file '{path}' has no tensor named '{name}'.");
            result[name] = ReadEntry(stream, header, entry, path, device);
        }
        return result;
    }

    /// <summary>Writes tensors (any device; stored as contiguous CPU bytes) atomically: a temporary file, then a rename.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        var cpu = new List<Tensor>(names.Count);
        try
        {
            long offset = 0;
            foreach (var name in names)
            {
                if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor.", nameof(tensors));
                var t = tensors[name].detach().cpu().contiguous();
                cpu.Add(t);
                var dtype = DTypeName(t.dtype, name);
                long bytes = t.numel() * DTypes[dtype].Size;
                header[name] = new { dtype, shape = t.shape, data_offsets = new[] { offset, offset + bytes } };
                offset += bytes;
            }
            var json = JsonSerializer.SerializeToUtf8Bytes(header);
            // Pad the header with spaces to 8 bytes so the data section is aligned, as the reference writer does.
            int padded = (json.Length + 7) / 8 * 8;

            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            Directory.CreateDirectory(dir);
            var temp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
            try
            {
                using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
                {
                    Span<byte> len = stackalloc byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
                    fs.Write(len);
                    fs.Write(json);
                    for (int i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
                    if (cpu.Count > 0) { fs.Flush(); TestHooks.Reach($"write:{Path.GetFileName(path)}"); }
                    foreach (var t in cpu) fs.Write(t.bytes);
                    fs.Flush(true);
                }
                File.Move(temp, path, overwrite: true);
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }
        finally
        {
            foreach (var t in cpu) t.Dispose();
        }
    }

    static FileStream OpenForRead(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file not found: '{path}'.", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    static SafetensorsHeader ReadHeader(FileStream stream, string path)
    {
        long fileLength = stream.Length;
        InvalidDataException Bad(string why) => new($"safetensors file '{path}' is invalid: {why}.");

        if (fileLength < 8) throw Bad($"it is {fileLength} bytes long, shorter than the 8-byte header length");
        Span<byte> lenBytes = stackalloc byte[8];
        stream.ReadExactly(lenBytes);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen < 2) throw Bad($"header length {headerLen} is too small for a JSON object");
        if (headerLen > MaxHeaderBytes) throw Bad($"header length {headerLen} exceeds the {MaxHeaderBytes}-byte limit");
        if ((long)headerLen > fileLength - 8) throw Bad($"header length {headerLen} runs past the end of the {fileLength}-byte file (truncated?)");

        var json = new byte[headerLen];
        stream.ReadExactly(json);
        long dataOffset = 8 + (long)headerLen;
        long dataLength = fileLength - dataOffset;

        // The JSON reader checks UTF-8 only where it decodes a string, and throws InvalidOperationException there.
        try { StrictUtf8.GetCharCount(json); }
        catch (DecoderFallbackException) { throw Bad("header is not valid UTF-8"); }
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 }); }
        catch (JsonException e) { throw Bad($"header is not well-formed JSON ({e.Message})"); }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("header is not a JSON object");
            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>();
            var seen = new HashSet<string>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name)) throw Bad($"tensor '{prop.Name}' appears twice");
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad("__metadata__ is not an object");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad($"__metadata__ value '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(prop, Bad));
            }

            // The ranges must tile [0, dataLength) exactly: sorted by begin, each starting where the last ended.
            long cursor = 0;
            foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
            {
                if (e.Begin != cursor)
                    throw Bad(e.Begin < cursor
                        ? $"tensor '{e.Name}' byte range [{e.Begin}, {e.End}) overlaps the previous tensor (which ends at {cursor})"
                        : $"tensor '{e.Name}' starts at {e.Begin} but the previous tensor ends at {cursor} (hole in the data section)");
                if (e.End > dataLength)
                    throw Bad($"tensor '{e.Name}' byte range [{e.Begin}, {e.End}) runs past the end of the {dataLength}-byte data section (truncated?)");
                cursor = e.End;
            }
            if (cursor != dataLength) throw Bad($"the data section has {dataLength} bytes but the tensors cover {cursor}");
            return new SafetensorsHeader(entries, metadata, dataOffset);
        }
    }

    static SafetensorsEntry ParseEntry(JsonProperty prop, Func<string, InvalidDataException> bad)
    {
        var name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw bad($"entry '{name}' is not an object");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw bad($"tensor '{name}' has no string 'dtype'");
        var dtype = dt.GetString()!;
        if (!DTypes.TryGetValue(dtype, out var info))
            throw bad($"tensor '{name}' has unknown dtype '{dtype}' (known: {string.Join(", ", DTypes.Keys)})");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw bad($"tensor '{name}' has no 'shape' array");
        var shape = new long[sh.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0)
                throw bad($"tensor '{name}' has an invalid dimension {d} in its shape");
            shape[i++] = dim;
            try { count = checked(count * dim); }
            catch (OverflowException) { throw bad($"tensor '{name}' shape [{string.Join(", ", shape)}] overflows"); }
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw bad($"tensor '{name}' has no 'data_offsets' pair");
        var offs = off.EnumerateArray().Select(o => o.ValueKind == JsonValueKind.Number && o.TryGetInt64(out var x) ? x : -1).ToArray();
        if (offs[0] < 0 || offs[1] < offs[0]) throw bad($"tensor '{name}' has invalid data_offsets [{off[0]}, {off[1]}]");
        long expected;
        try { expected = checked(count * info.Size); }
        catch (OverflowException) { throw bad($"tensor '{name}' is too large"); }
        if (offs[1] - offs[0] != expected)
            throw bad($"tensor '{name}' ({dtype}, shape [{string.Join(", ", shape)}]) needs {expected} bytes but its data_offsets span {offs[1] - offs[0]}");
        return new SafetensorsEntry(name, dtype, shape, offs[0], offs[1]);
    }

    static Tensor ReadEntry(FileStream stream, SafetensorsHeader header, SafetensorsEntry entry, string path, Device? device)
    {
        var info = DTypes[entry.DType];
        var tensor = empty(entry.Shape, info.Type);
        long length = entry.End - entry.Begin;
        if (length > 0)
        {
            stream.Seek(header.DataOffset + entry.Begin, SeekOrigin.Begin);
            // Reads straight into the tensor's storage; a short read means the file changed under us.
            var span = tensor.bytes;
            try { stream.ReadExactly(span); }
            catch (EndOfStreamException)
            {
                tensor.Dispose();
                throw new InvalidDataException($"safetensors file '{path}' is invalid: tensor '{entry.Name}' is truncated.");
            }
            tensor.bytes = span;
        }
        if (device is null || device.type == TorchSharp.DeviceType.CPU) return tensor;
        var moved = tensor.to(device);
        tensor.Dispose();
        return moved;
    }

    static string DTypeName(ScalarType type, string name) => type switch
    {
        ScalarType.Float64 => "F64", ScalarType.Float32 => "F32", ScalarType.Float16 => "F16", ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64", ScalarType.Int32 => "I32", ScalarType.Int16 => "I16", ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8", ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"tensor '{name}' has dtype {type}, which safetensors cannot store."),
    };
}
