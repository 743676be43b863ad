using System.CommandLine;

namespace QuantumPeft.Cli;

/// <summary>One command of <c>qpeft</c>. Implementations are discovered by reflection, one file per command.</summary>
public interface ICliCommand
{
    /// <summary>The parent group ("bench" for <c>qpeft bench stiefel</c>), or null for a top-level command.</summary>
    string? Parent => null;

    /// <summary>Builds the command with its options and action. The action returns the exit code.</summary>
    Command Build();
}
