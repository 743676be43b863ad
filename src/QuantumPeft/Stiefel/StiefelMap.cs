using TorchSharp;
using static TorchSharp.torch;

namespace QuantumPeft.Stiefel;

/// <summary>A module that owns free parameters and maps them to an N x K matrix with orthonormal columns.</summary>
/// <remarks>
/// The geotorch / torch.nn.utils.parametrizations shape: the constraint is a re-parameterisation, not a
/// regulariser. Each concrete map states its exact parameter count as a static formula next to its code,
/// and <see cref="ParameterCount"/> returns that formula for this instance.
/// </remarks>
public abstract class StiefelMap : nn.Module
{
    /// <summary>Rows of the produced matrix (the dimension N of the space).</summary>
    public int N { get; }

    /// <summary>Columns of the produced matrix (the rank K).</summary>
    public int K { get; }

    /// <summary>The map's short name as used in files and tables: pauli, taylor, matrix_exp, cayley, householder, givens.</summary>
    public abstract string Kind { get; }

    /// <summary>The documented number of free parameters of this map (must equal the count of its trainable elements).</summary>
    public abstract long ParameterCount { get; }

    protected StiefelMap(string name, int n, int k) : base(name)
    {
        if (n < 2) throw new ArgumentOutOfRangeException(nameof(n), n, $"N (rows) must be at least 2, got {n}.");
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, $"K (columns / rank) must be at least 1, got {k}.");
        if (k > n) throw new ArgumentOutOfRangeException(nameof(k), k, $"K (columns / rank) = {k} cannot exceed N (rows) = {n}.");
        N = n;
        K = k;
    }

    /// <summary>Computes the N x K matrix with orthonormal columns from the current parameters (differentiable).</summary>
    public abstract Tensor Compute();
}
