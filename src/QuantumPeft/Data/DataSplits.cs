namespace QuantumPeft.Data;

/// <summary>Seeded train/validation/test splits.</summary>
public static class DataSplits
{
    /// <summary>
    /// Splits each label's examples (in a seeded random order) into round(n * trainFraction) train,
    /// round(n * validationFraction) validation and the rest test, then shuffles each split (seeded), so the
    /// class balance is the same in every split.
    /// </summary>
    public static (List<TextExample> Train, List<TextExample> Validation, List<TextExample> Test) Stratified(
        IReadOnlyList<TextExample> examples, int seed, double trainFraction, double validationFraction)
    {
        if (trainFraction <= 0 || validationFraction < 0 || trainFraction + validationFraction > 1)
            throw new ArgumentException($"Fractions must satisfy 0 < train, 0 <= validation, train + validation <= 1; got {trainFraction} and {validationFraction}.", nameof(trainFraction));
        List<TextExample> train = [], validation = [], test = [];
        int stream = 0;
        foreach (var group in examples.GroupBy(e => e.Label).OrderBy(g => g.Key))
        {
            var items = SeededOrder.Shuffle(group.ToList(), SeededOrder.Derive(seed, stream++));
            int nTrain = (int)Math.Round(items.Count * trainFraction, MidpointRounding.AwayFromZero);
            int nVal = Math.Min(items.Count - nTrain, (int)Math.Round(items.Count * validationFraction, MidpointRounding.AwayFromZero));
            train.AddRange(items.Take(nTrain));
            validation.AddRange(items.Skip(nTrain).Take(nVal));
            test.AddRange(items.Skip(nTrain + nVal));
        }
        return (SeededOrder.Shuffle(train, SeededOrder.Derive(seed, 1001)),
                SeededOrder.Shuffle(validation, SeededOrder.Derive(seed, 1002)),
                SeededOrder.Shuffle(test, SeededOrder.Derive(seed, 1003)));
    }

    /// <summary>
    /// Holds out a seeded random slice of <paramref name="examples"/> (validationFraction of them, at most
    /// <paramref name="maxValidation"/>, at least 1) as validation; the rest, in their original order, is train.
    /// </summary>
    public static (List<T> Train, List<T> Validation) HoldOut<T>(
        IReadOnlyList<T> examples, int seed, double validationFraction, int maxValidation)
    {
        if (examples.Count < 2) throw new ArgumentException($"Need at least 2 examples to hold out a validation slice; got {examples.Count}.", nameof(examples));
        int n = Math.Clamp((int)Math.Round(examples.Count * validationFraction), 1, Math.Min(maxValidation, examples.Count - 1));
        var held = SeededOrder.Permutation(examples.Count, seed).Take(n).Order().ToArray();
        var isHeld = new bool[examples.Count];
        foreach (var i in held) isHeld[i] = true;
        return (examples.Where((_, i) => !isHeld[i]).ToList(), held.Select(i => examples[i]).ToList());
    }
}
