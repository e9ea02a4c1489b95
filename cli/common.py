"""What every ``symgrad`` subcommand shares: reading ``--at``/``--wrt`` and failing cleanly.

Bad input ends the command with one line on stderr and exit code 2
(:class:`InputError`); exit code 1 is kept for "the gradients disagree". A
closed stdout (``symgrad check | head -1``) ends it quietly with exit code 141,
as the shell reports a command stopped by a closed pipe.

Example:
    >>> parse_assignments("x=1,y=2.5")
    {'x': 1.0, 'y': 2.5}
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from typing import Any, Callable, Iterable, Optional, Union

import click
import numpy as np


METHODS = ("reverse", "symbolic", "finite_diff")
OPTIMIZERS = ("sgd", "momentum", "adam")
FIGURE_FORMATS = (".png", ".svg", ".pdf")
#: The exit code when stdout is a pipe that closed: 128 + SIGPIPE, what a shell reports for ``cat | head``.
CLOSED_PIPE = 141


class InputError(click.ClickException):
    """Bad usage or bad input: one line on stderr, exit code 2.

    Example:
        >>> InputError("no such weight 'q'").exit_code
        2
    """

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def at_option(help_text: str, required: bool = False) -> Callable:
    """The ``--at NAME=VALUE,...`` option of a command; repeated, its values merge (``--at x=1 --at y=2``).

    Example:
        >>> @click.command()
        ... @at_option("The value of every variable.")
        ... def show(at):
        ...     print(parse_assignments(at))
        >>> show(["--at", "x=1", "--at", "y=2"], standalone_mode=False)
        {'x': 1.0, 'y': 2.0}
    """
    return click.option("--at", "at", multiple=True, required=required, metavar="NAME=VALUE,...",
                        help=help_text + " May be repeated.")


def parse_assignments(text: Union[None, str, Iterable[str]], option: str = "--at") -> dict:
    """``"x=1,y=2"`` -> ``{"x": 1.0, "y": 2.0}``; anything else raises InputError naming the bad part.

    Several texts (a repeated option) merge; a name given twice, in one or in two of them, is an error.

    Example:
        >>> parse_assignments("w=-1e-3")
        {'w': -0.001}
        >>> parse_assignments(["x=1", "y=2"])
        {'x': 1.0, 'y': 2.0}
        >>> parse_assignments(["x=1", "x=2"])
        Traceback (most recent call last):
        ...
        cli.common.InputError: --at: 'x' is given twice
    """
    values: dict = {}
    texts = [text] if isinstance(text, str) else list(text or [])
    for part in (part for text in texts if text for part in text.split(",")):
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
    """``"w,b"`` -> ``["w", "b"]``; an empty or malformed list, or a name given twice, raises InputError.

    Example:
        >>> parse_names("w1, w2")
        ['w1', 'w2']
        >>> parse_names("w,w")
        Traceback (most recent call last):
        ...
        cli.common.InputError: --wrt: 'w' is given twice
    """
    if text is None:
        return []
    names = [n.strip() for n in text.split(",")]
    for i, name in enumerate(names):
        if not name.isidentifier():
            raise InputError(f"{option}: {name!r} is not a variable name")
        if name in names[:i]:
            raise InputError(f"{option}: {name!r} is given twice")
    return names


def check_loss_at(f: Callable, values: dict, expression: str, allow_overflow: bool = True) -> None:
    """InputError if the loss ``f`` (of text ``expression``) has no value at ``values``: nan, outside its
    domain, or infinite by a division by zero. An overflow to inf (``x**2`` at ``x=1e200``) is float64's
    answer, where the partials may well be finite: it passes unless ``allow_overflow`` is False (a
    descent or a drawing cannot start from inf).

    Example:
        >>> from symgrad.symbolic.parse import parse_function
        >>> check_loss_at(parse_function("log(x)"), {"x": -1.0}, "log(x)")
        Traceback (most recent call last):
        ...
        cli.common.InputError: log(x) is nan at x=-1: outside the domain of the loss
        >>> check_loss_at(parse_function("1/x"), {"x": 0.0}, "1/x")
        Traceback (most recent call last):
        ...
        cli.common.InputError: 1/x is inf at x=0: a pole there (a division by zero, a log of 0)
        >>> check_loss_at(parse_function("x**2"), {"x": 1e200}, "x**2", allow_overflow=False)
        Traceback (most recent call last):
        ...
        cli.common.InputError: x**2 is inf at x=1e+200: the loss overflows float64 there
    """
    from symgrad.symbolic.parse import shorten  # noqa: PLC0415

    with np.errstate(all="ignore"):
        value = float(f(**values))
    if math.isnan(value):
        reason = "outside the domain of the loss"
    elif math.isinf(value) and _divides_by_zero(f, values):
        reason = "a pole there (a division by zero, a log of 0)"
    elif math.isinf(value) and not allow_overflow:
        reason = "the loss overflows float64 there"
    else:
        return
    point = shorten(",".join(f"{name}={number:g}" for name, number in values.items()))
    raise InputError(f"{shorten(expression)} is {value:g} at {point}: {reason}")


def _divides_by_zero(f: Callable, values: dict) -> bool:
    """Whether computing ``f`` at ``values`` divides by zero (NumPy's flag, raised on purpose here)."""
    with np.errstate(all="ignore", divide="raise"):
        try:
            f(**values)
        except FloatingPointError:
            return True
    return False


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
    argument, an unknown subcommand) become one line on stderr with exit code 2, a
    closed stdout ends the command quietly with exit code 141 (:data:`CLOSED_PIPE`),
    and NumPy's floating-point warnings are off while the command runs (an overflow or
    a division by zero shows as inf or nan in what the command reports)."""

    def invoke(self, ctx: click.Context) -> Any:
        with _quiet_when_stdout_closes(), np.errstate(all="ignore"):
            return super().invoke(ctx)

    def parse_args(self, ctx: click.Context, args: list) -> list:
        with _quiet_when_stdout_closes():       # --help prints while the arguments are parsed
            try:
                return super().parse_args(ctx, args)
            except click.UsageError as err:
                raise InputError(err.format_message()) from None

    def resolve_command(self, ctx: click.Context, args: list) -> tuple:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as err:
            raise InputError(err.format_message()) from None


@contextlib.contextmanager
def _quiet_when_stdout_closes() -> Any:
    """Stop with exit code :data:`CLOSED_PIPE` and no message if stdout is a pipe that closed, instead of
    click's exit code 1 (which would read as "the gradients disagree"). Stdout is flushed at the end, so
    that a closed pipe shows here rather than as a warning when Python exits."""
    try:
        try:
            yield
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        try:                                    # what is still buffered for the closed pipe goes nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):           # no file descriptor (click's test runner): nothing to flush
            pass
        raise click.exceptions.Exit(CLOSED_PIPE) from None


class Command(OneLineErrors, click.Command):
    """A click command whose usage errors are one line (see :class:`OneLineErrors`), where an
    option that takes a value may be given once only, and where an argument may start with
    ``-`` (``symgrad derive "-x**2"``; see :func:`arrange_arguments`)."""

    def parse_args(self, ctx: click.Context, args: list) -> list:
        return super().parse_args(ctx, arrange_arguments(args, self.get_params(ctx)))


class Group(OneLineErrors, click.Group):
    """A click group whose usage errors are one line (see :class:`OneLineErrors`); without
    arguments it prints its help on stdout and exits with 0, as ``--help`` does."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list) -> list:
        return super().parse_args(ctx, args or ["--help"])


