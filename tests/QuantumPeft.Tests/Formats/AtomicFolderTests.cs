using QuantumPeft.Formats;

namespace QuantumPeft.Tests.Formats;

public sealed class AtomicFolderTests : IDisposable
{
    readonly string root = Path.Combine(Path.GetTempPath(), "qpeft-atomic-folder-" + Guid.NewGuid().ToString("N"));

    public void Dispose() { if (Directory.Exists(root)) Directory.Delete(root, recursive: true); }

    [Fact]
    public void AFailedWriteLeavesNothingBehind()
    {
        var target = Path.Combine(root, "out");
        Assert.Throws<InvalidOperationException>(() => AtomicFolder.Write(target, temp =>
        {
            File.WriteAllText(Path.Combine(temp, "half.txt"), "x");
            throw new InvalidOperationException("disk full");
        }));
        Assert.False(Directory.Exists(target));
        Assert.Empty(Directory.EnumerateFileSystemEntries(root));
    }

    [Fact]
    public void ReplacesOnlyWhenAllowed()
    {
        var target = Path.Combine(root, "out");
        AtomicFolder.Write(target, temp => File.WriteAllText(Path.Combine(temp, "a.txt"), "1"));
        Assert.Throws<IOException>(() => AtomicFolder.Write(target, temp => File.WriteAllText(Path.Combine(temp, "b.txt"), "2")));
        Assert.Equal(["a.txt"], Directory.EnumerateFiles(target).Select(Path.GetFileName));

        AtomicFolder.Write(target, temp => File.WriteAllText(Path.Combine(temp, "b.txt"), "2"), overwrite: true);
        Assert.Equal(["b.txt"], Directory.EnumerateFiles(target).Select(Path.GetFileName));
        Assert.Equal(["out"], Directory.EnumerateFileSystemEntries(root).Select(Path.GetFileName));
    }
}
