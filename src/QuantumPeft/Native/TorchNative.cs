using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace QuantumPeft.Native;

/// <summary>Makes TorchSharp's native library loadable on hosts whose libstdc++ is older than the one it was linked against.</summary>
/// <remarks>
/// TorchSharp-cpu 0.107.0 ships <c>libLibTorchSharp.so</c> with a version requirement on
/// <c>GLIBCXX_3.4.32</c> (GCC 13). Debian 12 stops at 3.4.30. The only symbol bound to that version
/// (<c>std::ios_base_library_init</c>) is never relocated against, so marking the requirement weak
/// (<c>VER_FLG_WEAK</c> in its Vernaux entry) lets glibc load the library. We patch the build-output copy
/// only, never the NuGet cache, idempotently, before the first torch call.
/// </remarks>
public static class TorchNative
{
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;
    static readonly string[] WeakenedVersions = ["GLIBCXX_3.4.31", "GLIBCXX_3.4.32", "GLIBCXX_3.4.33"];
    static readonly object Gate = new();
    static bool _done;

    // A library module initializer on purpose: any caller that touches QuantumPeft gets a loadable TorchSharp.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialize() => EnsureLoadable();

    /// <summary>Patches every build-output copy of libLibTorchSharp.so that the process could load. Safe to call repeatedly.</summary>
    public static void EnsureLoadable()
    {
        if (!OperatingSystem.IsLinux()) return;
        lock (Gate)
        {
            if (_done) return;
            _done = true;
            NativeMemory.Configure();
            foreach (var path in CandidatePaths())
            {
                try { PatchFile(path); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
                {
                    Console.Error.WriteLine($"warning: could not prepare {path} for loading: {e.Message}");
                }
            }
        }
    }

    static IEnumerable<string> CandidatePaths()
    {
        var dirs = new HashSet<string>();
        void Add(string? d) { if (!string.IsNullOrEmpty(d)) dirs.Add(Path.GetFullPath(d)); }
        Add(AppContext.BaseDirectory);
        Add(Path.GetDirectoryName(typeof(TorchNative).Assembly.Location));
        foreach (var d in dirs.ToArray()) Add(Path.Combine(d, "runtimes", "linux-x64", "native"));
        foreach (var d in dirs)
        {
            var file = Path.Combine(d, "libLibTorchSharp.so");
            // The NuGet cache is shared by every project on the machine: never touch it.
            if (File.Exists(file) && !file.Contains($"{Path.DirectorySeparatorChar}.nuget{Path.DirectorySeparatorChar}packages"))
                yield return file;
        }
    }

    /// <summary>Marks the listed GLIBCXX requirements of one ELF file weak. Returns the number of entries changed.</summary>
    public static int PatchFile(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var offsets = FindStrongRequirements(bytes);
        if (offsets.Count == 0) return 0;
        foreach (var flagsOffset in offsets)
        {
            var flags = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(flagsOffset));
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(flagsOffset), (ushort)(flags | VerFlgWeak));
        }
        // Written beside and renamed, so a crash never leaves a half-written library.
        Formats.AtomicFile.WriteAllBytes(path, bytes);
        return offsets.Count;
    }

    /// <summary>File offsets of the vna_flags fields that still need the weak bit.</summary>
    internal static List<int> FindStrongRequirements(byte[] elf)
    {
        var result = new List<int>();
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != 'E' || elf[2] != 'L' || elf[3] != 'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("expected a 64-bit little-endian ELF file");
        var span = elf.AsSpan();
        long shoff = BinaryPrimitives.ReadInt64LittleEndian(span[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);
        if (shoff <= 0 || shoff + (long)shnum * shentsize > elf.Length) throw new InvalidDataException("section table out of range");

        for (int i = 0; i < shnum; i++)
        {
            var sh = span.Slice((int)(shoff + (long)i * shentsize), shentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed) continue;
            long offset = BinaryPrimitives.ReadInt64LittleEndian(sh[0x18..]);
            uint link = BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]);
            var strtab = span.Slice((int)(shoff + (long)link * shentsize), shentsize);
            long strOffset = BinaryPrimitives.ReadInt64LittleEndian(strtab[0x18..]);

            long vn = offset;
            for (uint n = 0; n < count; n++)
            {
                int cnt = BinaryPrimitives.ReadUInt16LittleEndian(span[(int)(vn + 2)..]);
                uint aux = BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(vn + 8)..]);
                uint next = BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(vn + 12)..]);
                long va = vn + aux;
                for (int a = 0; a < cnt; a++)
                {
                    int flagsOffset = (int)(va + 4);
                    ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(span[flagsOffset..]);
                    uint name = BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(va + 8)..]);
                    uint vnaNext = BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(va + 12)..]);
                    if ((flags & VerFlgWeak) == 0 && WeakenedVersions.Contains(ReadCString(span, (int)(strOffset + name))))
                        result.Add(flagsOffset);
                    if (vnaNext == 0) break;
                    va += vnaNext;
                }
                if (next == 0) break;
                vn += next;
            }
        }
        return result;
    }

    static string ReadCString(ReadOnlySpan<byte> data, int start)
    {
        int end = data[start..].IndexOf((byte)0);
        return Encoding.ASCII.GetString(data.Slice(start, end < 0 ? 0 : end));
    }
}
