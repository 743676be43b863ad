using Lucene.Net.Tartarus.Snowball.Ext;

namespace QuantumPeft.Data.TextMetrics;

/// <summary>
/// METEOR 1.5 parameters. <see cref="English"/> is what pycocoevalcap's <c>-l en -norm</c> runs: the default task
/// ("rank", Constants.TASK_DEFAULT) with English's PARAM_RANK and WEIGHT_RANK.
/// </summary>
/// <param name="Alpha">Weight of precision against recall in Fmean = P R / (alpha P + (1 - alpha) R).</param>
/// <param name="Beta">Exponent of the fragmentation.</param>
/// <param name="Gamma">Maximum fragmentation penalty.</param>
/// <param name="Delta">Weight of content words against function words.</param>
/// <param name="ExactWeight">Module weight of exact matches.</param>
/// <param name="StemWeight">Module weight of stem matches.</param>
/// <param name="SynonymWeight">Module weight of WordNet synonym matches.</param>
/// <param name="ParaphraseWeight">Module weight of paraphrase matches (the paraphrase table is not available here: never used).</param>
public sealed record MeteorParameters(double Alpha, double Beta, double Gamma, double Delta,
    double ExactWeight, double StemWeight, double SynonymWeight, double ParaphraseWeight)
{
    /// <summary>Constants.PARAM_RANK[en] = 0.85 0.20 0.60 0.75 and WEIGHT_RANK[en] = 1.0 0.6 0.8 0.6.</summary>
    public static MeteorParameters English { get; } = new(0.85, 0.20, 0.60, 0.75, 1.0, 0.6, 0.8, 0.6);

    /// <summary>Beam width of the aligner's search (Constants.DEFAULT_BEAM_SIZE).</summary>
    public int BeamSize { get; init; } = 40;

    /// <summary>
    /// Words counted as function words (weighted 1 - delta). METEOR reads them from its jar's function/english.words,
    /// which is not available here, so the default is none: every word counts as a content word.
    /// </summary>
    public IReadOnlySet<string> FunctionWords { get; init; } = new HashSet<string>();

    internal double Weight(int module) => module switch { 0 => ExactWeight, 1 => StemWeight, 2 => SynonymWeight, _ => ParaphraseWeight };
}

/// <summary>METEOR's sufficient statistics of one segment (or, summed, of a corpus), as MeteorStats holds them.</summary>
public sealed class MeteorStats
{
    /// <summary>Number of modules (exact, stem, synonym, paraphrase).</summary>
    public const int Modules = 4;
    /// <summary>Test (hypothesis) and reference lengths in words.</summary>
    public int TestLength, ReferenceLength;
    /// <summary>Function words in the test and the reference.</summary>
    public int TestFunctionWords, ReferenceFunctionWords;
    /// <summary>Matched words per module, content and function, on each side.</summary>
    public int[] TestContent = new int[Modules], TestFunction = new int[Modules], RefContent = new int[Modules], RefFunction = new int[Modules];
    /// <summary>Number of chunks.</summary>
    public int Chunks;

    /// <summary>Total matched test words.</summary>
    public int TestTotalMatches => TestContent.Sum() + TestFunction.Sum();
    /// <summary>Total matched reference words.</summary>
    public int ReferenceTotalMatches => RefContent.Sum() + RefFunction.Sum();

    /// <summary>MeteorStats.addStats: sums another segment's statistics into these.</summary>
    public void Add(MeteorStats o)
    {
        TestLength += o.TestLength; ReferenceLength += o.ReferenceLength;
        TestFunctionWords += o.TestFunctionWords; ReferenceFunctionWords += o.ReferenceFunctionWords;
        for (int i = 0; i < Modules; i++)
        {
            TestContent[i] += o.TestContent[i]; TestFunction[i] += o.TestFunction[i];
            RefContent[i] += o.RefContent[i]; RefFunction[i] += o.RefFunction[i];
        }
        Chunks += o.Chunks;
    }

