using System.Text;
using System.Text.RegularExpressions;

namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// The tokenisation pycocoevalcap applies before METEOR, ROUGE-L and CIDEr (tokenizer/ptbtokenizer.py): Stanford
/// PTBTokenizer (CoreNLP 3.4.1, <c>-preserveLines -lowerCase</c>), then tokens in its PUNCTUATIONS list are dropped.
/// The Java lexer itself cannot run here, so this is a re-implementation of the PTB rules that matter for English
/// sentences: punctuation split off words, clitics ('s, n't, 're, 've, 'll, 'd, 'm) and "cannot" split, brackets escaped
/// as -LRB-/-RRB- (lower-cased, so they survive the filter as pycocoevalcap's case-sensitive list lets them), quotes as
/// `` and '', currency symbols split from amounts, hyphenated words, numbers, decimals, initials and common abbreviations
/// kept whole, and the per-token transforms of CoreNLP's default ptb3Escaping (Americanize, normalizeCurrency,
/// escapeForwardSlashAsterisk, ptb3Dashes). Inputs outside these rules may tokenise differently from the Java lexer.
/// </summary>
public static partial class PtbTokenizer
{
    // ptbtokenizer.py: PUNCTUATIONS (compared after lower-casing, so "-LRB-" and friends never match).
    static readonly HashSet<string> Punctuations = new(StringComparer.Ordinal)
        { "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";" };

    /// <summary>The caption as pycocoevalcap hands it to the scorers: lower-cased PTB tokens without punctuation, joined by single spaces.</summary>
    public static string Tokenize(string caption)
    {
        // ptbtokenizer.py replaces newlines inside a caption by spaces; -preserveLines keeps one caption per line.
        // PTBTokenizer lower-cases (-lowerCase, Locale.ENGLISH) after its own token transforms, so Americanize sees the original case.
        var tokens = PtbTokens(caption.Replace('\n', ' ')).Select(t => Transform(t).ToLowerInvariant()).Where(t => !Punctuations.Contains(t));
        return string.Join(' ', tokens);
    }

    // ptb3Escaping's per-token transforms (all on by default in CoreNLP 3.4.1): americanize on words, normalizeCurrency,
    // escapeForwardSlashAsterisk.
    static string Transform(string token)
    {
        if (token.All(char.IsLetter)) return Americanize.Apply(token);
        if (token.Length == 1 && CurrencyNames.TryGetValue(token[0], out var currency)) return currency;
        if (token.Contains('/') || token.Contains('*')) return token.Replace("/", "\\/").Replace("*", "\\*");
        return token;
    }

    // PTBLexer.normalizeCurrency: the lossy PTB3 mappings ("nothing else appears in the old PTB3 WSJ").
    static readonly Dictionary<char, string> CurrencyNames = new() { ['\u00A2'] = "cents", ['\u00A3'] = "#", ['\u0080'] = "$", ['\u20AC'] = "$" };

    /// <summary>PTB tokens of one line, before lower-casing and filtering.</summary>
    public static List<string> PtbTokens(string line)
    {
        var result = new List<string>();
        foreach (var chunk in line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)) SplitChunk(chunk, result);
        return result;
    }

    static void SplitChunk(string chunk, List<string> output)
    {
        var trailing = new Stack<string>();
        var s = chunk;
        // Leading punctuation and symbols.
        while (s.Length > 0)
        {
            var lead = LeadingToken(s);
            if (lead is null) break;
            output.Add(Escape(lead));
            s = s[lead.Length..];
        }
        // Trailing punctuation, clitics.
        while (s.Length > 0)
        {
            var trail = TrailingToken(s);
            if (trail is null) break;
            trailing.Push(Escape(trail));
            s = s[..^trail.Length];
        }
        if (s.Length > 0)
        {
            // Inner splits a PTB lexer makes inside a whitespace chunk: brackets, quotes, ?, !, ;, and commas between words.
            var parts = InnerSplit().Split(s).Where(p => p.Length > 0).ToList();
            if (parts.Count > 1) foreach (var p in parts) SplitChunk(p, output);
            else output.Add(Escape(s));
        }
        while (trailing.Count > 0) output.Add(trailing.Pop());
    }

    static string? LeadingToken(string s)
    {
        if (s.StartsWith("``", StringComparison.Ordinal)) return "``";
        if (s.StartsWith("...", StringComparison.Ordinal)) return "...";
        if (s.StartsWith("--", StringComparison.Ordinal)) return "--";
        char c = s[0];
        if (c == '\'' && Clitics.Contains(s.ToLowerInvariant())) return null;   // a clitic token such as 's stays whole
        if ("\"([{<'`".Contains(c)) return c.ToString();
        if (IsCurrency(c) && s.Length > 1) return c.ToString();
        if (c == '#' && s.Length > 1 && char.IsDigit(s[1])) return "#";
        return null;
    }

    static string? TrailingToken(string s)
    {
        if (s.Length <= 1) return null;
        foreach (var clitic in Clitics)
            if (s.Length > clitic.Length && s.EndsWith(clitic, StringComparison.OrdinalIgnoreCase)) return s[^clitic.Length..];
        if (s.Equals("cannot", StringComparison.OrdinalIgnoreCase)) return s[3..];
        if (s.EndsWith("...", StringComparison.Ordinal)) return "...";
        if (s.EndsWith("--", StringComparison.Ordinal)) return "--";
        char c = s[^1];
        if ("\")]}>,;:?!%".Contains(c)) return c.ToString();
        if (c == '\'') return "'";
        if (c == '.')
        {
            var body = s[..^1];
            // PTBLexer keeps the period of initials (J.), dotted forms (u.s., a.m.) and common abbreviations (St., Mr.).
            if (body.Length == 1 && char.IsLetter(body[0])) return null;
            if (body.Contains('.') && body.Any(char.IsLetter)) return null;
            if (Abbreviations.Contains(body.ToLowerInvariant())) return null;
            return ".";
        }
        return null;
    }

    static readonly string[] Clitics = ["n't", "'s", "'re", "'ve", "'ll", "'d", "'m"];

    // Abbreviations PTBLexer's ABBREV rules keep whole (titles, street and company words, etc., vs.).
    static readonly HashSet<string> Abbreviations = new(StringComparer.Ordinal)
        { "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "mt", "ave", "rd", "inc", "ltd", "co", "corp", "bros", "etc", "vs" };

    static bool IsCurrency(char c) => c is '$' or '£' or '€' or '¥' or '¢';

    static string Escape(string token) => token switch
    {
        "(" => "-LRB-", ")" => "-RRB-", "[" => "-LSB-", "]" => "-RSB-", "{" => "-LCB-", "}" => "-RCB-",
        "\"" => "''", "`" => "`",
        "\u2013" or "\u2014" or "\u2015" => "--",   // ptb3Dashes: dash characters become --
        _ => token,
    };

    // Characters that always stand alone in PTB output, plus a comma or colon followed by a letter.
    [GeneratedRegex(@"([()\[\]{}""?!;]|(?<=\D),(?=\D)|(?<=[A-Za-z]):(?=[A-Za-z]))")] private static partial Regex InnerSplit();
}
