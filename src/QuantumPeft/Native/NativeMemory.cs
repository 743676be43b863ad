using System.Runtime.InteropServices;

namespace QuantumPeft.Native;

/// <summary>Keeps libtorch's large CPU buffers from fragmenting glibc's heap, so that long training runs hold a flat memory profile.</summary>
/// <remarks>
/// glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MB), after which tensors of that size
/// (an embedding's gradient, AdamW's temporaries) come from the heap, which fragments and never shrinks: measured here, a
/// GPT-2 pretraining run grew by about 30 MB per step until the kernel killed it at 24 GB. A fixed 1 MB threshold keeps
/// such buffers mmapped and returned to the system when freed (the same run then stayed between 0.8 and 1.8 GB).
/// MALLOC_MMAP_THRESHOLD_ in the environment, when set, is left to win.
/// </remarks>
public static class NativeMemory
{
    const int M_MMAP_THRESHOLD = -3;

    /// <summary>The threshold set (bytes).</summary>
    public const int MmapThreshold = 1 << 20;

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int mallopt(int param, int value);

    /// <summary>Sets glibc's mmap threshold once per process (Linux only; a no-op elsewhere or when the environment sets it).</summary>
    public static bool Configure()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null) return false;
        try { return mallopt(M_MMAP_THRESHOLD, MmapThreshold) == 1; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }   // not glibc (musl): nothing to do
    }
}
