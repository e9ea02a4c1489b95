"""``symgrad check`` and ``symgrad examples``: tables, JSON, exit codes (0 agree, 1 disagree, 2 bad usage).

Most cases run in-process through click's runner; the exit codes and the JSON are
also checked through the installed ``symgrad`` command, as a user runs it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from symgrad.cli.main import main

NEURON = ["check", "tanh(w1*x1 + w2*x2 + b)", "--at", "w1=0.5,w2=-1,b=0.1,x1=1,x2=2", "--wrt", "w1,w2,b"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def symgrad_command(*args: str) -> subprocess.CompletedProcess:
    """The installed console script (next to this Python), as a subprocess."""
    script = shutil.which("symgrad", path=os.path.dirname(sys.executable)) or shutil.which("symgrad")
    assert script, "the symgrad console script is not installed"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=120)


def test_check_an_expression():
    result = run(*NEURON)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "gradient of tanh(w1*x1 + w2*x2 + b) with respect to w1, w2, b"
    assert lines[1].startswith("OK: 3 of 3 entries agree")
    assert "exact" in result.output and "finite diff" in result.output and "backprop" in result.output
    table = [line.split() for line in lines if line.split() and line.split()[0] in ("w1", "w2", "b")]
    assert len(table) == 3 and all(row[-1] == "ok" for row in table)


def test_check_json():
    result = run(*NEURON, "--json")
    assert result.exit_code == 0
    payload = json.loads(result.output)
    assert payload["ok"] is True and payload["reference"] == "symbolic"
    rows = {r["element"]: r for r in payload["rows"]}
    # d/dw1 tanh(n) = x1 (1 - tanh(n)^2) with n = 0.5 - 2 + 0.1 = -1.4
    assert rows["w1"]["symbolic"] == pytest.approx(1 - __import__("math").tanh(-1.4) ** 2, rel=1e-12)
    assert rows["w2"]["backprop"] == pytest.approx(2 * rows["w1"]["backprop"], rel=1e-12)


def test_default_wrt_is_every_symbol_and_options_pass_through():
    result = run("check", "(w*x - y)**2", "--at", "w=1,x=1,y=2", "--fd-method", "complex", "--json")
    payload = json.loads(result.output)
    assert result.exit_code == 0 and payload["fd_method"] == "complex"
    assert {r["element"] for r in payload["rows"]} == {"w", "x", "y"}
    result = run("check", "(w*x - y)**2", "--at", "w=1,x=1,y=2", "--wrt", "w", "--rtol", "0.5", "--atol", "0.25",
                 "--json")
    payload = json.loads(result.output)
    assert (payload["rtol"], payload["atol"]) == (0.5, 0.25)


def test_disagreement_exits_1():
    result = run("check", "exp(w)", "--at", "w=1", "--fd-method", "forward", "--rtol", "1e-12", "--atol", "0")
    assert result.exit_code == 1
    assert "FAILED" in result.output and "fd off" in result.output


@pytest.mark.parametrize("args, message", [
    (["check", "w*", "--at", "w=1"], ""),
    (["check", "w*x", "--at", "w=1"], "no value for x"),
    (["check", "w*x", "--at", "w=1,x=2,z=3"], "'z' does not appear"),
    (["check", "w*x", "--at", "w=1,x=2", "--wrt", "q"], "--wrt: 'q'"),
    (["check", "w*x", "--at", "w=one"], "not a number"),
    (["check", "--at", "w=1"], "need an EXPRESSION"),
    (["check", "w*x", "--at", "w=1,x=2", "--rtol", "-1"], "non-negative"),
    (["check", "w*x", "--at", "w=1,x=2", "--fd-method", "sideways"], "sideways"),
    (["check", "__import__('os')", "--at", "w=1"], ""),
    (["examples", "cube"], "no example named 'cube'"),
    (["check", "x*10**400", "--at", "x=1"], "is inf at the given point"),
    (["check", "log(x)", "--at", "x=0"], "log(x) is -inf at x=0"),
    (["check", "sqrt(x)", "--at", "x=-1"], "sqrt(x) is nan at x=-1: outside the domain"),
    (["check", "log(x)", "--at", "x=-1"], "log(x) is nan at x=-1: outside the domain"),
    (["check", "w/x", "--at", "w=1,x=0"], "w/x is inf at w=1,x=0: a pole there"),
    (["check", "sqrt(x)", "--at", "x=0"], "not finite at the given point (x: inf)"),
    (["check", "x**y", "--at", "x=0,y=0"], "not finite at the given point"),
    (["check", "w*x", "--at", "w=1,x=2", "--rtol", "inf"], "finite non-negative"),
])
def test_bad_usage_exits_2_with_one_line(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_bare_check_runs_every_course_example():
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.output.count("the notes' gradient: matched") == 6
    assert result.output.rstrip().splitlines()[-1] == \
        "6 of 6 course examples agree three ways and match the notes' numbers"
    for name in ("square", "graph", "linear_regression", "tanh_neuron", "mini_batch", "linear_layer"):
        assert f"{name}: " in result.output


def test_examples_list_and_show():
    listing = run("examples")
    assert listing.exit_code == 0
    assert [line.split()[0] for line in listing.output.splitlines()[:6]] == [
        "square", "graph", "linear_regression", "tanh_neuron", "mini_batch", "linear_layer"]
    shown = run("examples", "graph")
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "e = a*b;  d = e + c;  L = d*f" in text
    assert 'symgrad check "(a*b + c)*f" --at a=2,b=-3,c=10,f=-2 --wrt a,b,c,f' in text
    graph = {line.split()[0]: line for line in text.split("graph (")[1].split("exact partial")[0].splitlines()[1:]
             if line.strip()}
    assert "value 2" in graph["a"] and "grad 6" in graph["a"] and "weight" in graph["a"]
    assert "value -8" in graph["L"] and "grad 1" in graph["L"]
    assert "dL/da = b*f" in text and "dL/df = a*b + c" in text
    assert "OK: 4 of 4 entries agree" in text


def test_examples_show_a_matrix_example_and_json():
    result = run("examples", "linear_layer", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["check"]["ok"] is True and payload["expression"] is None
    assert len(payload["partials"]) == 6 + 2 + 12
    assert payload["expected"]["b"] == pytest.approx([0.45, 0.225])


@pytest.mark.parametrize("command", [["check"], ["examples"]])
def test_help_shows_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Example" in result.output


# --- through the installed command ---------------------------------------------------------------------


def test_installed_command_exit_codes_and_json():
    agree = symgrad_command(*NEURON, "--json")
    assert agree.returncode == 0, agree.stderr
    assert json.loads(agree.stdout)["counts"] == {"entries": 3, "agree": 3, "disagree": 0}
    disagree = symgrad_command("check", "exp(w)", "--at", "w=1", "--fd-method", "forward", "--rtol", "0",
                               "--atol", "0", "--json")
    assert disagree.returncode == 1
    assert json.loads(disagree.stdout)["rows"][0]["verdict"] == "fd off"
    bad = symgrad_command("check", "w*x", "--at", "w=1")
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "no value for x" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_installed_command_checks_the_course():
    result = symgrad_command("check", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and len(payload["examples"]) == 6
    assert all(e["matches_notes"] and e["report"]["ok"] for e in payload["examples"])


def test_check_of_an_overflowing_power_reports_instead_of_crashing():
    result = run("check", "x**2", "--at", "x=1e200")
    assert result.exit_code == 0, result.output
    assert "2e+200" in result.output and "Traceback" not in result.output
    huge = run("check", "x*10**400", "--at", "x=1")
    assert "Traceback" not in huge.output and not isinstance(huge.exception, OverflowError)
    assert huge.exit_code == 2 and "x*10**400 is inf at the given point" in huge.output


def test_numpy_floating_point_warnings_do_not_reach_stderr():
    result = symgrad_command("check", "log(x)", "--at", "x=0")
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
    assert result.returncode == 2 and result.stderr.strip() == (
        "Error: log(x) is -inf at x=0: a pole there (a division by zero, a log of 0)")
