"""symgrad.plots: valid files, the plotted data is the computed data, and every figure is slide-readable."""
from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

import symgrad as sg
from symgrad.graph import Graph
from symgrad.plots import (check_figure, derivative_figure, fd_error_figure, graph_figure, loss_curves_figure,
                           node_texts, save_figure, sources_figure, surface_figure)

X = np.linspace(-1.0, 1.0, 10)
Y = 2.0 * X + 1.0 + 0.2 * np.cos(7.0 * X)
DATA = {"x": X, "y": Y}
START = {"w": -1.0, "b": -1.0}


def regression(w, b, x, y):
    return sg.mean((x * w + b - y) ** 2)


@pytest.fixture(scope="module")
def lr_runs():
    """The notes' three learning rates on the linear regression: too small, good, too large."""
    return [sg.descend(regression, START, DATA, lr=lr, steps=12) for lr in (0.05, 0.4, 0.95)]


def notes_graph() -> Graph:
    """e = a·b, d = e + c, L = d·f at a=2, b=-3, c=10, f=-2, recorded on tensors with the notes' names."""
    a, b, c, f = (sg.tensor(v, requires_grad=True) for v in (2.0, -3.0, 10.0, -2.0))
    e = (a * b).retain_grad()
    d = (e + c).retain_grad()
    L = (d * f).retain_grad()
    L.backward(retain_graph=True)
    return Graph.from_tensor(L, {"a": a, "b": b, "c": c, "f": f, "e": e, "d": d, "L": L})


def assert_readable(fig) -> None:
    """Title, axis labels, a legend where several lines are labelled, fonts >= 10 pt, no text outside the figure."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip():
            assert text.get_fontsize() >= 10, f"text {text.get_text()!r} is too small ({text.get_fontsize()} pt)"
    drawn = fig.get_tightbbox(canvas.get_renderer())          # inches, everything drawn
    width, height = fig.get_size_inches()
    assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01 and drawn.x1 <= width + 0.01 and drawn.y1 <= height + 0.01, \
        f"something is drawn outside the figure: {drawn} in a {width} x {height} figure"
    titled = [ax for ax in fig.axes if ax.get_title()] or fig._suptitle or [t for t in fig.texts if t.get_text()]
    assert titled, "the figure has no title"
    for ax in fig.axes:
        if not ax.axison or ax.get_label() == "<colorbar>":
            continue
        assert ax.get_xlabel() or ax.get_yticklabels(), "an axis has no label"
        labelled = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        if len(labelled) > 1:
            assert ax.get_legend() is not None or fig.legends, "several lines but no legend"


def assert_no_overlap(fig) -> None:
    """No two node boxes of a graph figure overlap."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    boxes = [t.get_bbox_patch().get_window_extent(canvas.get_renderer()) for ax in fig.axes for t in ax.texts
             if t.get_bbox_patch() is not None]
    for one, two in itertools.combinations(boxes, 2):
        assert not one.overlaps(two), "two nodes of the graph overlap"


# --- files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["png", "svg", "pdf"])
def test_files_are_valid_for_each_format(tmp_path, extension):
    path = tmp_path / f"square.{extension}"
    save_figure(derivative_figure(lambda x: x ** 2, 5.0), path)
    content = path.read_bytes()
    assert len(content) > 1000
    if extension == "png":
        assert content.startswith(b"\x89PNG\r\n\x1a\n")
    elif extension == "svg":
        assert ET.fromstring(content).tag.endswith("svg")
    else:
        assert content.startswith(b"%PDF-")


