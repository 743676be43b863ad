using System.Text;
using System.Text.RegularExpressions;

namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// METEOR 1.5's <c>-norm</c> normaliser for English (util/Normalizer.java: the Moses tokenizer with METEOR's additions):
/// symbols split off, commas split except inside numbers, quotes and dashes normalised, dashes between words removed
/// (family-friendly becomes two words), English contractions split to the right, word-final dots split unless the word is
/// a non-breaking prefix or the next word starts in lower case, dotted abbreviations undotted (u.s. becomes us).
/// </summary>
public static partial class MeteorNormalizer
{
    // Normalizer.java: alpha and alnum, Western European and Cyrillic ranges.
    const string Alpha = "A-Za-z\u0160\u017D\u0161\u017E\u0178\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u017E\u0400-\u04FF\u0500-\u0527\uA640-\uA66E\uA67E-\uA697\u1D00-\u1D7F";
    const string Alnum = "0-9" + Alpha;

    // Moses' nonbreaking_prefix.en entries that can match here: METEOR's input is already lower-cased by the PTB step, and
    // the list's capitalised entries (Mr, St, Jan, single capitals...) never match lower-case words. The full list ships
    // inside meteor-1.5.jar, which is not available here.
    static readonly Dictionary<string, bool> NonBreaking = new(StringComparer.Ordinal)
    {
        ["v"] = false, ["vs"] = false, ["i.e"] = false, ["e.g"] = false, ["rev"] = false, ["pp"] = true,   // true: #NUMERIC_ONLY#
    };

    /// <summary>Normalizer.normalizeLine(line, English, keepPunctuation: true), then lower-cased as MeteorScorer does.</summary>
    public static string Normalize(string line)
    {
        var w = " " + line + " ";
        w = SepOther().Replace(w, " $1 ");                                    // separate non-alphanumerics but . ' ` , - ‘ ’
        w = MultiDot().Replace(w, " DOTMULTI$1");                             // escape runs of dots
        while (w.Contains("DOTMULTI.", StringComparison.Ordinal))
        {
            w = MultiDot2().Replace(w, "DOTDOTMULTI $1");
            w = w.Replace("DOTMULTI.", "DOTDOTMULTI", StringComparison.Ordinal);
        }
        w = Comma().Replace(w, "$1 , $2");                                     // commas except within numbers
        w = Comma2().Replace(w, "$1 , $2");
        w = Comma3().Replace(w, "$1 , $2");
        w = QuoteNorm().Replace(w, "'");                                       // New: normalise quotes
        w = QuoteNorm2().Replace(w, " \" ");
        w = w.Replace("\u2013", "-", StringComparison.Ordinal).Replace("--", "-", StringComparison.Ordinal); // New: dashes
        w = RmDash().Replace(w, "$1 $2");                                      // New: remove dashes between words
        w = ContEn().Replace(w, "$1 ' $2");                                    // English splits contractions right
        w = ContEn2().Replace(w, "$1 ' $2");
        w = ContEn3().Replace(w, "$1 ' $2");
        w = ContEn4().Replace(w, "$1 '$2");
        w = ContEn5().Replace(w, "$1 '$2");

        // Rebuild the line, breaking word-final dots unless non-breaking.
        var words = w.Split([' ', '\t', '\n', '\r', '\f'], StringSplitOptions.RemoveEmptyEntries);
        var sb = new StringBuilder();
        for (int i = 0; i < words.Length; i++)
        {
            var word = words[i];
            if (word.Length > 1 && word.EndsWith('.'))
            {
                var pre = word[..^1];
                bool known = NonBreaking.TryGetValue(pre, out var numericOnly);
                if (pre.Contains('.') && HasAlpha().IsMatch(pre)) sb.Append(word.Replace(".", ""));   // New: U.S. -> US
                else if ((known && !numericOnly) || (i < words.Length - 1 && StartsLower().IsMatch(words[i + 1]))) sb.Append(word);
                else if (known && numericOnly && i < words.Length - 1 && StartsDigits().IsMatch(words[i + 1])) sb.Append(word);
                else sb.Append(pre).Append(" .");
            }
            else sb.Append(word);
            sb.Append(' ');
        }
        w = sb.ToString();
        while (w.Contains("DOTDOTMULTI", StringComparison.Ordinal)) w = w.Replace("DOTDOTMULTI", "DOTMULTI.", StringComparison.Ordinal);
        w = w.Replace("DOTMULTI", ".", StringComparison.Ordinal);
        w = White().Replace(w, " ").Trim();
        return w.ToLowerInvariant();
    }

    [GeneratedRegex("([^" + Alnum + @"\s\.\'\`\,\-\u2018\u2019])")] private static partial Regex SepOther();
    [GeneratedRegex(@"\.([\.]+)")] private static partial Regex MultiDot();
    [GeneratedRegex(@"DOTMULTI\.([^\.])")] private static partial Regex MultiDot2();
    [GeneratedRegex(@"([^0-9])[,]([^0-9])")] private static partial Regex Comma();
    [GeneratedRegex(@"([0-9])[,]([^0-9])")] private static partial Regex Comma2();
    [GeneratedRegex(@"([^0-9])[,]([0-9])")] private static partial Regex Comma3();
    [GeneratedRegex("([`\u2018\u2019])")] private static partial Regex QuoteNorm();
    [GeneratedRegex("([\u201C\u201D]|'')")] private static partial Regex QuoteNorm2();
    [GeneratedRegex("([" + Alnum + @"\.])[\-]([" + Alnum + "])")] private static partial Regex RmDash();
    [GeneratedRegex("([^" + Alpha + "])[']([^" + Alpha + "])")] private static partial Regex ContEn();
    [GeneratedRegex("([^" + Alpha + "0-9])[']([" + Alpha + "])")] private static partial Regex ContEn2();
    [GeneratedRegex("([" + Alpha + "])[']([^" + Alpha + "])")] private static partial Regex ContEn3();
    [GeneratedRegex("([" + Alpha + "])[']([" + Alpha + "])")] private static partial Regex ContEn4();
    [GeneratedRegex("([0-9])[']([s])")] private static partial Regex ContEn5();
    [GeneratedRegex("[" + Alpha + "]")] private static partial Regex HasAlpha();
    [GeneratedRegex(@"^\p{Ll}")] private static partial Regex StartsLower();
    [GeneratedRegex("^[0-9]+")] private static partial Regex StartsDigits();
    [GeneratedRegex(@"\s+")] private static partial Regex White();
}
