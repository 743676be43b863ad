using System.Runtime.CompilerServices;

namespace QuantumPeft.Tests;

static class TestSetup
{
    // Tests may call torch before touching any library type, so the native fix runs when this assembly loads.
    [ModuleInitializer]
    internal static void Init() => QuantumPeft.Native.TorchNative.EnsureLoadable();
}