def test_save_refuses_unknown_formats_and_missing_folders(tmp_path):
    fig = derivative_figure(lambda x: x ** 2, 5.0)
    with pytest.raises(ValueError, match=r"must end in \.png, \.svg or \.pdf"):
        save_figure(fig, tmp_path / "square.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        save_figure(fig, tmp_path / "nowhere" / "square.png")


# --- derivative -------------------------------------------------------------------------------------------


def test_derivative_figure_shows_x_squared_and_the_gradient_10_at_5():
    fig = derivative_figure(lambda x: x ** 2, 5.0, label="f(x) = x²", derivative_label="f′(x) = 2x")
    ax = fig.axes[0]
    f_line, d_line, tangent = ax.get_lines()[:3]
    xs = f_line.get_xdata()
    np.testing.assert_allclose(f_line.get_ydata(), xs ** 2, rtol=1e-14)
    np.testing.assert_allclose(d_line.get_ydata(), 2 * xs, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(tangent.get_ydata(), 25 + 10 * (xs - 5), rtol=1e-14, atol=1e-12)
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "the gradient f′(5) = 10" in labels and "f(5) = 25" in labels
    assert "10" in ax.get_title()
    assert_readable(fig)


def test_derivative_figure_refuses_a_point_outside_the_range():
    with pytest.raises(ValueError, match="inside the plotted range"):
        derivative_figure(lambda x: x ** 2, 5.0, xlim=(-1, 1))


@pytest.mark.parametrize("f, x0, message", [
    (lambda x: sg.log(x), -1.0, "f(-1) is nan: outside the domain of the loss"),
    (lambda x: 1 / x, 0.0, "f(0) is inf: the loss is infinite there"),
])
def test_derivative_figure_refuses_a_point_where_f_is_not_finite(f, x0, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        derivative_figure(f, x0)


# --- graph ------------------------------------------------------------------------------------------------


def test_graph_of_the_notes_example_has_its_values_and_gradients():
    fig = graph_figure(notes_graph())
    texts = node_texts(fig)
    for expected in ["a = 2\ngrad = 6", "b = −3\ngrad = −4", "c = 10\ngrad = −2", "f = −2\ngrad = 4",
                     "e = −6\ngrad = −2", "d = 4\ngrad = −2", "L = −8\ngrad = 1"]:
        assert expected in texts
    assert texts.count("×") == 2 and texts.count("+") == 1
    assert_readable(fig)
    assert_no_overlap(fig)


def test_graph_from_the_course_example_and_its_dot_text():
    graph = sg.examples.get("graph").graph()
    assert [(graph[n].value_text, graph[n].grad_text) for n in ("a", "b", "c", "f", "L")] == \
        [("2", "6"), ("-3", "-4"), ("10", "-2"), ("-2", "4"), ("-8", "1")]
    dot = graph.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert 'label="L\\nvalue -8\\ngrad 1"' in dot and 'label="a\\nvalue 2\\ngrad 6"' in dot
    assert dot.count("->") == len(graph.edges) == 9


def test_graph_of_a_neuron_stays_readable():
    graph = Graph.from_expression("(tanh(w1*x1 + w2*x2 + b) - y)**2",
                                  {"w1": -3.0, "w2": 1.0, "b": 7.881373587019543, "x1": 2.0, "x2": -1.0, "y": 1.0})
    fig = graph_figure(graph)
    assert_readable(fig)
    assert_no_overlap(fig)
    assert fig.get_size_inches()[0] < 24
    # backprop's gradients of the notes' neuron: o = 1/√2, so dL/db = (2o - 2y)(1 - o²) = o - 1
    assert float(graph["b"].grad) == pytest.approx(2 ** -0.5 - 1)
    assert float(graph["w1"].grad) == pytest.approx(2 * (2 ** -0.5 - 1))


def test_graph_of_a_freed_tensor_graph_says_how_to_keep_it():
    a = sg.tensor(2.0, requires_grad=True)
    out = a * a
    out.backward()
    with pytest.raises(ValueError, match="retain_graph=True"):
        Graph.from_tensor(out)


# --- surface and loss curves --------------------------------------------------------------------------------


def test_surface_lines_are_the_trajectories_points(lr_runs):
    labels = ["too small", "good", "too large"]
    fig = surface_figure(regression, lr_runs, data=DATA, labels=labels, resolution=30)
    lines = fig.axes[0].get_lines()
    for traj, line in zip(lr_runs, lines):
        np.testing.assert_array_equal(line.get_xdata(), traj.path("w"))
        np.testing.assert_array_equal(line.get_ydata(), traj.path("b"))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(",")[0] for t in legend[:3]] == labels and "start" in legend
    assert_readable(fig)


def test_surface_keeps_a_diverging_run_out_of_the_view():
    good = sg.descend(regression, START, DATA, lr=0.4, steps=10)
    wild = sg.descend(regression, START, DATA, lr=3.0, steps=400)
    assert wild.stopped
    fig = surface_figure(regression, [good, wild], data=DATA, resolution=20)
    low, high = fig.axes[0].get_xlim()
    assert high - low < 20
    assert "diverged at step" in fig.legends[0].get_texts()[1].get_text()


def test_loss_curves_are_the_trajectories_losses(lr_runs):
    fig = loss_curves_figure(lr_runs)
    for traj, line in zip(lr_runs, fig.axes[0].get_lines()):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(traj.steps + 1))
        np.testing.assert_array_equal(line.get_ydata(), traj.losses)
    assert fig.axes[0].get_yscale() == "log"
    assert_readable(fig)


def test_figures_refuse_what_they_cannot_draw(lr_runs):
    with pytest.raises(TypeError, match="Trajectory"):
        loss_curves_figure([])
    with pytest.raises(ValueError, match="2 labels for 3 trajectories"):
        loss_curves_figure(lr_runs, labels=["a", "b"])
    one = sg.descend(lambda w: w ** 2, {"w": 1.0}, steps=2)
    with pytest.raises(ValueError, match="two scalar weights"):
        surface_figure(lambda w: w ** 2, [one])


def test_sources_figure_the_three_sources_coincide_and_a_coarse_step_drifts():
    fig = sources_figure(regression, START, DATA, lr=0.4, steps=8, coarse_h=0.5, resolution=20)
    paths = fig.axes[0].get_lines()[:4]
    for line in paths[1:3]:
        np.testing.assert_allclose(line.get_xydata(), paths[0].get_xydata(), atol=1e-6)
    assert np.abs(paths[3].get_xydata() - paths[0].get_xydata()).max() > 1e-2
    distances = [line.get_ydata() for line in fig.axes[1].get_lines()]
    assert max(distances[0].max(), distances[1].max()) < 1e-6 < distances[2][-1]
    assert not any("diverged" in t.get_text() for t in fig.legends[0].get_texts())
    assert_readable(fig)


def test_sources_figure_draws_diverging_paths_up_to_the_blow_up_and_says_so():
    # L = r², r = w + b - 2, from w = b = -1 (r = -4) with lr = 100: both weights move by -lr·dL/dw, so
    # r ← r - 400 r = -399 r for the exact gradient 2r, and r ← -399 r - 100 for the forward difference
    # 2r + h with h = 0.5; w = -1 + (r + 4) / 2. L(k) = r(k)², and the descent stops at the first k with
    # L(k) - 16 > 1e6·L(1): k = 3 for both recurrences, so each path keeps steps 0, 1 and 2.
    def path(recurrence):
        r = [-4.0]
        for _ in range(2):
            r.append(recurrence(r[-1]))
        return [-1 + (v + 4) / 2 for v in r]

    fig = sources_figure(lambda w, b: (w + b - 2) ** 2, {"w": -1.0, "b": -1.0}, lr=100.0, steps=30, coarse_h=0.5,
                         resolution=20)
    exact, coarse = path(lambda r: -399 * r), path(lambda r: -399 * r - 100)
    lines = fig.axes[0].get_lines()[:4]
    for line, expected in zip(lines, [exact, exact, exact, coarse]):
        np.testing.assert_allclose(line.get_xdata(), expected, rtol=1e-9)
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-9)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(", diverged")[0] for t in legend[:4]] == [
        "backprop (reverse mode)", "exact (SymPy)", "finite differences (central)", "forward differences, h = 0.5"]
    assert all(t.endswith(", diverged at step 3") for t in legend[:4])
    assert_readable(fig)


