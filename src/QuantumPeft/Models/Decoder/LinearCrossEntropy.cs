using static TorchSharp.torch;

namespace QuantumPeft.Models.Decoder;

/// <summary>
/// The mean cross-entropy of logits = hidden W^T against targets, a chunk of rows at a time in one reused buffer, so that
/// no [rows, vocab] tensor is allocated per step.
/// </summary>
/// <remarks>
/// With GPT-2's 50,257-word vocabulary and a small model the LM head and its cross-entropy are most of a training step.
/// Autograd's cross_entropy of the logits allocates several [rows, vocab] tensors a step (logits, log-softmax, the one-hot
/// gradient, the softmax gradient: 206 MB each for 8 x 128 tokens), and memory that large is mapped fresh by the C
/// library every time, so each costs page faults on top of its passes. Here each chunk's logits are written into one
/// buffer kept between steps and turned in place into the gradient (softmax - one-hot) / rows, which both gradient
/// products then read. The loss returned carries these exact gradients for hidden and weight through a surrogate term:
/// its value is the loss, its gradient the one computed, so <c>backward()</c> works as with the plain loss.
/// Not thread-safe (one buffer); one instance per training objective.
/// </remarks>
public sealed class LinearCrossEntropy : IDisposable
{
    /// <summary>Rows per chunk: 256 rows of a 50,257-word vocabulary are a 51 MB buffer.</summary>
    public const int DefaultChunkRows = 256;

    readonly int _chunkRows;
    Tensor? _buffer;

    /// <summary>A loss with its own buffer of <paramref name="chunkRows"/> rows.</summary>
    public LinearCrossEntropy(int chunkRows = DefaultChunkRows)
    {
        if (chunkRows < 1) throw new ArgumentOutOfRangeException(nameof(chunkRows), chunkRows, "must be at least 1.");
        _chunkRows = chunkRows;
    }

    /// <summary>
    /// Mean cross-entropy of <c>hidden [N, H] . weight[V, H]^T</c> against <paramref name="targets"/> [N] (int64, each in
    /// [0, V)), differentiable in <paramref name="hidden"/> and <paramref name="weight"/> (float32).
    /// </summary>
    public Tensor Mean(Tensor hidden, Tensor weight, Tensor targets)
    {
        if (hidden.dim() != 2 || weight.dim() != 2 || hidden.shape[1] != weight.shape[1])
            throw new ArgumentException($"hidden [{string.Join(", ", hidden.shape)}] and weight [{string.Join(", ", weight.shape)}] must be [N, H] and [V, H].");
        if (targets.dim() != 1 || targets.shape[0] != hidden.shape[0])
            throw new ArgumentException($"targets [{string.Join(", ", targets.shape)}] must be [{hidden.shape[0]}].");
        long n = hidden.shape[0], vocab = weight.shape[0];
        if (_buffer is null || _buffer.shape[1] != vocab || _buffer.dtype != weight.dtype || _buffer.device != weight.device)
        {
            _buffer?.Dispose();
            // Kept between steps: out of the caller's dispose scope (a training step's), freed by Dispose.
            _buffer = empty([_chunkRows, vocab], dtype: weight.dtype, device: weight.device).DetachFromDisposeScope();
        }
        Tensor loss, gradHidden, gradWeight;
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var h = hidden.detach();
            var w = weight.detach();
            gradHidden = empty_like(h);
            gradWeight = zeros_like(w);
            var lossSum = zeros(1, dtype: ScalarType.Float64, device: h.device);
            for (long start = 0; start < n; start += _chunkRows)
            {
                using var chunkScope = NewDisposeScope();
                long rows = Math.Min(_chunkRows, n - start);
                var hc = h.narrow(0, start, rows);
                var target = targets.narrow(0, start, rows).unsqueeze(1);
                var logits = _buffer.narrow(0, 0, rows);
                logits.addmm_(hc, w.t(), beta: 0);
                var picked = logits.gather(1, target);
                var max = logits.amax([1], keepdim: true);
                logits.sub_(max).exp_();
                var sum = logits.sum(1, keepdim: true);
                // log-sum-exp minus the target's logit, per row.
                lossSum.add_((sum.log() + max - picked).sum().to(ScalarType.Float64));
                // softmax / N in place, then the one-hot's -1 / N at each target: the gradient of the mean loss.
                logits.div_(sum.mul_(n));
                logits.scatter_add_(1, target, full([rows, 1], -1.0 / n, dtype: logits.dtype, device: logits.device));
                gradHidden.narrow(0, start, rows).addmm_(logits, w, beta: 0);
                gradWeight.addmm_(logits.t(), hc);
            }
            loss = lossSum.div_(n).to(hidden.dtype).squeeze().MoveToOuterDisposeScope();
            gradHidden.MoveToOuterDisposeScope();
            gradWeight.MoveToOuterDisposeScope();
        }
        // value: the loss; gradient: (gradHidden, gradWeight).
        var surrogate = hidden.flatten().dot(gradHidden.flatten()) + weight.flatten().dot(gradWeight.flatten());
        return surrogate - surrogate.detach() + loss;
    }

    /// <summary>Frees the buffer.</summary>
    public void Dispose()
    {
        _buffer?.Dispose();
        _buffer = null;
    }
}
