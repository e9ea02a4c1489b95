"""``symgrad plot ...``: the course figures from the command line, written as PNG, SVG or PDF.

Example:
    $ symgrad plot derivative "x**2" --at x=5 -o square.png
"""
from __future__ import annotations

from typing import Any, Optional

import click

from .common import (
    METHODS, OPTIMIZERS, Group, InputError, at_option, figure_path, guarded, parse_choices, parse_numbers,
    require_positive, usable_loss, write_figure,
)

FD_METHODS = ("forward", "backward", "central", "complex", "richardson")


def _output(function: Any) -> Any:
    return click.option("-o", "--output", required=True, callback=figure_path, metavar="FILE",
                        help="The figure file: .png, .svg or .pdf.")(function)


def _expression_options(function: Any) -> Any:
    function = click.option("--wrt", metavar="NAME,...", help="The weights (default: every variable).")(function)
    function = at_option("The value (or start) of every variable.", required=True)(function)
    return click.argument("expression")(function)


def _descent_options(function: Any) -> Any:
    function = click.option("--steps", default=30, show_default=True, type=click.IntRange(1, 100_000),
                            help="Updates per descent.")(function)
    return click.option("--method", type=click.Choice(METHODS), default="reverse", show_default=True,
                        help="The gradient source.")(function)


@click.group("plot", cls=Group)
def plot_group() -> None:
    """Draw a course figure to a file (.png, .svg or .pdf, by its extension).

    \b
    Example:
      symgrad plot derivative "x**2" --at x=5 -o square.png
      symgrad plot surface "(w*x + b - y)**2" --at w=-1,b=-1,x=1,y=2 --wrt w,b --lr 0.05,0.4,0.95 -o lr.png
    """


@plot_group.command("derivative")
@_expression_options
@click.option("--range", "span", metavar="LOW,HIGH", help="The plotted interval (default: around 0 and the point).")
@_output
def derivative_command(expression: str, at: tuple, wrt: Optional[str], span: Optional[str], output: str) -> None:
    """Plot f = EXPRESSION and its derivative with the tangent at the --at point.

    EXPRESSION may have one variable, or several with --wrt naming the one that
    varies (the others stay at their --at values).

    \b
    Example:
      symgrad plot derivative "x**2" --at x=5 -o square.png
      symgrad plot derivative "tanh(w*x)" --at w=0.5,x=2 --wrt w --range -3,3 -o tanh.svg
    """
    from symgrad.plots import derivative_figure  # noqa: PLC0415
    from symgrad.symbolic.derive import derive  # noqa: PLC0415

    f, params, data = usable_loss(expression, at, wrt)
    if len(params) != 1:
        raise InputError(f"the derivative figure needs one variable; name it with --wrt (got {', '.join(params)})")
    (name, x0), = params.items()
    limits = None
    if span:
        limits = _interval(span)
    slope = guarded(lambda: str(derive(expression, wrt=[name], data=data).exprs[name]))
    write_figure(lambda: derivative_figure(lambda v: f(**{name: v}, **data), x0, xlim=limits,
                                           label=f"f({name}) = {expression}", derivative_label=f"f′({name}) = {slope}",
                                           variable=name), output)


def _interval(text: str) -> tuple:
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--range: expected LOW,HIGH (two numbers), got {text!r}") from None
    if not low < high:
        raise InputError(f"--range: LOW must be below HIGH, got {text!r}")
    return low, high


