"""``symgrad check`` and ``symgrad examples``: the three-way gradient check on the command line.

``symgrad check EXPR --at ...`` checks one expression; bare ``symgrad check``
checks every built-in course example. Exit code 0 when every entry agrees, 1 when
some disagree, 2 for bad usage or input.

Example:
    $ symgrad check "(w*x - y)**2" --at w=1,x=1,y=2 --wrt w
"""
from __future__ import annotations

import math
import re
import sys
from typing import Any, Optional

import click

from .common import Command, InputError, at_option, check_loss_at, echo_json, guarded, loss_from_options

FD_METHODS = ("forward", "backward", "central", "complex", "richardson")


@click.command("check", cls=Command)
@click.argument("expression", required=False)
@at_option("The value of every symbol of EXPRESSION.")
@click.option("--wrt", metavar="NAME,...", help="The weights to differentiate (default: every symbol).")
@click.option("--fd-method", type=click.Choice(FD_METHODS), default="central", show_default=True,
              help="The finite-difference scheme.")
@click.option("--rtol", type=float, help="Relative tolerance (default: from the dtype and the scheme).")
@click.option("--atol", type=float, help="Absolute tolerance (default: from the dtype, the scheme and |loss|).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_command(expression: Optional[str], at: tuple, wrt: Optional[str], fd_method: str,
                  rtol: Optional[float], atol: Optional[float], as_json: bool) -> None:
    """Check the gradient of EXPRESSION three ways: exact (SymPy), finite differences, backprop.

    One row per weight, worst first, judged against the exact value; the verdict
    says which method is wrong. Without EXPRESSION, every built-in course example
    is checked, one table each, then a summary line. Exit code 0 when all agree,
    1 when they disagree, 2 for bad usage or a loss that is not finite at the point.

    \b
    Example:
      symgrad check "tanh(w1*x1 + w2*x2 + b)" --at w1=0.5,w2=-1,b=0.1,x1=1,x2=2 --wrt w1,w2,b
      symgrad check "(w*x - y)**2" --at w=1,x=1,y=2 --wrt w --fd-method complex --json
      symgrad check                      # every course example
    """
    options = {"rtol": rtol, "atol": atol, "fd_method": fd_method}
    if expression is None:
        if at or wrt:
            raise InputError("--at and --wrt need an EXPRESSION (without one, every built-in example is checked)")
        ok = guarded(lambda: _check_examples(options, as_json))
    else:
        report = guarded(lambda: _check_expression(expression, at, wrt, options))
        if as_json:
            echo_json(report.to_dict())
        else:
            click.echo(str(report))
        ok = report.ok
    sys.exit(0 if ok else 1)


@click.command("examples", cls=Command)
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the example (or the list) as JSON.")
def examples_command(name: Optional[str], as_json: bool) -> None:
    """List the course's worked examples, or show one: formula, graph, exact partials, three-way check.

    \b
    Example:
      symgrad examples                   # the list
      symgrad examples graph             # e = a*b, d = e + c, L = d*f at a=2, b=-3, c=10, f=-2
    """
    import symgrad as sg  # noqa: PLC0415

    if name is None:
        examples = [sg.examples.get(n) for n in sg.examples.names()]
        if as_json:
            echo_json([{"name": ex.name, "title": ex.title, "expression": ex.expression} for ex in examples])
            return
        width = max(len(ex.name) for ex in examples)
        for ex in examples:
            click.echo(f"{ex.name:<{width}}  {ex.title}")
        click.echo("\nsymgrad examples NAME shows one; symgrad check checks them all.")
        return
    example = guarded(lambda: sg.examples.get(name))
    shown = guarded(lambda: _example_parts(example))
    if as_json:
        echo_json({"name": example.name, "title": example.title, "description": example.description,
                   "formula": example.formula, "expression": example.expression, "command": example.command,
                   "params": _listed(example.params), "data": _listed(example.data),
                   "expected": _listed(example.expected), "expected_value": example.expected_value,
                   "partials": shown["partials"], "check": shown["report"].to_dict()})
        return
    click.echo("\n".join(_example_text(example, shown)))


# --- symgrad check ---------------------------------------------------------------------------------------


def _check_expression(expression: str, at: tuple, wrt: Optional[str], options: dict) -> Any:
    import symgrad as sg  # noqa: PLC0415
    from symgrad.symbolic.parse import shorten  # noqa: PLC0415

    f, params, data = loss_from_options(expression, at, wrt)
    check_loss_at(f, {**params, **data}, expression)
    weights = list(params)
    report = sg.check(f, params, data, title=f"gradient of {expression} with respect to {', '.join(weights)}",
                      **options)
    if not report.ok and report.value is not None and not math.isfinite(report.value):
        raise InputError(f"{shorten(expression)} is {report.value} at the given point: there is no gradient to "
                         "check there")
    singular = [row for row in report.failures if row.verdict == "unchecked" and _undefined_gradient(row)]
    if singular and len(singular) == len(report.failures):
        row = singular[0]
        value = next(v for v in (row.symbolic, row.backprop, row.finite_diff) if v is not None)
        raise InputError(f"the gradient of {shorten(expression)} is not finite at the given point "
                         f"({row.element}: {value}): "
                         "there is nothing to check there")
    return report


def _undefined_gradient(row: Any) -> bool:
    """Whether the exact value (or, without one, every value) of a row is infinite or NaN: no gradient exists."""
    values = [row.symbolic] if row.symbolic is not None else [row.finite_diff, row.backprop]
    return not any(math.isfinite(v) for v in values if v is not None)


