"""``symgrad graph``: the computational graph of an expression, with forward values and gradients.

Example:
    $ symgrad graph "(a*b + c)*f" --at a=2,b=-3,c=10,f=-2 -o graph.svg
"""
from __future__ import annotations

import os
from typing import Optional

import click

from .common import (
    FIGURE_FORMATS, Command, InputError, at_option, check_loss_at, guarded, parse_assignments, write_figure,
)


def _graph_path(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    extension = os.path.splitext(value)[1].lower()
    if extension not in FIGURE_FORMATS + (".dot",):
        raise click.BadParameter(f"{value!r} must end in .dot, .png, .svg or .pdf", ctx=ctx, param=param)
    folder = os.path.dirname(value)
    if folder and not os.path.isdir(folder):
        raise click.BadParameter(f"the folder {folder!r} does not exist", ctx=ctx, param=param)
    return value


@click.command("graph", cls=Command)
@click.argument("expression", required=False)
@at_option("The value of every variable of EXPRESSION (the loss must be finite there).")
@click.option("--example", metavar="NAME", help="Draw a built-in course example instead (see symgrad examples).")
@click.option("-o", "--output", callback=_graph_path, metavar="FILE",
              help="Where to write it: .dot for Graphviz text, .png/.svg/.pdf for a drawing "
                   "(default: DOT on stdout).")
@click.option("--title", help="The title of the drawing.")
def graph_command(expression: Optional[str], at: tuple, example: Optional[str], output: Optional[str],
                  title: Optional[str]) -> None:
    """Draw the computational graph of EXPRESSION at the --at values: every value node
    with its forward value and its gradient dL/dnode, every operation in a circle.

    Every variable is differentiated. No Graphviz needed for .png/.svg/.pdf; .dot
    writes the same graph as Graphviz text.

    \b
    Example:
      symgrad graph "(a*b + c)*f" --at a=2,b=-3,c=10,f=-2 -o graph.svg
      symgrad graph "tanh(w1*x1 + w2*x2 + b)" --at w1=-3,w2=1,b=6.88,x1=2,x2=0 -o neuron.png
      symgrad graph --example graph -o notes.dot
    """
    import symgrad as sg  # noqa: PLC0415
    from symgrad.graph import Graph  # noqa: PLC0415
    from symgrad.symbolic.parse import parse_function  # noqa: PLC0415

    if (expression is None) == (example is None):
        raise InputError("give an EXPRESSION or --example NAME (one of them)")
    if example is not None:
        if at:
            raise InputError("--at goes with an EXPRESSION; an example has its own values")
        graph = guarded(lambda: sg.examples.get(example).graph())
    else:
        if not at:
            raise InputError("--at is needed: the value of every variable, e.g. --at a=2,b=-3")
        values = parse_assignments(at)
        graph = guarded(lambda: Graph.from_expression(expression, values, title=title or f"L = {expression}"))
        check_loss_at(parse_function(expression), values, expression)
    if output is None or output.lower().endswith(".dot"):
        text = graph.to_dot()
        if output is None:
            click.echo(text)
            return
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        except OSError as err:
            raise InputError(f"cannot write {output!r}: {err.strerror or err}") from None
        click.echo(f"wrote {output}", err=True)
        return
    from symgrad.plots import graph_figure  # noqa: PLC0415

    write_figure(lambda: graph_figure(graph, title=title), output)
