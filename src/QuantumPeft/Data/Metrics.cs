namespace QuantumPeft.Data;

/// <summary>
/// Evaluation metrics of the GLUE benchmark and the fetched tasks. Classification metrics take predicted and true
/// class indices; correlations take scores. Undefined values (a constant vector) are reported as 0, as sklearn does for MCC.
/// </summary>
public static class Metrics
{
    /// <summary>Metric names understood by <see cref="Compute"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = ["accuracy", "f1", "macro_f1", "mcc", "pearson", "spearman"];

    /// <summary>Computes the named metrics of <paramref name="predictions"/> against <paramref name="labels"/>.</summary>
    public static Dictionary<string, double> Compute(IEnumerable<string> names, IReadOnlyList<float> predictions, IReadOnlyList<float> labels)
    {
        if (predictions.Count != labels.Count)
            throw new ArgumentException($"{predictions.Count} predictions for {labels.Count} labels.", nameof(predictions));
        return names.ToDictionary(n => n, n => n switch
        {
            "accuracy" => Accuracy(predictions, labels),
            "f1" => F1(predictions, labels),
            "macro_f1" => MacroF1(predictions, labels),
            "mcc" => MatthewsCorrelation(predictions, labels),
            "pearson" => Pearson(predictions, labels),
            "spearman" => Spearman(predictions, labels),
            _ => throw new ArgumentException($"Unknown metric '{n}'; valid metrics: {string.Join(", ", Names)}.", nameof(names)),
        });
    }

    /// <summary>Share of predictions equal to the label.</summary>
    public static double Accuracy(IReadOnlyList<float> predictions, IReadOnlyList<float> labels)
    {
        if (labels.Count == 0) return 0;
        int hit = 0;
        for (int i = 0; i < labels.Count; i++) if (predictions[i] == labels[i]) hit++;
        return (double)hit / labels.Count;
    }

    /// <summary>Binary F1 with class 1 as the positive class: 2 TP / (2 TP + FP + FN); 0 when there is no true positive.</summary>
    public static double F1(IReadOnlyList<float> predictions, IReadOnlyList<float> labels)
    {
        int tp = 0, fp = 0, fn = 0;
        for (int i = 0; i < labels.Count; i++)
        {
            bool p = predictions[i] == 1, t = labels[i] == 1;
            if (p && t) tp++; else if (p) fp++; else if (t) fn++;
        }
        return tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
    }

    /// <summary>Macro-averaged F1 over the classes that occur in the labels or the predictions (sklearn's average="macro").</summary>
    public static double MacroF1(IReadOnlyList<float> predictions, IReadOnlyList<float> labels)
    {
        var classes = labels.Concat(predictions).Distinct().ToList();
        if (classes.Count == 0) return 0;
        double sum = 0;
        foreach (var c in classes)
        {
            int tp = 0, fp = 0, fn = 0;
            for (int i = 0; i < labels.Count; i++)
            {
                bool p = predictions[i] == c, t = labels[i] == c;
                if (p && t) tp++; else if (p) fp++; else if (t) fn++;
            }
            sum += tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
        }
        return sum / classes.Count;
    }

    /// <summary>
    /// Matthews correlation coefficient, in its multi-class form (Gorodkin 2004), which for two classes is
    /// (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
    /// </summary>
    public static double MatthewsCorrelation(IReadOnlyList<float> predictions, IReadOnlyList<float> labels)
    {
        var classes = labels.Concat(predictions).Distinct().ToArray();
        var trueCount = classes.ToDictionary(c => c, _ => 0.0);
        var predCount = classes.ToDictionary(c => c, _ => 0.0);
        double correct = 0, n = labels.Count;
        for (int i = 0; i < labels.Count; i++)
        {
            trueCount[labels[i]]++;
            predCount[predictions[i]]++;
            if (predictions[i] == labels[i]) correct++;
        }
        double pt = classes.Sum(c => predCount[c] * trueCount[c]);
        double pp = classes.Sum(c => predCount[c] * predCount[c]);
        double tt = classes.Sum(c => trueCount[c] * trueCount[c]);
        double denominator = Math.Sqrt((n * n - pp) * (n * n - tt));
        return denominator == 0 ? 0 : (correct * n - pt) / denominator;
    }

    /// <summary>Pearson's correlation coefficient.</summary>
    public static double Pearson(IReadOnlyList<float> x, IReadOnlyList<float> y) =>
        PearsonOf(x.Select(v => (double)v).ToArray(), y.Select(v => (double)v).ToArray());

    /// <summary>Spearman's rank correlation: Pearson of the ranks, tied values sharing their average rank.</summary>
    public static double Spearman(IReadOnlyList<float> x, IReadOnlyList<float> y) => PearsonOf(Ranks(x), Ranks(y));

    /// <summary>1-based ranks, ties averaged (the values 10, 20, 20, 30 rank 1, 2.5, 2.5, 4).</summary>
    public static double[] Ranks(IReadOnlyList<float> values)
    {
        var order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        for (int start = 0; start < order.Length;)
        {
            int end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]]) end++;
            double rank = (start + end) / 2.0 + 1;
            for (int k = start; k <= end; k++) ranks[order[k]] = rank;
            start = end + 1;
        }
        return ranks;
    }

    static double PearsonOf(double[] x, double[] y)
    {
        if (x.Length != y.Length) throw new ArgumentException($"Vectors of lengths {x.Length} and {y.Length}.", nameof(y));
        if (x.Length == 0) return 0;
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double dx = x[i] - mx, dy = y[i] - my;
            sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
        }
        return sxx == 0 || syy == 0 ? 0 : sxy / Math.Sqrt(sxx * syy);
    }
}
