"""``symgrad descend``: gradient descent on an expression, printed as a table (or JSON), optionally drawn.

Also home of what the expression-taking commands share: turning ``EXPR --at ... --wrt ...``
into a loss function, its weights and its data, and reading the ``-o`` figure path.

Example:
    $ symgrad descend "(w*x - y)**2" --at w=0,x=1,y=2 --wrt w --lr 0.1 --steps 50
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import click

from .common import InputError, echo_json, guarded, parse_assignments, parse_names

METHODS = ("reverse", "symbolic", "finite_diff")
OPTIMIZERS = ("sgd", "momentum", "adam")
FIGURE_FORMATS = (".png", ".svg", ".pdf")


class OneLineErrors:
    """Mixin for click commands and groups: usage errors (a bad option value, a missing
    argument, an unknown subcommand) become one line on stderr with exit code 2."""

    def parse_args(self, ctx: click.Context, args: list) -> list:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            raise InputError(err.format_message()) from None

    def resolve_command(self, ctx: click.Context, args: list) -> tuple:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as err:
            raise InputError(err.format_message()) from None


class Command(OneLineErrors, click.Command):
    """A click command whose usage errors are one line (see :class:`OneLineErrors`)."""


class Group(OneLineErrors, click.Group):
    """A click group whose usage errors are one line (see :class:`OneLineErrors`)."""

    command_class = Command


def loss_from_options(expression: str, at: Optional[str], wrt: Optional[str]) -> tuple:
    """``(f, params, data)`` from an expression, its ``--at`` values and the ``--wrt`` weights.

    Every variable needs a value; the weights default to every variable; the others are data.

    Example:
        >>> f, params, data = loss_from_options("(w*x - y)**2", "w=0,x=1,y=2", "w")
        >>> params, data
        ({'w': 0.0}, {'x': 1.0, 'y': 2.0})
    """
    from symgrad.graph import expression_function  # noqa: PLC0415

    f = guarded(lambda: expression_function(expression))
    values = parse_assignments(at)
    missing = [n for n in f.names if n not in values]
    if missing:
        raise InputError(f"no value for {', '.join(missing)}: give it with --at {missing[0]}=...")
    unknown = [n for n in values if n not in f.names]
    if unknown:
        raise InputError(f"--at: {unknown[0]!r} does not appear in the expression")
    weights = parse_names(wrt) or list(f.names)
    absent = [n for n in weights if n not in f.names]
    if absent:
        raise InputError(f"--wrt: {absent[0]!r} does not appear in the expression")
    params = {n: values[n] for n in weights}
    return f, params, {n: v for n, v in values.items() if n not in params}


def parse_numbers(text: str, option: str) -> list:
    """``"0.01,0.1"`` -> ``[0.01, 0.1]``: positive finite numbers, else InputError naming the bad one.

    Example:
        >>> parse_numbers("0.02, 0.3", "--lr")
        [0.02, 0.3]
    """
    numbers = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise InputError(f"{option}: {part.strip()!r} is not a number") from None
        if not (value > 0 and value != float("inf")):
            raise InputError(f"{option}: {part.strip()!r} must be a positive finite number")
        numbers.append(value)
    return numbers


def parse_choices(text: str, option: str, allowed: tuple) -> list:
    """``"reverse,symbolic"`` -> a list of allowed names, else InputError listing the allowed ones.

    Example:
        >>> parse_choices("sgd,adam", "--optimizers", ("sgd", "momentum", "adam"))
        ['sgd', 'adam']
    """
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if name not in allowed:
            raise InputError(f"{option}: {name!r} is not one of {', '.join(allowed)}")
    return names


def figure_path(ctx: Any, param: Any, value: Optional[str]) -> Optional[str]:
    """Click callback: a figure file name ending in .png, .svg or .pdf, in an existing folder."""
    if value is None:
        return None
    extension = os.path.splitext(value)[1].lower()
    if extension not in FIGURE_FORMATS:
        raise click.BadParameter(f"{value!r} must end in .png, .svg or .pdf", ctx=ctx, param=param)
    folder = os.path.dirname(value)
    if folder and not os.path.isdir(folder):
        raise click.BadParameter(f"the folder {folder!r} does not exist", ctx=ctx, param=param)
    return value


def write_figure(build: Callable[[], Any], path: str) -> None:
    """Build a figure (input errors exit 2) and save it to ``path``; says where it went."""
    from symgrad.plots import save_figure  # noqa: PLC0415

    figure = guarded(build)
    try:
        save_figure(figure, path)
    except OSError as err:
        raise InputError(f"cannot write {path!r}: {err.strerror or err}") from None
    click.echo(f"wrote {path}", err=True)


@click.command("descend", cls=Command)
@click.argument("expression")
@click.option("--at", "at", required=True, metavar="NAME=VALUE,...",
              help="The start of every weight and the value of every data variable.")
@click.option("--wrt", metavar="NAME,...", help="The weights to descend on (default: every variable).")
@click.option("--lr", default=0.1, show_default=True, type=float, help="The learning rate.")
@click.option("--steps", default=50, show_default=True, type=click.IntRange(0, 1_000_000), help="Updates to make.")
@click.option("--method", type=click.Choice(METHODS), default="reverse", show_default=True,
              help="The gradient source.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True)
@click.option("--fd-method", type=click.Choice(("forward", "backward", "central", "complex", "richardson")),
              default="central", show_default=True, help="The scheme of --method finite_diff.")
@click.option("--every", type=click.IntRange(1), help="Print one row every N steps (default: about 20 rows).")
@click.option("--plot", "plot", callback=figure_path, metavar="FILE",
              help="Also draw the descent: on the loss surface for two weights, else the loss curve "
                   "(.png, .svg or .pdf).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole trajectory as JSON.")
def descend_command(expression: str, at: str, wrt: Optional[str], lr: float, steps: int, method: str,
                    optimizer: str, fd_method: str, every: Optional[int], plot: Optional[str],
                    as_json: bool) -> None:
    """Minimize EXPRESSION by gradient descent from the --at values, updating the --wrt weights.

    Each step is w <- w - lr * dL/dw with the gradient from backprop, the exact
    SymPy partials or finite differences (--method). Prints the loss, the gradient
    norm and the weights along the way; if the loss diverges the descent stops
    there and says so on stderr.

    \b
    Example:
      symgrad descend "(w*x - y)**2" --at w=0,x=1,y=2 --wrt w --lr 0.1 --steps 50
      symgrad descend "(w*x + b - y)**2" --at w=0,b=0,x=1,y=2 --wrt w,b --lr 0.2 --plot descent.png
    """
    import symgrad as sg  # noqa: PLC0415

    f, params, data = loss_from_options(expression, at, wrt)
    if not lr > 0 or lr == float("inf"):
        raise InputError(f"--lr must be a positive finite number, got {lr}")
    traj = guarded(lambda: sg.descend(f, params, data, lr=lr, steps=steps, method=method, optimizer=optimizer,
                                      fd_method=fd_method))
    if as_json:
        echo_json({"expression": expression, **traj.to_dict()})
    else:
        click.echo(traj.to_table(every or max(1, steps // 20)))
    if traj.stopped:
        click.echo(traj.stopped, err=True)
    if plot:
        write_figure(lambda: _descent_figure(f, data, traj, expression), plot)


def _descent_figure(f: Callable, data: dict, traj: Any, expression: str) -> Any:
    from symgrad.plots import loss_curves_figure, surface_figure  # noqa: PLC0415

    title = f"Gradient descent on {expression}"
    if len(traj.names) == 2:
        return surface_figure(f, [traj], data=data, title=title)
    return loss_curves_figure([traj], title=title)
