"""The finite-difference error against the step h, log-log: truncation slopes, rounding slope, best step.

Example:
    >>> import symgrad as sg
    >>> fig = fd_error_figure(sg.fd_error_curve(lambda x: sg.exp(x), 1.0))
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_yscale()
    ('log', 'log')
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from matplotlib.figure import Figure

from .style import COLORS, minus, new_figure, slide_style

__all__ = ["fd_error_figure", "ORDERS"]

ERROR_FLOOR = 1e-17                      # an error of exactly 0 is drawn here
ORDERS = {"forward": 1, "backward": 1, "central": 2, "richardson": 4}   # truncation error ~ h**order
_NAMES = {"forward": "forward (f(x+h) − f(x))/h", "backward": "backward (f(x) − f(x−h))/h",
          "central": "central (f(x+h) − f(x−h))/2h", "complex": "complex step Im f(x+ih)/h",
          "richardson": "Richardson extrapolation"}
_COLORS = {"forward": COLORS["coarse"], "backward": "#CC79A7", "central": COLORS["reverse"],
           "complex": COLORS["finite_diff"], "richardson": COLORS["symbolic"]}


def _guide(ax: Any, hs: np.ndarray, errors: np.ndarray, order: int, best_h: float, text: str) -> None:
    """A dashed line of slope ``order`` just above the curve over the decades next to ``best_h``
    (right of it for truncation, left for rounding), labelled at its middle. Drawn only where the
    curve does follow that slope (least-squares slope within 0.35 of ``order``)."""
    far, near = (best_h * 1e4, best_h * 3) if order > 0 else (best_h / 1e4, best_h / 3)
    window = (hs >= min(far, near)) & (hs <= max(far, near)) & np.isfinite(errors) & (errors > ERROR_FLOOR)
    if window.sum() < 4:
        return
    log_h, log_e = np.log10(hs[window]), np.log10(errors[window])
    slope, _ = np.polyfit(log_h, log_e, 1)
    if abs(slope - order) > 0.35:
        return
    middle = log_h.mean()
    lift = np.log10(3.0) if order > 0 else 1.0            # rounding noise scatters more: keep clear of it
    level = np.mean(log_e - order * (log_h - middle)) + lift  # through the curve, then just above it
    span = np.array([log_h.min(), log_h.max()])
    line = 10 ** (level + order * (span - middle))
    ax.plot(10 ** span, line, ls="--", color="#444444", lw=1.4, zorder=2)
    side = -1 if order > 0 else 1                         # the side of the line away from the curve
    ax.annotate(minus(text), xy=(10 ** middle, 10 ** level), xytext=(8 * side, 8),
                textcoords="offset points", ha="right" if side < 0 else "left", va="bottom", fontsize=12,
                color="#222222", bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))


@slide_style
def fd_error_figure(curve: Any, title: Optional[str] = None) -> Figure:
    """Plot each scheme's error against h (from :func:`symgrad.fd_error_curve`) on log-log axes.

    The step of smallest error is marked on each curve; dashed guides show the
    truncation slopes (1 for one-sided, 2 for central, 4 for Richardson) to the right
    of the optimum and the rounding slope −1 to its left, where the curve follows
    them (a central difference of a quadratic has no truncation error). Complex step has no
    subtraction, hence no rounding error: its curve stays flat at machine precision.

    Example:
        >>> import symgrad as sg
        >>> fig = fd_error_figure(sg.fd_error_curve(lambda x: sg.sin(x), 0.5, methods=("forward", "central")))
        >>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
        ['forward (f(x+h) − f(x))/h', 'central (f(x+h) − f(x−h))/2h']
    """
    hs = np.asarray(curve.hs, dtype=float)
    fig = new_figure(13.5, 6.4)
    ax = fig.add_subplot()
    for method, errors in curve.errors.items():
        errors = np.asarray(errors, dtype=float)
        ax.plot(hs, np.maximum(errors, ERROR_FLOOR), color=_COLORS.get(method), label=_NAMES.get(method, method),
                marker="o", ms=3.5, lw=2)
    for method, errors in curve.errors.items():
        best = curve.best_h[method]
        best_error = float(np.asarray(curve.best_error[method]))
        ax.plot([best], [max(best_error, ERROR_FLOOR)], marker="*", ms=20, color=_COLORS.get(method),
                mec="black", zorder=6, ls="none")
    if "forward" in curve.errors:
        _guide(ax, hs, np.asarray(curve.errors["forward"], float), -1, curve.best_h["forward"],
               "slope −1")
    for method, order in ORDERS.items():
        if method in curve.errors and method != "backward":
            _guide(ax, hs, np.asarray(curve.errors[method], float), order, curve.best_h[method],
                   f"slope {order}")
    ax.plot([], [], marker="*", ms=14, color="#999999", mec="black", ls="none", label="best step of each scheme")
    ax.plot([], [], ls="--", color="#444444", lw=1.3, label="slopes: truncation (right), rounding (left)")
    ax.plot([], [], ls="none", label=minus(f"an error of 0 is drawn at {ERROR_FLOOR:g}"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(ERROR_FLOOR / 3, None)
    ax.set_xlabel("step h")
    ax.set_ylabel("|error| against the exact derivative")
    ax.set_title(title if title is not None else "Finite differences: error against the step h")
    fig.legend(loc="outside right center", fontsize=12)
    return fig
