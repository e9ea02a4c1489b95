"""``symgrad course -o DIR``: every figure and check of the course, with an index.html that shows them.

For each built-in example of the notes: the three-way check (table and figure), the
computational graph (drawing and DOT), and where the example has a scalar weight
the derivative and the finite-difference error curve. Then the gradient-descent
figures on the notes' linear regression ŷ = x·w + b: the learning rate too small,
good and too large on the loss surface and as loss curves, the three gradient
sources on one surface, mini-batches against the full batch, and the optimizers.

Example:
    $ symgrad course -o course/
"""
from __future__ import annotations

import html
import os
import sys
from typing import Any, Callable

import click
import numpy as np

from .common import Command, InputError, guarded

# The notes' linear regression (ŷ = x·w + b, mean squared error) on a small fixed data set.
REGRESSION_X = np.linspace(-1.0, 1.0, 20)
REGRESSION_Y = 2.0 * REGRESSION_X + 1.0 + 0.2 * np.cos(7.0 * REGRESSION_X)
REGRESSION_START = {"w": -1.0, "b": -1.0}
LEARNING_RATES = {"too small": 0.05, "good": 0.4, "too large": 0.95}


def regression_loss(w: Any, b: Any, x: Any, y: Any) -> Any:
    """The notes' linear regression cost: the mean of (x·w + b - y)² over the samples.

    Example:
        >>> float(regression_loss(2.0, 1.0, np.array([0.0, 1.0]), np.array([1.0, 3.0])))
        0.0
    """
    import symgrad as sg  # noqa: PLC0415

    return sg.mean((x * w + b - y) ** 2)


class Course:
    """The files of the course and the HTML sections that show them, filled in task by task."""

    def __init__(self, folder: str, extension: str):
        self.folder = folder
        self.extension = extension
        self.sections: dict = {}
        self.headings: dict = {}
        self.files: list = []

    def section(self, key: str, heading: str, intro: str = "") -> list:
        """The fragment list of section ``key``, created with its heading the first time."""
        if key not in self.sections:
            self.headings[key] = heading
            self.sections[key] = [f'<h2 id="{key}">{html.escape(heading)}</h2>'
                                  + (f"<p>{html.escape(intro)}</p>" if intro else "")]
        return self.sections[key]

    def figure(self, key: str, name: str, build: Callable[[], Any], caption: str) -> None:
        """Build a figure, save it as ``name`` + the course's extension and show it in section ``key``."""
        from symgrad.plots import save_figure  # noqa: PLC0415

        filename = f"{name}{self.extension}"
        save_figure(build(), os.path.join(self.folder, filename))
        self.files.append(filename)
        shown = (f'<object data="{filename}" type="application/pdf" width="100%" height="600"></object>'
                 if self.extension == ".pdf" else f'<img src="{filename}" alt="{html.escape(caption)}">')
        self.sections[key].append(f'<figure><a href="{filename}">{shown}</a>'
                                  f'<figcaption>{html.escape(caption)}</figcaption></figure>')

    def text(self, key: str, name: str, content: str, caption: str) -> None:
        """Write a text file and link it from section ``key``."""
        with open(os.path.join(self.folder, name), "w", encoding="utf-8") as handle:
            handle.write(content + "\n")
        self.files.append(name)
        self.sections[key].append(f'<p><a href="{name}">{html.escape(caption)}</a></p>')

    def table(self, key: str, caption: str, content: str) -> None:
        """Show a text table in section ``key``."""
        self.sections[key].append(f"<h3>{html.escape(caption)}</h3><pre>{html.escape(content)}</pre>")

    def index(self) -> str:
        """The index.html that shows every section."""
        contents = "".join(f'<li><a href="#{key}">{html.escape(heading)}</a></li>'
                           for key, heading in self.headings.items())
        body = "\n".join("\n".join(parts) for parts in self.sections.values())
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>symgrad course</title>"
                f"<style>{_CSS}</style></head><body><h1>Gradients three ways: the course figures</h1>"
                f"<p>Made by symgrad: exact derivatives (SymPy), finite differences and backpropagation, "
                f"cross-checked.</p><ol>{contents}</ol>\n{body}\n</body></html>\n")


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;line-height:1.4}"
        "img{max-width:100%;border:1px solid #ddd}figure{margin:1.5em 0}figcaption{color:#444}"
        "pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:13px}h2{border-bottom:2px solid #ccc}")


