using System.Text.RegularExpressions;

namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// The text normalisation of NIST mteval-v13a (its default <c>tokenization</c> sub, as e2e-metrics runs it: no <c>-c</c>,
/// so ASCII upper case is lowered), which BLEU and NIST score on.
/// </summary>
public static partial class MtevalTokenizer
{
    /// <summary>The normalised text split into tokens (empty for a blank segment).</summary>
    public static string[] Tokenize(string text) =>
        Normalize(text).Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>mteval-v13a's normalised, single-space-separated segment.</summary>
    public static string Normalize(string text)
    {
        var t = text.Replace("<skipped>", "");                  // v13a: strip "skipped" tags
        t = t.Replace("-\n", "").Replace("\n", " ");             // v13a: end-of-line hyphenation, join lines
        t = t.Replace("&quot;", "\"").Replace("&amp;", "&").Replace("&lt;", "<").Replace("&gt;", ">"); // v13a: SGML entities
        t = " " + t + " ";
        t = LowerAscii(t);                                        // v13a: tr/[A-Z]/[a-z]/ unless -c
        t = Punctuation().Replace(t, " $1 ");                     // v13a: s/([\{-\~\[-\` -\&\(-\+\:-\@\/])/ $1 /g
        t = PeriodCommaAfterNonDigit().Replace(t, "$1 $2 ");      // v13a: s/([^0-9])([\.,])/$1 $2 /g
        t = PeriodCommaBeforeNonDigit().Replace(t, " $1 $2");     // v13a: s/([\.,])([^0-9])/ $1 $2/g
        t = DashAfterDigit().Replace(t, "$1 $2 ");                // v13a: s/([0-9])(-)/$1 $2 /g
        t = Spaces().Replace(t, " ");                             // v13a: one space only between words
        return t.Trim(' ');                                       // v13a: no leading or trailing space
    }

    // Perl's tr/[A-Z]/[a-z]/ maps ASCII letters only ('[' and ']' map to themselves).
    static string LowerAscii(string s)
    {
        var chars = s.ToCharArray();
        for (int i = 0; i < chars.Length; i++) if (chars[i] is >= 'A' and <= 'Z') chars[i] = (char)(chars[i] + 32);
        return new string(chars);
    }

    [GeneratedRegex(@"([\{-\~\[-\` -\&\(-\+\:-\@\/])")] private static partial Regex Punctuation();
    [GeneratedRegex(@"([^0-9])([\.,])")] private static partial Regex PeriodCommaAfterNonDigit();
    [GeneratedRegex(@"([\.,])([^0-9])")] private static partial Regex PeriodCommaBeforeNonDigit();
    [GeneratedRegex(@"([0-9])(-)")] private static partial Regex DashAfterDigit();
    [GeneratedRegex(@"\s+")] private static partial Regex Spaces();
}
