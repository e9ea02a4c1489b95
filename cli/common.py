"""What every ``symgrad`` subcommand shares: reading ``--at``/``--wrt`` and failing cleanly.

Bad input ends the command with one line on stderr and exit code 2
(:class:`InputError`); exit code 1 is kept for "the gradients disagree".

Example:
    >>> parse_assignments("x=1,y=2.5")
    {'x': 1.0, 'y': 2.5}
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Optional

import click
import numpy as np


METHODS = ("reverse", "symbolic", "finite_diff")
OPTIMIZERS = ("sgd", "momentum", "adam")
FIGURE_FORMATS = (".png", ".svg", ".pdf")


class InputError(click.ClickException):
    """Bad usage or bad input: one line on stderr, exit code 2.

    Example:
        >>> InputError("no such weight 'q'").exit_code
        2
    """

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def parse_assignments(text: Optional[str], option: str = "--at") -> dict:
    """``"x=1,y=2"`` -> ``{"x": 1.0, "y": 2.0}``; anything else raises InputError naming the bad part.

    Example:
        >>> parse_assignments("w=-1e-3")
        {'w': -0.001}
    """
    values: dict = {}
    if not text:
        return values
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name.isidentifier():
            raise InputError(f"{option}: expected name=value pairs separated by commas, got {part.strip()!r}")
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"{option}: value of {name!r} is not a number: {raw!r}") from None
        if not math.isfinite(value):
            raise InputError(f"{option}: value of {name!r} must be finite, got {raw!r}")
        if name in values:
            raise InputError(f"{option}: {name!r} is given twice")
        values[name] = value
    return values


def parse_names(text: Optional[str], option: str = "--wrt") -> list:
    """``"w,b"`` -> ``["w", "b"]``; an empty or malformed list raises InputError.

    Example:
        >>> parse_names("w1, w2")
        ['w1', 'w2']
    """
    if text is None:
        return []
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if not name.isidentifier():
            raise InputError(f"{option}: {name!r} is not a variable name")
    return names


def guarded(action: Callable[[], Any]) -> Any:
    """Run ``action``, turning symgrad's input errors into one-line InputErrors (exit 2).

    Example:
        >>> guarded(lambda: 42)
        42
    """
    import symgrad  # noqa: PLC0415

    try:
        return action()
    except click.ClickException:
        raise
    except (symgrad.ParseError, ValueError, TypeError, KeyError, ZeroDivisionError, OverflowError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(message) from None


def echo_json(payload: Any) -> None:
    """Print ``payload`` as indented JSON on stdout.

    Example:
        >>> echo_json({"ok": True})
        {
          "ok": true
        }
    """
    click.echo(json.dumps(payload, indent=2, default=float))


class OneLineErrors:
    """Mixin for click commands and groups: usage errors (a bad option value, a missing
    argument, an unknown subcommand) become one line on stderr with exit code 2, and
    NumPy's floating-point warnings are off while the command runs (an overflow or a
    division by zero shows as inf or nan in what the command reports)."""

    def invoke(self, ctx: click.Context) -> Any:
        with np.errstate(all="ignore"):
            return super().invoke(ctx)

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
    from symgrad.symbolic.parse import parse_function  # noqa: PLC0415

    f = guarded(lambda: parse_function(expression))
    values = guarded(lambda: f.assigned(parse_assignments(at), "--at"))
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
    except (ValueError, OverflowError) as err:       # matplotlib could not lay the figure out
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"cannot draw {path!r}: {reason}") from None
    click.echo(f"wrote {path}", err=True)
