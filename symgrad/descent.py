"""Gradient descent driven by any of the three gradient sources: :func:`descend`.

One step is the notes' update ``W(n+1) = W(n) - lr * G(n)``: the gradient ``G``
comes from backpropagation (``method="reverse"``), from the exact SymPy partials
(``"symbolic"``) or from finite differences (``"finite_diff"``), and the
optimizer is plain gradient descent (``"sgd"``), heavy-ball ``"momentum"`` or
``"adam"``. With ``batch_size`` the data arrays are cut along their first axis
into mini-batches taken in order, one per step, and each update uses the
gradient of the loss on that batch alone. The weights keep their dtype: float32 in,
float32 out (Python numbers and lists become float64).

Example:
    >>> traj = descend(lambda w, x, y: (w * x - y) ** 2, {"w": 1.0}, {"x": 1.0, "y": 2.0}, lr=0.1, steps=50)
    >>> round(traj.final["w"], 4), traj.stopped is None
    (2.0, True)
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np

from .tensor import Tensor
from .transforms import value_and_gradients

__all__ = ["descend", "Trajectory", "METHODS", "OPTIMIZERS", "DIVERGENCE_FACTOR", "non_finite_reason"]

METHODS = ("reverse", "symbolic", "finite_diff")
OPTIMIZERS = ("sgd", "momentum", "adam")

# When the descent counts as diverged: the loss has risen above its start by more than this many
# times its scale, max(|L0|, |L1|, L0 - lowest loss so far) (see _runaway). A learning rate beyond
# the stability limit multiplies the distance to the minimum by some q > 1 at every step, so the
# loss grows geometrically and passes any fixed factor in a few steps; the transient rises of
# descents that do converge stay far below it: over thousands of random quadratics (condition up
# to 1e6, with offsets), quartics, Rosenbrock functions and logistic regressions, with sgd,
# momentum and Adam at learning rates from 1e-4 to 10, the largest rise of a run that ended below
# its start was about 1.3e3 times the scale (Adam on Rosenbrock), almost three decades of margin.
DIVERGENCE_FACTOR = 1e6


@dataclass
class Trajectory:
    """The path of a descent: the params at every step, the loss there, the gradient norms.

    ``params[k]`` and ``losses[k]`` are the weights after ``k`` updates and the loss on the
    whole data there (``params[0]`` is the start); ``grad_norms[k]`` is the norm of the
    gradient used for update ``k + 1`` (one entry fewer). The params keep the dtype of
    the start (a scalar float64 param is a Python float), ``losses`` has the dtype of the
    loss ``f`` returns, ``grad_norms`` is float64. ``stopped`` is None, or the reason the
    descent ended before ``steps`` updates (the loss diverged). ``notes`` says where
    finite differences met a kink and took a subgradient instead.

    Example:
        >>> traj = descend(lambda x: x ** 2, {"x": 5.0}, lr=0.1, steps=2)
        >>> [round(p["x"], 6) for p in traj.params], traj.losses.tolist(), traj.grad_norms.tolist()
        ([5.0, 4.0, 3.2], [25.0, 16.0, 10.240000000000002], [10.0, 8.0])
    """

    params: list
    losses: np.ndarray
    grad_norms: np.ndarray
    method: str
    optimizer: str = "sgd"
    lr: float = 0.1
    stopped: Optional[str] = None
    names: tuple = field(default=())
    notes: list = field(default_factory=list)

    @property
    def steps(self) -> int:
        """The number of updates made (``len(params) - 1``).

        Example:
            >>> descend(lambda x: x ** 2, {"x": 1.0}, steps=3).steps
            3
        """
        return len(self.params) - 1

    @property
    def final(self) -> dict:
        """The params after the last update.

        Example:
            >>> descend(lambda x: x ** 2, {"x": 1.0}, lr=0.5, steps=1).final
            {'x': 0.0}
        """
        return self.params[-1]

    def path(self, name: str) -> np.ndarray:
        """The values of param ``name`` at every step, stacked: shape ``(steps + 1, *shape)``, the param's dtype.

        Example:
            >>> descend(lambda x: x ** 2, {"x": 1.0}, lr=0.25, steps=2).path("x").tolist()
            [1.0, 0.5, 0.25]
        """
        if name not in self.names:
            raise KeyError(f"no param {name!r} in this trajectory; it has {', '.join(self.names)}")
        return np.array([p[name] for p in self.params])

    def to_dict(self) -> dict:
        """A JSON-ready summary: settings, every step's params, loss and gradient norm.

        Example:
            >>> descend(lambda x: x ** 2, {"x": 1.0}, lr=0.5, steps=1).to_dict()["losses"]
            [1.0, 0.0]
        """
        return {
            "method": self.method,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "steps": self.steps,
            "stopped": self.stopped,
            "params": [{k: np.asarray(v).tolist() for k, v in p.items()} for p in self.params],
            "losses": [float(v) for v in self.losses],
            "grad_norms": [float(v) for v in self.grad_norms],
            "notes": list(self.notes),
        }

    def to_table(self, every: int = 1) -> str:
        """The trajectory as a text table, one row per ``every`` steps (and the last step).

        ``stopped`` is not part of the table: print it separately.

        Example:
            >>> print(descend(lambda x: x ** 2, {"x": 1.0}, lr=0.25, steps=1).to_table())
            step  loss  |grad|  x
               0  1     2       1
               1  0.25          0.5
        """
        rows = [("step", "loss", "|grad|") + self.names]
        shown = sorted(set(range(0, len(self.params), max(int(every), 1))) | {len(self.params) - 1})
        for k in shown:
            norm = _fmt(self.grad_norms[k]) if k < len(self.grad_norms) else ""
            rows.append((str(k), _fmt(self.losses[k]), norm) + tuple(_fmt(self.params[k][n]) for n in self.names))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(cell.rjust(w) if i == 0 else cell.ljust(w)
                                   for i, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in rows)


def _fmt(value: Any) -> str:
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return f"{float(array):.6g}"
    return np.array2string(array, precision=4, separator=", ", max_line_width=60).replace("\n", "")


def descend(f: Callable, params: Mapping[str, Any], data: Optional[Mapping[str, Any]] = None, lr: float = 0.1,
            steps: int = 100, method: str = "reverse", optimizer: str = "sgd", batch_size: Optional[int] = None,
            *, fd_method: str = "central", h: Optional[float] = None, momentum: float = 0.9,
            betas: tuple = (0.9, 0.999), eps: float = 1e-8) -> Trajectory:
    """Minimize ``f(**params, **data)`` from ``params`` by ``steps`` gradient updates.

    ``method`` picks the gradient source ("reverse", "symbolic" or "finite_diff"; for
    the last, ``fd_method`` and ``h`` are passed to :func:`symgrad.fd_gradient`).
    ``optimizer`` is "sgd" (``p -= lr * g``), "momentum" (``v = momentum * v + g;
    p -= lr * v``) or "adam" (with ``betas`` and ``eps``). ``batch_size`` cuts the
    data arrays along their first axis into mini-batches used in order, one per
    update, cycling. Each param keeps its dtype (a float32 array stays float32; Python
    numbers and lists become float64), and so do the gradients given to the optimizer.
    If the loss runs away (it rises above its start by more than
    :data:`DIVERGENCE_FACTOR` times its scale) or a loss, gradient or weight stops
    being finite, the learning rate is too large: the descent stops there, the
    trajectory keeps the steps before and ``stopped`` says what happened.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(0, 1, 20)
        >>> loss = lambda w, b, x, y: ((w * x + b - y) ** 2).mean()
        >>> traj = descend(loss, {"w": 0.0, "b": 0.0}, {"x": x, "y": 3 * x + 1}, lr=0.5, steps=500)
        >>> round(traj.final["w"], 3), round(traj.final["b"], 3)
        (3.0, 1.0)
        >>> descend(lambda x: x ** 2, {"x": 5.0}, lr=1.5, steps=2000).stopped
        'stopped at step 11 of 2000: the loss rose from 25 to 1.05e+08, the descent diverged; try a learning rate smaller than 1.5'
        >>> descend(lambda x: x ** 2, {"x": np.float32(5.0)}, lr=0.25, steps=1).final["x"].dtype
        dtype('float32')
    """
    if not callable(f):
        raise TypeError(f"descend: f must be a function of the params and data, not {type(f).__name__}")
    start = _start(params)
    data = _data(data, start)
    lr = _positive("lr", lr)
    steps = _count("steps", steps)
    if method not in METHODS:
        raise ValueError(f"descend: method must be one of {', '.join(METHODS)}; got {method!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"descend: optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    gradient = _gradient_source(f, method, fd_method, h)
    update = _updater(optimizer, lr, momentum, betas, eps)
    batches = _batches(data, batch_size)
    current = start
    value = _loss(f, current, data)
    if not math.isfinite(value):
        raise ValueError(f"descend: the loss at the starting point is {value}: {non_finite_reason(value)}; "
                         "start where it is finite")
    path, losses, norms, stopped, notes, lowest = [current], [value], [], None, [], float(value)
    for k in range(1, steps + 1):
        raw, kinks = gradient(current, next(batches))
        notes.extend(f"step {k}: {kink}" for kink in kinks)
        candidate, norm = _step(update, current, raw, k)
        value = _loss(f, candidate, data)
        problem = _divergence(value, norm, candidate, losses, lowest)
        if problem:
            stopped = (f"stopped at step {k} of {steps}: {problem}, the descent diverged; "
                       f"try a learning rate smaller than {lr:g}")
            break
        path.append(candidate)
        losses.append(value)
        norms.append(norm)
        current, lowest = candidate, min(lowest, float(value))
    return Trajectory(params=path, losses=np.array(losses), grad_norms=np.array(norms, dtype=np.float64),
                      method=method, optimizer=optimizer, lr=lr, stopped=stopped, names=tuple(start), notes=notes)


def non_finite_reason(value: float) -> str:
    """Why a loss of ``value`` (nan or ±inf) can be neither descended nor drawn.

    Example:
        >>> non_finite_reason(float("nan"))
        'outside the domain of the loss'
        >>> non_finite_reason(float("-inf"))
        'the loss is infinite there (a pole, such as a division by zero, or an overflow)'
    """
    if math.isnan(value):
        return "outside the domain of the loss"
    return "the loss is infinite there (a pole, such as a division by zero, or an overflow)"


# --- inputs ------------------------------------------------------------------------------


def _start(params: Mapping[str, Any]) -> dict:
    """The starting params, copied: float arrays keep their dtype, anything else becomes float64.

    Example:
        >>> _start({"w": np.ones(2, np.float32), "b": 1, "v": [1, 2]})
        {'w': array([1., 1.], dtype=float32), 'b': 1.0, 'v': array([1., 2.])}
    """
    if not isinstance(params, Mapping) or not params:
        raise TypeError("descend: params must be a non-empty dict of name -> float or array")
    start = {}
    for name, value in params.items():
        raw = value.numpy() if isinstance(value, Tensor) else value
        try:
            array = np.array(raw)
        except (TypeError, ValueError):                 # a ragged list
            array = None
        if array is None or array.dtype.kind not in "fiubc":
            raise TypeError(f"descend: param {name!r} must be a number or an array of numbers, "
                            f"not {type(value).__name__}")
        if array.dtype.kind == "c":
            raise TypeError(f"descend: param {name!r} must be real, not complex")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"descend: param {name!r} must be finite")
        start[name] = _plain(array if array.dtype.kind == "f" else array.astype(np.float64))
    return start


def _data(data: Optional[Mapping[str, Any]], start: dict) -> dict:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise TypeError(f"descend: data must be a dict of name -> array, not {type(data).__name__}")
    both = sorted(set(data) & set(start))
    if both:
        raise ValueError(f"descend: {', '.join(both)} given both as a param and as data")
    return {name: value.numpy() if isinstance(value, Tensor) else
            value if isinstance(value, (int, float, np.ndarray)) else np.asarray(value)
            for name, value in data.items()}


def _positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"descend: {name} must be a number, not {type(value).__name__}") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"descend: {name} must be a positive finite number, got {value!r}")
    return number


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"descend: {name} must be a non-negative integer, got {value!r}")
    return int(value)


def _batches(data: dict, batch_size: Optional[int]) -> Iterator[dict]:
    """The data of each update: all of it, or consecutive mini-batches of the arrays, cycling.

    The arguments are checked here, before the first batch is asked for."""
    if batch_size is None:
        return itertools.repeat(data)
    arrays = {name: v for name, v in data.items() if np.ndim(v) >= 1}
    if not arrays:
        raise ValueError("descend: batch_size needs data arrays to cut into mini-batches")
    lengths = {name: len(v) for name, v in arrays.items()}
    n = next(iter(lengths.values()))
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise ValueError(f"descend: the data arrays must have the same number of rows to be batched; {sizes}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n:
        raise ValueError(f"descend: batch_size must be an integer between 1 and {n} (the number of rows), "
                         f"got {batch_size!r}")
    batches = [{name: v[lo:lo + batch_size] if name in arrays else v for name, v in data.items()}
               for lo in range(0, n, batch_size)]
    return itertools.cycle(batches)


# --- one step ------------------------------------------------------------------------------


def _loss(f: Callable, params: dict, data: dict) -> np.floating:
    """f on plain arrays, as a NumPy float scalar of the loss's own dtype (inf/nan when it overflows)."""
    with np.errstate(all="ignore"):
        try:
            value = f(**{name: np.float64(v) if isinstance(v, float) else v for name, v in params.items()}, **data)
        except OverflowError:
            return np.float64(math.inf)
    array = np.real(np.asarray(value.numpy() if isinstance(value, Tensor) else value))
    if array.size != 1:
        raise ValueError(f"descend: the loss must be a scalar; it returned shape {array.shape}")
    return array.reshape(())[()] if array.dtype.kind == "f" else np.float64(array.reshape(()))


