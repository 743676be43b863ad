using QuantumPeft.Models.Decoder;
using QuantumPeft.Tests.Models.Gpt2;
using QuantumPeft.Training;
using static TorchSharp.torch;

namespace QuantumPeft.Tests.Models.Decoder;

public class LinearCrossEntropyTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(128)]
    public void Loss_and_gradients_equal_autograd_cross_entropy_of_the_logits(int chunkRows)
    {
        manual_seed(3);
        using var fusedLoss = new LinearCrossEntropy(chunkRows);
        for (int round = 0; round < 2; round++)   // the second round reuses the buffer, which outlives the first round's scope
        {
            using var scope = NewDisposeScope();
            var h1 = (randn(37, 16) * 2).requires_grad_(true);
            var w1 = randn(101, 16).requires_grad_(true);
            var targets = randint(0, 101, [37]);
            var plain = nn.functional.cross_entropy(h1.matmul(w1.t()), targets);
            plain.backward();
            var h2 = h1.detach().clone().requires_grad_(true);
            var w2 = w1.detach().clone().requires_grad_(true);
            var fused = fusedLoss.Mean(h2, w2, targets);
            fused.backward();
            Assert.Equal(plain.item<float>(), fused.item<float>(), 1e-5);
            Assert.True((h1.grad! - h2.grad!).abs().max().item<float>() < 1e-6, "hidden gradient");
            Assert.True((w1.grad! - w2.grad!).abs().max().item<float>() < 1e-6, "weight gradient");
            Assert.True(h1.grad!.abs().max().item<float>() > 1e-3);   // the comparison is not between two zeros
        }
    }

    [Fact]
    public void Shapes_that_do_not_fit_are_refused_with_their_sizes()
    {
        using var loss = new LinearCrossEntropy();
        var e = Assert.Throws<ArgumentException>(() => loss.Mean(zeros(4, 8), zeros(10, 6), zeros(4, dtype: ScalarType.Int64)));
        Assert.Contains("[4, 8]", e.Message);
        Assert.Contains("[10, 6]", e.Message);
        Assert.Throws<ArgumentException>(() => loss.Mean(zeros(4, 8), zeros(10, 8), zeros(3, dtype: ScalarType.Int64)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LinearCrossEntropy(0));
    }

    [Fact]
    public void The_pretraining_loss_with_the_fused_head_equals_the_plain_one_with_a_tied_gpt2()
    {
        var tokens = Enumerable.Range(0, 300).Select(i => (long)(i * 11 % TinyGpt2.Vocab)).ToList();
        var grads = new List<Dictionary<string, Tensor>>();
        var losses = new List<float>();
        foreach (var fused in new[] { false, true })
        {
            using var model = TinyGpt2.Model();
            model.train(false);   // no dropout: both runs compute the same function
            var objective = new LanguageModelingObjective(model, "t", tokens, 16, validationShare: 0.1) { FusedHead = fused };
            var loss = objective.Loss(objective.Train.Take(4).ToList());
            loss.backward();
            losses.Add(loss.item<float>());
            grads.Add(QuantumPeft.Tuners.ModuleTree.DistinctParameters(model).ToDictionary(p => p.Name, p => p.Parameter.grad!.clone()));
        }
        Assert.Equal(losses[0], losses[1], 1e-4);
        foreach (var (name, g) in grads[0])
        {
            var scale = Math.Max(1e-3, g.abs().max().item<float>());
            Assert.True((g - grads[1][name]).abs().max().item<float>() / scale < 1e-4, name);
        }
        Assert.Contains("transformer.wte.weight", grads[0].Keys);   // the tied head's gradient: embedding and head together
    }
}
