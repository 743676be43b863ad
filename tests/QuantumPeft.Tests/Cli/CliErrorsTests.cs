using QuantumPeft.Cli;

namespace QuantumPeft.Tests.Cli;

public class CliErrorsTests
{
    [Theory]
    [InlineData("Cannot parse argument 'abc' for option '--rank' as expected type 'System.Nullable`1[System.Int32]'.", "Cannot parse argument 'abc' for option '--rank': expected an integer.")]
    [InlineData("Cannot parse argument 'x' for option '--lr' as expected type 'System.Double'.", "Cannot parse argument 'x' for option '--lr': expected a number.")]
    [InlineData("Cannot parse argument 'x' for option '--resume' as expected type 'System.Boolean'.", "Cannot parse argument 'x' for option '--resume': expected true or false.")]
    public void A_parse_error_names_the_option_and_what_it_expects_in_words(string message, string expected) =>
        Assert.Equal(expected, CliErrors.Readable(message));
}
