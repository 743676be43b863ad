using System.Text.RegularExpressions;
using QuantumPeft.Formats.Peft;
using QuantumPeft.Tuners.Lora;
using QuantumPeft.Tuners.Quantum;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>A model with adapters injected in place: the handle for switching, merging, counting, saving and loading them.</summary>
/// <remarks>
/// <para><see cref="Inject"/> swaps every targeted <c>Linear</c> of the model for an <see cref="AdaptedLinear"/> (in place:
/// keep calling the model you passed), freezes every other parameter and unfreezes the active adapter and the
/// <c>modules_to_save</c> (trained in place and saved with the adapter; one copy shared by all adapters, unlike peft's per-adapter copies).</para>
/// <para>Targets: a list entry matches a Linear whose path equals it or ends with "." + entry; a single string is a
/// full-match regex; "all-linear" takes every Linear except the output head, defined as any Linear with a path segment
/// named classifier, score, lm_head or cls, or, when no such layer exists, the last Linear registered. A list entry that
/// matches no Linear is an error listing the Linear layers that exist (peft silently ignores typos; we do not).</para>
/// <para>A Linear held in a field typed <c>Linear</c> cannot be swapped; injection then fails naming the field
/// (declare it as <c>Module&lt;Tensor, Tensor&gt;</c>, or exclude it).</para>
/// <para>Conv2d layers are targets too (a list entry or a regex that names them, or "all-conv" for every one of them; "all-linear"
/// stays linear-only, as in peft): LoRA, Quantum-PEFT, IA3 and LoKr adapt them (<see cref="PeftMethod.SupportsConv2d"/>); the other methods
/// refuse with a message naming the method and the layer. Their kernel is seen as the out x (in * kh * kw) matrix (<see cref="ConvLayers"/>).</para>
/// </remarks>
public sealed class PeftModel
{
    /// <summary>Path segments that mark the output head for "all-linear".</summary>
    public static readonly IReadOnlySet<string> HeadNames = new HashSet<string>(StringComparer.Ordinal) { "classifier", "score", "lm_head", "cls" };

    private readonly Dictionary<string, PeftConfig> configs = new(StringComparer.Ordinal);
    private string? activeAdapter;
    private bool disabled;
    private bool unloaded;

    /// <summary>The model the adapters live in (the same object that was passed to <see cref="Inject"/>).</summary>
    public nn.Module Model { get; }

    /// <summary>Warnings raised by this handle (unknown config keys, unexpected file keys, ...), also sent to <see cref="PeftWarnings.Sink"/> when no list was given.</summary>
    public List<string> Warnings { get; } = [];

    private PeftModel(nn.Module model) { Model = model; }

    /// <summary>Puts adapter <paramref name="adapterName"/> described by <paramref name="config"/> into <paramref name="model"/>.</summary>
    /// <exception cref="ArgumentException">A target matches nothing, a field cannot hold the wrapper, or the config is invalid.</exception>
    public static PeftModel Inject(nn.Module model, PeftConfig config, string adapterName = "default")
    {
        ArgumentNullException.ThrowIfNull(model);
        var peft = new PeftModel(model);
        peft.AddAdapter(adapterName, config);
        return peft;
    }

    /// <summary>The handle for a model that already holds adapters injected by this library (e.g. after a checkpoint restore).</summary>
    public IReadOnlyDictionary<string, PeftConfig> Configs => configs;

    /// <summary>The adapter forward uses (and training updates), or null if none.</summary>
    public string? ActiveAdapter => activeAdapter;

    /// <summary>The active adapter's config.</summary>
    public PeftConfig ActiveConfig => activeAdapter is null ? throw new InvalidOperationException("No active adapter.") : configs[activeAdapter];

    /// <summary>Every adapted layer by path.</summary>
    public IReadOnlyList<(string Path, AdaptedLinear Layer)> AdaptedLayers =>
        Model.named_modules().Where(m => m.module is AdaptedLinear).Select(m => (m.name, (AdaptedLinear)m.module)).ToList();

