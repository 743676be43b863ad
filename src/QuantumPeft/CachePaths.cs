namespace QuantumPeft;

/// <summary>Where fetched data sets and imported models live: outside the repository, shared by the CLI and the tests.</summary>
public static class CachePaths
{
    /// <summary>$QPEFT_CACHE, else $XDG_CACHE_HOME/quantumpeft, else ~/.cache/quantumpeft.</summary>
    public static string Root
    {
        get
        {
            var explicitRoot = Environment.GetEnvironmentVariable("QPEFT_CACHE");
            if (!string.IsNullOrWhiteSpace(explicitRoot)) return Path.GetFullPath(explicitRoot);
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var baseDir = !string.IsNullOrWhiteSpace(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(baseDir, "quantumpeft");
        }
    }

    /// <summary>A sub-folder of <see cref="Root"/>, created on demand.</summary>
    public static string Sub(params string[] parts)
    {
        var dir = Path.Combine([Root, .. parts]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}
