using System.Globalization;

namespace QuantumPeft.Formats;

/// <summary>Test hook: pauses the process at a named point inside a file write, so that a test can kill it exactly there.</summary>
/// <remarks>
/// For the kill-and-resume tests only; no user needs it. With the environment variable
/// <c>QPEFT_TEST_PAUSE_AT=POINT[:N]</c>, the N-th time (default 1) this process reaches POINT it writes
/// <c>qpeft-test-paused-at: POINT N</c> to standard error and sleeps until killed. Without the variable (every real
/// run) a point costs one comparison. Points: <c>write:FILE</c> inside every safetensors and atomic file write (the
/// temporary file holds part of the data), <c>adapter:between-files</c> (weights written, config not yet),
/// <c>checkpoint:files</c> (half a checkpoint in its temporary folder), <c>checkpoint:swap</c> (the old checkpoint
/// moved aside, the new one not yet renamed into place).
/// </remarks>
public static class TestHooks
{
    /// <summary>The environment variable read once at start.</summary>
    public const string PauseVariable = "QPEFT_TEST_PAUSE_AT";

    /// <summary>The line written to standard error when the process pauses.</summary>
    public const string PausedMarker = "qpeft-test-paused-at:";

    static readonly (string Point, int Count)? Target = Parse(Environment.GetEnvironmentVariable(PauseVariable));
    static readonly Dictionary<string, int> Reached = [];

    static (string, int)? Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        int colon = value.LastIndexOf(':');
        return colon > 0 && int.TryParse(value[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? (value[..colon], n) : (value, 1);
    }

    /// <summary>Marks <paramref name="point"/>; pauses forever when it is the configured point and count.</summary>
    public static void Reach(string point)
    {
        if (Target is not { } target || target.Point != point) return;
        int count;
        lock (Reached) Reached[point] = count = Reached.GetValueOrDefault(point) + 1;
        if (count != target.Count) return;
        Console.Error.WriteLine($"{PausedMarker} {point} {count}");
        Console.Error.Flush();
        Thread.Sleep(Timeout.Infinite);
    }
}
