using QuantumPeft.Data;

namespace QuantumPeft.Tests.Data;

public sealed class MetricsTests
{
    // predictions vs labels, positive class 1:
    //   p = 1 1 0 0 1 0 1 0
    //   t = 1 0 0 1 1 0 1 0
    // TP = 3 (idx 0,4,6), FP = 1 (idx 1), FN = 1 (idx 3), TN = 3 (idx 2,5,7)
    static readonly float[] P = [1, 1, 0, 0, 1, 0, 1, 0];
    static readonly float[] T = [1, 0, 0, 1, 1, 0, 1, 0];

    [Fact]
    public void Accuracy_counts_hits() => Assert.Equal(6.0 / 8, Metrics.Accuracy(P, T), 12);

    [Fact]
    public void F1_is_2TP_over_2TP_FP_FN() => Assert.Equal(6.0 / 8, Metrics.F1(P, T), 12); // 2*3 / (6 + 1 + 1)

    [Fact]
    public void F1_without_true_positives_is_zero() => Assert.Equal(0, Metrics.F1([0, 0, 1], [1, 1, 0]));

    [Fact]
    public void Macro_F1_averages_the_per_class_F1()
    {
        // p = 0 0 1 2 2 2, t = 0 1 1 2 2 0.
        // class 0: TP 1 (idx 0), FP 1 (idx 1), FN 1 (idx 5) -> 2/4; class 1: TP 1 (idx 2), FP 0, FN 1 (idx 1) -> 2/3;
        // class 2: TP 2 (idx 3, 4), FP 1 (idx 5), FN 0 -> 4/5. Mean (0.5 + 2/3 + 0.8) / 3.
        Assert.Equal((0.5 + 2.0 / 3 + 0.8) / 3, Metrics.MacroF1([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0]), 12);
        // A class only predicted (3) counts with F1 0, as sklearn's macro average over the union of labels:
        // p = 0 3, t = 0 0 -> class 0: TP 1, FN 1 -> 2/3; class 3: 0. Mean 1/3.
        Assert.Equal(1.0 / 3, Metrics.MacroF1([0, 3], [0, 0]), 12);
    }

    [Fact]
    public void Matthews_correlation_matches_the_binary_formula()
    {
        // (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (9 - 1) / sqrt(4 * 4 * 4 * 4) = 8 / 16 = 0.5
        Assert.Equal(0.5, Metrics.MatthewsCorrelation(P, T), 12);
        // A second case: p = 1 1 1 0, t = 1 0 0 0 -> TP 1, FP 2, FN 0, TN 1: (1 - 0) / sqrt(3 * 1 * 3 * 1) = 1/3
        Assert.Equal(1.0 / 3, Metrics.MatthewsCorrelation([1, 1, 1, 0], [1, 0, 0, 0]), 12);
        // Perfectly wrong -> -1; a constant prediction -> 0 (undefined, reported as 0).
        Assert.Equal(-1, Metrics.MatthewsCorrelation([0, 1, 0, 1], [1, 0, 1, 0]), 12);
        Assert.Equal(0, Metrics.MatthewsCorrelation([1, 1, 1, 1], [1, 0, 1, 0]));
    }

    [Fact]
    public void Pearson_of_a_small_vector()
    {
        // x = 1 2 3 4, y = 2 4 5 9: means 2.5 and 5; dx = -1.5 -.5 .5 1.5, dy = -3 -1 0 4
        // sxy = 4.5 + .5 + 0 + 6 = 11, sxx = 5, syy = 9 + 1 + 0 + 16 = 26 -> r = 11 / sqrt(130)
        Assert.Equal(11 / Math.Sqrt(130), Metrics.Pearson([1, 2, 3, 4], [2, 4, 5, 9]), 12);
        Assert.Equal(-1, Metrics.Pearson([1, 2, 3], [6, 4, 2]), 12);
    }

    [Fact]
    public void Spearman_averages_tied_ranks()
    {
        // x = 10 20 20 30 -> ranks 1 2.5 2.5 4; y = 1 3 2 4 -> ranks 1 3 2 4
        Assert.Equal([1, 2.5, 2.5, 4], Metrics.Ranks([10, 20, 20, 30]));
        // rank deviations from 2.5: dx = -1.5 0 0 1.5, dy = -1.5 .5 -.5 1.5
        // sxy = 2.25 + 0 + 0 + 2.25 = 4.5, sxx = 4.5, syy = 2.25 + .25 + .25 + 2.25 = 5 -> rho = 4.5 / sqrt(22.5)
        Assert.Equal(4.5 / Math.Sqrt(22.5), Metrics.Spearman([10, 20, 20, 30], [1, 3, 2, 4]), 12);
        // Monotone but not linear -> 1.
        Assert.Equal(1, Metrics.Spearman([1, 2, 3, 4], [1, 8, 27, 64]), 12);
    }

    [Fact]
    public void Compute_returns_the_named_metrics_and_rejects_unknown_names()
    {
        var m = Metrics.Compute(["f1", "accuracy"], P, T);
        Assert.Equal(["f1", "accuracy"], m.Keys);
        var e = Assert.Throws<ArgumentException>(() => Metrics.Compute(["bleu"], P, T));
        Assert.Contains("accuracy, f1, macro_f1, mcc, pearson, spearman", e.Message);
    }

    [Fact]
    public void Epoch_orders_are_permutations_that_depend_only_on_seed_and_epoch()
    {
        var a = SeededOrder.EpochOrder(50, 7, 1);
        Assert.Equal(Enumerable.Range(0, 50), a.Order());
        Assert.Equal(a, SeededOrder.EpochOrder(50, 7, 1));
        Assert.NotEqual(a, SeededOrder.EpochOrder(50, 7, 2));
        Assert.NotEqual(a, SeededOrder.EpochOrder(50, 8, 1));
    }
}
