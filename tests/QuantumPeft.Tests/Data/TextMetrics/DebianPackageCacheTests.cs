using QuantumPeft.Data;

namespace QuantumPeft.Tests.Data.TextMetrics;

/// <summary>DebianPackageCache with stand-in apt-get and dpkg scripts: the update-and-retry path a fresh CI machine takes.</summary>
public sealed class DebianPackageCacheTests : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-deb-tests-" + Guid.NewGuid().ToString("N"));
    readonly string package = "qpeft-fake-" + Guid.NewGuid().ToString("N")[..8];

    public DebianPackageCacheTests() => Directory.CreateDirectory(dir);

    public void Dispose()
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var cached = Path.Combine(CachePaths.Sub("data", "debian"), package);
        if (Directory.Exists(cached)) Directory.Delete(cached, recursive: true);
    }

    string Script(string name, string body)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    [Fact]
    public void ADownloadThatFailsBeforeAptUpdateIsRetriedOnceAsRootAndCachedWithAMarker()
    {
        if (!OperatingSystem.IsLinux()) return;
        // apt-get: "download" fails until "update" ran (as on a machine without package lists); dpkg -x unpacks two files.
        var apt = Script("apt-get", $"""
            case "$1" in
              update) touch "{dir}/updated"; echo "update" >> "{dir}/calls";;
              download) echo "download" >> "{dir}/calls"
                if [ -f "{dir}/updated" ]; then echo deb > "$2_1.0_all.deb"; else echo "E: Unable to locate package $2" >&2; exit 100; fi;;
            esac
            """);
        var dpkg = Script("dpkg", """
            mkdir -p "$3/usr/share/fake" "$3/usr/share/doc/fake"
            echo data > "$3/usr/share/fake/data.txt"; echo licence > "$3/usr/share/doc/fake/copyright"
            """);
        bool root = Environment.UserName == "root";
        if (!root)
        {
            var e = Assert.Throws<InvalidOperationException>(() => DebianPackageCache.Ensure(package, null, apt, dpkg));
            Assert.Contains("exited with code 100", e.Message);
            return;
        }
        var folder = DebianPackageCache.Ensure(package, rel => rel.StartsWith("usr/share/fake/"), apt, dpkg);
        Assert.Equal(["download", "update", "download"], File.ReadAllLines(Path.Combine(dir, "calls")));
        Assert.Equal("data", File.ReadAllText(Path.Combine(folder, "usr", "share", "fake", "data.txt")).Trim());
        Assert.False(Directory.Exists(Path.Combine(folder, "usr", "share", "doc")));
        Assert.True(File.Exists(Path.Combine(folder, ".qpeft-complete")));
        // Idempotent: a second call finds the marker and runs nothing.
        Assert.Equal(folder, DebianPackageCache.Ensure(package, null, "/nonexistent/apt-get", "/nonexistent/dpkg"));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "calls")).Length);
    }
}
