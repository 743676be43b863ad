namespace QuantumPeft.Formats;

/// <summary>Builds a folder under a temporary name beside it and renames it into place, so a crash never leaves half a folder.</summary>
public static class AtomicFolder
{
    /// <summary>Throws when <paramref name="folder"/> is a file, or a non-empty folder and <paramref name="overwrite"/> is false.</summary>
    /// <exception cref="IOException">The path is taken.</exception>
    public static void EnsureWritable(string folder, bool overwrite)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        var full = Path.GetFullPath(folder);
        if (File.Exists(full)) throw new IOException($"output '{full}' is a file; expected a folder path.");
        if (!overwrite && Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new IOException($"output folder '{full}' is not empty; choose a new folder or allow overwriting it.");
        ProbeWritable(full);
    }

    /// <summary>
    /// Throws an IOException naming <paramref name="folder"/> when nothing can be written there (a read-only file system,
    /// no permission, a full disk, a file in the way), found by writing, flushing and deleting a small file in the folder
    /// or its nearest existing parent. Creates nothing that stays, so a run that fails later leaves no empty folder behind.
    /// </summary>
    public static void ProbeWritable(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        var existing = full;
        while (!Directory.Exists(existing))
        {
            if (File.Exists(existing)) throw new IOException($"output folder '{full}' cannot be created: '{existing}' is a file.");
            existing = Path.GetDirectoryName(existing) ?? throw new IOException($"output folder '{full}' cannot be created: no parent folder exists.");
        }
        var probe = Path.Combine(existing, $".qpeft-write-probe-{Guid.NewGuid():N}.tmp");
        try
        {
            // A few KB, flushed to the device: a disk with no room left fails here rather than at the first checkpoint.
            using var stream = new FileStream(probe, FileMode.CreateNew, FileAccess.Write);
            stream.Write(new byte[4096]);
            stream.Flush(flushToDisk: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"output folder '{full}' is not writable: writing a test file in '{existing}' failed ({e.Message}).", e);
        }
        finally
        {
            try { File.Delete(probe); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// Calls <paramref name="writeInto"/> with an empty temporary folder beside <paramref name="folder"/>, then renames
    /// it to <paramref name="folder"/>. An existing folder is replaced only when <paramref name="overwrite"/> is true
    /// (or it is empty); if <paramref name="writeInto"/> throws, the temporary folder is removed and nothing changes.
    /// </summary>
    public static void Write(string folder, Action<string> writeInto, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(writeInto);
        EnsureWritable(folder, overwrite);
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var name = Path.GetFileName(full);
        var temp = Path.Combine(parent, $".{name}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            writeInto(temp);
            if (Directory.Exists(full))
            {
                // Moved aside, not deleted first: if the rename below fails, the old folder is still on disk.
                var old = Path.Combine(parent, $".{name}.{Guid.NewGuid():N}.old");
                Directory.Move(full, old);
                Directory.Move(temp, full);
                Directory.Delete(old, recursive: true);
            }
            else Directory.Move(temp, full);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }
}
