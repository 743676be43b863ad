using System.Text.RegularExpressions;

namespace QuantumPeft.Tuners.IA3;

/// <summary>(IA)^3 settings (peft_type "IA3"), field for field as peft's <c>IA3Config</c> writes them.</summary>
/// <remarks>A learned vector l rescales each target: feed-forward targets scale the input, y = W (x * l) + b (l [1, in]);
/// the others scale the output, bias included, y = (W x + b) * l (l [out, 1]). l starts at ones (the model is unchanged).</remarks>
public sealed record IA3Config : PeftConfig, IFanInFanOutConfig
{
    /// <summary>"IA3".</summary>
    public const string TypeName = "IA3";

    public override string PeftType => TypeName;

    /// <summary>Targets whose input (not output) is scaled; a subset of target_modules. Matched as peft does: a list entry
    /// matches a path that ends with it, a string is a full-match regex. Null: none.</summary>
    public ModuleSelector? FeedforwardModules { get; init; }

    /// <summary>peft's fan_in_fan_out; the targeted layers decide it (true for GPT-2's Conv1D).</summary>
    public bool FanInFanOut { get; init; }

    /// <inheritdoc/>
    public PeftConfig WithFanInFanOut(bool value) => this with { FanInFanOut = value };

    /// <summary>true (default): l = 1; false: l standard normal.</summary>
    public bool InitIa3Weights { get; init; } = true;

    /// <summary>peft's <c>_check_target_module_feedforward</c>: regex full match, or any entry the path ends with.</summary>
    public bool IsFeedforward(string modulePath) => FeedforwardModules switch
    {
        null => false,
        { Pattern: { } p } => Regex.IsMatch(modulePath, $"^(?:{p})$", RegexOptions.CultureInvariant),
        { Names: { } names } => names.Any(n => modulePath.EndsWith(ModuleSelector.SplitParts(n).Name, StringComparison.Ordinal)),
        _ => false,
    };

    public override void Validate()
    {
        base.Validate();
        // peft's IA3Config.__post_init__: with both as lists, feedforward_modules must be a subset of target_modules.
        if (FeedforwardModules is { IsShorthand: true }) throw new ArgumentException($"feedforward_modules cannot be \"{FeedforwardModules.Pattern}\"; list the feed-forward layers.", nameof(FeedforwardModules));
        if (FeedforwardModules?.Names is { } ff && TargetModules?.Names is { } targets)
        {
            var extra = ff.Where(f => !targets.Contains(f)).ToList();
            if (extra.Count > 0) throw new ArgumentException($"feedforward_modules must be a subset of target_modules; not targeted: {string.Join(", ", extra)}.", nameof(FeedforwardModules));
        }
    }
}