    /// <summary>MeteorScorer.computeMetrics: the METEOR score of these statistics.</summary>
    public double Score(MeteorParameters p)
    {
        double d = p.Delta;
        double testWeightedLength = d * (TestLength - TestFunctionWords) + (1 - d) * TestFunctionWords;
        double refWeightedLength = d * (ReferenceLength - ReferenceFunctionWords) + (1 - d) * ReferenceFunctionWords;
        double testMatches = 0, refMatches = 0;
        for (int i = 0; i < Modules; i++)
        {
            testMatches += TestContent[i] * p.Weight(i) * d + TestFunction[i] * p.Weight(i) * (1 - d);
            refMatches += RefContent[i] * p.Weight(i) * d + RefFunction[i] * p.Weight(i) * (1 - d);
        }
        double precision = testMatches / testWeightedLength, recall = refMatches / refWeightedLength;
        double fMean = 1.0 / ((1.0 - p.Alpha) / precision + p.Alpha / recall);
        // computeMetrics: no fragmentation when the test equals the reference as one chunk.
        double frag = TestTotalMatches == TestLength && ReferenceTotalMatches == ReferenceLength && Chunks == 1
            ? 0 : Chunks / ((TestTotalMatches + ReferenceTotalMatches) / 2.0);
        double score = fMean * (1.0 - p.Gamma * Math.Pow(frag, p.Beta));
        return double.IsNaN(score) ? 0 : Math.Max(score, 0.0);   // computeMetrics: catch division by zero, score >= 0
    }
}

/// <summary>
/// METEOR 1.5 (Denkowski and Lavie) as pycocoevalcap runs it (<c>meteor-1.5.jar - - -stdio -l en -norm</c>): each
/// hypothesis is aligned to each of its references with the exact, Snowball-stem and WordNet-synonym modules and the
/// aligner's beam search; the best-scoring reference's statistics are kept, summed over the corpus (the EVAL line) and
/// scored once. Not reproduced: the paraphrase module (METEOR's paraphrase-en table is not available here) and
/// METEOR's English function-word list (see <see cref="MeteorParameters.FunctionWords"/>).
/// </summary>
public sealed class Meteor
{
    readonly MeteorParameters parameters;
    readonly WordNetSynonyms? synonyms;
    readonly EnglishStemmer stemmer = new();
    readonly Dictionary<string, string> stemCache = new(StringComparer.Ordinal);

    // MeteorScorer.loadConfiguration: "best weights for evaluation" used by the alignment search, 1 for exact and 0.5 otherwise.
    static readonly double[] SearchWeights = [1.0, 0.5, 0.5, 0.5];

    /// <summary>A scorer with the given parameters; without <paramref name="synonyms"/> the synonym module finds nothing.</summary>
    public Meteor(MeteorParameters? parameters = null, WordNetSynonyms? synonyms = null)
    {
        this.parameters = parameters ?? MeteorParameters.English;
        this.synonyms = synonyms;
    }

    /// <summary>The parameters in use.</summary>
    public MeteorParameters Parameters => parameters;

    /// <summary>Corpus METEOR of tokenised captions (pycocoevalcap's EVAL: statistics summed, then scored).</summary>
    public double Score(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string>> references)
    {
        if (hypotheses.Count != references.Count)
            throw new ArgumentException($"{hypotheses.Count} hypotheses for {references.Count} reference groups.", nameof(references));
        var total = new MeteorStats();
        for (int i = 0; i < hypotheses.Count; i++) total.Add(BestStats(hypotheses[i], references[i]));
        return total.Score(parameters);
    }

    /// <summary>MeteorScorer.getMeteorStats(test, references): the statistics of the best-scoring reference (first on ties).</summary>
    public MeteorStats BestStats(string hypothesis, IReadOnlyList<string> references)
    {
        // meteor.py's _stat: '|||' removed and double spaces collapsed once in the hypothesis.
        var test = Words(hypothesis.Replace("|||", "").Replace("  ", " "));
        MeteorStats? best = null;
        double bestScore = -1;
        foreach (var r in references)
        {
            var stats = Align(test, Words(r));
            double score = stats.Score(parameters);
            if (score > bestScore) { best = stats; bestScore = score; }
        }
        return best ?? throw new ArgumentException("METEOR needs at least one reference.", nameof(references));
    }