@plot_group.command("surface")
@_expression_options
@click.option("--lr", "lrs", default="0.05,0.4,0.95", show_default=True, metavar="LR,...",
              help="One descent per learning rate.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True)
@_descent_options
@_output
def surface_command(expression: str, at: tuple, wrt: Optional[str], lrs: str, optimizer: str, method: str,
                    steps: int, output: str) -> None:
    """Contour of the loss EXPRESSION over two weights with one descent path per learning rate.

    --wrt names the two weights (the first is the horizontal axis); the other
    variables are data at their --at values.

    \b
    Example:
      symgrad plot surface "(w*x + b - y)**2" --at w=-1,b=-1,x=1,y=2 --wrt w,b --lr 0.05,0.4,0.95 -o lr.png
    """
    import symgrad as sg  # noqa: PLC0415
    from symgrad.plots import surface_figure  # noqa: PLC0415

    f, params, data = usable_loss(expression, at, wrt)
    if len(params) != 2:
        raise InputError(f"a loss surface needs exactly two weights in --wrt (got {', '.join(params)})")
    rates = parse_numbers(lrs, "--lr")
    runs = guarded(lambda: [sg.descend(f, params, data, lr=lr, steps=steps, method=method, optimizer=optimizer)
                            for lr in rates])
    write_figure(lambda: surface_figure(f, runs, data=data, title=f"Gradient descent on {expression}"), output)


@plot_group.command("trajectories")
@_expression_options
@click.option("--lr", "lrs", default="0.1", show_default=True, metavar="LR,...", help="Learning rates to compare.")
@click.option("--methods", default="reverse", show_default=True, metavar="NAME,...",
              help=f"Gradient sources to compare: {', '.join(METHODS)}.")
@click.option("--optimizers", default="sgd", show_default=True, metavar="NAME,...",
              help=f"Optimizers to compare: {', '.join(OPTIMIZERS)}.")
@click.option("--steps", default=30, show_default=True, type=click.IntRange(1, 100_000), help="Updates per descent.")
@_output
def trajectories_command(expression: str, at: tuple, wrt: Optional[str], lrs: str, methods: str, optimizers: str,
                         steps: int, output: str) -> None:
    """Loss against step for one descent per combination of learning rate, method and optimizer.

    \b
    Example:
      symgrad plot trajectories "(w*x - y)**2" --at w=0,x=1,y=2 --wrt w --lr 0.01,0.1,0.9 -o loss.png
      symgrad plot trajectories "(w*x - y)**2" --at w=0,x=1,y=2 --optimizers sgd,momentum,adam -o opt.pdf
    """
    import symgrad as sg  # noqa: PLC0415
    from symgrad.plots import loss_curves_figure  # noqa: PLC0415

    f, params, data = usable_loss(expression, at, wrt)
    rates = parse_numbers(lrs, "--lr")
    sources = parse_choices(methods, "--methods", METHODS)
    updates = parse_choices(optimizers, "--optimizers", OPTIMIZERS)
    runs, labels = [], []
    for lr in rates:
        for method in sources:
            for optimizer in updates:
                runs.append(guarded(lambda: sg.descend(f, params, data, lr=lr, steps=steps, method=method,
                                                       optimizer=optimizer)))
                parts = [f"lr = {lr:g}"] + ([method] if len(sources) > 1 else []) + \
                        ([optimizer] if len(updates) > 1 else [])
                labels.append(", ".join(parts))
    write_figure(lambda: loss_curves_figure(runs, labels, title=f"Loss of {expression}"), output)


@plot_group.command("sources")
@_expression_options
@click.option("--lr", default=0.1, show_default=True, type=float, help="The learning rate.")
@click.option("--steps", default=30, show_default=True, type=click.IntRange(1, 100_000), help="Updates per descent.")
@click.option("--coarse-h", default=0.5, show_default=True, type=float,
              help="The deliberately coarse forward-difference step.")
@_output
def sources_command(expression: str, at: tuple, wrt: Optional[str], lr: float, steps: int, coarse_h: float,
                    output: str) -> None:
    """One descent driven by each gradient source (exact, finite differences, backprop) on one surface.

    The three coincide; forward differences with the coarse step drift away. A
    descent that diverges is drawn up to the step before, and its legend says so.

    \b
    Example:
      symgrad plot sources "(w*x + b - y)**2 + (w*u + b - v)**2" --at w=-1,b=-1,x=1,y=2,u=-1,v=0 --wrt w,b -o sources.png
    """
    from symgrad.plots import sources_figure  # noqa: PLC0415

    f, params, data = usable_loss(expression, at, wrt)
    if len(params) != 2:
        raise InputError(f"the surface needs exactly two weights in --wrt (got {', '.join(params)})")
    require_positive(lr, "--lr")
    require_positive(coarse_h, "--coarse-h")
    write_figure(lambda: sources_figure(f, params, data, lr=lr, steps=steps, coarse_h=coarse_h,
                                        title=f"One descent of {expression}, three gradient sources"), output)


@plot_group.command("fd-error")
@_expression_options
@click.option("--methods", default="forward,central,complex,richardson", show_default=True, metavar="NAME,...",
              help=f"Finite-difference schemes: {', '.join(FD_METHODS)}.")
@_output
def fd_error_command(expression: str, at: tuple, wrt: Optional[str], methods: str, output: str) -> None:
    """Error of each finite-difference scheme against the step h, log-log, for one variable of EXPRESSION.

    \b
    Example:
      symgrad plot fd-error "exp(x)" --at x=1 -o fd.png
      symgrad plot fd-error "tanh(w*x)" --at w=0.5,x=2 --wrt w --methods forward,central -o fd.svg
    """
    import symgrad as sg  # noqa: PLC0415
    from symgrad.plots import fd_error_figure  # noqa: PLC0415

    f, params, data = usable_loss(expression, at, wrt)
    if len(params) != 1:
        raise InputError(f"the error curve needs one variable; name it with --wrt (got {', '.join(params)})")
    (name, x0), = params.items()
    schemes = tuple(parse_choices(methods, "--methods", FD_METHODS))
    curve = guarded(lambda: sg.fd_error_curve(lambda v: f(**{name: v}, **data), x0, methods=schemes))
    write_figure(lambda: fd_error_figure(curve, title=f"Finite differences of {expression} at {name} = {x0:g}"),
                 output)


@plot_group.command("check")
@click.argument("expression", required=False)
@at_option("The value of every variable of EXPRESSION.")
@click.option("--wrt", metavar="NAME,...", help="The weights (default: every variable).")
@click.option("--example", metavar="NAME", help="Check a built-in course example instead.")
@_output
def check_command(expression: Optional[str], at: tuple, wrt: Optional[str], example: Optional[str],
                  output: str) -> None:
    """The three-way gradient check as a figure: each weight's gradient by every method, and the errors.

    \b
    Example:
      symgrad plot check "tanh(w1*x1 + w2*x2 + b)" --at w1=0.5,w2=-1,b=0.1,x1=1,x2=2 --wrt w1,w2,b -o check.png
      symgrad plot check --example tanh_neuron -o neuron-check.pdf
    """
    import symgrad as sg  # noqa: PLC0415
    from symgrad.plots import check_figure  # noqa: PLC0415

    if (expression is None) == (example is None):
        raise InputError("give an EXPRESSION or --example NAME (one of them)")
    if example is not None:
        if at or wrt:
            raise InputError("--at and --wrt go with an EXPRESSION; an example has its own values")
        chosen = guarded(lambda: sg.examples.get(example))
        report = guarded(lambda: sg.check(chosen.loss, chosen.params, chosen.data, title=chosen.title))
    else:
        if not at:
            raise InputError("--at is needed: the value of every variable")
        f, params, data = usable_loss(expression, at, wrt)
        report = guarded(lambda: sg.check(f, params, data, title=f"Gradient of {expression}"))
    write_figure(lambda: check_figure(report), output)

