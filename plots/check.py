"""A gradient check as a figure: each weight's gradient by every method, and the errors on a log scale.

Example:
    >>> from symgrad.report import judge
    >>> report = judge({"symbolic": {"w": -2.0}, "finite_diff": {"w": -2.0 + 3e-11}, "backprop": {"w": -2.0}},
    ...                {"w": ()}, value=1.0)
    >>> fig = check_figure(report)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['w']
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from matplotlib.figure import Figure

from symgrad.report import METHODS, CheckReport

from .style import COLORS, minus, new_figure, slide_style

__all__ = ["check_figure", "ERROR_FLOOR"]

ERROR_FLOOR = 1e-17        # an error of exactly 0 is drawn here on the log scale
_COLOR = {"symbolic": COLORS["symbolic"], "finite_diff": COLORS["finite_diff"], "backprop": COLORS["reverse"]}
_MARKER = {"symbolic": "D", "finite_diff": "s", "backprop": "o"}


@slide_style
def check_figure(report: CheckReport, title: Optional[str] = None) -> Figure:
    """Left: the gradient of every weight element by each method, as grouped bars.
    Right: each method's error against the reference (the exact value where SymPy
    gives one) on a log scale, with the tolerance of each entry.

    Example:
        >>> from symgrad.report import judge
        >>> report = judge({"finite_diff": {"x": 10.0}, "backprop": {"x": 10.0}}, {"x": ()})
        >>> check_figure(report).axes[1].get_xscale()
        'log'
    """
    if not isinstance(report, CheckReport):
        raise TypeError(f"expected a CheckReport (from symgrad.check), not {type(report).__name__}")
    if not report.rows:
        raise ValueError("the report has no rows to draw")
    rows = sorted(report.rows, key=lambda r: (r.name, r.index))
    methods = [m for m in METHODS if any(r.value(m) is not None for r in rows)]
    n = len(rows)
    fig = new_figure(14, max(4.5, 2.4 + 0.32 * n))
    left, right = fig.subplots(1, 2, sharey=True)
    positions = np.arange(n)[::-1].astype(float)
    height = 0.8 / len(methods)
    offsets = {method: (len(methods) - 1) / 2 * height - k * height for k, method in enumerate(methods)}
    for method in methods:
        values = np.array([np.nan if r.value(method) is None else r.value(method) for r in rows])
        bars = left.barh(positions + offsets[method], values, height=height * 0.95, color=_COLOR[method],
                         label=report.labels.get(method, method))
        if n <= 6:                                     # few entries: write the values on the bars
            left.bar_label(bars, labels=[minus(f"{v:.6g}") for v in values], padding=4, fontsize=11)
    left.margins(x=0.15)
    left.axvline(0, color="#444444", lw=1)
    left.set_yticks(positions, [r.element for r in rows])
    left.set_xlabel("gradient")
    left.set_title("Gradient by each method")
    left.grid(axis="y", visible=False)
    compared = [m for m in METHODS if any(m in r.abs_error for r in rows)]
    for method in compared:
        errors = np.array([r.abs_error.get(method, np.nan) for r in rows])
        right.plot(np.maximum(errors, ERROR_FLOOR), positions + offsets[method], ls="none", marker=_MARKER[method],
                   ms=10,
                   color=_COLOR[method], label=f"{report.labels.get(method, method)} error")
    right.plot([r.tolerance for r in rows], positions, ls="none", marker="|", ms=24, mew=3, color="#C00000",
               label="tolerance")
    right.set_xscale("log")
    right.set_xlim(ERROR_FLOOR / 5, max(10.0, max(r.tolerance for r in rows) * 100))
    reference = {"symbolic": "the exact value", "finite_diff": "finite differences"}.get(report.reference, "—")
    right.set_xlabel(minus(f"|error| against {reference} (an error of 0 is drawn at {ERROR_FLOOR:g})"))
    right.set_title("Errors (log scale)")
    right.tick_params(axis="y", left=False)
    bad = len(report.failures)
    status = "all gradients agree" if report.ok else f"{bad} {'entry disagrees' if bad == 1 else 'entries disagree'}"
    heading = title if title is not None else (report.title or "Gradient check")
    fig.suptitle(minus(f"{heading} — {status}"), fontsize=17, fontweight="bold",
                 color="black" if report.ok else "#C00000")
    handles, labels = left.get_legend_handles_labels()
    more, more_labels = right.get_legend_handles_labels()
    fig.legend(handles + more, labels + more_labels, loc="outside lower center", ncol=len(labels + more_labels),
               fontsize=12)
    return fig
