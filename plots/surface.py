"""Loss surfaces of two weights with descent paths on them.

:func:`surface_figure` draws the contour of the loss over two weights and the
path of each descent (the notes' learning rates: too small crawls, a good one
converges, too large oscillates or diverges). :func:`sources_figure` runs the same
descent with each gradient source — exact, finite differences, backpropagation —
and a deliberately coarse finite-difference step, and shows that the first three
coincide while the coarse one drifts away.

Example:
    >>> import symgrad as sg
    >>> loss = lambda w, b: (w - 1) ** 2 + 4 * (b + 1) ** 2
    >>> runs = [sg.descend(loss, {"w": 3.0, "b": 1.0}, lr=lr, steps=15) for lr in (0.02, 0.1, 0.24)]
    >>> fig = surface_figure(loss, runs)
    >>> path = fig.axes[0].get_lines()[0]
    >>> bool((path.get_xdata() == runs[0].path("w")).all() and (path.get_ydata() == runs[0].path("b")).all())
    True
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import symgrad as sg
from symgrad.descent import Trajectory

from .curves import PALETTE, _check_runs, divergence_note, trajectory_label
from .style import COLORS, drawable_range, minus, new_figure, slide_style

__all__ = ["surface_figure", "sources_figure", "surface_axes_names"]


def surface_axes_names(traj: Trajectory, x: Optional[str] = None, y: Optional[str] = None) -> tuple:
    """The two scalar weights to plot against: ``x`` and ``y`` or, by default, the first two scalar weights.

    Example:
        >>> import symgrad as sg
        >>> surface_axes_names(sg.descend(lambda w, b: w * w + b * b, {"w": 1.0, "b": 1.0}, steps=1))
        ('w', 'b')
    """
    scalars = [n for n in traj.names if np.ndim(traj.params[0][n]) == 0]
    if x is None and y is None:
        if len(scalars) < 2:
            raise ValueError(f"a loss surface needs two scalar weights; this descent has "
                             f"{', '.join(scalars) or 'none'}")
        return scalars[0], scalars[1]
    for name in (x, y):
        if name not in scalars:
            raise ValueError(f"{name!r} is not a scalar weight of the descent; choose from {', '.join(scalars)}")
    if x == y:
        raise ValueError("the two axes of a loss surface must be two different weights")
    return x, y


def _extent(runs: Sequence[Trajectory], x: str, y: str) -> tuple:
    """Limits that hold every point not yet diverged (loss at most 1.5 times the worst start), plus a margin."""
    worst = max(t.losses[0] for t in runs)
    xs, ys = [], []
    for t in runs:
        keep = t.losses <= 1.5 * abs(worst) + 1e-12
        xs.append(t.path(x)[keep])
        ys.append(t.path(y)[keep])
    limits = []
    for name, values in ((x, np.concatenate(xs)), (y, np.concatenate(ys))):
        lo, hi = float(values.min()), float(values.max())
        span = hi - lo if hi > lo else max(1.0, abs(lo))
        limits.append(drawable_range(lo - 0.15 * span, hi + 0.15 * span, f"the values of {name}"))
    return tuple(limits)


def _grid_losses(f: Callable, x: str, y: str, X: np.ndarray, Y: np.ndarray, fixed: Mapping[str, Any]) -> np.ndarray:
    """The loss at every grid point: one vectorized call when f broadcasts correctly, else point by point."""
    def at(u: float, v: float) -> float:
        return float(np.real(np.asarray(f(**{x: u, y: v}, **fixed))).reshape(()))

    with np.errstate(all="ignore"):
        try:
            Z = np.asarray(f(**{x: X, y: Y}, **fixed), dtype=float)
            probes = [(0, 0), (X.shape[0] // 2, X.shape[1] // 3), (-1, -1)]
            if Z.shape == X.shape and all(np.isclose(Z[p], at(X[p], Y[p]), equal_nan=True) for p in probes):
                return Z
        except (ValueError, TypeError, IndexError):
            pass
        return np.array([[at(u, v) for u, v in zip(row_x, row_y)] for row_x, row_y in zip(X, Y)])


def draw_surface(ax: Axes, f: Callable, runs: Sequence[Trajectory], x: str, y: str,
                 data: Optional[Mapping[str, Any]], labels: Sequence[str], styles: Sequence[dict],
                 resolution: int) -> Any:
    """Contour of the loss over (x, y) with each run's path; returns the filled contour (for a colour bar)."""
    (x_lo, x_hi), (y_lo, y_hi) = _extent(runs, x, y)
    X, Y = np.meshgrid(np.linspace(x_lo, x_hi, resolution), np.linspace(y_lo, y_hi, resolution))
    start = runs[0].params[0]
    fixed = {**{n: v for n, v in start.items() if n not in (x, y)}, **(data or {})}
    Z = _grid_losses(f, x, y, X, Y, fixed)
    finite = Z[np.isfinite(Z)]
    levels = np.unique(np.quantile(finite, np.linspace(0, 1, 16))) if finite.size else None
    filled = None
    if levels is not None and len(levels) > 2:
        filled = ax.contourf(X, Y, Z, levels=levels, cmap="Greys", alpha=0.55)
        ax.contour(X, Y, Z, levels=levels, colors="#777777", linewidths=0.7)
    for traj, label, style in zip(runs, labels, styles):
        ax.plot(traj.path(x), traj.path(y), label=label, **style)
    starts = {(t.params[0][x], t.params[0][y]) for t in runs}
    for i, (u, v) in enumerate(sorted(starts)):
        ax.plot([u], [v], marker="*", ms=20, color="black", mec="white", ls="none", zorder=6,
                label="start" if i == 0 else None)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(False)
    return filled


