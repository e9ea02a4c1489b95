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
from typing import Any, Callable, Optional

import click


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
    except (symgrad.ParseError, ValueError, TypeError, KeyError, ZeroDivisionError) as err:
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
