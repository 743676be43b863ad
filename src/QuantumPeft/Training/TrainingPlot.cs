namespace QuantumPeft.Training;

/// <summary>Draws DIR/training.png: training loss (left axis) and the validation main metric (right axis) against step.</summary>
public static class TrainingPlot
{
    /// <summary>Renders the history to a PNG, written to a temporary name and renamed.</summary>
    public static void Save(string path, IReadOnlyList<TrainingLogEntry> history, string task, string mainMetric)
    {
        var plot = new ScottPlot.Plot();
        var train = history.Where(h => h.Kind == "train" && h.Loss is not null).ToList();
        if (train.Count > 0)
        {
            var loss = plot.Add.Scatter(train.Select(h => (double)h.Step).ToArray(), train.Select(h => h.Loss!.Value).ToArray());
            loss.LegendText = "training loss";
            loss.MarkerSize = 3;
        }
        var validation = history.Where(h => h.Kind == "eval" && h.Split == "validation" && h.Metrics?.ContainsKey(mainMetric) == true).ToList();
        if (validation.Count > 0)
        {
            var metric = plot.Add.Scatter(validation.Select(h => (double)h.Step).ToArray(), validation.Select(h => h.Metrics![mainMetric]).ToArray());
            metric.LegendText = $"validation {mainMetric}";
            metric.MarkerSize = 7;
            metric.Axes.YAxis = plot.Axes.Right;
            plot.Axes.Right.Label.Text = $"validation {mainMetric}";
        }
        plot.Title($"{task}: training loss and validation {mainMetric}");
        plot.Axes.Bottom.Label.Text = "optimiser step";
        plot.Axes.Left.Label.Text = "training loss";
        plot.ShowLegend(ScottPlot.Alignment.UpperCenter);
        Formats.AtomicFile.WriteAllBytes(path, plot.GetImageBytes(900, 520, ScottPlot.ImageFormat.Png));
    }
}
