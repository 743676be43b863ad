using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>The geometry of a 2-D convolution an adapter wraps: channels, kernel, stride, padding, dilation.</summary>
/// <remarks>An adapter sees the kernel [out, in, kh, kw] as the out x (in * kh * kw) matrix <c>weight.view(out, -1)</c>
/// (channel-major, then kernel rows, then columns: PyTorch's memory order), so <see cref="MatrixIn"/> is the "in_features"
/// of every count formula and every merge.</remarks>
public sealed record Conv2dShape(int InChannels, int OutChannels, int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1, int PaddingH = 0, int PaddingW = 0, int DilationH = 1, int DilationW = 1)
{
    /// <summary>in * kh * kw: the columns of the kernel seen as a matrix.</summary>
    public int MatrixIn => InChannels * KernelH * KernelW;

    /// <summary>"3x3", the kernel size as the parameter report writes it.</summary>
    public string KernelLabel => $"{KernelH}x{KernelW}";

    /// <summary>True for a 1 x 1 kernel (peft merges those with a plain matrix product).</summary>
    public bool IsPointwise => KernelH == 1 && KernelW == 1;

    /// <summary>conv2d of <paramref name="x"/> [N, C, H, W] with <paramref name="kernel"/> [c_out, C, kh, kw] and this stride, padding and dilation.</summary>
    public Tensor Apply(Tensor x, Tensor kernel) =>
        nn.functional.conv2d(x, kernel, null, strides: [StrideH, StrideW], padding: [PaddingH, PaddingW], dilation: [DilationH, DilationW]);
}

/// <summary>What adapters need from a TorchSharp <c>Conv2d</c>: its geometry, and its kernel seen as an out x (in * kh * kw) matrix.</summary>
/// <remarks>Supported: groups = 1 and zero padding (numeric or "same" with an odd kernel). peft's LoRA refuses to merge grouped
/// convolutions and pads its lora_A with zeros whatever the base layer's padding mode, so other convolutions are refused with a
/// message naming the layer rather than adapted with an update that merging would change.</remarks>
public static class ConvLayers
{
    /// <summary>True for a 2-D convolution.</summary>
    public static bool IsConv2d(nn.Module module) => module is Conv2d;

    /// <summary>The geometry of <paramref name="module"/> (a Conv2d); <paramref name="path"/> names it in errors.</summary>
    /// <exception cref="ArgumentException">Not a Conv2d, groups &gt; 1, a transposed convolution, or padding other than zeros.</exception>
    public static Conv2dShape Shape(nn.Module module, string? path = null)
    {
        var name = path is null ? "a Conv2d layer" : $"Conv2d '{path}'";
        if (module is not Conv2d c) throw new ArgumentException($"{path ?? module.GetType().Name} is a {module.GetType().Name}, not a Conv2d layer.", nameof(module));
        if (c.groups != 1)
            throw new ArgumentException($"{name} has groups = {c.groups}; adapters support groups = 1 only (peft cannot merge LoRA into grouped convolutions either). Exclude the layer.", nameof(module));
        if (c.transposed) throw new ArgumentException($"{name} is a transposed convolution, which adapters do not support. Exclude the layer.", nameof(module));
        if (c.padding_mode != PaddingModes.Zeros)
            throw new ArgumentException($"{name} pads with {c.padding_mode}; adapters support zero padding only (peft's lora_A pads with zeros, so its update would not merge exactly). Exclude the layer.", nameof(module));
        var w = c.weight!;
        if (w.dim() != 4) throw new ArgumentException($"{name} has a {w.dim()}-D weight; a Conv2d kernel is [out, in, kh, kw].", nameof(module));
        int kh = (int)w.shape[2], kw = (int)w.shape[3];
        var stride = Pair(c.stride, 1);
        var dilation = Pair(c.dilation, 1);
        (int H, int W) padding;
        if (c.padding_type == Padding.Same)
        {
            int th = dilation.H * (kh - 1), tw = dilation.W * (kw - 1);
            if (th % 2 != 0 || tw % 2 != 0)
                throw new ArgumentException($"{name} uses padding \"same\" with an even kernel extent, which pads unevenly; adapters need symmetric padding.", nameof(module));
            padding = (th / 2, tw / 2);
        }
        else padding = c.padding_type == Padding.Valid ? (0, 0) : Pair(c.padding, 0);
        return new Conv2dShape((int)w.shape[1], (int)w.shape[0], kh, kw, stride.H, stride.W, padding.H, padding.W, dilation.H, dilation.W);
    }

    private static (int H, int W) Pair(long[]? values, int fallback) => values switch
    {
        null or { Length: 0 } => (fallback, fallback),
        { Length: 1 } => ((int)values[0], (int)values[0]),
        _ => ((int)values[0], (int)values[1]),
    };

    /// <summary>The Conv2d layers of <paramref name="model"/> that adapters accept (groups = 1, zero padding), by path in model order, with their geometry.</summary>
    public static IReadOnlyList<(string Path, Conv2dShape Conv)> Conv2ds(nn.Module model)
    {
        var result = new List<(string, Conv2dShape)>();
        foreach (var (path, m) in model.named_modules())
        {
            if (path.Length == 0 || m is not Conv2d) continue;
            try { result.Add((path, Shape(m, path))); }
            catch (ArgumentException) { } // grouped or padded otherwise: not a target
        }
        return result;
    }

    /// <summary>The kernel seen as [out, in * kh * kw] (a view: in-place updates reach the stored kernel).</summary>
    /// <exception cref="InvalidOperationException">The kernel is not contiguous (e.g. channels-last), so no such view exists.</exception>
    public static Tensor WeightOutIn(nn.Module module)
    {
        if (module is not Conv2d c) throw new ArgumentException($"{module.GetType().Name} is not a Conv2d layer.", nameof(module));
        var w = c.weight!;
        if (!w.is_contiguous())
            throw new InvalidOperationException("A Conv2d kernel an adapter merges into must be contiguous ([out, in, kh, kw] in memory order); this one is not (channels-last?). Make it contiguous before adding adapters.");
        return w.view(w.shape[0], -1);
    }
}
