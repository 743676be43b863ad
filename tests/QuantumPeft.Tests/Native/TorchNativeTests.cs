using QuantumPeft.Native;
using TorchSharp;

namespace QuantumPeft.Tests.Native;

public class TorchNativeTests
{
    [Fact]
    public void TorchLoadsAndComputes()
    {
        using var a = torch.tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2);
        using var b = a.matmul(a);
        Assert.Equal(new float[] { 7, 10, 15, 22 }, b.data<float>().ToArray());
    }

    [Fact]
    public void BuildOutputCopyIsAlreadyPatchedAndPatchIsIdempotent()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"expected {path}");
        // After EnsureLoadable no strong GLIBCXX_3.4.3x requirement remains; a second patch changes nothing.
        Assert.Empty(TorchNative.FindStrongRequirements(File.ReadAllBytes(path)));
        Assert.Equal(0, TorchNative.PatchFile(path));
    }

    [Fact]
    public void NonElfInputIsRejectedWithAMessage()
    {
        var e = Assert.Throws<InvalidDataException>(() => TorchNative.FindStrongRequirements(new byte[100]));
        Assert.Contains("ELF", e.Message);
    }
}

public sealed class NativeMemoryTests
{
    [Fact]
    public void Glibcs_mmap_threshold_is_fixed_on_linux()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null) return;
        Assert.True(QuantumPeft.Native.NativeMemory.Configure());   // mallopt accepted M_MMAP_THRESHOLD = 1 MB
    }
}
