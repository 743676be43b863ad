using QuantumPeft.Models;
using QuantumPeft.Models.Bert;

namespace QuantumPeft.Tests.Models;

/// <summary>The bundled all-MiniLM-L6-v2, imported once into the cache (reused across runs) and loaded once per test run.</summary>
public sealed class MiniLmFixture : IDisposable
{
    public string Folder { get; } = ModelResolver.Resolve("minilm");
    public BertModel Model { get; }
    public BertTextEncoder Text { get; }

    public MiniLmFixture()
    {
        Model = HfBertLoader.LoadModel(Folder);
        Model.eval();
        Text = BertTextEncoder.FromFolder(Folder);
    }

    public void Dispose() => Model.Dispose();
}

[CollectionDefinition("MiniLM")]
public sealed class MiniLmCollection : ICollectionFixture<MiniLmFixture>;