@slide_style
def surface_figure(f: Callable, trajectories: Sequence[Trajectory], x: Optional[str] = None,
                   y: Optional[str] = None, data: Optional[Mapping[str, Any]] = None,
                   labels: Optional[Sequence[str]] = None, title: Optional[str] = None,
                   resolution: int = 80) -> Figure:
    """Contour of ``f`` over the weights ``x`` and ``y`` with the path of each trajectory.

    Other weights are held at the first trajectory's starting values, ``data`` is
    passed to ``f``. The view holds every point that has not diverged; a diverging
    path leaves it. ``labels`` name the runs (default: their learning rate), and each
    legend entry says how the run ended.

    Example:
        >>> import symgrad as sg
        >>> loss = lambda w, b: w ** 2 + b ** 2
        >>> fig = surface_figure(loss, [sg.descend(loss, {"w": 1.0, "b": 2.0}, lr=0.1, steps=5)])
        >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
        ('w', 'b')
    """
    runs = _check_runs(trajectories, labels)
    x, y = surface_axes_names(runs[0], x, y)
    names = [trajectory_label(t, None if labels is None else labels[i]) for i, t in enumerate(runs)]
    styles = [dict(color=PALETTE[i % len(PALETTE)], marker="o", ms=5, lw=2.2, zorder=4) for i in range(len(runs))]
    fig = new_figure(10, 6.2)
    ax = fig.add_subplot()
    filled = draw_surface(ax, f, runs, x, y, data, names, styles, resolution)
    if filled is not None:
        fig.colorbar(filled, ax=ax, label="loss", format="{x:.3g}")
    ax.set_title(title if title is not None else "Loss surface and gradient-descent paths")
    fig.legend(loc="outside lower center", ncol=2, fontsize=12)
    return fig


SOURCE_NAMES = {"reverse": "backprop (reverse mode)", "symbolic": "exact (SymPy)",
                "finite_diff": "finite differences (central)"}


