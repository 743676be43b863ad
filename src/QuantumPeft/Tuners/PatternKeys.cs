using System.Text.RegularExpressions;

namespace QuantumPeft.Tuners;

/// <summary>peft's per-module overrides (rank_pattern, alpha_pattern, n_frequency_pattern): a key applies to a module path it ends.</summary>
public static class PatternKeys
{
    /// <summary>The value of the first key (in key order) that matches <paramref name="modulePath"/> as peft's
    /// <c>get_pattern_key</c> does (<c>re.match(r"(.*\.)?(key)$", path)</c>), or <paramref name="fallback"/>.</summary>
    public static T Find<T>(IReadOnlyDictionary<string, T>? pattern, string modulePath, T fallback)
    {
        if (pattern is null || pattern.Count == 0) return fallback;
        if (pattern.TryGetValue(modulePath, out var exact)) return exact;
        foreach (var (key, value) in pattern)
            if (Regex.IsMatch(modulePath, $@"^(.*\.)?({key})$", RegexOptions.CultureInvariant)) return value;
        return fallback;
    }
}

/// <summary>A config with peft's fan_in_fan_out flag, which the targeted layers decide (true for GPT-2's Conv1D).</summary>
public interface IFanInFanOutConfig
{
    /// <summary>True when the adapted layers store their weight [in, out].</summary>
    bool FanInFanOut { get; }

    /// <summary>This config with fan_in_fan_out set to <paramref name="value"/>.</summary>
    PeftConfig WithFanInFanOut(bool value);
}
