"""f and f' on the same axes, with the tangent at a point: "the gradient is the value of the derivative there".

Example:
    >>> fig = derivative_figure(lambda x: x ** 2, 5.0, label="f(x) = x²", derivative_label="f′(x) = 2x")
    >>> fig.axes[0].get_title()
    'f and its derivative: the gradient at x = 5 is 10'
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

import symgrad as sg
from symgrad.descent import non_finite_reason

from .style import COLORS, drawable_range, minus, new_figure, slide_style

__all__ = ["derivative_figure"]


def _values_and_slopes(f: Callable, xs: np.ndarray) -> tuple:
    """f(xs) and f'(xs) for an elementwise f, by one backward pass over the sum."""
    value, grads = sg.value_and_gradients(lambda x: sg.sum(f(x)), {"x": xs})
    values = np.broadcast_to(np.asarray(f(xs), dtype=float), xs.shape)
    return values, np.asarray(grads["x"], dtype=float)


@slide_style
def derivative_figure(f: Callable, x0: float, xlim: Optional[Sequence[float]] = None, samples: int = 401,
                      label: Optional[str] = None, derivative_label: Optional[str] = None, variable: str = "x",
                      name: str = "f", title: Optional[str] = None) -> Figure:
    """Plot f, its derivative (by backpropagation) and the tangent of f at ``x0``.

    ``f`` is an elementwise function of one variable written with ``sg.*``; ``name``
    and ``variable`` are what the legend calls them (``label`` and ``derivative_label``
    replace the curves' entries, e.g. with their formulas). The point ``(x0, f(x0))``
    and the gradient ``(x0, f'(x0))`` are marked, with their values in the legend;
    ``f(x0)`` must be finite (a ValueError says why not).

    Example:
        >>> fig = derivative_figure(lambda x: x ** 2, 5.0)
        >>> [line.get_label() for line in fig.axes[0].get_lines()][:5]
        ['f(x)', 'f′(x)', 'tangent at x = 5, slope 10', 'f(5) = 25', 'the gradient f′(5) = 10']
    """
    x0 = float(x0)
    if not np.isfinite(x0):
        raise ValueError("the point of the tangent must be a finite number")
    if xlim is None:
        half = 1.2 * (abs(x0) + 1)
        xlim = (-half, half)
    lo, hi = drawable_range(*xlim, what=f"{variable} (the plotted interval)")
    if not lo < x0 < hi:
        raise ValueError(f"the point x = {x0:g} must lie inside the plotted range [{lo:g}, {hi:g}]")
    xs = np.linspace(lo, hi, samples)
    with np.errstate(all="ignore"):
        ys, slopes = _values_and_slopes(f, xs)
        (y0,), (g0,) = _values_and_slopes(f, np.array([x0]))
    if not np.isfinite(y0):
        raise ValueError(f"{name}({x0:g}) is {y0}: {non_finite_reason(y0)}")
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(xs, ys, color=COLORS["f"], label=label or f"{name}({variable})")
    ax.plot(xs, slopes, color=COLORS["derivative"], ls="--", label=derivative_label or f"{name}′({variable})")
    finite = np.concatenate([ys[np.isfinite(ys)], slopes[np.isfinite(slopes)]])
    if not finite.size:
        raise ValueError(f"cannot draw {name} and its derivative: no value on [{lo:g}, {hi:g}] is finite")
    low, high = finite.min(), finite.max()
    pad = 0.08 * (high - low or 1.0)
    ax.set_ylim(*drawable_range(low - pad, high + pad, f"the values of {name} and its derivative"))
    ax.set_xlim(lo, hi)
    ax.plot(xs, y0 + g0 * (xs - x0), color=COLORS["tangent"], ls=":", lw=2.6,
            label=minus(f"tangent at {variable} = {x0:g}, slope {g0:.4g}"))
    ax.plot([x0], [y0], "o", color=COLORS["f"], ms=9, zorder=5, label=minus(f"{name}({x0:g}) = {y0:.4g}"))
    ax.plot([x0], [g0], "o", color=COLORS["derivative"], ms=9, zorder=5,
            label=minus(f"the gradient {name}′({x0:g}) = {g0:.4g}"))
    ax.axvline(x0, color="#777777", lw=1, ls="-.", zorder=1)
    ax.axhline(0, color="#999999", lw=0.8, zorder=1)
    ax.set_xlabel(variable)
    ax.set_ylabel("value")
    ax.set_title(minus(title if title is not None else
                       f"{name} and its derivative: the gradient at {variable} = {x0:g} is {g0:.4g}"))
    ax.legend(loc="best")
    return fig
