using System.Globalization;
using static TorchSharp.torch;

namespace QuantumPeft.Formats;

/// <summary>Finds NaN and infinite values in tensors read from a file: a warning naming the tensor and the file, or an error in strict mode.</summary>
/// <remarks>
/// A NaN in a checkpoint does not fail on load: it poisons every output downstream, far from its cause. The loaders
/// (model folders, adapter folders, training checkpoints) call <see cref="CheckFinite"/> on what they read, so the
/// file and the tensor are named at the point the value enters.
/// </remarks>
public static class TensorChecks
{
    /// <summary>When true, a non-finite value in a loaded tensor is an error (<c>qpeft ... --strict</c>) instead of a warning. Process-wide.</summary>
    public static bool Strict { get; set; }

    /// <summary>One message per floating-point tensor holding NaN or infinite values, in name order ("FILE: tensor 'x' holds ...").</summary>
    /// <exception cref="InvalidDataException">When <see cref="Strict"/> is set and any tensor is not finite; the message names the file and the tensors.</exception>
    public static IReadOnlyList<string> CheckFinite(IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var messages = new List<string>();
        foreach (var name in tensors.Keys.Order(StringComparer.Ordinal))
        {
            var t = tensors[name];
            if (!t.is_floating_point() || t.numel() == 0) continue;
            using var scope = NewDisposeScope();
            if (isfinite(t).all().item<bool>()) continue;
            long nan = isnan(t).sum().item<long>(), inf = isinf(t).sum().item<long>();
            messages.Add(string.Create(CultureInfo.InvariantCulture,
                $"{source}: tensor '{name}' holds {Count(nan, "NaN")}{(nan > 0 && inf > 0 ? " and " : "")}{Count(inf, "infinite")} value{(nan + inf == 1 ? "" : "s")} (of {t.numel()})"));
        }
        if (Strict && messages.Count > 0)
            throw new InvalidDataException($"{string.Join("; ", messages.Take(8))}{(messages.Count > 8 ? $"; ... ({messages.Count - 8} more tensors)" : "")} (refused by --strict).");
        return messages;
    }

    static string Count(long n, string what) => n == 0 ? "" : $"{n} {what}";
}
