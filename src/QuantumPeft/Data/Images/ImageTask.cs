namespace QuantumPeft.Data.Images;

/// <summary>An image classification task ready for training: its three splits and its class names; judged by accuracy.</summary>
/// <param name="Name">The task name as given to <see cref="ImageTasks.Load"/> (cifar10, mnist, fashion-mnist, images).</param>
/// <param name="ClassNames">Class names by label index.</param>
/// <param name="Train">Training examples.</param>
/// <param name="Validation">Examples for model selection (keep-best).</param>
/// <param name="Test">Held-out examples for the final figure.</param>
public sealed record ImageTask(
    string Name,
    IReadOnlyList<string> ClassNames,
    IReadOnlyList<ImageExample> Train,
    IReadOnlyList<ImageExample> Validation,
    IReadOnlyList<ImageExample> Test)
{
    /// <summary>The metric of keep-best and the headline figure.</summary>
    public const string MainMetric = "accuracy";

    /// <summary>Every metric reported (names of <see cref="Metrics.Compute"/>, plus the mean cross-entropy "loss").</summary>
    public static readonly IReadOnlyList<string> MetricNames = ["accuracy", "loss"];

    /// <summary>Share of the official training set held out for validation, and its cap (CIFAR-10 and MNIST: 5,000 of 50,000 / 60,000).</summary>
    public const double ValidationFraction = 0.1;

    /// <inheritdoc cref="ValidationFraction"/>
    public const int MaxValidation = 5000;

    /// <summary>The classes.</summary>
    public int NumLabels => ClassNames.Count;

    /// <summary>
    /// A task from an official train / test pair: a seeded slice of the training set (<see cref="ValidationFraction"/>, at most
    /// <see cref="MaxValidation"/>) becomes validation (<see cref="DataSplits.HoldOut"/>), the rest trains.
    /// </summary>
    public static ImageTask WithHeldOutValidation(string name, IReadOnlyList<string> classNames, IReadOnlyList<ImageExample> train,
        IReadOnlyList<ImageExample> test, int splitSeed)
    {
        var (rest, validation) = DataSplits.HoldOut(train, splitSeed, ValidationFraction, MaxValidation);
        return new ImageTask(name, classNames, rest, validation, test);
    }

    /// <summary>
    /// The same task on fixed seeded subsets (for runs too slow on the full set): at most <paramref name="trainLimit"/> training
    /// and <paramref name="evalLimit"/> validation and test examples each, in their original order. Null keeps a split whole.
    /// </summary>
    public ImageTask Limit(int? trainLimit, int? evalLimit, int seed = 20251202)
    {
        static IReadOnlyList<ImageExample> Take(IReadOnlyList<ImageExample> items, int? limit, int seed)
        {
            if (limit is not { } n || n >= items.Count) return items;
            if (n < 1) throw new ArgumentOutOfRangeException(nameof(limit), n, "a subset needs at least 1 example.");
            return SeededOrder.Permutation(items.Count, seed).Take(n).Order().Select(i => items[i]).ToList();
        }
        return this with
        {
            Train = Take(Train, trainLimit, SeededOrder.Derive(seed, 1)),
            Validation = Take(Validation, evalLimit, SeededOrder.Derive(seed, 2)),
            Test = Take(Test, evalLimit, SeededOrder.Derive(seed, 3)),
        };
    }
}
