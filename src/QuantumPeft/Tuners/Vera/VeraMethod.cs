using static TorchSharp.torch;

namespace QuantumPeft.Tuners.Vera;

/// <summary>Registers VeRA ("VERA") with <see cref="PeftRegistry"/>; builds and saves the projections the layers share.</summary>
public sealed class VeraMethod : PeftMethod
{
    /// <summary>peft's file keys of the shared projections (get_peft_model_state_dict with the adapter name removed).</summary>
    public const string KeyA = "base_model.vera_A", KeyB = "base_model.vera_B";

    public override string PeftType => VeraConfig.TypeName;
    public override Type ConfigType => typeof(VeraConfig);
    public override IReadOnlyList<string> KeyInfixes => ["vera_lambda_"];

    public override AdapterBranch CreateBranch(PeftConfig config, string modulePath, int inFeatures, int outFeatures, ICollection<string>? warnings)
    {
        var c = (VeraConfig)config;
        return new VeraBranch(inFeatures, outFeatures, c.R, c.DInitial, c.InitWeights, c.VeraDropout);
    }

    // peft's _find_dim: the largest in and out over the targeted layers size the shared A [r, max_in] and B [max_out, r].
    public override void AdapterCreated(PeftConfig config, IReadOnlyList<AdapterBranch> branches)
    {
        var c = (VeraConfig)config;
        var vera = branches.OfType<VeraBranch>().ToList();
        if (vera.Count == 0) return;
        var shared = VeraProjections.Generate(c.R, vera.Max(b => b.InFeatures), vera.Max(b => b.OutFeatures), c.ProjectionPrngKey);
        foreach (var b in vera) b.Projections = shared;
    }

    public override Dictionary<string, Tensor> ExportShared(PeftConfig config, IReadOnlyList<AdapterBranch> branches)
    {
        var first = branches.OfType<VeraBranch>().FirstOrDefault();
        if (!((VeraConfig)config).SaveProjection || first is null) return [];
        return new() { [KeyA] = first.Projections.A.detach().cpu().contiguous(), [KeyB] = first.Projections.B.detach().cpu().contiguous() };
    }

    public override IReadOnlyCollection<string> ImportShared(PeftConfig config, IReadOnlyList<AdapterBranch> branches,
        IReadOnlyDictionary<string, Tensor> tensors, string source, ICollection<string> warnings)
    {
        var c = (VeraConfig)config;
        var first = branches.OfType<VeraBranch>().FirstOrDefault();
        if (first is null) return [];
        bool present = tensors.ContainsKey(KeyA) || tensors.ContainsKey(KeyB);
        if (!c.SaveProjection)
        {
            // peft's set_peft_model_state_dict rules for save_projection = false.
            warnings.Add(present
                ? $"{source}: save_projection is false but the file holds {KeyA} / {KeyB}; they are ignored and the projections are regenerated from projection_prng_key (as peft does)."
                : $"{source}: save_projection is false, so vera_A / vera_B are regenerated from projection_prng_key = {c.ProjectionPrngKey} with LibTorch's CPU generator " +
                  "(its seeded stream is PyTorch's, but a PyTorch version with another uniform_ kernel would differ); save with save_projection = true for exact portability.");
            return present ? tensors.Keys.Where(k => k is KeyA or KeyB).ToList() : [];
        }
        if (!tensors.TryGetValue(KeyA, out var a) || !tensors.TryGetValue(KeyB, out var b))
            throw new InvalidDataException($"{source}: save_projection is true but '{KeyA}' and '{KeyB}' are not both in the file.");
        var p = first.Projections;
        if (!a.shape.SequenceEqual(p.A.shape) || !b.shape.SequenceEqual(p.B.shape))
            throw new InvalidDataException($"{source}: '{KeyA}' [{string.Join(", ", a.shape)}] / '{KeyB}' [{string.Join(", ", b.shape)}] do not match this model's " +
                $"[{string.Join(", ", p.A.shape)}] / [{string.Join(", ", p.B.shape)}] (r and the largest targeted in / out features).");
        p.Set(a, b);
        return [KeyA, KeyB];
    }
}
