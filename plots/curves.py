"""Loss against step for several descents (learning rates, optimizers or gradient sources).

Example:
    >>> import symgrad as sg
    >>> runs = [sg.descend(lambda x: x ** 2, {"x": 5.0}, lr=lr, steps=20) for lr in (0.01, 0.1)]
    >>> fig = loss_curves_figure(runs)
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['lr = 0.01, loss 11.1 after 20 steps', 'lr = 0.1, loss 0.00332 after 20 steps']
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from symgrad.descent import Trajectory

from .style import minus, new_figure, slide_style

__all__ = ["loss_curves_figure", "trajectory_label", "divergence_note", "PALETTE"]

# Strong colours that stand out on the pale loss surface, one per run.
PALETTE = ("#D55E00", "#0072B2", "#CC79A7", "#009E73", "#E69F00", "#56B4E9", "#000000")


def trajectory_label(traj: Trajectory, name: Optional[str] = None) -> str:
    """A legend entry for a run: its name (or learning rate) and what became of it.

    Example:
        >>> import symgrad as sg
        >>> trajectory_label(sg.descend(lambda x: x ** 2, {"x": 5.0}, lr=1.5, steps=600))
        'lr = 1.5, diverged at step 11'
    """
    head = name if name is not None else f"lr = {traj.lr:g}"
    if traj.stopped:
        return f"{head}, {divergence_note(traj)}"
    if traj.steps and traj.losses[-1] > traj.losses[0]:
        return minus(f"{head}, diverging: loss {traj.losses[-1]:.3g}")
    return minus(f"{head}, loss {traj.losses[-1]:.3g} after {traj.steps} steps")


def divergence_note(traj: Trajectory) -> str:
    """Where a stopped run diverged, for a legend: the step at which :func:`symgrad.descend` stopped it.

    Example:
        >>> import symgrad as sg
        >>> divergence_note(sg.descend(lambda x: x ** 2, {"x": 5.0}, lr=10.0, steps=50))
        'diverged at step 4'
    """
    return f"diverged at step {traj.steps + 1}"


def _check_runs(trajectories: Sequence[Trajectory], labels: Optional[Sequence[str]]) -> list:
    runs = list(trajectories)
    if not runs or not all(isinstance(t, Trajectory) for t in runs):
        raise TypeError("expected a non-empty list of Trajectory objects (from symgrad.descend)")
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} trajectories")
    return runs


@slide_style
def loss_curves_figure(trajectories: Sequence[Trajectory], labels: Optional[Sequence[str]] = None,
                       title: Optional[str] = None, log: Optional[bool] = None) -> Figure:
    """Loss against step, one line per trajectory; a cross where a run diverged.

    ``labels`` name the runs (default: their learning rate); each legend entry
    adds the final loss or the step of divergence. The loss axis is logarithmic
    when every loss is positive and they span more than two decades (``log``
    forces it either way).

    Example:
        >>> import symgrad as sg
        >>> traj = sg.descend(lambda x: x ** 2, {"x": 5.0}, lr=0.1, steps=5)
        >>> line = loss_curves_figure([traj]).axes[0].get_lines()[0]
        >>> bool((line.get_ydata() == traj.losses).all())
        True
    """
    runs = _check_runs(trajectories, labels)
    fig = new_figure()
    ax = fig.add_subplot()
    every = np.concatenate([t.losses for t in runs])
    if log is None:
        log = bool(np.all(every > 0) and every.max() > 100 * every.min())
    if log:
        ax.set_yscale("log")
        low, high = np.log10(every[every > 0].min()), np.log10(every.max())
        pad = 0.05 * max(high - low, 1.0)
        ax.set_ylim(10 ** (low - pad), 10 ** min(high + pad, 250.0))     # log ticks overflow past ~1e280
    for i, traj in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        label = trajectory_label(traj, None if labels is None else labels[i])
        ax.plot(np.arange(len(traj.losses)), traj.losses, color=color, label=label,
                marker="o" if len(traj.losses) <= 30 else None, ms=4, scaley=not log)
        if traj.stopped:
            ax.plot([len(traj.losses) - 1], [traj.losses[-1]], "X", color=color, ms=13, mec="black", zorder=5,
                    scaley=not log)
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + (" (log scale)" if log else ""))
    ax.set_title(title if title is not None else "Loss during gradient descent")
    ax.legend(loc="best")
    return fig