def _plain(array: np.ndarray) -> Any:
    """A float64 scalar as a Python float, another 0-d array as a NumPy scalar of its dtype, an array as is."""
    if array.ndim:
        return array
    return float(array) if array.dtype == np.float64 else array[()]


def _like(value: Any, template: Any) -> Any:
    """``value`` with the shape and the dtype of ``template`` (a float for a Python-float param)."""
    return _plain(np.asarray(value, dtype=np.result_type(template)).reshape(np.shape(template)))


def _step(update: Callable, current: dict, raw: dict, k: int) -> tuple:
    """The params after update ``k`` from gradients ``raw``, and the gradient norm (in float64).

    The gradients take the dtype of their param before the optimizer sees them, and the new
    params are cast back to it: float32 weights stay float32.
    """
    with np.errstate(all="ignore"):
        grads = {name: _like(g, current[name]) for name, g in raw.items()}
        norm = math.sqrt(sum(float(np.sum(np.square(np.asarray(g, dtype=np.float64)))) for g in grads.values()))
        candidate = {name: _like(update(name, current[name], grads[name], k), current[name]) for name in current}
    return candidate, norm


def _divergence(value: float, norm: float, candidate: dict, losses: list, lowest: float) -> Optional[str]:
    """What shows the descent diverging at the ``candidate`` params (loss ``value``), or None.

    ``losses`` are the losses so far (the start first), ``lowest`` the smallest of them.
    """
    if not math.isfinite(value):
        return f"the loss is {value}"
    if not (math.isfinite(norm) and all(np.all(np.isfinite(v)) for v in candidate.values())):
        return "the gradient or the weights overflowed"
    second = losses[1] if len(losses) > 1 else value
    if _runaway(float(value), float(losses[0]), float(second), lowest):
        return f"the loss rose from {float(losses[0]):.3g} to {float(value):.3g}"
    return None


