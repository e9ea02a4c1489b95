"""The figure commands: symgrad plot ..., graph, descend and course."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from symgrad.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_figure(path) -> None:
    content = path.read_bytes()
    assert len(content) > 1000
    if path.suffix == ".png":
        assert content.startswith(PNG)
    elif path.suffix == ".svg":
        assert ET.fromstring(content).tag.endswith("svg")
    else:
        assert content.startswith(b"%PDF-")


def assert_usage_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


# --- plot -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, name", [
    (["derivative", "x**2", "--at", "x=5"], "square.png"),
    (["surface", "(w*x + b - y)**2 + (w*u + b - v)**2", "--at", "w=-1,b=-1,x=1,y=2,u=-1,v=0", "--wrt", "w,b",
      "--lr", "0.05,0.4", "--steps", "8"], "surface.svg"),
    (["trajectories", "(w*x - y)**2", "--at", "w=0,x=1,y=2", "--wrt", "w", "--lr", "0.01,0.1",
      "--optimizers", "sgd,adam", "--steps", "10"], "loss.pdf"),
    (["sources", "(w*x + b - y)**2 + (w*u + b - v)**2", "--at", "w=-1,b=-1,x=1,y=2,u=-1,v=0", "--wrt", "w,b",
      "--steps", "5"], "sources.png"),
    (["fd-error", "exp(x)", "--at", "x=1"], "fd.png"),
    (["check", "tanh(w1*x1 + w2*x2 + b)", "--at", "w1=0.5,w2=-1,b=0.1,x1=1,x2=2", "--wrt", "w1,w2,b"], "check.png"),
    (["check", "--example", "graph"], "notes-check.svg"),
])
def test_plot_commands_write_valid_figures(tmp_path, args, name):
    out = tmp_path / name
    result = run("plot", *args, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert_figure(out)


@pytest.mark.parametrize("args, fragment", [
    (["derivative", "x**2", "--at", "x=5", "-o", "square.jpg"], "must end in .png, .svg or .pdf"),
    (["derivative", "x**2", "--at", "x=5", "-o", "nowhere/square.png"], "does not exist"),
    (["derivative", "x**2 +", "--at", "x=5", "-o", "f.png"], "column"),
    (["derivative", "x*y", "--at", "x=5,y=1", "-o", "f.png"], "needs one variable"),
    (["derivative", "x**2", "--at", "x=5", "--range", "1,0", "-o", "f.png"], "LOW must be below HIGH"),
    (["surface", "w**2 + b**2", "--at", "w=1,b=1", "--lr", "-1", "-o", "f.png"], "--lr"),
    (["surface", "w**2", "--at", "w=1", "-o", "f.png"], "exactly two weights"),
    (["trajectories", "w**2", "--at", "w=1", "--methods", "magic", "-o", "f.png"], "'magic' is not one of"),
    (["fd-error", "exp(x)", "--at", "y=1", "-o", "f.png"], "no value for x"),
    (["check", "-o", "f.png"], "EXPRESSION or --example"),
    (["check", "--example", "nope", "-o", "f.png"], "no example named 'nope'"),
])
def test_plot_bad_arguments_are_one_line_and_exit_2(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    assert_usage_error(run("plot", *args), fragment)


# --- graph ------------------------------------------------------------------------------------------------


def test_graph_writes_dot_text_with_the_notes_numbers(tmp_path):
    out = tmp_path / "graph.dot"
    result = run("graph", "(a*b + c)*f", "--at", "a=2,b=-3,c=10,f=-2", "-o", str(out))
    assert result.exit_code == 0, result.output
    dot = out.read_text()
    assert dot.startswith("digraph") and 'label="L\\nvalue -8\\ngrad 1"' in dot
    assert 'label="a\\nvalue 2\\ngrad 6"' in dot and 'label="b\\nvalue -3\\ngrad -4"' in dot


def test_graph_prints_dot_without_output_and_draws_figures(tmp_path):
    result = run("graph", "x**2", "--at", "x=5")
    assert result.exit_code == 0 and 'label="x\\nvalue 5\\ngrad 10"' in result.output
    for name in ("graph.svg", "graph.png"):
        assert run("graph", "(a*b + c)*f", "--at", "a=2,b=-3,c=10,f=-2", "-o", str(tmp_path / name)).exit_code == 0
        assert_figure(tmp_path / name)
    svg = (tmp_path / "graph.svg").read_text()
    assert svg.count("<path") > 10
    assert run("graph", "--example", "tanh_neuron", "-o", str(tmp_path / "neuron.pdf")).exit_code == 0
    assert_figure(tmp_path / "neuron.pdf")


@pytest.mark.parametrize("args, fragment", [
    (["(a*b)", "--at", "a=2"], "no value for b"),
    (["a*b", "--at", "a=2,b=1,z=3"], "'z' does not appear in the expression 'a*b'"),
    (["a*b"], "--at is needed"),
    (["a*b", "--at", "a=2,b=1", "-o", "g.txt"], "must end in .dot, .png, .svg or .pdf"),
    (["__import__('os')", "--at", "a=1"], "column"),
])
def test_graph_bad_arguments_are_one_line_and_exit_2(args, fragment):
    assert_usage_error(run("graph", *args), fragment)


# --- descend ----------------------------------------------------------------------------------------------


def test_descend_prints_the_trajectory_table():
    result = run("descend", "(w*x - y)**2", "--at", "w=0,x=1,y=2", "--wrt", "w", "--lr", "0.1", "--steps", "50")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["step", "loss", "|grad|", "w"]
    assert lines[1].split() == ["0", "4", "4", "0"]
    assert lines[-1].split()[0] == "50" and abs(float(lines[-1].split()[-1]) - 2) < 1e-4


@pytest.mark.parametrize("method", ["reverse", "symbolic", "finite_diff"])
def test_descend_json_is_the_same_for_every_method(method):
    result = run("descend", "(w*x + b - y)**2", "--at", "w=0,b=0,x=1,y=2", "--wrt", "w,b", "--lr", "0.2",
                 "--steps", "5", "--method", method, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["method"] == method and payload["steps"] == 5 and payload["stopped"] is None
    assert payload["params"][1] == pytest.approx({"w": 0.8, "b": 0.8})      # w - 0.2 * 2(w + b - 2)


def test_descend_stops_on_divergence_with_a_message_and_plots(tmp_path):
    out = tmp_path / "diverged.png"
    result = run("descend", "(w*x - y)**2", "--at", "w=0,x=1,y=2", "--wrt", "w", "--lr", "1.5", "--steps", "2000",
                 "--plot", str(out))
    assert result.exit_code == 0
    assert "diverged" in result.stderr and "learning rate smaller than 1.5" in result.stderr
    assert "nan" not in result.stdout
    assert_figure(out)


def test_descend_stops_long_before_overflow_and_says_so():
    # w - 2 ← -19 (w - 2) from w = 0, L(k) = 4·361^k: the scale is L(1) = 1444 and the first k with
    # L(k) - 4 > 1e6·1444 is 4; the table ends at step 3, w = 2 - 2·(-19)³ = 13720
    result = run("descend", "(w*x - y)**2", "--at", "w=0,x=1,y=2", "--wrt", "w", "--lr", "10")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == ("stopped at step 4 of 50: the loss rose from 4 to 6.79e+10, the descent "
                                     "diverged; try a learning rate smaller than 10")
    assert result.stdout.strip().splitlines()[-1].split() == ["3", "1.88184e+08", "13720"]


def test_descend_two_weights_plots_the_surface(tmp_path):
    out = tmp_path / "surface.svg"
    result = run("descend", "(w*x + b - y)**2", "--at", "w=0,b=0,x=1,y=2", "--wrt", "w,b", "--steps", "5",
                 "--optimizer", "momentum", "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert_figure(out)


@pytest.mark.parametrize("args, fragment", [
    (["(w*x - y)**2", "--at", "w=0,x=1,y=2", "--lr", "0"], "--lr must be a positive"),
    (["(w*x - y)**2", "--at", "w=0,x=1"], "no value for y"),
    (["(w*x - y)**2", "--at", "w=0,x=1,y=2", "--wrt", "q"], "'q' does not appear"),
    (["(w*x - y)**2", "--at", "w=0,x=1,y=2", "--method", "magic"], "Invalid value for '--method'"),
    (["(w*x - y)**2", "--at", "w=0,x=1,y=2", "--steps", "-3"], "Invalid value for '--steps'"),
    (["(w*x - y)**2", "--at", "w=0,x=1,y=2", "--lr", "inf"], "--lr must be a positive finite number, got inf"),
    (["(w*x - y)**2", "--at", "w=0,x=1,y=2", "--plot", "out.gif"], "must end in .png, .svg or .pdf"),
])
def test_descend_bad_arguments_are_one_line_and_exit_2(args, fragment):
    assert_usage_error(run("descend", *args), fragment)


# --- help -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["plot"], ["plot", "derivative"], ["plot", "surface"], ["plot", "trajectories"],
                                     ["plot", "sources"], ["plot", "fd-error"], ["plot", "check"], ["graph"],
                                     ["descend"], ["course"]])
def test_every_help_has_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Example" in result.output


# --- course -----------------------------------------------------------------------------------------------


class Links(HTMLParser):
    """Every src and href of a page."""

    def __init__(self):
        super().__init__()
        self.links: list = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for key, value in attrs if key in ("src", "href") and value]


def test_course_writes_every_figure_its_index_links_to(tmp_path):
    result = run("course", "-o", str(tmp_path / "course"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "course"
    page = (folder / "index.html").read_text(encoding="utf-8")
    parser = Links()
    parser.feed(page)
    files = [link for link in parser.links if not link.startswith("#")]
    images = [link for link in files if link.endswith(".png")]
    assert len(images) >= 20
    for link in files:
        assert (folder / link).is_file(), f"index.html links to a missing {link}"
        if link.endswith(".png"):
            assert_figure(folder / link)
    assert sorted(p.name for p in folder.iterdir() if p.name != "index.html") == sorted(set(files))
    for name in ("square", "graph", "linear_regression", "tanh_neuron", "mini_batch", "linear_layer"):
        assert f"{name}-check.png" in images and f"{name}-graph.png" in images
    assert {"descent-surface.png", "descent-loss.png", "descent-sources.png"} <= set(images)
    assert "square-derivative.png" in images and "square-fd-error.png" in images
    assert re.search(r"<pre>.*OK: 4 of 4 entries agree", page, re.S)        # the notes' graph, checked
    assert "Building the course" in result.stderr


def test_course_refuses_a_folder_it_cannot_create(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_usage_error(run("course", "-o", str(blocker / "course")), "cannot create")


# --- input that overflows or that matplotlib cannot draw --------------------------------------------------


def test_graph_of_a_huge_literal_shows_inf_instead_of_failing():
    result = run("graph", "x*10**400", "--at", "x=1")
    assert result.exit_code == 0, result.output
    assert 'label="L\\nvalue inf' in result.stdout


def test_graph_title_with_dollar_signs_is_plain_text(tmp_path):
    result = run("graph", "x", "--at", "x=1", "--title", "$x^$", "-o", str(tmp_path / "g.png"))
    assert result.exit_code == 0, result.output
    assert_figure(tmp_path / "g.png")


NAN = "outside the domain of the loss"
POLE = "a pole there (a division by zero, a log of 0)"
OVERFLOW = "the loss overflows float64 there"


@pytest.mark.parametrize("args, message", [
    (["plot", "derivative", "log(x)", "--at", "x=-1"], f"log(x) is nan at x=-1: {NAN}"),
    (["plot", "derivative", "x/0", "--at", "x=1"], f"x/0 is inf at x=1: {POLE}"),
    (["plot", "derivative", "log(x)", "--at", "x=0"], f"log(x) is -inf at x=0: {POLE}"),
    (["plot", "derivative", "x**2", "--at", "x=1e200"], f"x**2 is inf at x=1e+200: {OVERFLOW}"),
    (["plot", "fd-error", "sqrt(x)", "--at", "x=-1"], f"sqrt(x) is nan at x=-1: {NAN}"),
    (["plot", "surface", "log(w*b)", "--at", "w=-1,b=1", "--wrt", "w,b"], f"log(w*b) is nan at w=-1,b=1: {NAN}"),
    (["plot", "trajectories", "1/w", "--at", "w=0"], f"1/w is inf at w=0: {POLE}"),
    (["plot", "sources", "w/0 + b", "--at", "w=1,b=1", "--wrt", "w,b"], f"w/0 + b is inf at w=1,b=1: {POLE}"),
    (["plot", "check", "log(w)", "--at", "w=-1"], f"log(w) is nan at w=-1: {NAN}"),
    (["plot", "check", "w/0", "--at", "w=1"], f"w/0 is inf at w=1: {POLE}"),
    (["plot", "check", "exp(w)", "--at", "w=1000"], f"exp(w) is inf at w=1000: {OVERFLOW}"),
    (["descend", "log(w*x)", "--at", "w=1,x=-1", "--wrt", "w"], f"log(w*x) is nan at w=1,x=-1: {NAN}"),
    (["descend", "x**2", "--at", "x=1e200"], f"x**2 is inf at x=1e+200: {OVERFLOW}"),
])
def test_a_start_where_the_loss_is_not_finite_is_a_one_line_error(tmp_path, args, message):
    out = tmp_path / "a.png"
    result = run(*args, *(["-o", str(out)] if args[0] == "plot" else []))
    assert_usage_error(result, message)
    assert result.stderr.strip() == f"Error: {message}"
    assert not out.exists()


@pytest.mark.parametrize("option, value", [("--lr", "0"), ("--lr", "nan"), ("--coarse-h", "-1"), ("--coarse-h", "inf")])
def test_plot_sources_names_the_bad_option(tmp_path, option, value):
    result = run("plot", "sources", "w*b", "--at", "w=1,b=1", "--wrt", "w,b", option, value,
                 "-o", str(tmp_path / "s.png"))
    assert_usage_error(result, f"Error: {option} must be a positive finite number, got {value}")
    other = "--coarse-h" if option == "--lr" else "--lr"
    assert other not in result.stderr


def test_plot_sources_of_a_diverging_descent_draws_it_instead_of_blaming_the_step(tmp_path):
    out = tmp_path / "s.png"
    result = run("plot", "sources", "(w*x + b - y)**2", "--at", "w=-1,b=-1,x=1,y=2", "--wrt", "w,b", "--lr", "100",
                 "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"wrote {out}"
    assert_figure(out)


@pytest.mark.parametrize("args, fragment", [
    (["surface", "w*b", "--at", "w=1e308,b=1", "--wrt", "w,b"], "cannot draw the values of w: the range ["),
    (["derivative", "sin(x)", "--at", "x=1e308"], "cannot draw x (the plotted interval)"),
    (["derivative", "x**2", "--at", "x=1", "--range", "-1e308,1e308"], "goes beyond"),
])
def test_plots_beyond_what_matplotlib_can_draw_are_one_line_errors(tmp_path, args, fragment):
    assert_usage_error(run("plot", *args, "-o", str(tmp_path / "a.png")), fragment)


def test_a_figure_matplotlib_cannot_save_is_a_one_line_error(tmp_path, monkeypatch):
    import symgrad.plots

    def refuse(figure, path):
        raise ValueError("mathtext cannot parse\nsecond line")

    monkeypatch.setattr(symgrad.plots, "save_figure", refuse)
    result = run("graph", "x", "--at", "x=1", "-o", str(tmp_path / "g.png"))
    assert_usage_error(result, "cannot draw")
    assert "mathtext cannot parse" in result.stderr and not (tmp_path / "g.png").exists()
