using System.Diagnostics;
using System.Text;
using QuantumPeft.Formats;

namespace QuantumPeft.Tests.Hardening;

/// <summary>The real <c>qpeft</c> executable as a child process (the CLI project's build output is copied beside the tests).</summary>
static class QpeftProcess
{
    public static string Executable => Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "qpeft.exe" : "qpeft");

    static Process Start(IEnumerable<string> args, string? pauseAt)
    {
        if (!File.Exists(Executable)) throw new FileNotFoundException($"qpeft is not built beside the tests: expected '{Executable}'.", Executable);
        var info = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8, StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove(TestHooks.PauseVariable);
        if (pauseAt is not null) info.Environment[TestHooks.PauseVariable] = pauseAt;
        info.Environment["QPEFT_DEBUG"] = "1";
        return Process.Start(info)!;
    }

    /// <summary>Runs to the end; returns the exit code and both streams.</summary>
    public static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        using var p = Start(args, null);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"qpeft {string.Join(" ", args)} did not finish in 3 minutes.");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>
    /// Starts qpeft with the pause hook at <paramref name="pauseAt"/>, waits until the process says it paused there (inside a
    /// write), and kills it with SIGKILL; returns what it wrote. Throws when it ends or fails before reaching the point.
    /// </summary>
    public static string RunAndKillAt(string pauseAt, params string[] args)
    {
        using var p = Start(args, pauseAt);
        var stderr = new StringBuilder();
        using var paused = new ManualResetEventSlim();
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) stderr.AppendLine(e.Data);
            if (e.Data.StartsWith(TestHooks.PausedMarker, StringComparison.Ordinal)) paused.Set();
        };
        p.BeginErrorReadLine();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var clock = Stopwatch.StartNew();
        while (!paused.Wait(100))
        {
            if (clock.Elapsed > TimeSpan.FromMinutes(3))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"qpeft did not reach {pauseAt} in 3 minutes:\n{stderr}");
            }
            if (p.HasExited)
            {
                p.WaitForExit();
                throw new InvalidOperationException($"qpeft ended (exit {p.ExitCode}) before pausing at {pauseAt}:\n{stdout.Result}\n{stderr}");
            }
        }
        // Process.Kill is SIGKILL on Unix: no finally blocks, no flushing, exactly a crash.
        p.Kill(entireProcessTree: true);
        p.WaitForExit();
        lock (stderr) return stderr.ToString();
    }
}
