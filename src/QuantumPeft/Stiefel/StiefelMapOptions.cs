namespace QuantumPeft.Stiefel;

/// <summary>The maps from free parameters to the Stiefel manifold that the library offers.</summary>
public enum StiefelMapKind
{
    /// <summary>The Pauli-rotation circuit (qubits; qudits or a block split for N not a power of two).</summary>
    Pauli,
    /// <summary>Truncated Taylor series of the Lie-algebra exponential, applied to the N x K block.</summary>
    Taylor,
    /// <summary>torch.linalg.matrix_exp of the padded N x N skew matrix (O(N^3)).</summary>
    MatrixExp,
    /// <summary>Cayley transform of the padded N x N skew matrix (O(N^3)).</summary>
    Cayley,
    /// <summary>Product of K Householder reflectors.</summary>
    Householder,
    /// <summary>Product of Givens rotations in neighbouring planes.</summary>
    Givens,
}

/// <summary>Settings of a Stiefel map (JSON-serialisable; plain types only).</summary>
/// <remarks>
/// <para><see cref="NonPowerOfTwo"/> decides how the Pauli circuit handles N that is not a power of two:
/// "auto" uses qudits when N = d * 2^m with d in {3, 5, 7} and the cosine-sine block split otherwise
/// (e.g. a prime N &gt; 7); "qudit" always factorises N into primes (one qudit per odd prime factor: a large
/// prime factor p costs p - 1 angles per rotation); "block" always uses the block split.</para>
/// <para><see cref="GateOrder"/>: "alternating" (the paper's layout: each repeat has RY on qudits 0..n-2, CZ on
/// (0,1),(2,3)..., RY on 1..n-1, CZ on (1,2),(3,4)...), "full" (each repeat: RY on every qudit, then CZ on
/// (0,1),(2,3)... and on (1,2),(3,4)...) or "s2d" (PennyLane's SimplifiedTwoDesign: each repeat has CZ on
/// (0,1),(2,3)... then RY on both qudits of each of those pairs, then CZ on (1,2),(3,4)... then RY on both
/// qudits of each of those). <see cref="Entangler"/>: "cz" or "none".</para>
/// <para><see cref="LocalQubits"/> g: the circuit's qubits are taken g at a time as qudits of 2^g levels, each
/// rotation a full SO(2^g) element (2^(g-1) (2^g - 1) angles); see <see cref="PauliCircuitMap"/>.</para>
/// <para><see cref="Init"/> "period" draws every angle uniformly over one full period of the half-angle gates,
/// [-2 pi, 2 pi) (RY(t + 4 pi) = RY(t)); with lambda = 0 the adapted model still equals the base model.</para>
/// </remarks>
public sealed record StiefelMapOptions
{
    /// <summary>Which map to build.</summary>
    public StiefelMapKind Kind { get; init; } = StiefelMapKind.Pauli;

    /// <summary>Pauli circuit: number L of alternating entanglement layers after the first rotation layer.</summary>
    public int Layers { get; init; } = 1;

    /// <summary>Taylor map: order P of the truncated exponential series.</summary>
    public int TaylorOrder { get; init; } = 6;

    /// <summary>Pauli circuit for N not a power of two: "auto", "qudit" or "block".</summary>
    public string NonPowerOfTwo { get; init; } = "auto";

    /// <summary>Pauli circuit entangling gate: "cz" or "none".</summary>
    public string Entangler { get; init; } = "cz";

    /// <summary>Pauli circuit layout of the repeated layers: "alternating", "full" or "s2d".</summary>
    public string GateOrder { get; init; } = "alternating";

    /// <summary>Pauli circuit: qubits per local rotation g (1 = RY gates; g &gt; 1: qudits of 2^g levels with a full SO(2^g) rotation).</summary>
    public int LocalQubits { get; init; } = 1;

    /// <summary>Initial parameters: "uniform" (uniform in +-InitScale), "zeros", or "period" (angles uniform in [-2 pi, 2 pi); angle maps only).</summary>
    public string Init { get; init; } = "uniform";

    /// <summary>Half-width of the uniform initialisation (not used by "zeros" and "period").</summary>
    public double InitScale { get; init; } = 0.02;
}
