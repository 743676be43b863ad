namespace QuantumPeft.Tuners;

/// <summary>Where non-fatal problems (unknown config keys, unexpected adapter keys) are reported.</summary>
/// <remarks>A call that takes a warnings list adds to it; without one, the warning goes to <see cref="Sink"/>,
/// which writes "warning: ..." to standard error unless replaced (e.g. by a trainer's logger).</remarks>
public static class PeftWarnings
{
    /// <summary>The process-wide fallback for warnings that have no list to go to.</summary>
    public static Action<string> Sink { get; set; } = message => Console.Error.WriteLine($"warning: {message}");

    internal static void Report(ICollection<string>? warnings, string message)
    {
        if (warnings is not null) warnings.Add(message);
        else Sink(message);
    }
}