def arrange_arguments(args: list, params: list) -> list:
    """``args`` as click should read them: refused if an option that takes one value is given twice
    (click would keep the last silently), and with every argument that is not an option or an
    option's value moved after ``--``, so that an expression starting with ``-`` stays an argument.

    A ``-`` followed by anything but one of the command's short options starts an argument;
    ``--`` followed by a name is always an option (an unknown one is click's error).

    Example:
        >>> params = [click.Option(["--at"]), click.Option(["-o"]), click.Option(["--json"], is_flag=True)]
        >>> arrange_arguments(["-x**2", "--at", "x=-1", "-oout.svg", "--json"], params)
        ['--at', 'x=-1', '-oout.svg', '--json', '--', '-x**2']
        >>> arrange_arguments(["x", "--at", "x=1", "--at", "y=2"], params)
        Traceback (most recent call last):
        ...
        cli.common.InputError: --at is given twice: give it once
    """
    options = {name: p for p in params if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}
    kept, arguments, given = [], [], set()
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            arguments += tokens
            break
        long = token.startswith("--")
        name = token.partition("=")[0] if long else token[:2]
        option = options.get(name)
        takes_value = option is not None and not option.is_flag and not option.count
        if not (long or option is not None and (token == name or takes_value)):   # "x", "-x**2", "-h*x", "-"
            arguments.append(token)
            continue
        kept.append(token)
        if takes_value and not option.multiple:
            if option.name in given:
                raise InputError(f"{name} is given twice: give it once")
            given.add(option.name)
        if takes_value and token == name:               # its values are the next arguments, whatever they start with
            values = [value for _, value in zip(range(option.nargs), tokens)]
            if len(values) < option.nargs:
                raise InputError(f"Option '{name}' requires an argument.")
            kept += values
    return kept + ["--"] + arguments if arguments else kept


def loss_from_options(expression: str, at: Union[None, str, Iterable[str]], wrt: Optional[str]) -> tuple:
    """``(f, params, data)`` from an expression, its ``--at`` values (one text, or several that merge: see
    :func:`at_option`) and the ``--wrt`` weights.

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


def usable_loss(expression: str, at: Union[str, tuple], wrt: Optional[str]) -> tuple:
    """``(f, params, data)`` as :func:`loss_from_options` gives them, refused (one-line
    InputError) where the loss is nan or infinite at the ``--at`` point: nothing can be drawn or descended
    from there, even where the gradient is finite (``x**2`` at ``x=1e200``).

    Example:
        >>> f, params, data = usable_loss("(w*x - y)**2", "w=0,x=1,y=2", "w")
        >>> params, data
        ({'w': 0.0}, {'x': 1.0, 'y': 2.0})
        >>> try:
        ...     usable_loss("log(x)", "x=-1", None)
        ... except InputError as err:
        ...     print(err.format_message())
        log(x) is nan at x=-1: outside the domain of the loss
    """
    f, params, data = loss_from_options(expression, at, wrt)
    check_loss_at(f, {**params, **data}, expression, allow_overflow=False)
    return f, params, data


def require_positive(value: float, option: str) -> float:
    """``value`` if it is a positive finite number, else a one-line InputError naming ``option``.

    Example:
        >>> require_positive(0.5, "--lr")
        0.5
        >>> try:
        ...     require_positive(-1.0, "--coarse-h")
        ... except InputError as err:
        ...     print(err.format_message())
        --coarse-h must be a positive finite number, got -1
    """
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"{option} must be a positive finite number, got {value:g}")
    return value


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