    /// <summary>Adds another named adapter (not made active; call <see cref="SetAdapter"/>).</summary>
    public void AddAdapter(string adapterName, PeftConfig config)
    {
        EnsureUsable();
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterName);
        if (adapterName.Contains('.')) throw new ArgumentException($"Adapter name '{adapterName}' must not contain '.'.", nameof(adapterName));
        if (configs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' already exists; delete it first or pick another name.", nameof(adapterName));
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var method = PeftRegistry.For(config);

        var saveModules = ResolveModulesToSave(config);
        var targets = ResolveTargets(config, saveModules);
        config = MatchLayout(config, targets);
        // Refuse convolutions this method or this library cannot adapt before any layer is wrapped, so that a failed
        // injection leaves the model as it was.
        foreach (var path in targets)
        {
            var conv = ModuleTree.Get(Model, path) switch
            {
                AdaptedLinear a => a.Conv,
                var m when ConvLayers.IsConv2d(m) => ConvLayers.Shape(m, path),
                _ => null,
            };
            if (conv is not null && !method.SupportsConv2d) _ = method.CreateConv2dBranch(config, path, conv, Warnings); // throws, naming the method and the layer
        }
        foreach (var p in Model.parameters()) p.requires_grad = false;

        var branches = new List<AdapterBranch>();
        foreach (var path in targets)
        {
            var module = ModuleTree.Get(Model, path);
            AdaptedLinear wrapper;
            if (module is AdaptedLinear existing) wrapper = existing;
            else
            {
                wrapper = new AdaptedLinear((nn.Module<Tensor, Tensor>)module, path);
                ModuleTree.Replace(Model, path, wrapper);
            }
            AdapterBranch branch;
            if (config.TargetModules!.PartsFor(path) is { } parts)
            {
                if (wrapper.Conv is not null)
                    throw new ArgumentException($"target '{path}[{string.Join(",", parts)}]': parts belong to a fused q, k, v Linear; '{path}' is a Conv2d.", nameof(config));
                if (wrapper.OutFeatures % FusedPartsBranch.QkvParts.Count != 0)
                    throw new ArgumentException($"target '{path}[{string.Join(",", parts)}]': a fused q, k, v layer has out_features divisible by 3, this one has {wrapper.OutFeatures}.", nameof(config));
                var pieces = parts.Select(p => (p, method.CreateBranch(config, path + "." + p, wrapper.InFeatures, wrapper.OutFeatures / 3, Warnings))).ToList();
                branch = new FusedPartsBranch(wrapper.InFeatures, wrapper.OutFeatures, pieces);
                branches.AddRange(pieces.Select(p => p.Item2));
            }
            else
            {
                branch = wrapper.Conv is { } conv
                    ? method.CreateConv2dBranch(config, path, conv, Warnings)
                    : method.CreateBranch(config, path, wrapper.InFeatures, wrapper.OutFeatures, Warnings);
                branches.Add(branch);
            }
            wrapper.AddAdapter(adapterName, branch);
        }
        method.AdapterCreated(branches);
        method.AdapterCreated(config, branches);
        configs[adapterName] = config;
        activeAdapter ??= adapterName;
        ApplyActiveAndGrad();
    }

    /// <summary>Makes <paramref name="adapterName"/> the one active adapter (its parameters trainable, the others frozen).</summary>
    public void SetAdapter(string adapterName)
    {
        EnsureUsable();
        if (!configs.ContainsKey(adapterName)) throw new ArgumentException($"Unknown adapter '{adapterName}' (have: {string.Join(", ", configs.Keys)}).", nameof(adapterName));
        if (AdaptedLayers.Any(l => l.Layer.IsMerged)) throw new InvalidOperationException("Unmerge before switching adapters.");
        activeAdapter = adapterName;
        ApplyActiveAndGrad();
    }

    /// <summary>Removes adapter <paramref name="adapterName"/>; a layer left without adapters becomes its plain Linear again.</summary>
    public void DeleteAdapter(string adapterName)
    {
        EnsureUsable();
        if (!configs.Remove(adapterName)) throw new ArgumentException($"Unknown adapter '{adapterName}' (have: {string.Join(", ", configs.Keys)}).", nameof(adapterName));
        foreach (var (path, layer) in AdaptedLayers)
        {
            if (!layer.HasAdapter(adapterName)) continue;
            layer.DeleteAdapter(adapterName);
            if (layer.AdapterNames.Count == 0) ModuleTree.Replace(Model, path, layer.BaseLayer);
        }
        if (activeAdapter == adapterName) activeAdapter = configs.Keys.FirstOrDefault();
        ApplyActiveAndGrad();
    }

    /// <summary>True while adapters are disabled (forward = base model).</summary>
    public bool AdaptersDisabled => disabled;

    /// <summary>Forward returns the base model's output until <see cref="EnableAdapters"/>.</summary>
    public void DisableAdapters() { disabled = true; foreach (var (_, l) in AdaptedLayers) l.AdaptersDisabled = true; }

    /// <summary>Undoes <see cref="DisableAdapters"/>.</summary>
    public void EnableAdapters() { disabled = false; foreach (var (_, l) in AdaptedLayers) l.AdaptersDisabled = false; }

    /// <summary>Disables adapters until the returned scope is disposed (<c>using (peft.WithAdaptersDisabled()) ...</c>).</summary>
    public IDisposable WithAdaptersDisabled()
    {
        var was = disabled;
        DisableAdapters();
        return new Scope(() => { if (!was) EnableAdapters(); });
    }

    /// <summary>Adds the active adapter's update into every adapted layer's base weight.</summary>
    public void Merge() { EnsureUsable(); foreach (var (_, l) in AdaptedLayers) l.Merge(); }

    /// <summary>Subtracts merged updates again (exact up to float rounding).</summary>
    public void Unmerge() { EnsureUsable(); foreach (var (_, l) in AdaptedLayers) l.Unmerge(); }

    /// <summary>Merges the active adapter and puts the plain Linear layers back into the tree; returns the model. This handle is then spent.</summary>
    public nn.Module MergeAndUnload()
    {
        EnsureUsable();
        foreach (var (path, layer) in AdaptedLayers)
        {
            layer.Merge();
            ModuleTree.Replace(Model, path, layer.BaseLayer);
        }
        unloaded = true;
        return Model;
    }

