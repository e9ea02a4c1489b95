"""What the command line does with awkward input: every problem is one line on stderr with exit code 2,
never a traceback, never a silent wrong answer; and what is fine works (a leading minus, repeated --at).

Most cases run in-process through click's runner; what needs a real process (bytes that are not UTF-8,
a closed pipe) runs the installed ``symgrad`` command.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from symgrad.cli.main import main

NAMES = ["self", "cls", "values", "f", "x", "wrt", "params", "data"]
CLASHING = " + ".join(f"{a}*{b}" for a, b in zip(NAMES[::2], NAMES[1::2]))      # self*cls + values*f + ...
CLASHING_AT = ",".join(f"{name}={i + 1}" for i, name in enumerate(NAMES))
def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, fragment: str) -> str:
    """The result is exit code 2 with one line on stderr containing ``fragment``, nothing on stdout."""
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert result.stdout == "" and "Traceback" not in result.output
    return lines[0]


def symgrad_command() -> str:
    script = shutil.which("symgrad", path=os.path.dirname(sys.executable)) or shutil.which("symgrad")
    assert script, "the symgrad console script is not installed"
    return script


# --- variables named like Python parameters ----------------------------------------------------------------


@pytest.mark.parametrize("args, shown", [
    pytest.param(["check", CLASHING, "--at", CLASHING_AT], "judged against the exact value (SymPy)"),
    pytest.param(["derive", CLASHING, "--at", CLASHING_AT], "∂L/∂self = cls = 2"),
    (["graph", CLASHING, "--at", CLASHING_AT], 'label="self\\nvalue 1\\ngrad 2"'),
    (["descend", CLASHING, "--at", CLASHING_AT, "--steps", "1"], "self"),
])
def test_variables_may_have_the_names_of_python_parameters(args, shown):
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert shown in result.stdout


def test_derive_without_values_accepts_any_variable_name():
    result = run("derive", CLASHING, "--wrt", "self,data")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["∂L/∂self = cls", "∂L/∂data = params"]


# --- expressions the parser refuses, said clearly --------------------------------------------------------


@pytest.mark.parametrize("expression, message", [
    ("x*(2**100000)", "number in '2**100000' too large to compute exactly (about 30,103 digits; "
                      "the limit is 1,000) at column 4"),
    ("x + " + "7" * 5000, "number of 5,000 digits (the limit is 1,000) at column 5"),
    ("x\udcff", "invalid character: the text is not valid UTF-8 at column 2"),
    ("x**", "the expression ends too early, after '**' at column 4"),
    ("x * / y", "unexpected '/' at column 5"),
    ("x*1e-400", "number '1e-400' too small for a float (it would be 0) at column 3"),
    ("x*1e400", "number '1e400' too large for a float at column 3"),
])
@pytest.mark.parametrize("command", ["derive", "check", "graph"])
def test_bad_expressions_are_one_clear_line(command, expression, message):
    line = assert_one_line_error(run(command, expression, "--at", "x=1,y=1"), message)
    assert line.startswith(f"Error: {message}") and "sys." not in line and "(invalid syntax)" not in line


def test_bytes_that_are_not_utf8_are_named_as_such():
    result = subprocess.run([symgrad_command(), "derive", b"x\xff"], capture_output=True, timeout=120)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr == b"Error: invalid character: the text is not valid UTF-8 at column 2\n"


# --- losses without a value -------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["graph", "log(x)", "--at", "x=-1"], "log(x) is nan at x=-1: outside the domain of the loss"),
    (["derive", "log(x)", "--at", "x=-1"], "log(x) is nan at x=-1: outside the domain of the loss"),
    (["graph", "x/0", "--at", "x=1"], "x/0 is inf at x=1: a pole there (a division by zero, a log of 0)"),
    (["graph", "1/x + y", "--at", "x=0,y=2"], "1/x + y is inf at x=0,y=2: a pole there (a division by zero, a log of 0)"),
    (["derive", "1/x", "--at", "x=0"], "1/x is inf at x=0: a pole there (a division by zero, a log of 0)"),
    (["derive", "x/0"], "x/0 is undefined everywhere: SymPy reduces it to zoo*x (zoo: the infinity of a "
                        "division by zero)"),
    (["derive", "x/0", "--at", "x=1"], "x/0 is undefined everywhere"),
    (["derive", "(x - x)/(y - y)"], "is undefined everywhere: SymPy reduces it to nan"),
])
def test_a_loss_without_a_value_is_an_error(args, message):
    assert_one_line_error(run(*args), message)


def test_a_loss_that_overflows_shows_its_finite_partials():
    result = run("derive", "x**2", "--at", "x=1e200")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "∂L/∂x = 2*x = 2e+200"


def test_a_long_expression_is_shortened_in_messages():
    expression = "log(x) + " + " + ".join(["x"] * 100)
    line = assert_one_line_error(run("graph", expression, "--at", "x=-1"), "… is nan at x=-1")
    assert line == f"Error: {expression[:59]}… is nan at x=-1: outside the domain of the loss"


# --- --at and --wrt -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, shown", [("derive", "∂L/∂y = x = 1"), ("graph", 'label="y\\nvalue 2\\ngrad 1"')])
def test_repeated_at_options_merge(command, shown):
    result = run(command, "x*y", "--at", "x=1", "--at", "y=2")
    assert result.exit_code == 0, result.output
    assert shown in result.stdout


@pytest.mark.parametrize("command", ["derive", "graph"])
@pytest.mark.parametrize("at, name", [(["x=1,x=2"], "x"), (["x=1", "x=2"], "x"), (["x=1,y=2", "y=3"], "y")])
def test_a_name_given_twice_in_at_is_an_error(command, at, name):
    args = [part for value in at for part in ("--at", value)]
    assert_one_line_error(run(command, "x*y", *args), f"--at: {name!r} is given twice")


@pytest.mark.parametrize("args, option", [
    (["descend", "(w*x - y)**2", "--at", "w=0,x=1,y=2", "--lr", "0.1", "--lr", "0.2"], "--lr"),
    (["check", "x*y", "--at", "x=1,y=2", "--fd-method", "forward", "--fd-method=central"], "--fd-method"),
    (["graph", "x", "--at", "x=1", "-o", "a.dot", "--output", "b.dot"], "--output"),
])
def test_an_option_with_one_value_given_twice_is_an_error_not_the_last_one_silently(args, option):
    assert_one_line_error(run(*args), f"{option} is given twice: give it once")


@pytest.mark.parametrize("command", ["derive", "check"])
def test_a_weight_given_twice_in_wrt_is_an_error(command):
    assert_one_line_error(run(command, "x*y", "--wrt", "x,x", "--at", "x=1,y=2"), "--wrt: 'x' is given twice")


# --- an expression that starts with a minus ----------------------------------------------------------------


@pytest.mark.parametrize("args, shown", [
    (["derive", "-x**2", "--at", "x=3"], "∂L/∂x = -2*x = -6"),
    (["derive", "--at", "x=3", "-x**2"], "∂L/∂x = -2*x = -6"),
    (["derive", "--", "-x**2", "--at", "x=3"], None),          # after --, everything is an argument
    (["derive", "-2*x"], "∂L/∂x = -2"),
    (["check", "-x**2", "--at", "x=3"], "OK: 1 of 1 entries agree"),
    (["graph", "-a*b", "--at", "a=2,b=3"], 'label="L\\nvalue -6'),
    (["descend", "-w**2 + w**4", "--at", "w=1", "--lr", "0.01", "--steps", "1"], "0.98"),
])
def test_an_expression_may_start_with_a_minus(args, shown):
    result = run(*args)
    if shown is None:
        assert_one_line_error(result, "Got unexpected extra argument")
        return
    assert result.exit_code == 0, result.output
    assert shown in result.stdout


@pytest.mark.parametrize("args, message", [
    (["derive", "x", "--latx"], "No such option"),
    (["descend", "w**2", "--at", "w=1", "--lr", "-0.1"], "--lr must be a positive finite number, got -0.1"),
    (["graph", "x", "--at", "x=1", "-o"], "requires an argument"),
])
def test_options_stay_options(args, message):
    assert_one_line_error(run(*args), message)


def test_short_options_keep_working(tmp_path):
    result = run("graph", "-x", "--at", "x=1", f"-o{tmp_path / 'g.dot'}")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    assert run("derive", "-h").stdout.startswith("Usage: ")


# --- no arguments, a closed pipe ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["plot"]])
def test_a_group_without_arguments_prints_its_help(args):
    result = run(*args)
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == run(*args, "--help").stdout and "Example" in result.stdout


@pytest.mark.parametrize("args", [["derive", "x*y"], ["--help"], []])
def test_a_closed_pipe_ends_quietly_with_141_not_1(args):
    process = subprocess.Popen([symgrad_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()                              # before Python has started: every write finds it closed
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141 and stderr == b""


# --- the examples of the help -----------------------------------------------------------------------------------


def help_examples(*command: str) -> list:
    """The ``symgrad ...`` lines after "Example:" in a command's help, as argument lists."""
    text = run(*command, "--help").stdout.partition("Example:")[2]
    return [shlex.split(line, comments=True)[1:] for line in text.splitlines() if line.strip().startswith("symgrad ")]


@pytest.mark.parametrize("args", help_examples("derive") + help_examples("graph") + [
    example for example in help_examples() if example[0] == "derive"])
def test_every_example_of_the_help_works(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() or re.fullmatch(r"wrote \S+\n", result.stderr)


@pytest.mark.parametrize("command", [["descend", "(w*x - y)**2", "--steps", "1"],
                                     ["plot", "derivative", "(w*x - y)**2", "--wrt", "w"]])
def test_repeated_at_merges_in_descend_and_plot(command, tmp_path):
    output = ["-o", str(tmp_path / "figure.png")] if command[0] == "plot" else []
    merged = run(*command, "--at", "w=0", "--at", "x=1,y=2", *output)
    assert merged.exit_code == 0, merged.output
    twice = run(*command, "--at", "w=0,x=1", "--at", "x=1,y=2", *output)
    assert twice.exit_code == 2 and "'x' is given twice" in twice.output


def test_an_option_missing_its_value_is_named_even_after_a_leading_minus_expression():
    result = run("derive", "-x**2", "--at")
    assert result.exit_code == 2 and "Option '--at' requires an argument" in result.output