def _check_examples(options: dict, as_json: bool) -> bool:
    """Check every built-in example; print one report each and a summary line; True if all pass."""
    import symgrad as sg  # noqa: PLC0415

    results = []
    for name in sg.examples.names():
        example = sg.examples.get(name)
        report = sg.check(example.loss, example.params, example.data, title=f"{name}: {example.title}", **options)
        results.append((example, report, _matches_notes(example, report)))
    passed = sum(report.ok and notes for _, report, notes in results)
    summary = f"{passed} of {len(results)} course examples agree three ways and match the notes' numbers"
    if as_json:
        echo_json({"ok": passed == len(results), "summary": summary,
                   "examples": [{"name": ex.name, "matches_notes": notes, "report": report.to_dict()}
                                for ex, report, notes in results]})
    else:
        for example, report, notes in results:
            click.echo(str(report))
            click.echo(f"the notes' gradient: {'matched' if notes else 'NOT matched'}\n")
        click.echo(summary)
    return passed == len(results)


def _matches_notes(example: Any, report: Any) -> bool:
    """True when every method's value equals the notes' expected gradient within the report's tolerance."""
    import numpy as np  # noqa: PLC0415

    for row in report.rows:
        expected = float(np.asarray(example.expected[row.name])[row.index])
        for method in report.methods:
            value = row.value(method)
            if value is None or abs(value - expected) > row.tolerance:
                return False
    return True


# --- symgrad examples NAME ----------------------------------------------------------------------------------


def _example_parts(example: Any) -> dict:
    """The parts of ``symgrad examples NAME`` that compute: graph, exact partials, check report."""
    import numpy as np  # noqa: PLC0415

    import symgrad as sg  # noqa: PLC0415

    if example.expression is not None:
        derivatives = sg.derive(example.expression, wrt=example.wrt)
    else:
        shapes = {n: np.shape(v) for n, v in example.params.items()}
        derivatives = sg.derive(example.loss, wrt=list(example.params), shapes=shapes, data=dict(example.data))
    partials = {name: str(expr) for name, expr in derivatives.exprs.items()}
    report = sg.check(example.loss, example.params, example.data, title="three-way check")
    return {"graph": example.graph(), "partials": partials, "report": report}


def _example_text(example: Any, shown: dict) -> list:
    lines = [f"{example.name}: {example.title}", "", example.description, "",
             f"formula:  {example.formula}"]
    if example.expression:
        lines += [f"as text:  {example.expression}", f"check it: {example.command}"]
    lines += ["", "values: " + ", ".join(f"{k} = {_short(v)}" for k, v in {**example.params, **example.data}.items()),
              f"the notes' answer: L = {example.expected_value:.10g}; "
              + ", ".join(f"dL/d{k} = {_short(v)}" for k, v in example.expected.items()),
              "", "graph (inputs first; each node with its value and its gradient dL/dnode):"]
    lines += ["  " + line for line in _graph_lines(shown["graph"])]
    lines += ["", "exact partial derivatives (SymPy):"]
    lines += [f"  dL/d{name} = {text}" for name, text in shown["partials"].items()]
    return lines + ["", str(shown["report"])]


def _graph_lines(graph: Any) -> list:
    """One line per value node: its label, the op that made it (where the label does not say), value, gradient."""
    rows = []
    for node in graph.values:
        producer = [a for a, b in graph.edges if b == node.id]
        made_from = ""
        if producer:
            op = graph.nodes[producer[0]]
            made_from = _op_text(op, [graph.nodes[i].label for i in graph.inputs_of(op.id)])
        role = {"param": "weight", "data": "data", "output": "loss"}.get(node.role, "")
        rows.append([node.label, f"= {made_from}" if made_from and made_from != node.label else "",
                     f"value {node.value_text}", f"grad {node.grad_text}" if node.grad is not None else "", role])
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def _op_text(op: Any, inputs: list) -> str:
    """The op applied to its inputs' labels, parenthesized where a label is not a single term."""
    if op.op == "neg":
        return f"−{_term(inputs[0])}"
    if len(inputs) == 2 and op.op in ("add", "sub", "mul", "div", "matmul"):
        return f"{_term(inputs[0])} {op.label} {_term(inputs[1])}"
    if len(inputs) == 1 and op.label != op.op:          # a constant folded into the op: "**2", "2×", "1−"
        symbol_first = op.label[:1] in "+−×÷*@"
        return f"{_term(inputs[0])}{op.label}" if symbol_first else f"{op.label}{_term(inputs[0])}"
    return f"{op.label}({', '.join(inputs)})"


def _term(label: str) -> str:
    """``label`` as an operand: a name, a number or a call stays as is; anything else gets parentheses."""
    if re.fullmatch(r"[\w.\[\]…·²³-]+", label):
        return label
    call = re.fullmatch(r"\w+\((.*)\)", label)
    if call and _balanced(call.group(1)):
        return label
    return f"({label})"


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _short(value: Any) -> str:
    """A number or an array, each number with up to 10 significant digits: ``[-3, 1]``."""
    import numpy as np  # noqa: PLC0415

    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return f"{float(array):.10g}"
    return "[" + ", ".join(_short(row) for row in array) + "]"


def _listed(values: Any) -> dict:
    import numpy as np  # noqa: PLC0415

    return {k: np.asarray(v, dtype=float).tolist() for k, v in values.items()}
