// Injects Quantum-PEFT into the bundled all-MiniLM-L6-v2 (a real pretrained BERT), trains a few steps and saves the adapter.
using QuantumPeft.Models;
using QuantumPeft.Models.Bert;
using QuantumPeft.Tuners;
using QuantumPeft.Tuners.Quantum;
using static TorchSharp.torch;

manual_seed(42);
var folder = BundledModels.EnsureMiniLm();
var model = BertForSequenceClassification.FromPretrained(folder, numLabels: 2);
var peft = PeftModel.Inject(model, new QuantumPeftConfig { R = 4, TargetModules = new[] { "query", "value" }, ModulesToSave = ["classifier"] });
Console.WriteLine(peft.Report().Summary);
var encoder = BertTextEncoder.FromFolder(folder);
string[] texts = ["a wonderful, moving film", "dull and far too long", "I loved every minute of it", "a waste of two hours"];
var labels = tensor(new long[] { 1, 0, 1, 0 });
var optimizer = optim.AdamW(peft.AdapterParameters().Concat(peft.OtherTrainableParameters()), lr: 2e-2);
for (int step = 1; step <= 8; step++)
{
    using var scope = NewDisposeScope();
    var batch = encoder.Encode(texts);
    var loss = nn.functional.cross_entropy(model.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds), labels);
    optimizer.zero_grad(); loss.backward(); optimizer.step();
    Console.WriteLine($"step {step}: loss {loss.item<float>():F4}");
}
peft.Save("quickstart-adapter");
Console.WriteLine("saved quickstart-adapter/ (adapter_config.json + adapter_model.safetensors)");