    /// <summary>Removes all adapters without merging; returns the model with its original Linear layers. This handle is then spent.</summary>
    public nn.Module Unload()
    {
        EnsureUsable();
        foreach (var (path, layer) in AdaptedLayers)
        {
            layer.Unmerge();
            ModuleTree.Replace(Model, path, layer.BaseLayer);
        }
        unloaded = true;
        return Model;
    }

    /// <summary>The active adapter's parameters (the branch numbers: LoRA A/B, Stiefel angles, lambda).</summary>
    public IEnumerable<Parameter> AdapterParameters() => NamedAdapterParameters().Select(p => p.Parameter);

    /// <summary>The active adapter's parameters by model state name.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedAdapterParameters()
    {
        if (activeAdapter is null) yield break;
        foreach (var (path, layer) in AdaptedLayers)
        {
            if (!layer.HasAdapter(activeAdapter)) continue;
            foreach (var (n, p) in layer[activeAdapter].named_parameters())
                yield return ($"{path}.adapters.{activeAdapter}.{n}", p);
        }
    }

    /// <summary>The active adapter's scale parameters (<see cref="AdapterBranch.ScaleParameterNames"/>: Quantum-PEFT's lambda), by model state name; a subset of <see cref="NamedAdapterParameters"/>.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedScaleParameters()
    {
        if (activeAdapter is null) yield break;
        foreach (var (path, layer) in AdaptedLayers)
        {
            if (!layer.HasAdapter(activeAdapter)) continue;
            var branch = layer[activeAdapter];
            foreach (var (n, p) in branch.named_parameters())
                if (branch.ScaleParameterNames.Contains(n)) yield return ($"{path}.adapters.{activeAdapter}.{n}", p);
        }
    }

    /// <summary>Trainable parameters that are not adapter branches (the modules_to_save, e.g. a classifier head).</summary>
    public IEnumerable<Parameter> OtherTrainableParameters() => NamedOtherTrainableParameters().Select(p => p.Parameter);

    /// <summary>Non-adapter trainable parameters by model state name.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedOtherTrainableParameters()
    {
        var adapterSet = new HashSet<Parameter>(AllBranchParameters(), ReferenceEqualityComparer.Instance);
        return ModuleTree.DistinctParameters(Model).Where(p => p.Parameter.requires_grad && !adapterSet.Contains(p.Parameter));
    }

    /// <summary>Every parameter with requires_grad, by model state name.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedTrainableParameters() =>
        ModuleTree.DistinctParameters(Model).Where(p => p.Parameter.requires_grad);

    /// <summary>A detached CPU copy of every trainable parameter, by model state name (for checkpoints).</summary>
    public Dictionary<string, Tensor> GetTrainableState() =>
        NamedTrainableParameters().ToDictionary(p => p.Name, p => p.Parameter.detach().cpu().clone());

    /// <summary>Copies <paramref name="state"/> (from <see cref="GetTrainableState"/>) into the model's trainable parameters.</summary>
    /// <exception cref="ArgumentException">A name is unknown or not trainable, a trainable parameter is missing, or a shape differs.</exception>
    public void SetTrainableState(IReadOnlyDictionary<string, Tensor> state)
    {
        var trainable = NamedTrainableParameters().ToDictionary(p => p.Name, p => p.Parameter);
        var unknown = state.Keys.Where(k => !trainable.ContainsKey(k)).ToList();
        var missing = trainable.Keys.Where(k => !state.ContainsKey(k)).ToList();
        if (unknown.Count > 0 || missing.Count > 0)
            throw new ArgumentException(
                (unknown.Count > 0 ? $"Not trainable parameters of this model: {string.Join(", ", unknown.Take(10))}. " : "") +
                (missing.Count > 0 ? $"Missing from the state: {string.Join(", ", missing.Take(10))}." : ""), nameof(state));
        using var _ = no_grad();
        foreach (var (name, p) in trainable)
        {
            var t = state[name];
            if (!t.shape.SequenceEqual(p.shape))
                throw new ArgumentException($"State '{name}' has shape [{string.Join(", ", t.shape)}], the model has [{string.Join(", ", p.shape)}].", nameof(state));
            p.copy_(t.to(p.dtype).to(p.device));
        }
    }

    /// <summary>The training hook of the active adapter's method (AdaLoRA's allocator), or null when the method needs none.</summary>
    public IAdapterTrainingHook? CreateTrainingHook() =>
        activeAdapter is null ? null : PeftRegistry.For(configs[activeAdapter]).CreateTrainingHook(this, activeAdapter);

