namespace QuantumPeft.Data;

/// <summary>
/// A cache folder built once and never seen half-written: files are made in a temporary folder beside it, a completion
/// marker is written last, and the folder is renamed into place. An interrupted build leaves no marker and is redone;
/// two processes racing both succeed. The npm and Debian package caches are built this way.
/// </summary>
internal static class CachedFolder
{
    /// <summary>The file whose presence says the folder is complete.</summary>
    public const string CompleteMarker = ".qpeft-complete";

    /// <summary>
    /// <paramref name="final"/>, building it first if it has no marker: <paramref name="fill"/> gets a scratch folder and
    /// the folder to fill (which becomes <paramref name="final"/>) and returns the marker's text.
    /// </summary>
    public static string Ensure(string root, string final, Func<string, string, string> fill)
    {
        if (File.Exists(Path.Combine(final, CompleteMarker))) return final;
        var work = Path.Combine(root, $".tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            var extracted = Path.Combine(work, "extracted");
            var marker = fill(work, extracted);
            File.WriteAllText(Path.Combine(extracted, CompleteMarker), marker);
            // A half-written folder from an older interrupted run has no marker: replace it.
            if (Directory.Exists(final) && !File.Exists(Path.Combine(final, CompleteMarker))) Directory.Delete(final, recursive: true);
            try { Directory.Move(extracted, final); }
            catch (IOException) when (File.Exists(Path.Combine(final, CompleteMarker))) { /* another process won the race */ }
            return final;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
