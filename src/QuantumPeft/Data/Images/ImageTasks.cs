namespace QuantumPeft.Data.Images;

/// <summary>The image classification tasks by name: cifar10 (a folder the user names), mnist and fashion-mnist (fetched), images (a labelled folder).</summary>
public static class ImageTasks
{
    /// <summary>Every image task name.</summary>
    public static readonly IReadOnlyList<string> Names = ["cifar10", "mnist", "fashion-mnist", "images"];

    /// <summary>True for an image task name.</summary>
    public static bool IsImageTask(string name) => Names.Contains(name);

    /// <summary>Loads a task; <paramref name="dataDir"/> is required for cifar10 and images, optional for mnist and fashion-mnist (else fetched).</summary>
    public static ImageTask Load(string name, string? dataDir) => name switch
    {
        "cifar10" => Cifar10.Load(dataDir ?? throw new ArgumentException(
            "task 'cifar10' needs --data-dir: the folder of CIFAR-10's binary version (cifar-10-batches-bin, with data_batch_1.bin .. test_batch.bin); it cannot be downloaded here.")),
        "images" => ImageFolder.Load(dataDir ?? throw new ArgumentException("task 'images' needs --data-dir: a folder ROOT/<label>/*.png|jpg|jpeg.")),
        "mnist" or "fashion-mnist" => MnistTasks.Load(name, dataDir),
        _ => throw new ArgumentException($"unknown image task '{name}' (valid: {string.Join(", ", Names)}).", nameof(name)),
    };
}