def _runaway(value: float, first: float, second: float, lowest: float) -> bool:
    """Whether the loss ``value`` has risen above the start ``first`` by more than DIVERGENCE_FACTOR times the scale.

    The scale is the largest of ``|first|``; ``|second|``, the loss after the first update
    (Adam's first update moves every weight by lr whatever the gradient, so from near a
    minimum the loss may jump by decades and still converge); and ``first - lowest``, how far
    the loss has come down (a loss that starts at 0 by chance, like w**2 - 1 at w = 1, gets
    its scale as it goes negative). The rise, not a ratio, because losses may be negative. No
    absolute floor, as the loss's units are arbitrary: with a scale of 0 (the loss 0 at the
    start and after the first update, never below) only the test for overflow is left.

    Example:
        >>> _runaway(4e7, 4.0, 1.0, 1.0), _runaway(4e5, 4.0, 1.0, 1.0)
        (True, False)
    """
    scale = max(abs(first), abs(second), first - lowest)
    return scale > 0 and value - first > DIVERGENCE_FACTOR * scale


def _gradient_source(f: Callable, method: str, fd_method: str, h: Optional[float]) -> Callable:
    """A function ``(params, batch) -> ({name: gradient}, [notes on kinks])`` for the chosen method."""
    if method == "reverse":
        def reverse(params: dict, batch: dict) -> tuple:
            with np.errstate(all="ignore"):
                return value_and_gradients(f, params, batch)[1], []
        return reverse
    if method == "finite_diff":
        def finite_diff(params: dict, batch: dict) -> tuple:
            with np.errstate(all="ignore"):
                return _fd_subgradient(lambda **p: f(**p, **batch), params, fd_method, h)
        return finite_diff
    from .symbolic.derive import derive  # noqa: PLC0415  (loads SymPy)

    compiled: dict = {}

    def symbolic(params: dict, batch: dict) -> dict:
        key = tuple((name, np.shape(v)) for name, v in batch.items())
        if key not in compiled:
            shapes = {name: np.shape(v) for name, v in {**params, **batch}.items()}
            compiled[key] = derive(f, wrt=list(params), shapes=shapes).compile()
        with np.errstate(all="ignore"):
            return compiled[key](**params, **batch), []
    return symbolic


