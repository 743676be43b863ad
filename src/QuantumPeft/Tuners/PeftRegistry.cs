using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>One adapter method as a plug-in: its name in files, its config type, and how to build a branch.</summary>
public abstract class PeftMethod
{
    /// <summary>The "peft_type" value in adapter_config.json.</summary>
    public abstract string PeftType { get; }

    /// <summary>The <see cref="PeftConfig"/> subtype that "peft_type" selects.</summary>
    public abstract Type ConfigType { get; }

    /// <summary>Key infixes that mark this method's tensors in adapter_model.safetensors (e.g. "lora_A.").</summary>
    public abstract IReadOnlyList<string> KeyInfixes { get; }

    /// <summary>Builds a fresh branch for the Linear at <paramref name="modulePath"/> (float32, CPU).</summary>
    public abstract AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings);

    /// <summary>True when <see cref="CreateConv2dBranch"/> builds branches for Conv2d layers (LoRA, Quantum-PEFT, IA3, LoKr).</summary>
    public virtual bool SupportsConv2d => false;

    /// <summary>Builds a fresh branch for the Conv2d at <paramref name="modulePath"/>; the default refuses, naming the method, the layer and the methods that can.</summary>
    /// <exception cref="ArgumentException">This method does not adapt convolutions.</exception>
    public virtual AdapterBranch CreateConv2dBranch(PeftConfig config, string modulePath, Conv2dShape conv, ICollection<string>? warnings) =>
        throw new ArgumentException($"{PeftType} cannot adapt '{modulePath}', a Conv2d ({conv.InChannels} -> {conv.OutChannels}, {conv.KernelLabel}): " +
            $"{PeftType} adapts Linear and Conv1D layers only. Methods that adapt Conv2d: {string.Join(", ", PeftRegistry.Conv2dMethods)}; " +
            "or exclude the convolutions from target_modules.", nameof(config));

    /// <summary>The hook a trainer calls for this method's adapter <paramref name="adapterName"/> of <paramref name="peft"/>, or null (most methods).</summary>
    public virtual IAdapterTrainingHook? CreateTrainingHook(PeftModel peft, string adapterName) => null;

    /// <summary>Called once with all branches of a newly added adapter, e.g. to share work between them.</summary>
    public virtual void AdapterCreated(IReadOnlyList<AdapterBranch> branches) { }

    /// <summary>Called once with the config and all branches of a newly added adapter (after <see cref="AdapterCreated(IReadOnlyList{AdapterBranch})"/>),
    /// for methods whose branches share state built from the config (VeRA's projections).</summary>
    public virtual void AdapterCreated(PeftConfig config, IReadOnlyList<AdapterBranch> branches) { }

    /// <summary>Tensors shared by all branches of an adapter, under their full file keys (e.g. VeRA's <c>base_model.vera_A</c>); empty for most methods.</summary>
    public virtual Dictionary<string, Tensor> ExportShared(PeftConfig config, IReadOnlyList<AdapterBranch> branches) => [];

    /// <summary>Restores the shared tensors from a file's tensors (before the branches' own); returns the file keys it used.</summary>
    public virtual IReadOnlyCollection<string> ImportShared(PeftConfig config, IReadOnlyList<AdapterBranch> branches,
        IReadOnlyDictionary<string, Tensor> tensors, string source, ICollection<string> warnings) => [];

    /// <summary>The config as it is written next to the weights (AdaLoRA writes the final rank_pattern into it).</summary>
    public virtual PeftConfig ConfigForSave(PeftConfig config, IReadOnlyList<(string Path, AdapterBranch Branch)> branches) => config;
}

/// <summary>Maps "peft_type" to its method, so a new adapter method is registered, not forked in.</summary>
public static class PeftRegistry
{
    private static readonly Dictionary<string, PeftMethod> methods = new(StringComparer.Ordinal);

    static PeftRegistry()
    {
        Register(new LoraMethod());
        Register(new QuantumPeftMethod());
        Register(new FourierFT.FourierFTMethod());
        Register(new LoKr.LoKrMethod());
        Register(new Vera.VeraMethod());
        Register(new IA3.IA3Method());
        Register(new Oft.OftMethod());
        Register(new AdaLora.AdaLoraMethod());
    }

    /// <summary>Adds (or replaces) a method.</summary>
    public static void Register(PeftMethod method)
    {
        ArgumentNullException.ThrowIfNull(method);
        if (!typeof(PeftConfig).IsAssignableFrom(method.ConfigType))
            throw new ArgumentException($"{method.ConfigType} is not a PeftConfig.", nameof(method));
        lock (methods) methods[method.PeftType] = method;
    }

    /// <summary>The registered "peft_type" names.</summary>
    public static IReadOnlyList<string> Names { get { lock (methods) return methods.Keys.Order(StringComparer.Ordinal).ToList(); } }

    /// <summary>The "peft_type" names whose methods adapt Conv2d layers.</summary>
    public static IReadOnlyList<string> Conv2dMethods { get { lock (methods) return methods.Values.Where(m => m.SupportsConv2d).Select(m => m.PeftType).Order(StringComparer.Ordinal).ToList(); } }

    /// <summary>The method registered under <paramref name="peftType"/>.</summary>
    /// <exception cref="ArgumentException">Unknown type; the message lists the known ones.</exception>
    public static PeftMethod Get(string peftType)
    {
        lock (methods)
            return methods.TryGetValue(peftType, out var m) ? m
                : throw new ArgumentException($"Unknown peft_type \"{peftType}\"; this library knows {string.Join(", ", methods.Keys.Order(StringComparer.Ordinal))}.", nameof(peftType));
    }

    /// <summary>The method of <paramref name="config"/>.</summary>
    public static PeftMethod For(PeftConfig config) => Get(config.PeftType);
}

/// <summary>Deterministic per-module seeds, so that the same config on the same model gives the same adapter.</summary>
public static class StableSeed
{
    /// <summary>FNV-1a of the parts, mixed with <paramref name="seed"/>; independent of .NET's randomised string hashing.</summary>
    public static long For(long seed, params string[] parts)
    {
        ulong h = 14695981039346656037UL ^ (ulong)seed;
        foreach (var p in parts)
        {
            foreach (var ch in p) { h ^= ch; h *= 1099511628211UL; }
            h ^= 0xFF; h *= 1099511628211UL;
        }
        return (long)(h & 0x7FFF_FFFF_FFFF_FFFFUL);
    }
}