    /// <summary>The parameter report: peft's one line plus a per-module table.</summary>
    public ParameterReport Report()
    {
        var total = ModuleTree.CountParameters(Model);
        var trainable = ModuleTree.CountParameters(Model, trainableOnly: true);
        var rows = new List<ModuleParameterRow>();
        long adapterParams = 0, otherParams = 0;
        long? bits = 0;
        if (activeAdapter is not null)
            foreach (var (path, layer) in AdaptedLayers.Where(l => l.Layer.HasAdapter(activeAdapter)))
            {
                var b = layer[activeAdapter];
                adapterParams += b.ParameterCount;
                bits = bits is { } acc && b.QuantizedBits is { } qb ? acc + qb : null;
                var conv = layer.Conv is { } c ? $"conv2d {c.KernelLabel} ({c.InChannels} -> {c.OutChannels})" : null;
                rows.Add(new ModuleParameterRow(path, b.PeftType.ToLowerInvariant(), layer.InFeatures, layer.OutFeatures, b.ParameterCount,
                    b.QuantizedBits, 100.0 * b.ParameterCount / Math.Max(1, total), conv));
            }
        foreach (var path in configs.Values.SelectMany(c => c.ModulesToSave ?? []).SelectMany(e => MatchModules(e)).Distinct())
        {
            var n = ModuleTree.Get(Model, path).parameters().Sum(p => p.numel());
            otherParams += n;
            rows.Add(new ModuleParameterRow(path, "modules_to_save", 0, 0, n, null, 100.0 * n / Math.Max(1, total)));
        }
        return new ParameterReport(activeAdapter ?? "", activeAdapter is null ? "" : configs[activeAdapter].PeftType,
            adapterParams, otherParams, trainable, total, 100.0 * trainable / Math.Max(1, total),
            adapterParams * 32, rows.Count == 0 || adapterParams == 0 ? null : bits, rows);
    }

    /// <summary>Post-training quantization of the active Quantum-PEFT adapter (angles b_angle bits, lambda b_lambda bits).</summary>
    public void Quantize(int angleBits, int lambdaBits)
    {
        EnsureUsable();
        if (activeAdapter is null || configs[activeAdapter] is not QuantumPeftConfig qc)
            throw new InvalidOperationException("Quantization applies to a Quantum-PEFT adapter; the active adapter is not one.");
        if (AdaptedLayers.Any(l => l.Layer.IsMerged)) throw new InvalidOperationException("Unmerge before quantizing.");
        foreach (var (_, layer) in AdaptedLayers.Where(l => l.Layer.HasAdapter(activeAdapter)))
            foreach (var leaf in FusedPartsBranch.Leaves(layer[activeAdapter])) ((QuantumBranch)leaf).Quantize(angleBits, lambdaBits);
        configs[activeAdapter] = qc with { Quantization = new() { AngleBits = angleBits, LambdaBits = lambdaBits, Mode = "post_training" } };
    }

