using System.Runtime;

namespace QuantumPeft.Training;

/// <summary>Runs an action with the .NET garbage collector held off, when it can be.</summary>
/// <remarks>
/// Why: TorchSharp's optimizers (AdamW.step) turn doubles into native Scalars implicitly and leave them to the
/// finalizer. A collection during the step can free such a Scalar while the native call still reads it; the test
/// suite then failed about one run in four with "Expected false to be true" from c10's Scalar::toFloat inside
/// AdamW.step. With no collection during the step, nothing created in it is finalized before it returns.
/// If the step allocates more than the budget, the runtime collects anyway, as it would without this.
/// </remarks>
public static class NoGcRegion
{
    const long Budget = 16L << 20;

    /// <summary>Runs <paramref name="action"/>, without garbage collections if the runtime allows it.</summary>
    public static void Run(Action action)
    {
        bool started = false;
        try { started = GCSettings.LatencyMode != GCLatencyMode.NoGCRegion && GC.TryStartNoGCRegion(Budget); }
        catch (InvalidOperationException) { }
        catch (ArgumentOutOfRangeException) { }
        try { action(); }
        finally
        {
            if (started && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
            {
                try { GC.EndNoGCRegion(); } catch (InvalidOperationException) { }
            }
        }
    }
}
