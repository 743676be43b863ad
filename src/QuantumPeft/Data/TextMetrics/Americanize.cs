using System.Text.RegularExpressions;

namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// Stanford CoreNLP's Americanize (British to American spelling), which PTBTokenizer applies to word tokens by default
/// (ptb3Escaping's americanize option): a case-sensitive word list, then the suffix patterns. Month and day names are
/// capitalised by it too, which the later lower-casing undoes, so that part is left out.
/// </summary>
public static partial class Americanize
{
    // Americanize.converters / converted.
    static readonly string[] British =
    [
        "anaesthetic", "analogue", "analogues", "analyse", "analysed", "analysing", "armoured", "cancelled", "cancelling", "candour",
        "capitalise", "capitalised", "capitalisation", "centre", "chimaeric", "clamour", "coloured", "colouring", "defence", "Defence",
        "discolour", "discolours", "discoloured", "discolouring", "encyclopaedia", "endeavour", "endeavours", "endeavoured", "endeavouring",
        "fervour", "favour", "favours", "favoured", "favouring", "favourite", "favourites", "fibre", "fibres", "finalise", "finalised",
        "finalising", "flavour", "flavours", "flavoured", "flavouring", "glamour", "grey", "harbour", "harbours", "homologue", "homologues",
        "honour", "honours", "honoured", "honouring", "honourable", "humour", "humours", "humoured", "humouring", "kerb", "labelled",
        "labelling", "labour", "Labour", "labours", "laboured", "labouring", "leant", "learnt", "localise", "localised", "manoeuvre",
        "manoeuvres", "maximise", "maximised", "maximising", "meagre", "minimise", "minimised", "minimising", "modernise", "modernised",
        "modernising", "misdemeanour", "misdemeanours", "neighbour", "neighbours", "neighbourhood", "neighbourhoods", "oestrogen", "oestrogens",
        "organisation", "organisations", "penalise", "penalised", "popularise", "popularised", "popularises", "popularising", "practise",
        "practised", "pressurise", "pressurised", "pressurises", "pressurising", "realise", "realised", "realising", "realises", "recognise",
        "recognised", "recognising", "recognises", "rumoured", "rumouring", "savour", "savours", "savoured", "savouring", "splendour",
        "splendours", "theatre", "theatres", "titre", "titres", "travelled", "travelling",
    ];
    static readonly string[] American =
    [
        "anesthetic", "analog", "analogs", "analyze", "analyzed", "analyzing", "armored", "canceled", "canceling", "candor",
        "capitalize", "capitalized", "capitalization", "center", "chimeric", "clamor", "colored", "coloring", "defense", "Defense",
        "discolor", "discolors", "discolored", "discoloring", "encyclopedia", "endeavor", "endeavors", "endeavored", "endeavoring",
        "fervor", "favor", "favors", "favored", "favoring", "favorite", "favorites", "fiber", "fibers", "finalize", "finalized",
        "finalizing", "flavor", "flavors", "flavored", "flavoring", "glamour", "gray", "harbor", "harbors", "homolog", "homologs",
        "honor", "honors", "honored", "honoring", "honorable", "humor", "humors", "humored", "humoring", "curb", "labeled",
        "labeling", "labor", "Labor", "labors", "labored", "laboring", "leaned", "learned", "localize", "localized", "maneuver",
        "maneuvers", "maximize", "maximized", "maximizing", "meager", "minimize", "minimized", "minimizing", "modernize", "modernized",
        "modernizing", "misdemeanor", "misdemeanors", "neighbor", "neighbors", "neighborhood", "neighborhoods", "estrogen", "estrogens",
        "organization", "organizations", "penalize", "penalized", "popularize", "popularized", "popularizes", "popularizing", "practice",
        "practiced", "pressurize", "pressurized", "pressurizes", "pressurizing", "realize", "realized", "realizing", "realizes", "recognize",
        "recognized", "recognizing", "recognizes", "rumored", "rumoring", "savor", "savors", "savored", "savoring", "splendor",
        "splendors", "theater", "theaters", "titer", "titers", "traveled", "traveling",
    ];
    static readonly Dictionary<string, string> Mapping = British.Zip(American).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal);

    /// <summary>The American spelling of a word token (unchanged when no rule applies; case-sensitive as CoreNLP's).</summary>
    public static string Apply(string word)
    {
        if (Mapping.TryGetValue(word, out var american)) return american;
        // Americanize.pats / excepts / reps, tried in order; the first that applies rewrites the word.
        if (Haemo().IsMatch(word)) return Haemo().Replace(word, "hem$1o");
        if (Aemia().IsMatch(word)) return Aemia().Replace(word, "emia");
        if (Leukaem().IsMatch(word)) return Leukaem().Replace(word, "$1em");
        if (Programme().IsMatch(word)) return Programme().Replace(word, "program$1");
        if (!OurExceptions().IsMatch(word) && Our().IsMatch(word)) return Our().Replace(word, "$1or$2");
        return word;
    }

    [GeneratedRegex("haem(at)?o")] private static partial Regex Haemo();
    [GeneratedRegex("aemia$")] private static partial Regex Aemia();
    [GeneratedRegex("([lL]euk)aem")] private static partial Regex Leukaem();
    [GeneratedRegex("programme(s?)$")] private static partial Regex Programme();
    [GeneratedRegex("^([a-z]{3,})our(s?)$")] private static partial Regex Our();
    [GeneratedRegex("glamour|de[tv]our")] private static partial Regex OurExceptions();
}