def source_runs(f: Callable, params: Mapping[str, Any], data: Optional[Mapping[str, Any]] = None,
                lr: float = 0.1, steps: int = 30, coarse_h: float = 0.5) -> dict:
    """The same descent driven by each gradient source, plus forward differences with step ``coarse_h``.

    Example:
        >>> runs = source_runs(lambda w, b: w * w + b * b, {"w": 1.0, "b": 1.0}, steps=3)
        >>> list(runs)
        ['backprop (reverse mode)', 'exact (SymPy)', 'finite differences (central)', 'forward differences, h = 0.5']
    """
    runs = {SOURCE_NAMES[m]: sg.descend(f, params, data, lr=lr, steps=steps, method=m) for m in SOURCE_NAMES}
    runs[f"forward differences, h = {coarse_h:g}"] = sg.descend(
        f, params, data, lr=lr, steps=steps, method="finite_diff", fd_method="forward", h=coarse_h)
    return runs


@slide_style
def sources_figure(f: Callable, params: Mapping[str, Any], data: Optional[Mapping[str, Any]] = None,
                   lr: float = 0.1, steps: int = 30, coarse_h: float = 0.5, x: Optional[str] = None,
                   y: Optional[str] = None, title: Optional[str] = None, resolution: int = 80) -> Figure:
    """The three gradient sources driving one descent, on one surface, and how far each strays from backprop.

    Left: the loss surface with the four paths (:func:`source_runs`); the exact,
    central-difference and backprop paths lie on top of each other, the coarse
    forward-difference path drifts. Right: the distance of each path from the
    backprop path at every step, on a log scale. A descent that diverges (the
    learning rate is too large) is drawn up to its last step before the blow-up,
    and its legend entry says at which step it diverged.

    Example:
        >>> fig = sources_figure(lambda w, b: w * w + 4 * b * b, {"w": 2.0, "b": 1.0}, lr=0.1, steps=5)
        >>> len(fig.axes[0].get_lines()) >= 4
        True
    """
    runs = source_runs(f, params, data, lr=lr, steps=steps, coarse_h=coarse_h)
    traj = list(runs.values())
    x, y = surface_axes_names(traj[0], x, y)
    colors = [COLORS["reverse"], COLORS["symbolic"], COLORS["finite_diff"], COLORS["coarse"]]
    styles = [dict(color=colors[0], lw=7, alpha=0.45, zorder=3),
              dict(color=colors[1], lw=2.6, ls="--", zorder=4),
              dict(color=colors[2], lw=2.6, ls=":", zorder=5),
              dict(color=colors[3], lw=2.0, marker="o", ms=5, zorder=4)]
    fig = new_figure(14, 6.2)
    left, right = fig.subplots(1, 2, width_ratios=(1.25, 1))
    labels = [f"{name}, {divergence_note(run)}" if run.stopped else name for name, run in runs.items()]
    draw_surface(left, f, traj, x, y, data, labels, styles, resolution)
    left.set_title("Descent paths on the loss surface")
    reference = np.stack([traj[0].path(n).reshape(traj[0].steps + 1, -1) for n in traj[0].names], axis=1)
    floor = 1e-17
    for (name, run), color in zip(list(runs.items())[1:], colors[1:]):
        n = min(run.steps, traj[0].steps) + 1
        here = np.stack([run.path(k).reshape(run.steps + 1, -1) for k in run.names], axis=1)[:n]
        distance = np.sqrt(((here - reference[:n]) ** 2).reshape(n, -1).sum(axis=1))
        right.plot(np.arange(n), np.maximum(distance, floor), color=color, marker="o", ms=4, label=name)
    right.set_yscale("log")
    right.set_ylim(bottom=floor / 3)
    right.set_xlabel("step")
    right.set_ylabel(minus(f"distance to the backprop path\n(0, identical, drawn at {floor:g})"))
    right.set_title("How far each path strays from backprop")
    fig.suptitle(title if title is not None else "One descent, three gradient sources", fontsize=17,
                 fontweight="bold")
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=12)
    return fig