def example_tasks(course: Course, name: str) -> list:
    """The tasks of one built-in example: graph, check, derivative and fd-error where they fit."""
    import symgrad as sg  # noqa: PLC0415
    from symgrad.plots import check_figure, derivative_figure, fd_error_figure, graph_figure  # noqa: PLC0415

    example = sg.examples.get(name)
    scalars = [p for p, v in example.params.items() if np.ndim(v) == 0]
    key = f"example-{name}"

    parts = course.section(key, example.title, example.description)
    parts.append(f"<p><code>{html.escape(example.formula)}</code></p>")
    if example.command:
        parts.append(f"<p>On the command line: <code>{html.escape(example.command)}</code></p>")

    def check() -> None:
        report = sg.check(example.loss, example.params, example.data, title=example.title)
        course.table(key, "Three-way gradient check", str(report))
        course.figure(key, f"{name}-check", lambda: check_figure(report),
                      "Each weight's gradient by the three methods, and their errors against the exact value.")

    def graph() -> None:
        drawing = example.graph()
        course.figure(key, f"{name}-graph", lambda: graph_figure(drawing),
                      "The computational graph: every node with its forward value and its gradient dL/dnode.")
        course.text(key, f"{name}-graph.dot", drawing.to_dot(), "The same graph as Graphviz DOT text")

    def derivative() -> None:
        weight = scalars[0]
        others = {p: v for p, v in example.params.items() if p != weight}
        course.figure(key, f"{name}-derivative",
                      lambda: derivative_figure(lambda v: example.loss(**{weight: v}, **others, **example.data),
                                                example.params[weight], variable=weight,
                                                name="f" if example.formula.startswith("f(") else "L"),
                      f"The loss as a function of {weight}, its derivative and the tangent at {weight} = "
                      f"{example.params[weight]:g}.")

    def fd_error() -> None:
        weight = scalars[-1]
        others = {p: v for p, v in example.params.items() if p != weight}
        curve = sg.fd_error_curve(lambda v: example.loss(**{weight: v}, **others, **example.data),
                                  example.params[weight])
        course.figure(key, f"{name}-fd-error", lambda: fd_error_figure(curve),
                      f"Finite-difference error of dL/d{weight} against the step h.")

    tasks = [(f"{name}: graph", graph), (f"{name}: check", check)]
    if len(example.params) == 1 and scalars and all(np.ndim(v) == 0 for v in example.data.values()):
        tasks.append((f"{name}: derivative", derivative))
    if scalars:
        tasks.append((f"{name}: fd error", fd_error))
    return tasks


def descent_tasks(course: Course) -> list:
    """The gradient-descent figures on the notes' linear regression."""
    import symgrad as sg  # noqa: PLC0415
    from symgrad.plots import loss_curves_figure, sources_figure, surface_figure  # noqa: PLC0415

    key = "descent"
    data = {"x": REGRESSION_X, "y": REGRESSION_Y}
    labels = [f"{kind} (lr = {lr:g})" for kind, lr in LEARNING_RATES.items()]

    course.section(key, "Gradient descent on the linear regression ŷ = x·w + b",
                   "w ← w − lr·dL/dw on the mean squared error over 20 samples: a learning rate too small "
                   "crawls, a good one converges, one too large oscillates (and larger still diverges).")

    def learning_rates() -> None:
        runs = [sg.descend(regression_loss, REGRESSION_START, data, lr=lr, steps=25)
                for lr in LEARNING_RATES.values()]
        course.figure(key, "descent-surface", lambda: surface_figure(regression_loss, runs, data=data, labels=labels),
                      "The loss surface over (w, b) with one descent per learning rate.")
        course.figure(key, "descent-loss", lambda: loss_curves_figure(runs, labels),
                      "The loss at every step for the three learning rates.")
        course.table(key, f"The descent with the good learning rate (lr = {LEARNING_RATES['good']:g})",
                     runs[1].to_table(every=5))

    def sources() -> None:
        course.figure(key, "descent-sources",
                      lambda: sources_figure(regression_loss, REGRESSION_START, data, lr=LEARNING_RATES["good"],
                                             steps=25, coarse_h=0.5),
                      "The same descent driven by the exact, finite-difference and backprop gradients: they "
                      "coincide; forward differences with a coarse step h = 0.5 drift away.")

    def mini_batches() -> None:
        runs = [sg.descend(regression_loss, REGRESSION_START, data, lr=0.2, steps=40, batch_size=size)
                for size in (None, 5)]
        course.figure(key, "descent-minibatch",
                      lambda: loss_curves_figure(runs, ["full batch (20 samples)", "mini-batches of 5"],
                                                 title="Full batch against mini-batches (lr = 0.2)"),
                      "Each update uses the gradient of one batch: mini-batches make four times more updates per "
                      "pass over the data, at the price of a noisier path.")

    def optimizers() -> None:
        runs = [sg.descend(regression_loss, REGRESSION_START, data, lr=lr, steps=40, optimizer=name)
                for name, lr in (("sgd", 0.05), ("momentum", 0.05), ("adam", 0.2))]
        course.figure(key, "descent-optimizers",
                      lambda: loss_curves_figure(runs, ["sgd (lr = 0.05)", "momentum 0.9 (lr = 0.05)",
                                                        "adam (lr = 0.2)"], title="Three optimizers from the same start"),
                      "Plain gradient descent, heavy-ball momentum and Adam from the same start.")

    return [("descent: learning rates", learning_rates), ("descent: gradient sources", sources),
            ("descent: mini-batches", mini_batches), ("descent: optimizers", optimizers)]


@click.command("course", cls=Command)
@click.option("-o", "--output", "folder", required=True, metavar="DIR",
              help="The folder to write into (created if needed).")
@click.option("--format", "extension", type=click.Choice(("png", "svg", "pdf")), default="png", show_default=True,
              help="The format of the figures.")
def course_command(folder: str, extension: str) -> None:
    """Run every built-in course example — the three-way check, the graph, the figures that fit it —
    and the gradient-descent figures, and write them to DIR with an index.html showing all of them.

    \b
    Example:
      symgrad course -o course/
      symgrad course -o slides/ --format pdf
    """
    import symgrad as sg  # noqa: PLC0415

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create {folder!r}: {err.strerror or err}") from None
    course = Course(folder, "." + extension)
    tasks = [task for name in sg.examples.names() for task in example_tasks(course, name)] + descent_tasks(course)
    with click.progressbar(tasks, label="Building the course", file=sys.stderr,
                           item_show_func=lambda task: task[0] if task else "") as bar:
        for _, task in bar:
            guarded(task)
    with open(os.path.join(folder, "index.html"), "w", encoding="utf-8") as handle:
        handle.write(course.index())
    click.echo(f"wrote {len(course.files)} files and {os.path.join(folder, 'index.html')}")