    /// <summary>The adapter's tensors under peft's file keys (adapter name removed), including modules_to_save.</summary>
    public Dictionary<string, Tensor> AdapterStateDict(string? adapterName = null)
    {
        var name = adapterName ?? activeAdapter ?? throw new InvalidOperationException("No adapter to save.");
        if (!configs.TryGetValue(name, out var config)) throw new ArgumentException($"Unknown adapter '{name}'.", nameof(adapterName));
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, layer) in AdaptedLayers.Where(l => l.Layer.HasAdapter(name)))
            foreach (var (suffix, t) in layer[name].ExportState())
                result[PeftAdapterFiles.Key(path, suffix)] = t;
        foreach (var (k, t) in PeftRegistry.For(config).ExportShared(config, Leaves(name).Select(l => l.Branch).ToList()))
            result[k] = t;
        foreach (var path in (config.ModulesToSave ?? []).SelectMany(e => MatchModules(e)).Distinct())
            foreach (var (k, t) in ModuleTree.Get(Model, path).state_dict())
                result[PeftAdapterFiles.Key(path, k)] = t.detach().cpu().contiguous();
        return result;
    }

    // The method's own branches of adapter `name` (fused parts opened up), with their module paths.
    private List<(string Path, AdapterBranch Branch)> Leaves(string name) =>
        AdaptedLayers.Where(l => l.Layer.HasAdapter(name))
            .SelectMany(l => l.Layer[name] is FusedPartsBranch f
                ? f.Parts.Select(p => (l.Path + "." + p.Part, p.Branch))
                : [(l.Path, l.Layer[name])]).ToList();

    /// <summary>Replaces the stored config of adapter <paramref name="adapterName"/> (e.g. after AdaLoRA's allocator has fixed the ranks); the
    /// new config must be of the same method.</summary>
    public void UpdateConfig(string adapterName, PeftConfig config)
    {
        if (!configs.TryGetValue(adapterName, out var old)) throw new ArgumentException($"Unknown adapter '{adapterName}'.", nameof(adapterName));
        if (old.PeftType != config.PeftType) throw new ArgumentException($"Adapter '{adapterName}' is {old.PeftType}, not {config.PeftType}.", nameof(config));
        configs[adapterName] = config;
    }

    /// <summary>Writes adapter_config.json and adapter_model.safetensors for <paramref name="adapterName"/> (default: the active one).</summary>
    /// <param name="directory">The adapter folder (created if needed).</param>
    /// <param name="adapterName">The adapter to save; null for the active one.</param>
    /// <param name="metadata">Extra safetensors metadata (e.g. what a reader needs to rebuild the model's head); peft ignores it.</param>
    public void Save(string directory, string? adapterName = null, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var name = adapterName ?? activeAdapter ?? throw new InvalidOperationException("No adapter to save.");
        var tensors = AdapterStateDict(name);
        var shapes = AdaptedLayers.Where(l => l.Layer.HasAdapter(name)).ToDictionary(l => l.Path, l => (l.Layer.OutFeatures, l.Layer.InFeatures));
        // peft writes inference_mode = true into saved configs. "all-linear" is written as the layers it resolved to,
        // because peft's own head rule (the output embedding only) could select different layers on load.
        var config = PeftRegistry.For(configs[name]).ConfigForSave(configs[name], Leaves(name)) with { InferenceMode = true };
        if (config.TargetModules is { IsShorthand: true })
            config = config with { TargetModules = ModuleSelector.Of(shapes.Keys.ToArray()) };
        PeftAdapterFiles.Write(directory, config.ToJson(), tensors, shapes, WithConvKernels(metadata, name));
    }

    /// <summary>The safetensors metadata key of the adapted convolutions' kernels (a JSON object path -> [in_channels, kh, kw]),
    /// which <see cref="LoraExport"/> needs to write peft's 4-D LoRA tensors without the model; peft ignores it.</summary>
    public const string ConvKernelsMetadataKey = "qpeft_conv2d_kernels";

    private IReadOnlyDictionary<string, string>? WithConvKernels(IReadOnlyDictionary<string, string>? metadata, string adapterName)
    {
        var convs = AdaptedLayers.Where(l => l.Layer.HasAdapter(adapterName) && l.Layer.Conv is not null)
            .ToDictionary(l => l.Path, l => new[] { l.Layer.Conv!.InChannels, l.Layer.Conv.KernelH, l.Layer.Conv.KernelW });
        if (convs.Count == 0) return metadata;
        var result = metadata?.ToDictionary(p => p.Key, p => p.Value) ?? [];
        result[ConvKernelsMetadataKey] = System.Text.Json.JsonSerializer.Serialize(convs);
        return result;
    }

    /// <summary>The kernels [in_channels, kh, kw] by module path that <see cref="Save"/> wrote into <paramref name="metadata"/>, or an empty map.</summary>
    /// <exception cref="InvalidDataException">The entry is not a JSON object of three positive integers per path.</exception>
    public static IReadOnlyDictionary<string, (int InChannels, int KernelH, int KernelW)> ReadConvKernels(IReadOnlyDictionary<string, string>? metadata, string source)
    {
        if (metadata is null || !metadata.TryGetValue(ConvKernelsMetadataKey, out var json)) return new Dictionary<string, (int, int, int)>();
        Dictionary<string, int[]>? parsed;
        try { parsed = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int[]>>(json); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{source}: metadata \"{ConvKernelsMetadataKey}\" is not valid JSON ({e.Message}).", e); }
        var result = new Dictionary<string, (int, int, int)>(StringComparer.Ordinal);
        foreach (var (path, k) in parsed ?? [])
        {
            if (k is not { Length: 3 } || k.Any(v => v < 1))
                throw new InvalidDataException($"{source}: metadata \"{ConvKernelsMetadataKey}\" for '{path}' must be [in_channels, kh, kw] of positive integers.");
            result[path] = (k[0], k[1], k[2]);
        }
        return result;
    }

    /// <summary>Reads an adapter folder (ours or peft's) and injects it into <paramref name="model"/> with its weights.</summary>
    /// <param name="model">The base model (adapters are injected into it in place).</param>
    /// <param name="directory">Folder with adapter_config.json and adapter_model.safetensors.</param>
    /// <param name="adapterName">Name to give the adapter in this model.</param>
    /// <param name="isTrainable">false (default): everything frozen, for inference; true: the adapter and heads train on.</param>
    /// <param name="warnings">Receives warnings (unknown config keys, unexpected file keys); null sends them to <see cref="PeftWarnings.Sink"/>.</param>
    public static PeftModel Load(nn.Module model, string directory, string adapterName = "default", bool isTrainable = false, ICollection<string>? warnings = null)
    {
        var peft = new PeftModel(model);
        peft.LoadAdapter(directory, adapterName, isTrainable, warnings);
        return peft;
    }

    /// <summary>Loads another adapter folder into this model under <paramref name="adapterName"/> (made active if none is).</summary>
    /// <exception cref="InvalidDataException">Missing adapter keys, shape mismatches (naming the key and both shapes), corrupt files.</exception>
    public void LoadAdapter(string directory, string adapterName, bool isTrainable = false, ICollection<string>? warnings = null)
    {
        // Whatever a corrupt or mismatched folder causes is one InvalidDataException naming it (tests/Hardening fuzzes this);
        // only the caller's own mistakes (the adapter name) stay ArgumentExceptions.
        try { LoadAdapterFrom(directory, adapterName, isTrainable, warnings); }
        catch (InvalidDataException e) when (!e.Message.Contains(directory, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{directory}: {e.Message}", e);
        }
        catch (ArgumentException e) when (e.ParamName is not (nameof(adapterName) or nameof(directory)))
        {
            throw new InvalidDataException($"{directory}: {PeftConfig.WithoutParameter(e)}", e);
        }
    }

    private void LoadAdapterFrom(string directory, string adapterName, bool isTrainable, ICollection<string>? warnings)
    {
        EnsureUsable();
        var sink = new List<string>();
        var files = PeftAdapterFiles.Read(directory);
        sink.AddRange(Formats.TensorChecks.CheckFinite(files.Tensors, Path.Combine(directory, PeftAdapterFiles.WeightsFileName)));
        var config = PeftConfig.FromJson(files.ConfigJson, sink, files.ConfigPath) with { InferenceMode = !isTrainable };
        var method = PeftRegistry.For(config);
        CheckShapes(files, config);

        // peft's task models list every head name they know (SEQ_CLS: classifier and score); one this model lacks is skipped, as peft does.
        if (config.ModulesToSave is { Count: > 0 } listed)
        {
            var kept = listed.Where(e => MatchModules(e).Any()).ToList();
            if (kept.Count < listed.Count)
            {
                sink.Add($"{files.ConfigPath}: modules_to_save {string.Join(", ", listed.Except(kept).Select(e => $"'{e}'"))} match no module of this model; skipped.");
                config = config with { ModulesToSave = kept.Count > 0 ? kept : null };
            }
        }
        AddAdapter(adapterName, config);
        var used = new HashSet<string>(StringComparer.Ordinal);
        try { used.UnionWith(method.ImportShared(config, Leaves(adapterName).Select(l => l.Branch).ToList(), files.Tensors, Path.Combine(directory, PeftAdapterFiles.WeightsFileName), sink)); }
        catch { DeleteAdapterQuietly(adapterName); throw; }
        var missing = new List<string>();
        foreach (var (path, layer) in AdaptedLayers.Where(l => l.Layer.HasAdapter(adapterName)))
        {
            var prefix = PeftAdapterFiles.KeyPrefix + path + ".";
            // A fused-parts layer's keys carry the part first (q.lora_A.weight).
            var partPrefixes = layer[adapterName] is FusedPartsBranch fused ? fused.Parts.Select(p => p.Part + ".").ToList() : [""];
            var state = files.Tensors.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal)
                    && partPrefixes.Any(pp => p.Key[prefix.Length..].StartsWith(pp, StringComparison.Ordinal)
                        && method.KeyInfixes.Any(i => p.Key[(prefix.Length + pp.Length)..].StartsWith(i, StringComparison.Ordinal))))
                .ToDictionary(p => p.Key[prefix.Length..], p => p.Value);
            if (state.Count == 0) { missing.Add(path); continue; }
            try { layer[adapterName].ImportState(state, prefix); }
            catch { DeleteAdapterQuietly(adapterName); throw; }
            used.UnionWith(state.Keys.Select(k => prefix + k));
        }
        if (missing.Count > 0)
        {
            DeleteAdapterQuietly(adapterName);
            throw new InvalidDataException($"{Path.Combine(directory, PeftAdapterFiles.WeightsFileName)} has no {config.PeftType} weights for " +
                $"{missing.Count} targeted module(s): {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", ..." : "")}.{PrefixHint(missing[0], files.Tensors.Keys)}");
        }
        foreach (var path in (config.ModulesToSave ?? []).SelectMany(e => MatchModules(e)).Distinct())
        {
            using var _ = no_grad();
            foreach (var (k, t) in ModuleTree.Get(Model, path).state_dict())
            {
                var key = PeftAdapterFiles.Key(path, k);
                if (!files.Tensors.TryGetValue(key, out var src))
                {
                    DeleteAdapterQuietly(adapterName);
                    throw new InvalidDataException($"Adapter key '{key}' (modules_to_save '{path}') is missing from the file.");
                }
                if (!src.shape.SequenceEqual(t.shape))
                {
                    DeleteAdapterQuietly(adapterName);
                    throw new InvalidDataException($"Adapter key '{key}' has shape [{string.Join(", ", src.shape)}] in the file but the model expects [{string.Join(", ", t.shape)}].");
                }
                t.copy_(src.to(t.dtype).to(t.device));
                used.Add(key);
            }
        }
        var unexpected = files.Tensors.Keys.Where(k => !used.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0)
            sink.Add($"{Path.Combine(directory, PeftAdapterFiles.WeightsFileName)}: {unexpected.Count} unexpected key(s) ignored: {string.Join(", ", unexpected.Take(8))}{(unexpected.Count > 8 ? ", ..." : "")}.");
        foreach (var w in sink) { Warnings.Add(w); PeftWarnings.Report(warnings, w); }
        ApplyActiveAndGrad();
    }

    // peft's rule: the layer decides fan_in_fan_out (true for GPT-2's Conv1D, false for Linear), with a warning when the config disagrees.
    private PeftConfig MatchLayout(PeftConfig config, IReadOnlyList<string> targets)
    {
        if (config is not IFanInFanOutConfig layout || targets.Count == 0) return config;
        bool conv = targets.Any(p => ModuleTree.Get(Model, p) is var m && (m is AdaptedLinear a ? a.FanInFanOut : LinearLayers.IsFanInFanOut(m)));
        if (conv == layout.FanInFanOut) return config;
        var message = conv
            ? "fan_in_fan_out is set to false but the target modules are Conv1D (GPT-2); setting fan_in_fan_out to true."
            : "fan_in_fan_out is set to true but the target modules are Linear; setting fan_in_fan_out to false.";
        Warnings.Add(message);
        PeftWarnings.Report(null, message);
        return layout.WithFanInFanOut(conv);
    }

    private void CheckShapes(PeftAdapterContents files, PeftConfig config)
    {
        var shapes = PeftAdapterFiles.ModuleShapes(files.Metadata, Path.Combine(files.Directory, PeftAdapterFiles.WeightsFileName));
        if (shapes is null) return;
        var modules = ModuleTree.Modules(Model);
        foreach (var (path, (o, i)) in shapes)
        {
            if (!modules.TryGetValue(path, out var m))
                throw new InvalidDataException($"The adapter in {files.Directory} was trained with a module '{path}' that this model does not have.");
            var (mo, mi) = m switch
            {
                AdaptedLinear a => (a.OutFeatures, a.InFeatures),
                _ when ConvLayers.IsConv2d(m) => (ConvLayers.Shape(m, path).OutChannels, ConvLayers.Shape(m, path).MatrixIn),
                _ when LinearLayers.IsLinear(m) => (LinearLayers.Shape(m).Out, LinearLayers.Shape(m).In),
                _ => throw new InvalidDataException($"Module '{path}' is a {m.GetType().Name} in this model, the adapter expects a Linear or Conv2d."),
            };
            if (mo != o || mi != i)
                throw new InvalidDataException($"Module '{path}': the adapter in {files.Directory} was trained for [out, in] = [{o}, {i}], this model has [{mo}, {mi}].");
        }
    }

    private void DeleteAdapterQuietly(string name)
    {
        if (configs.ContainsKey(name)) DeleteAdapter(name);
    }

    private IEnumerable<Parameter> AllBranchParameters() =>
        AdaptedLayers.SelectMany(l => l.Layer.Branches).SelectMany(b => b.Branch.parameters());

    private void ApplyActiveAndGrad()
    {
        var config = activeAdapter is null ? null : configs[activeAdapter];
        var train = config is { InferenceMode: false };
        foreach (var (_, layer) in AdaptedLayers)
        {
            layer.SetActive(activeAdapter is not null && layer.HasAdapter(activeAdapter) ? [activeAdapter] : []);
            layer.AdaptersDisabled = disabled;
            foreach (var (name, branch) in layer.Branches)
                foreach (var p in branch.parameters()) p.requires_grad = train && name == activeAdapter;
        }
        var heads = configs.Values.SelectMany(c => c.ModulesToSave ?? []).SelectMany(e => MatchModules(e)).Distinct().ToList();
        foreach (var path in heads)
            foreach (var p in ModuleTree.Get(Model, path).parameters())
                p.requires_grad = train && (config?.ModulesToSave ?? []).Any(e => ModuleSelector.EntryMatches(e, path));
    }

    private void EnsureUsable()
    {
        if (unloaded) throw new InvalidOperationException("The adapters were unloaded from this model; inject again to add new ones.");
    }

    // ---- target resolution ----

    private IEnumerable<string> MatchModules(string entry) =>
        ModuleTree.Modules(Model).Keys.Where(p => ModuleSelector.EntryMatches(entry, p) && !IsInsideWrapper(p));

    private bool IsInsideWrapper(string path) => path.EndsWith(".base_layer", StringComparison.Ordinal) || path.Contains(".adapters.", StringComparison.Ordinal);

    private List<string> ResolveModulesToSave(PeftConfig config)
    {
        var result = new List<string>();
        foreach (var entry in config.ModulesToSave ?? [])
        {
            var hits = MatchModules(entry).ToList();
            if (hits.Count == 0)
                throw new ArgumentException($"modules_to_save entry '{entry}' matches no module. Top-level modules: {string.Join(", ", Model.named_children().Select(c => c.name))}.", nameof(config));
            result.AddRange(hits);
        }
        return result;
    }

    /// <summary>The Linear, Conv1D and Conv2d (or already adapted) layers a config selects, in model order.</summary>
    public IReadOnlyList<string> ResolveTargets(PeftConfig config) => ResolveTargets(config, ResolveModulesToSave(config));

    private List<string> ResolveTargets(PeftConfig config, IReadOnlyList<string> saveModules)
    {
        var all = Model.named_modules()
            .Where(m => m.name.Length > 0 && (m.module is AdaptedLinear || (LinearLayers.IsAdaptable(m.module) && !IsInsideWrapper(m.name))))
            .ToList();
        var candidates = all.Select(m => m.name).ToList();
        var convs = all.Where(m => m.module is AdaptedLinear { Conv: not null } || ConvLayers.IsConv2d(m.module)).Select(m => m.name).ToHashSet();
        var linears = candidates.Where(p => !convs.Contains(p)).ToList();
        bool InHead(string p) => saveModules.Any(s => p == s || p.StartsWith(s + ".", StringComparison.Ordinal));
        var sel = config.TargetModules!;
        List<string> chosen;
        if (sel.IsAllLinear)
        {
            // As peft's: linear layers only, never a convolution.
            var head = linears.Where(p => p.Split('.').Any(HeadNames.Contains)).ToHashSet();
            if (head.Count == 0 && linears.Count > 0) head.Add(linears[^1]);
            chosen = linears.Where(p => !head.Contains(p) && !InHead(p)).ToList();
        }
        else if (sel.IsAllConv)
        {
            chosen = candidates.Where(p => convs.Contains(p) && !InHead(p)).ToList();
            if (chosen.Count == 0) throw new ArgumentException("target_modules \"all-conv\" selects no layer: this model has no Conv2d outside modules_to_save.", nameof(config));
        }
        else if (sel.Names is not null)
        {
            foreach (var entry in sel.Names)
                if (!candidates.Any(p => ModuleSelector.EntryMatches(entry, p)))
                    throw new ArgumentException(NoMatchMessage($"target_modules entry '{entry}'", candidates, entry), nameof(config));
            chosen = candidates.Where(sel.Matches).ToList();
        }
        else
        {
            chosen = candidates.Where(sel.Matches).ToList();
            if (chosen.Count == 0) throw new ArgumentException(NoMatchMessage($"target_modules pattern \"{sel.Pattern}\"", candidates, null), nameof(config));
        }
        var clash = chosen.Where(InHead).ToList();
        if (clash.Count > 0 && !sel.IsShorthand)
            throw new ArgumentException($"'{clash[0]}' is both a target and inside modules_to_save; pick one.", nameof(config));
        if (config.ExcludeModules is { } ex)
            chosen = chosen.Where(p => ex.IsAllLinear ? convs.Contains(p) : ex.IsAllConv ? !convs.Contains(p) : !ex.Matches(p)).ToList();
        if (chosen.Count == 0) throw new ArgumentException("target_modules selects no layer after exclude_modules.", nameof(config));
        return chosen;
    }

    // peft names keys after the model class an adapter was trained on (FEATURE_EXTRACTION on BertModel: encoder...; SEQ_CLS on
    // BertForSequenceClassification: bert.encoder...). When the file holds the same module under a longer or shorter path, say which.
    static string PrefixHint(string missingPath, IEnumerable<string> fileKeys)
    {
        var keys = fileKeys.ToList();
        var segments = missingPath.Split('.');
        for (int drop = 1; drop < segments.Length; drop++)
        {
            var tail = "." + string.Join('.', segments.Skip(drop)) + ".";
            var found = keys.FirstOrDefault(k => k.Contains(tail, StringComparison.Ordinal));
            if (found is not null)
            {
                var expected = PeftAdapterFiles.KeyPrefix + missingPath + found[(found.IndexOf(tail, StringComparison.Ordinal) + tail.Length - 1)..];
                return $" Expected a key such as '{expected}', found '{found}': the adapter was saved for a model whose modules are named without " +
                       $"'{string.Join('.', segments.Take(drop))}.' (peft names keys after the model class it trained: a bare encoder for FEATURE_EXTRACTION, " +
                       "the task model for SEQ_CLS / CAUSAL_LM); load it into that model (for a bare encoder: a base model folder, as qpeft logits and merge do).";
            }
        }
        foreach (var k in keys.Where(k => k.StartsWith(PeftAdapterFiles.KeyPrefix, StringComparison.Ordinal)))
        {
            // The file's paths are longer: its model wraps ours (e.g. SEQ_CLS keys bert.encoder... given to a bare encoder).
            var rest = k[PeftAdapterFiles.KeyPrefix.Length..];
            var at = rest.IndexOf("." + missingPath + ".", StringComparison.Ordinal);
            if (at >= 0)
                return $" Expected a key such as '{PeftAdapterFiles.KeyPrefix}{missingPath}{rest[(at + 1 + missingPath.Length)..]}', found '{k}': the adapter was saved for " +
                       $"a model that holds this one under '{rest[..at]}.' (peft names keys after the model class it trained); load it into that model.";
        }
        return "";
    }

    private string NoMatchMessage(string what, List<string> linears, string? entry)
    {
        var leafNames = linears.Select(p => p[(p.LastIndexOf('.') + 1)..]).Distinct().ToList();
        var other = entry is null ? [] : ModuleTree.Modules(Model).Keys.Where(p => ModuleSelector.EntryMatches(entry, p)).Take(3).ToList();
        return $"{what} matches no Linear or Conv2d layer" + (other.Count > 0 ? $" (it matches {string.Join(", ", other)}, which is not a Linear or Conv2d)" : "") +
               $". Linear and Conv2d layer names in this model: {string.Join(", ", leafNames)}; e.g. {string.Join(", ", linears.Take(6))}" +
               (linears.Count > 6 ? $" ... ({linears.Count} in all)." : ".");
    }

    private sealed class Scope(Action onDispose) : IDisposable
    {
        private Action? action = onDispose;
        public void Dispose() { action?.Invoke(); action = null; }
    }
}

/// <summary>Extension form of <see cref="PeftModel.Inject"/>.</summary>
public static class PeftModelExtensions
{
    /// <summary>Injects adapter <paramref name="adapterName"/> into this model (in place) and returns its handle.</summary>
    public static PeftModel AddAdapters(this nn.Module model, PeftConfig config, string adapterName = "default") =>
        PeftModel.Inject(model, config, adapterName);
}
