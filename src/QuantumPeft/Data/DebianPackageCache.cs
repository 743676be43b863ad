using System.ComponentModel;
using System.Diagnostics;

namespace QuantumPeft.Data;

/// <summary>
/// Fetches a Debian package with the ordinary client (<c>apt-get download</c>), unpacks it with <c>dpkg -x</c> and keeps
/// the selected files in the cache (<c>CachePaths.Sub("data", "debian")</c>), once: a completion marker plus a
/// temp-folder-then-rename makes the fetch idempotent and safe to interrupt (as <see cref="NpmPackageCache"/> does).
/// </summary>
public static class DebianPackageCache
{
    /// <summary>
    /// The folder holding the kept files of <paramref name="package"/> under their package paths (e.g.
    /// "usr/share/wordnet/data.noun"), fetching it first if needed. <paramref name="keep"/> selects the paths to keep; null keeps all.
    /// </summary>
    public static string Ensure(string package, Func<string, bool>? keep = null) => Ensure(package, keep, "apt-get", "dpkg");

    /// <summary>As above, with the executables named (tests use it to simulate a missing client).</summary>
    internal static string Ensure(string package, Func<string, bool>? keep, string aptGet, string dpkg)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(package);
        var root = CachePaths.Sub("data", "debian");
        var final = Path.Combine(root, package);
        return CachedFolder.Ensure(root, final, (work, extracted) =>
        {
            var deb = Download(aptGet, package, work);
            var unpacked = Path.Combine(work, "unpacked");
            Run(dpkg, ["-x", deb, unpacked], work, $"Unpacking Debian package '{package}'", $"`{dpkg} -x` (from the dpkg package)");
            Directory.CreateDirectory(extracted);
            foreach (var file in Directory.EnumerateFiles(unpacked, "*", SearchOption.AllDirectories))
            {
                var rel = Path.GetRelativePath(unpacked, file).Replace('\\', '/');
                if (keep is not null && !keep(rel)) continue;
                var dest = Path.Combine(extracted, rel);
                Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
                File.Move(file, dest);
            }
            return $"{package}\n{Path.GetFileName(deb)}\n{DateTime.UtcNow:O}\n";
        });
    }

    static string Download(string aptGet, string package, string work)
    {
        var what = $"Fetching Debian package '{package}'";
        var client = $"`{aptGet} download {package}` (Debian's apt)";
        try { Run(aptGet, ["download", package], work, what, client); }
        catch (InvalidOperationException) when (IsRoot() && TryUpdate(aptGet, work))
        {
            // A fresh machine has no package lists yet: retry once after `apt-get update`.
            Run(aptGet, ["download", package], work, what, client);
        }
        return Directory.GetFiles(work, "*.deb").FirstOrDefault()
            ?? throw new InvalidOperationException($"{what} failed: `{aptGet} download {package}` wrote no .deb file into {work}.");
    }

    static bool TryUpdate(string aptGet, string work)
    {
        try { Run(aptGet, ["update", "-qq"], work, "Updating the apt package lists", $"`{aptGet} update`"); return true; }
        catch (InvalidOperationException) { return false; }
    }

    static bool IsRoot() => OperatingSystem.IsLinux() && Environment.UserName == "root";

    static void Run(string exe, string[] args, string workDir, string what, string client)
    {
        var command = $"{exe} {string.Join(' ', args)}";
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process process;
        try { process = Process.Start(psi) ?? throw new InvalidOperationException("Process.Start returned null"); }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException(
                $"{what} needs {client}, which was not found ({e.Message}). Install it, or fetch the package elsewhere and unpack it under {CachePaths.Sub("data", "debian")}.", e);
        }
        using (process)
        {
            var stderrTask = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            var stderr = stderrTask.Result;
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"{what} failed: `{command}` exited with code {process.ExitCode}. {Last(stderr)} {Last(stdout)}".Trim());
        }
    }

    static string Last(string text) =>
        string.Join(" | ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(3));
}
