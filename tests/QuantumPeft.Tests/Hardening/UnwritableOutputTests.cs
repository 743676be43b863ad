using System.Diagnostics;
using QuantumPeft.Cli.Commands;
using QuantumPeft.Formats;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Formats.Safetensors;
using QuantumPeft.Tests.Cli;
using QuantumPeft.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Hardening;

/// <summary>
/// Output folders that cannot be written (read-only, full, a file in the way): a clear error before training starts, and
/// no partial folder left behind when a write fails. The tests run as root here, where permission bits are not enforced,
/// so "read-only" is a path under a regular file and a folder in /proc (which even root cannot create files in), and "full"
/// is a 64 KB tmpfs where mounting one is allowed.
/// </summary>
public sealed class UnwritableOutputTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "qpeft-unwritable-" + Guid.NewGuid().ToString("N"));
    string? mounted;

    public void Dispose()
    {
        if (mounted is not null) Shell("umount", mounted);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    static int Shell(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(info)!;
            p.WaitForExit();
            return p.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception) { return -1; }
    }

    [Fact]
    public void The_probe_names_a_folder_that_cannot_be_written_and_creates_nothing()
    {
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "x");
        var underFile = Assert.Throws<IOException>(() => AtomicFolder.ProbeWritable(Path.Combine(file, "out", "run")));
        Assert.Contains(Path.Combine(file, "out", "run"), underFile.Message);
        Assert.Contains("is a file", underFile.Message);

        var proc = Path.Combine("/proc", "qpeft-out-" + Guid.NewGuid().ToString("N"));
        var readOnly = Assert.Throws<IOException>(() => AtomicFolder.ProbeWritable(proc));
        Assert.Contains($"output folder '{proc}' is not writable", readOnly.Message);

        // A writable place passes and keeps nothing: no folder, no probe file.
        var fresh = Path.Combine(dir, "new", "run");
        AtomicFolder.ProbeWritable(fresh);
        Assert.False(Directory.Exists(Path.Combine(dir, "new")));
        Assert.Equal([file], Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public void Train_refuses_an_unwritable_out_before_loading_anything()
    {
        var proc = Path.Combine("/proc", "qpeft-train-" + Guid.NewGuid().ToString("N"));
        // A task that does not exist would fail later; the --out check comes first.
        var e = Assert.Throws<IOException>(() => CliCommandTests.Run(new TrainCommand(), "train", "--task", "no-such-task", "--out", proc));
        Assert.Contains("not writable", e.Message);
        Assert.Contains(proc, e.Message);
    }

    [Fact]
    public void A_failed_adapter_or_checkpoint_write_leaves_no_partial_folder()
    {
        Directory.CreateDirectory(dir);
        // A tensor safetensors cannot store fails the write after the folder was begun.
        var tensors = new Dictionary<string, Tensor> { ["base_model.model.a.lora_A.weight"] = ones(2, 2), ["z"] = zeros(2, dtype: ScalarType.ComplexFloat32) };
        var adapter = Path.Combine(dir, "adapter");
        Assert.Throws<ArgumentException>(() => PeftAdapterFiles.Write(adapter, "{}", tensors));
        Assert.False(Directory.Exists(adapter));
        Assert.Empty(Directory.GetFileSystemEntries(dir));

        // A checkpoint whose write fails leaves the previous one as it was, and no temporary folder.
        var run = Path.Combine(dir, "run");
        using var p = nn.Parameter(ones(3));
        using var optimizer = optim.AdamW([p], lr: 0.1);
        var good = new Dictionary<string, Tensor> { ["w"] = p };
        TrainingCheckpoint.Save(run, new TrainerState { Step = 5, Task = "t" }, good, null, optimizer);
        Assert.Throws<ArgumentException>(() => TrainingCheckpoint.Save(run, new TrainerState { Step = 9, Task = "t" }, good, tensors, optimizer));
        Assert.Equal([Path.Combine(run, "checkpoint")], Directory.GetDirectories(run));
        var (state, trainable, best) = TrainingCheckpoint.Load(run, optimizer);
        Assert.Equal(5, state.Step);
        Assert.Null(best);
        Assert.Equal(1f, trainable["w"][0].item<float>());
    }

    [Fact]
    public void A_full_disk_fails_the_probe_and_the_write_without_leaving_files()
    {
        var mount = Path.Combine(dir, "small");
        Directory.CreateDirectory(mount);
        if (!OperatingSystem.IsLinux() || Shell("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount) != 0)
        {
            output.WriteLine("no tmpfs could be mounted here (not root?); the full-disk case was not run.");
            return;
        }
        mounted = mount;
        // Fill it: the probe then fails on its few KB, and a 1 MB write fails with no temporary file left.
        var filler = Path.Combine(mount, "filler");
        try { File.WriteAllBytes(filler, new byte[1 << 20]); } catch (IOException) { }
        var e = Assert.Throws<IOException>(() => AtomicFolder.ProbeWritable(Path.Combine(mount, "out")));
        Assert.Contains("not writable", e.Message);
        File.Delete(filler);

        using var big = ones(256, 1024);
        Assert.ThrowsAny<IOException>(() => SafetensorsFile.Write(Path.Combine(mount, "model.safetensors"), new Dictionary<string, Tensor> { ["w"] = big }));
        Assert.Empty(Directory.GetFileSystemEntries(mount));
        Assert.ThrowsAny<IOException>(() => PeftAdapterFiles.Write(Path.Combine(mount, "adapter"), "{}", new Dictionary<string, Tensor> { ["w"] = big }));
        Assert.Empty(Directory.GetFileSystemEntries(mount));
    }
}