# --- check and fd-error -------------------------------------------------------------------------------------


def test_check_figure_draws_the_three_methods_values_and_errors():
    example = sg.examples.get("graph")
    report = sg.check(example.loss, example.params, example.data, title=example.title)
    fig = check_figure(report)
    left, right = fig.axes[:2]
    names = [t.get_text() for t in left.get_yticklabels()]
    assert names == ["a", "b", "c", "f"]
    bars = sorted(left.patches, key=lambda p: -p.get_y())
    expected = {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0}
    heights = [bar.get_width() for bar in bars]
    np.testing.assert_allclose(heights, [v for v in expected.values() for _ in range(3)], rtol=1e-6)
    assert right.get_xscale() == "log"
    assert "all gradients agree" in fig._suptitle.get_text()
    assert_readable(fig)


def test_fd_error_figure_plots_the_curve_and_marks_the_best_steps():
    curve = sg.fd_error_curve(lambda x: sg.exp(x), 1.0)
    fig = fd_error_figure(curve)
    ax = fig.axes[0]
    lines = ax.get_lines()
    for method, line in zip(curve.errors, lines):
        np.testing.assert_array_equal(line.get_xdata(), curve.hs)
        np.testing.assert_allclose(line.get_ydata(), np.maximum(curve.errors[method], 1e-17))
    stars = [ln for ln in lines if ln.get_marker() == "*" and len(ln.get_xdata()) == 1]
    assert sorted(float(s.get_xdata()[0]) for s in stars) == sorted(float(curve.best_h[m]) for m in curve.errors)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    slopes = [t.get_text() for t in ax.texts]
    assert {"slope 1", "slope 2", "slope −1"} <= set(slopes)
    assert_readable(fig)