def _fd_subgradient(f: Callable, params: dict, fd_method: str, h: Optional[float]) -> tuple:
    """The finite-difference gradient of ``f`` at ``params``, and a note for each kink met.

    Where f has a kink (the one-sided slopes disagree, so :func:`~symgrad.fd_gradient` gives
    NaN there) the entry is the average of the two one-sided slopes, a subgradient of a
    convex kink such as ``abs`` or ``relu`` (0 for ``abs`` at 0).

    Example:
        >>> import symgrad as sg
        >>> _fd_subgradient(lambda w: sg.abs(w), {"w": 0.0}, "central", None)
        ({'w': 0.0}, ['w is at a kink of the loss (one-sided slopes -1 and 1): used their average 0'])
    """
    from .finite_diff import fd_gradient  # noqa: PLC0415

    result = fd_gradient(f, params, method=fd_method, h=h, full_output=True)
    if result.unresolved:
        raise ValueError(f"finite differences do not settle at {result.unresolved[0]} (a pole or a steep feature "
                         f"near it): there is no gradient to step with; use the reverse or symbolic method, or a "
                         f"smaller step")
    grads = {name: np.array(g, dtype=float) for name, g in result.gradient.items()}
    notes = []
    for name in params:
        for index in (tuple(int(i) for i in row) for row in np.argwhere(np.isnan(grads[name]))):
            element = name + (f"[{', '.join(map(str, index))}]" if index else "")
            left, right = result.one_sided[element]
            grads[name][index] = (left + right) / 2
            notes.append(f"{element} is at a kink of the loss (one-sided slopes {left:.6g} and "
                         f"{right:.6g}): used their average {float(grads[name][index]):.6g}")
    return {name: float(g) if g.ndim == 0 else g for name, g in grads.items()}, notes


def _updater(optimizer: str, lr: float, momentum: float, betas: tuple, eps: float) -> Callable:
    """``update(name, p, g, t) -> new p`` for the optimizer; ``t`` counts updates from 1."""
    state: dict = {}
    if optimizer == "sgd":
        return lambda name, p, g, t: p - lr * g
    if optimizer == "momentum":
        def heavy_ball(name: str, p: Any, g: Any, t: int) -> Any:
            state[name] = momentum * state.get(name, 0.0) + g
            return p - lr * state[name]
        return heavy_ball
    beta1, beta2 = betas

    def adam(name: str, p: Any, g: Any, t: int) -> Any:
        m, v = state.get(name, (0.0, 0.0))
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
        state[name] = (m, v)
        return p - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return adam
