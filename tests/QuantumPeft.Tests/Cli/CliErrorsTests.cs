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

    [Fact]
    public void Several_errors_make_one_line_that_says_where_the_options_are() =>
        Assert.Equal("error: Unrecognized command or argument 'x'. Option '--task' is required. ('qpeft data show --help' lists the options.)",
            CliErrors.OneLine(["Unrecognized command or argument 'x'.", "Option '--task' is required", "Option '--task' is required."], "qpeft data show"));
}

public class CliParseErrorProcessTests
{
    [Theory]
    [InlineData(new[] { "data", "show", "spam" }, "error: Unrecognized command or argument 'spam'. Option '--task' is required. ('qpeft data show --help' lists the options.)")]
    [InlineData(new[] { "train", "--rank", "abc" }, "error: Cannot parse argument 'abc' for option '--rank': expected an integer. ('qpeft train --help' lists the options.)")]
    [InlineData(new[] { "bench", "foo" }, "error: 'foo' is not a command of qpeft bench (commands: generate, methods, step, stiefel). ('qpeft bench --help' lists the options.)")]
    public void A_bad_command_line_is_one_error_line_and_exit_code_1(string[] args, string expected)
    {
        var (code, stdout, stderr) = QuantumPeft.Tests.Hardening.QpeftProcess.Run(args);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal(expected, stderr.TrimEnd());
    }

    [Fact]
    public void An_unknown_command_names_the_commands_there_are() =>
        Assert.Contains("'trian' is not a command of qpeft (commands: create-model, data, ", QuantumPeft.Tests.Hardening.QpeftProcess.Run("trian").Stderr);
}
