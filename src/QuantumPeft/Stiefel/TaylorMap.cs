using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>
/// exp(A) I[:, :K] for A = [[B, -C^T], [C, 0]] by a Taylor series of order P applied to the N x K block,
/// with scaling and squaring: exp(A) X = T(A / 2^s)^(2^s) X, T the order-P series, every product A Y taken
/// from the blocks (A [Y1; Y2] = [B Y1 - C^T Y2; C Y1]), so the cost is O(2^s P N K^2) and no N x N matrix exists.
/// </summary>
/// <remarks>
/// Orthonormality holds to series order. With x = ||A||_F / 2^s, each application of T has
/// ||T^T T - I|| &lt;= 2 e^x x^(P+1) / (P+1)!, so max |U^T U - I| &lt;= 2^s * 2 e^x x^(P+1) / (P+1)! (first order).
/// s is chosen on every call, from the current ||A||_F, as the smallest value with that bound under
/// 1e-7 (float32) or 1e-14 (float64), but at most <see cref="MaxSquarings"/>; beyond that (||A||_F above
/// about 9 for P = 6) the bound, not the tolerance, describes the error.
/// </remarks>
public sealed class TaylorMap : SkewMap
{
    /// <summary>Largest s (2^s series applications) the map will use.</summary>
    public const int MaxSquarings = 6;

    /// <summary>The series order P.</summary>
    public int Order { get; }

    internal TaylorMap(int n, int k, int order, StiefelInit init) : base("taylor", n, k, init) => Order = order;

    /// <inheritdoc/>
    public override string Kind => "taylor";

    /// <summary>The number s of halvings used for a given ||A||_F, series order and tolerance.</summary>
    public static int Squarings(double normA, int order, double tolerance)
    {
        for (int s = 0; s < MaxSquarings; s++)
            if (ErrorBound(normA, order, s) <= tolerance) return s;
        return MaxSquarings;
    }

    /// <summary>The first-order bound 2^s * 2 e^x x^(P+1) / (P+1)! on max |U^T U - I|, x = ||A||_F / 2^s.</summary>
    public static double ErrorBound(double normA, int order, int squarings)
    {
        double x = normA / Math.Pow(2, squarings), term = 1;
        for (int i = 1; i <= order + 1; i++) term *= x / i;
        return Math.Pow(2, squarings) * 2 * Math.Exp(x) * term;
    }

    /// <inheritdoc/>
    public override Tensor Compute()
    {
        var bm = SkewB();
        var cm = BlockC();
        double norm;
        using (no_grad())
            norm = Math.Sqrt(bm.square().sum().ToDouble() + 2 * cm.square().sum().ToDouble());
        int s = Squarings(norm, Order, bm.dtype == ScalarType.Float64 ? 1e-14 : 1e-7);
        double h = Math.Pow(0.5, s);

        var y1 = eye(K, dtype: bm.dtype, device: bm.device);
        var y2 = zeros(N - K, K, dtype: bm.dtype, device: bm.device);
        for (int rep = 0; rep < 1 << s; rep++)
        {
            // Horner: T Y = Y + hA/1 (Y + hA/2 (... (Y + hA/P Y))).
            Tensor z1 = y1, z2 = y2;
            for (int p = Order; p >= 1; p--)
            {
                double f = h / p;
                var a1 = bm.matmul(z1) - cm.t().matmul(z2);
                var a2 = cm.matmul(z1);
                z1 = y1 + a1 * f;
                z2 = y2 + a2 * f;
            }
            (y1, y2) = (z1, z2);
        }
        return cat(new[] { y1, y2 }, 0);
    }
}