    // -norm: METEOR's Normalizer then lower-casing; words split on whitespace.
    static string[] Words(string line) => MeteorNormalizer.Normalize(line).Split(' ', StringSplitOptions.RemoveEmptyEntries);

    sealed record Match(int Module, int Start, int MatchStart);   // Start: reference index, MatchStart: test index (one word each)

    sealed class Path
    {
        public Match?[] Matches = [];
        public bool[] Used1 = [], Used2 = [];
        public int MatchesWeighted, Chunks, Idx, LastMatchEnd = -1, Distance;
        public Path Copy() => new()
        {
            Matches = (Match?[])Matches.Clone(), Used1 = (bool[])Used1.Clone(), Used2 = (bool[])Used2.Clone(),
            MatchesWeighted = MatchesWeighted, Chunks = Chunks, Idx = Idx, LastMatchEnd = LastMatchEnd, Distance = Distance,
        };
    }

    /// <summary>Aligner.align of test words against reference words, summarised as statistics.</summary>
    public MeteorStats Align(string[] test, string[] reference)
    {
        var matches = Enumerable.Range(0, reference.Length).Select(_ => new List<Match>()).ToArray();
        var cover1 = new int[test.Length];
        var cover2 = new int[reference.Length];
        void Add(int module, int j, int i) { matches[j].Add(new Match(module, j, i)); cover1[i]++; cover2[j]++; }

        // Aligner.align: identical sentences need the exact module only.
        bool identical = test.AsSpan().SequenceEqual(reference);
        // ExactMatcher, StemMatcher (different words, same stem), SynonymMatcher (different words, shared synset), in this order.
        for (int j = 0; j < reference.Length; j++)
            for (int i = 0; i < test.Length; i++)
                if (test[i] == reference[j]) Add(0, j, i);
        if (!identical)
        {
            var stems1 = test.Select(Stem).ToArray();
            var stems2 = reference.Select(Stem).ToArray();
            for (int j = 0; j < reference.Length; j++)
                for (int i = 0; i < test.Length; i++)
                    if (stems1[i] == stems2[j] && test[i] != reference[j]) Add(1, j, i);
            if (synonyms is not null)
            {
                var sets1 = test.Select(synonyms.MatchSets).ToArray();
                var sets2 = reference.Select(synonyms.MatchSets).ToArray();
                for (int j = 0; j < reference.Length; j++)
                    for (int i = 0; i < test.Length; i++)
                        if (test[i] != reference[j] && sets1[i].Overlaps(sets2[j])) Add(2, j, i);
            }
        }

        var start = new Path { Matches = new Match?[reference.Length], Used1 = new bool[test.Length], Used2 = new bool[reference.Length] };
        // Aligner.align: one-to-one, non-overlapping matches are definite.
        for (int j = 0; j < reference.Length; j++)
        {
            if (matches[j].Count != 1) continue;
            var m = matches[j][0];
            if (cover2[j] != 1 || cover1[m.MatchStart] != 1) continue;
            start.Matches[j] = m; start.Used2[j] = true; start.Used1[m.MatchStart] = true;
        }
        var best = Resolve(matches, start);

        var stats = new MeteorStats { TestLength = test.Length, ReferenceLength = reference.Length };
        var function1 = test.Select(w => parameters.FunctionWords.Contains(w)).ToArray();
        var function2 = reference.Select(w => parameters.FunctionWords.Contains(w)).ToArray();
        stats.TestFunctionWords = function1.Count(f => f);
        stats.ReferenceFunctionWords = function2.Count(f => f);
        foreach (var m in best.Matches)
        {
            if (m is null) continue;
            if (function1[m.MatchStart]) stats.TestFunction[m.Module]++; else stats.TestContent[m.Module]++;
            if (function2[m.Start]) stats.RefFunction[m.Module]++; else stats.RefContent[m.Module]++;
        }
        stats.Chunks = CountChunks(best.Matches);
        return stats;
    }

