"""``symgrad derive``: the exact partial derivatives of an expression, and their values.

Example:
    $ symgrad derive "(w*x + b - y)**2" --wrt w,b --at x=1,y=2,w=1,b=0
    L = (b + w*x - y)**2
    ∂L/∂w = 2*x*(b + w*x - y) = -2
    ∂L/∂b = 2*(b + w*x - y) = -2
"""
from __future__ import annotations

import math
from typing import Any, Optional

import click

from .common import (
    Command, InputError, at_option, check_loss_at, echo_json, guarded, parse_assignments, parse_names,
)


@click.command("derive", cls=Command)
@click.argument("expression")
@click.option("--wrt", metavar="NAME,...",
              help="The weights to differentiate (default: every variable not given in --at; "
                   "every variable when --at gives them all).")
@at_option("Values of the variables; each partial's value is printed when every variable has one "
           "(and the loss must be finite there).")
@click.option("--latex", is_flag=True, help="Print the partials in LaTeX.")
@click.option("--simplify", is_flag=True, help="Simplify each partial with SymPy.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def derive_command(expression: str, wrt: Optional[str], at: tuple, latex: bool, simplify: bool,
                   as_json: bool) -> None:
    """Exact partial derivatives of EXPRESSION (SymPy), one per weight.

    EXPRESSION uses numbers, variable names, + - * / **, parentheses and the
    functions exp log tanh sigmoid relu sin cos sqrt abs maximum minimum. It is
    parsed safely, never evaluated as Python; it may start with a minus sign.

    \b
    Example:
      symgrad derive "(w*x + b - y)**2" --wrt w,b --at x=1,y=2,w=1,b=0
      symgrad derive "tanh(w1*x1 + w2*x2 + b)" --at x1=1,x2=2 --latex
      symgrad derive "sigmoid(w*x)" --wrt w --simplify --json
      symgrad derive "-x**2" --at x=3
    """
    values = parse_assignments(at)
    weights = parse_names(wrt)
    result = guarded(lambda: _derive(expression, weights, values, simplify))
    if as_json:
        for partial in result["partials"]:
            partial["value"] = _finite(partial["value"])
        echo_json(result)
        return
    key = "latex" if latex else "expr"
    click.echo(f"L = {result['loss_latex' if latex else 'loss']}")
    for partial in result["partials"]:
        name = partial["latex_name"] if latex else f"∂L/∂{partial['name']}"
        value = "" if partial["value"] is None else f" = {_number(partial['value'])}"
        click.echo(f"{name} = {partial[key]}{value}")


def _derive(expression: str, weights: list, values: dict, simplify: bool) -> dict:
    """Everything ``symgrad derive`` prints, as a JSON-ready dict."""
    import sympy  # noqa: PLC0415

    from symgrad.symbolic.derive import derive  # noqa: PLC0415
    from symgrad.symbolic.parse import parse_function, shorten  # noqa: PLC0415

    f = parse_function(expression)
    names = f.names
    for option, given in (("--at", values), ("--wrt", weights)):
        absent = [name for name in given if name not in names]
        if absent:
            raise InputError(f"{option}: {absent[0]!r} does not appear in the expression "
                             f"(variables: {', '.join(names) or 'none'})")
    weights = weights or [name for name in names if name not in values] or names
    derivatives = derive(expression, weights)
    if derivatives.expr.has(sympy.zoo, sympy.nan):
        zoo = " (zoo: the infinity of a division by zero)" if derivatives.expr.has(sympy.zoo) else ""
        raise InputError(f"{shorten(expression)} is undefined everywhere: SymPy reduces it to "
                         f"{shorten(str(derivatives.expr))}{zoo}")
    if simplify:
        derivatives = derivatives.simplify()
    complete = all(name in values for name in names)
    if complete:
        check_loss_at(f, values, expression)
    at = derivatives.at(**values) if complete else {}
    latex_lines = derivatives.latex().split(" \\\\\n")
    partials = [{"name": name, "expr": str(expr), "latex": line.partition(" = ")[2],
                 "latex_name": line.partition(" = ")[0], "value": at.get(name)}
                for (name, expr), line in zip(derivatives.exprs.items(), latex_lines)]
    return {"expression": expression, "loss": str(derivatives.expr), "loss_latex": sympy.latex(derivatives.expr),
            "wrt": derivatives.wrt, "at": values, "partials": partials}


def _finite(value: Optional[float]) -> Optional[float]:
    """A value for JSON, which has no NaN or infinity: None stands for them (and for "not computed")."""
    return value if value is not None and math.isfinite(value) else None


def _number(value: Any) -> str:
    return format(value, ".12g")