    // Aligner.resolve: a left-to-right beam search over reference positions, reproduced with its quirks (see comments).
    Path Resolve(List<Match>[] matches, Path start)
    {
        var next = new List<Path> { start };
        for (int current = 0; current <= matches.Length; current++)
        {
            // Collections.sort is stable; OrderBy is too.
            var paths = next.OrderBy(p => p, PathComparer.Instance).ToList();
            next = [];
            for (int rank = 0; rank < parameters.BeamSize && rank < paths.Count; rank++)
            {
                var path = paths[rank];
                if (current == matches.Length)
                {
                    if (path.LastMatchEnd != -1) path.Chunks++;   // close the last chunk
                    next.Add(path);
                    continue;
                }
                if (path.Used2[current])
                {
                    if (current < path.Idx) next.Add(path);
                    else if (path.Matches[path.Idx] is { } fixedMatch)
                    {
                        Extend(path, fixedMatch);
                        path.Distance += Math.Abs(fixedMatch.Start - fixedMatch.MatchStart);
                        next.Add(path);
                    }
                    continue;
                }
                foreach (var m in matches[current])
                {
                    if (path.Used1[m.MatchStart] || path.Used2[m.Start]) continue;
                    var np = path.Copy();
                    np.Used1[m.MatchStart] = true; np.Used2[m.Start] = true;
                    np.Matches[current] = m;
                    Extend(np, m);
                    // Aligner.resolve adds this distance to the path it extends, not to the new one (kept as METEOR does it).
                    path.Distance += Math.Abs(m.Start - m.MatchStart);
                    next.Add(np);
                }
                // Try skipping this index.
                if (path.LastMatchEnd != -1) { path.Chunks++; path.LastMatchEnd = -1; }
                path.Idx++;
                next.Add(path);
            }
            if (next.Count == 0) next.Add(paths[0]);
        }
        return next.OrderBy(p => p, PathComparer.Instance).First();
    }

    static void Extend(Path path, Match m)
    {
        // PartialAlignment.matches1/matches2 are ints and Java's += narrows: (int)(k + 1 * 0.5) == k, so only exact
        // matches (search weight 1) raise the count the comparator ranks by.
        double w = SearchWeights[m.Module];
        path.MatchesWeighted = (int)(path.MatchesWeighted + 1 * w);   // matches1 and matches2 grow alike for one-word matches
        if (path.LastMatchEnd != -1 && m.MatchStart != path.LastMatchEnd) path.Chunks++;
        path.Idx = m.Start + 1;
        path.LastMatchEnd = m.MatchStart + 1;
    }

    // Aligner.getCountAndChunks: a chunk ends at a gap in the reference or a jump in the test.
    static int CountChunks(Match?[] matches)
    {
        int chunks = 0, idx = 0, lastMatchEnd = -1;
        while (idx < matches.Length)
        {
            var m = matches[idx];
            if (m is null) { if (lastMatchEnd != -1) { chunks++; lastMatchEnd = -1; } idx++; continue; }
            if (lastMatchEnd != -1 && m.MatchStart != lastMatchEnd) chunks++;
            idx = m.Start + 1;
            lastMatchEnd = m.MatchStart + 1;
        }
        if (lastMatchEnd != -1) chunks++;
        return chunks;
    }

    // Constants.PARTIAL_COMPARE_TOTAL: more (weighted) matches, then fewer chunks, then smaller distance.
    sealed class PathComparer : IComparer<Path>
    {
        public static readonly PathComparer Instance = new();
        public int Compare(Path? x, Path? y)
        {
            int diff = y!.MatchesWeighted - x!.MatchesWeighted;
            if (diff != 0) return diff > 0 ? 1 : -1;
            if (x.Chunks != y.Chunks) return x.Chunks - y.Chunks;
            return x.Distance - y.Distance;
        }
    }

    /// <summary>The Snowball English (Porter2) stem METEOR's stem module compares.</summary>
    public string Stem(string word)
    {
        if (stemCache.TryGetValue(word, out var s)) return s;
        stemmer.SetCurrent(word);
        stemmer.Stem();
        return stemCache[word] = stemmer.Current;
    }
}
