"""Finite-difference gradients: from the textbook (f(x+h) - f(x))/h to complex step and Richardson.

Methods (``method=``), for a scalar-valued f of a float, an array or a dict of named arrays:

- ``"forward"``: (f(x + h) - f(x)) / h, exactly the formula of the course; error O(h);
- ``"backward"``: (f(x) - f(x - h)) / h; error O(h);
- ``"central"``: (f(x + h) - f(x - h)) / 2h; error O(h²) (the default);
- ``"complex"``: Im f(x + ih) / h, exact to rounding for a real-analytic f that accepts
  complex numbers (every ``sg.*`` function does), with no cancellation, so h can be tiny;
- ``"richardson"``: central differences at h, h/2 and h/4 extrapolated to O(h⁶), with an
  error estimate.

The default step is ``eps**p * max(1, |x|)`` per element, rounded to a power of two so that
``x ± h`` is exact: p = 1/2 for one-sided differences, 1/3 central, 1/7 Richardson, 2 for
complex step; ``eps`` is the element's dtype's, so float32 gets float32 steps.

Evaluation. ``f(x)`` is evaluated once and reused. When f accepts a batch of points along a
leading axis (``batched=True``, or detected when ``batched=None``), all perturbed points go
through a few calls: as :class:`~symgrad.perturbed_rows.PerturbedRows` (base point plus one
replaced element per row: O(n) per call instead of O(n²)) when f only uses elementwise
operations and reductions, else as dense chunks of 128 KiB (f's temporaries stay in the
cache). Otherwise f is called once per point.

Kinks. At a point where f is not differentiable (relu, abs, max at a tie) the one-sided
slopes disagree. Each element whose slopes differ by more than rounding in f can explain is
re-examined at h/4 (however small the change of slope: x + 1e-4 * relu(x) has a kink too). At a kink at x each side's slope stays put, while a smooth f's slopes
move by 3/8 of their gap; when the slopes at h/4 agree with each other and with one side's
slope at h, the other side stepped over a kink (reported when the gap is over 10 %, as the
estimate would be wrong too). Kinks are reported (NaN in the gradient and ``.kinks``)
instead of a confident number. For this, one-sided methods also evaluate the other side,
and complex step adds real central differences.

Example:
    >>> import numpy as np
    >>> import symgrad as sg
    >>> g = sg.fd_gradient(lambda x: np.sum(x ** 3), np.array([1.0, 2.0]))
    >>> np.round(g, 6)
    array([ 3., 12.])
"""
from __future__ import annotations

import contextlib
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .perturbed_rows import Materializations, PerturbedRows, TooLargeToMaterialize

__all__ = ["fd_gradient", "fd_error_curve", "default_step", "FDResult", "FDErrorCurve",
           "NonDifferentiableError", "METHODS"]

METHODS = ("forward", "backward", "central", "complex", "richardson")

_STEP_EXPONENTS = {"forward": 1 / 2, "backward": 1 / 2, "central": 1 / 3, "richardson": 1 / 7, "complex": 2.0}
_RICHARDSON_LEVELS = 3          # central differences at h, h/2, h/4
_KINK_REFINE = 4                # ... again at h / 4, where a smooth f's gap shrinks fourfold
_STRADDLE_RTOL = 0.1            # a gap that vanishes at h / 4 is a straddled kink if it was this large
_NOISE = 64                     # rounding in f taken as _NOISE * eps * |f| when telling kinks from noise
_DENSE_CHUNK_BYTES = 1 << 17    # dense batches: 128 KiB of points per call, so f's temporaries stay in cache
_STRUCTURED_CHUNK_ROWS = 1 << 16
_MATERIALIZE_LIMIT = 1 << 22    # bytes of dense rows f may build from PerturbedRows before dense chunks take over
_MIN_DETECTED = 4               # batched=None: x of at most this many elements is evaluated point by point
_PROBE_STEP = 2.0 ** -10        # relative perturbation of the points that test batching
_COMPLEX_WARNING = getattr(np, "exceptions", np).ComplexWarning


class NonDifferentiableError(ValueError):
    """f has a kink at x (relu, abs, max at a tie...): its one-sided slopes disagree.

    ``.kinks`` lists the elements (names for a dict x, indices for an array).

    Example:
        >>> import symgrad as sg
        >>> try:
        ...     sg.fd_gradient(sg.abs, 0.0)
        ... except NonDifferentiableError as err:
        ...     print(err.kinks)
        [()]
    """

    def __init__(self, message: str, kinks: list):
        super().__init__(message)
        self.kinks = kinks


@dataclass
class FDResult:
    """What :func:`fd_gradient` returns with ``full_output=True``.

    ``gradient`` has the structure of x (NaN at kinks); ``step`` the h used (per element,
    with x's structure, or the scalar given); ``error`` an error estimate with x's structure
    (Richardson) or None; ``kinks`` the elements where f is not differentiable;
    ``evaluations`` the number of points at which f was evaluated; ``batching`` how:
    "none" (one call per point), "dense" or "structured" (batches of points); ``one_sided`` maps
    each kink of ``kinks`` to its ``(left, right)`` slopes, the backward and forward differences
    (every subgradient lies between them).

    Example:
        >>> import symgrad as sg
        >>> r = sg.fd_gradient(lambda x: x ** 2, 3.0, method="forward", full_output=True)
        >>> r.method, r.step == 2.0 ** -26 * 4, round(r.gradient, 6)
        ('forward', True, 6.0)
        >>> k = sg.fd_gradient(sg.abs, 0.0, full_output=True)
        >>> k.kinks, k.one_sided
        ([()], {(): (-1.0, 1.0)})
    """

    gradient: Any
    method: str
    step: Any
    error: Any = None
    kinks: list = field(default_factory=list)
    evaluations: int = 0
    batching: str = "none"
    one_sided: dict = field(default_factory=dict)


@dataclass
class FDErrorCurve:
    """The error of each finite-difference method as the step h shrinks (:func:`fd_error_curve`).

    ``errors[method][k]`` is the absolute error at ``hs[k]`` against ``reference``, taken
    from ``reference_source``: "exact" (given), "symbolic" (SymPy) or "complex" (complex step).
    ``estimates`` holds the derivative estimates themselves.

    Example:
        >>> import numpy as np
        >>> curve = fd_error_curve(np.exp, 0.0, hs=[1e-2, 1e-4], methods=("forward",), exact=1.0)
        >>> [f"{e:.0e}" for e in curve.errors["forward"]], curve.best_h["forward"]
        (['5e-03', '5e-05'], 0.0001)
    """

    hs: np.ndarray
    errors: dict
    best_h: dict
    best_error: dict
    reference: float
    reference_source: str
    estimates: dict


# --- public API ---------------------------------------------------------------------------


def fd_gradient(f: Callable, x: Any, method: str = "central", h: Any = None, *,
                batched: Optional[bool] = None, full_output: bool = False) -> Any:
    """The gradient of a scalar-valued ``f`` at ``x`` by finite differences.

    ``x`` is a float, an ndarray or a dict name -> float/array (then ``f(**x)`` is called);
    the gradient has the same structure. ``method`` is one of :data:`METHODS`. ``h`` is a
    positive step (a number, or one per element with x's structure); by default it is chosen
    per element from the method and the dtype (see :func:`default_step`).

    ``batched=True`` says that f takes a batch of points along a new leading axis (each dict
    entry gets it) and returns one value per point; ``None`` detects it safely (falling back
    to one call per point); ``False`` calls f once per point.

    At a kink (one-sided slopes that disagree) it raises :class:`NonDifferentiableError`;
    with ``full_output=True`` it returns an :class:`FDResult` with NaN there and ``.kinks``.

    Example:
        >>> import numpy as np
        >>> import symgrad as sg
        >>> def loss(w, b):
        ...     return (w * 2.0 + b - 1.0) ** 2
        >>> g = fd_gradient(loss, {"w": 1.0, "b": 0.5})
        >>> {k: round(v, 6) for k, v in g.items()}
        {'w': 6.0, 'b': 3.0}
        >>> r = fd_gradient(lambda x: sg.sum(sg.relu(x)), np.array([-1.0, 0.0, 2.0]), full_output=True)
        >>> r.gradient, r.kinks
        (array([ 0., nan,  1.]), [(1,)])
    """
    _check_options(f, method, batched)
    layout = _Layout(x)
    steps, reported = _steps(layout, method, h)
    ev = _Evaluator(f, layout, batched)
    if method == "complex" and layout.n:
        ev.check_complex(steps[0])
    gradient, error, sides = _estimate(ev, method, steps, strict=True)
    if sides is None:                                   # complex step: kinks need real one-sided slopes
        kink_steps = layout.representable(_default_steps(layout, "central"))
        v = ev.values(np.tile(np.arange(layout.n), 2), np.concatenate([kink_steps, -kink_steps]))
        sides = (v[:layout.n], v[layout.n:], None)
    else:
        kink_steps = steps
    kinks = _kinks(ev, sides[0], sides[1], kink_steps, sides[2])
    if kinks.any() and not full_output:
        raise _kink_error(layout, kinks, ev.f0, sides[0], sides[1], kink_steps)
    gradient = np.where(kinks, np.nan, gradient)
    if not full_output:
        return layout.structure(gradient)
    return FDResult(
        gradient=layout.structure(gradient), method=method, step=reported,
        error=None if error is None else layout.structure(np.where(kinks, np.nan, error)),
        kinks=[layout.element(i) for i in np.flatnonzero(kinks)],
        evaluations=ev.evaluations, batching=ev.modes.get(method == "complex", "none"),
        one_sided={layout.element(i): (float((ev.f0 - sides[1][i]) / kink_steps[i]),
                                       float((sides[0][i] - ev.f0) / kink_steps[i]))
                   for i in np.flatnonzero(kinks).tolist()},
    )


def default_step(x: Any, method: str = "central") -> Any:
    """The step :func:`fd_gradient` takes by default, with x's structure.

    ``eps**p * max(1, |x|)`` rounded to a power of two, with ``eps`` of x's dtype and
    p = 1/2 (forward, backward), 1/3 (central), 1/7 (Richardson's largest step), 2 (complex).

    Example:
        >>> import numpy as np
        >>> default_step(0.5, "forward") == 2.0 ** -26, default_step(np.float32(100.0), "central")
        (True, np.float32(0.5))
    """
    _check_method(method)
    layout = _Layout(x)
    return layout.structure(layout.representable(_default_steps(layout, method)))


def fd_error_curve(f: Callable, x: Any, hs: Optional[Sequence[float]] = None,
                   methods: Sequence[str] = ("forward", "central", "complex", "richardson"),
                   exact: Optional[float] = None) -> FDErrorCurve:
    """The error of each method for each step h: truncation error falls and rounding error rises
    as h shrinks (the V-shaped plot), with the step where each method does best.

    ``x`` is a float (or a 1-element array). ``hs`` defaults to 4 steps per decade from eps to
    1 (times max(1, |x|)). The reference is ``exact`` when given, else the symbolic derivative
    when ``sg.derive`` can trace f, else complex step.

    Example:
        >>> import numpy as np
        >>> curve = fd_error_curve(np.sin, 1.0, exact=np.cos(1.0))
        >>> 1e-10 < curve.best_h["forward"] < 1e-6 < curve.best_h["central"] < 1e-3
        True
        >>> curve.best_error["complex"] < 1e-15
        True
    """
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods is empty; name at least one of " + ", ".join(METHODS))
    for method in methods:
        _check_options(f, method, None)
    if isinstance(x, dict) or np.size(x) != 1:
        raise ValueError("fd_error_curve needs a scalar x (a float or a 1-element array), "
                         f"got {'a dict' if isinstance(x, dict) else f'shape {np.shape(x)}'}")
    layout = _Layout(np.asarray(x).reshape(())[()] if isinstance(x, np.ndarray) else x)
    hs = _curve_steps(layout, hs)
    ev = _Evaluator(f, layout, batched=False)
    if exact is not None:
        reference, source = _exact_reference(exact), "exact"
    else:
        reference, source = _reference(f, layout, ev)
    if "complex" in methods:
        ev.check_complex(hs[0])
    estimates = {}
    with np.errstate(all="ignore"):
        for method in methods:
            estimates[method] = np.array([_estimate(ev, method, np.array([step]), strict=False)[0][0]
                                          for step in hs])
        errors = {m: np.abs(e - reference) for m, e in estimates.items()}
    best = {m: int(np.nanargmin(e)) if np.isfinite(e).any() else None for m, e in errors.items()}
    return FDErrorCurve(
        hs=hs, errors=errors, estimates=estimates, reference=reference, reference_source=source,
        best_h={m: float(hs[i]) if i is not None else float("nan") for m, i in best.items()},
        best_error={m: float(errors[m][i]) if i is not None else float("nan") for m, i in best.items()},
    )


# --- x as a flat vector -------------------------------------------------------------------


class _Layout:
    """x as one flat vector: its entries (names, shapes, dtypes) and the way back to x's structure."""

    def __init__(self, x: Any):
        if isinstance(x, dict):
            if not x:
                raise ValueError("x is an empty dict; give at least one name -> value")
            for name in x:
                if not isinstance(name, str):
                    raise TypeError(f"x's keys must be argument names (str), got {name!r}")
            self.names: Optional[list] = list(x)
            values, labels = list(x.values()), [f"x[{name!r}]" for name in x]
        else:
            self.names, values, labels = None, [x], ["x"]
        self.arrays = [_float_array(v, label) for v, label in zip(values, labels)]
        self.scalar = [not isinstance(v, np.ndarray) for v in values]
        self.python_float = [type(v) is float for v in values]
        self.at_x = [_read_only(a) for a in self.arrays]          # f's arguments at x itself
        sizes = [a.size for a in self.arrays]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self.n = int(self.offsets[-1])
        self.dtype = np.result_type(*self.arrays)
        self.flat = np.concatenate([a.ravel() for a in self.arrays]).astype(self.dtype, copy=False)
        self.entry = np.repeat(np.arange(len(self.arrays)), sizes)
        self.entry_list, self.offsets_list = self.entry.tolist(), self.offsets.tolist()   # for point()
        self.eps = np.repeat([float(np.finfo(a.dtype).eps) for a in self.arrays], sizes)
        self.largest = int(np.argmax(sizes))

    def structure(self, flat: np.ndarray) -> Any:
        """A flat vector back in x's structure, each entry in its own dtype."""
        parts = []
        for e, a in enumerate(self.arrays):
            block = np.asarray(flat[self.offsets[e]:self.offsets[e + 1]]).astype(a.dtype)
            if self.python_float[e]:
                parts.append(float(block[0]))
            else:
                parts.append(a.dtype.type(block[0]) if self.scalar[e] else block.reshape(a.shape))
        return dict(zip(self.names, parts)) if self.names is not None else parts[0]

    def representable(self, steps: np.ndarray) -> np.ndarray:
        """Steps rounded to each element's dtype (the steps actually taken), as float64."""
        out = np.empty(self.n)
        for e, a in enumerate(self.arrays):
            part = slice(self.offsets[e], self.offsets[e + 1])
            out[part] = steps[part].astype(a.dtype)
        return out

    def element(self, i: int) -> Any:
        """Element ``i`` as ``.kinks`` names it: "w[0, 1]" for a dict x, an index tuple otherwise."""
        e = int(self.entry[i])
        index = tuple(int(k) for k in np.unravel_index(i - self.offsets[e], self.arrays[e].shape))
        if self.names is None:
            return index
        return self.names[e] + (f"[{', '.join(map(str, index))}]" if index else "")

    def label(self, i: int) -> str:
        """Element ``i`` for a message: "x", "x[3]", "w[0, 1]"."""
        element = self.element(i)
        if isinstance(element, str):
            return element
        return "x" + (f"[{', '.join(map(str, element))}]" if element else "")

    def perturbed(self, idx: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``x[idx[k]] + delta[k]``, computed in each element's dtype (complex for complex delta)."""
        complex_rows = np.iscomplexobj(delta)
        out = np.empty(len(idx), dtype=_row_dtype(self.dtype, complex_rows))
        entry = self.entry[idx]
        for e, a in enumerate(self.arrays):
            sel = entry == e
            if sel.any():
                dtype = _row_dtype(a.dtype, complex_rows)
                out[sel] = a.ravel()[idx[sel] - self.offsets[e]].astype(dtype) + delta[sel].astype(dtype)
        return out

    def batch(self, idx: np.ndarray, vals: np.ndarray, log: Optional[Materializations] = None) -> list:
        """f's arguments for the points "x with element idx[k] set to vals[k]", stacked on a
        leading axis: dense arrays, or PerturbedRows (recording into ``log``) when ``log`` is given."""
        k, complex_rows = len(idx), vals.dtype.kind == "c"
        entry, out = self.entry[idx], []
        for e, a in enumerate(self.arrays):
            rows = np.flatnonzero(entry == e)
            local = idx[rows] - self.offsets[e]
            dtype = _row_dtype(a.dtype, complex_rows)
            if log is not None and a.size >= 2:
                pos = np.zeros(k, np.intp)
                pos[rows] = local
                val = np.full(k, a.flat[0], dtype=dtype)
                val[rows] = vals[rows]
                out.append(PerturbedRows(a, pos, val, log))
            else:
                dense = np.empty((k, a.size), dtype=dtype)
                dense[...] = a.reshape(-1)
                dense[rows, local] = vals[rows]
                out.append(dense.reshape((k,) + a.shape))
        return out

    def point(self, i: int, value: Any) -> list:
        """f's arguments at the single point "x with element i set to value" (a fresh array)."""
        e = self.entry_list[i]
        a = self.arrays[e]
        moved = a.astype(_row_dtype(a.dtype, True)) if isinstance(value, complex) else a.copy()
        moved.flat[i - self.offsets_list[e]] = value
        arguments = list(self.at_x)
        arguments[e] = moved[()] if moved.ndim == 0 else moved
        return arguments

    def split(self, flat: np.ndarray) -> list:
        """f's arguments for full points, the rows of ``flat`` (k, n), stacked on a leading axis."""
        return [flat[:, self.offsets[e]:self.offsets[e + 1]].astype(a.dtype).reshape((len(flat),) + a.shape)
                for e, a in enumerate(self.arrays)]

    def call(self, f: Callable, arguments: list) -> Any:
        return f(**dict(zip(self.names, arguments))) if self.names is not None else f(arguments[0])


def _float_array(value: Any, label: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as err:
        raise TypeError(f"{label} must be a float or an array of floats ({err})") from None
    kind = array.dtype.kind
    if kind in "biu":
        raise TypeError(f"{label} has dtype {array.dtype}; finite differences need floating-point values "
                        f"(write 1.0 rather than 1, or use np.asarray(..., dtype=float))")
    if kind == "c":
        raise TypeError(f"{label} is complex; fd_gradient differentiates real functions of real x "
                        f"(complex step is method='complex')")
    if kind != "f":
        raise TypeError(f"{label} must be a float or an array of floats, got {type(value).__name__}")
    if not np.isfinite(array).all():
        raise ValueError(f"{label} has non-finite values")
    return array


def _read_only(array: np.ndarray) -> Any:
    """A view of ``array`` that f cannot modify (a NumPy scalar for a 0-d array)."""
    if array.ndim == 0:
        return array[()]
    view = array.view()
    view.flags.writeable = False
    return view


def _row_dtype(dtype: np.dtype, complex_rows: bool) -> np.dtype:
    return np.result_type(dtype, np.complex64) if complex_rows else np.dtype(dtype)


# --- evaluating f ---------------------------------------------------------------------------


class _Evaluator:
    """Evaluates f at x and at perturbed points: one call per point, or batched (see the module)."""

    def __init__(self, f: Callable, layout: _Layout, batched: Optional[bool]):
        self.f, self.layout, self.batched = f, layout, batched
        self.modes: dict = {}                     # complex rows? -> "none" | "dense" | "structured"
        self.takes_batches: Optional[bool] = None
        self.evaluations = 0
        self.tolerance_eps = float(layout.eps.max()) if layout.n else 0.0
        with np.errstate(all="ignore"):                       # a non-finite f(x) is an error below
            self.f0 = self.single(layout.at_x, complex_rows=False)
        if not np.isfinite(self.f0):
            raise ValueError(f"f(x) is not finite ({self.f0}); finite differences need a finite value at x")

    def single(self, arguments: list, complex_rows: bool) -> Any:
        """f at one point: a float (a complex for complex points)."""
        self.evaluations += 1
        value = self.layout.call(self.f, arguments)
        if type(value) in ((complex, np.complex128) if complex_rows else (float, np.float64)):
            return value                          # the common case, without the checks' overhead
        return _output(value, (), complex_rows)[()]

    def batch_call(self, arguments: list, k: int, complex_rows: bool) -> np.ndarray:
        self.evaluations += k
        return _output(self.layout.call(self.f, arguments), (k,), complex_rows)

    def values(self, idx: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """f at each point "x with element idx[k] moved by delta[k]" (real or complex delta)."""
        complex_rows = np.iscomplexobj(delta)
        vals = self.layout.perturbed(idx, delta)
        out = np.empty(len(idx), np.complex128 if complex_rows else np.float64)
        start = 0
        with _complex_guard(complex_rows), np.errstate(all="ignore"):   # non-finite values are checked
            while start < len(idx):
                mode = self.mode(complex_rows)
                stop = min(len(idx), start + self._chunk_rows(mode, complex_rows))
                result = self._chunk(mode, idx[start:stop], vals[start:stop], complex_rows)
                if result is None:                # f needed dense rows past the size limit
                    self.modes[complex_rows] = "dense"
                    continue
                out[start:stop] = result
                start = stop
        return out

    def _chunk(self, mode: str, idx: np.ndarray, vals: np.ndarray, complex_rows: bool) -> Optional[np.ndarray]:
        if mode == "none":
            return np.array([self.single(self.layout.point(i, v), complex_rows)
                             for i, v in zip(idx.tolist(), vals.tolist())])
        log = Materializations(_MATERIALIZE_LIMIT) if mode == "structured" else None
        try:
            result = self.batch_call(self.layout.batch(idx, vals, log), len(idx), complex_rows)
        except TooLargeToMaterialize:
            return None
        return None if log is not None and log.exceeded else result

    def _chunk_rows(self, mode: str, complex_rows: bool) -> int:
        if mode == "structured":
            return _STRUCTURED_CHUNK_ROWS
        if mode == "none":
            return 1 << 62
        row_bytes = self.layout.n * _row_dtype(self.layout.dtype, complex_rows).itemsize
        return max(1, _DENSE_CHUNK_BYTES // max(1, row_bytes))

    def mode(self, complex_rows: bool) -> str:
        if complex_rows not in self.modes:
            self.modes[complex_rows] = self._choose_mode(complex_rows)
        return self.modes[complex_rows]

    def _choose_mode(self, complex_rows: bool) -> str:
        if self.batched is False or (self.batched is None and self.layout.n <= _MIN_DETECTED):
            return "none"
        if self.takes_batches is None:
            self.takes_batches = self._batch_probe()
        if not self.takes_batches:
            return "none"
        if self.layout.arrays[self.layout.largest].size >= 2 and self._structured_probe(complex_rows):
            return "structured"
        return "dense"

    def _probe_offsets(self) -> np.ndarray:
        """Positive offsets of the size of _PROBE_STEP * |x| (keeping signs, hence domains)."""
        return _PROBE_STEP * np.where(self.layout.flat == 0, _PROBE_STEP, np.abs(self.layout.flat))

    def _batch_probe(self) -> bool:
        """Whether f maps a few points stacked on a leading axis to their values (as many points as no axis of
        x has, so that f cannot mistake the batch axis for one of its own). With batched=True, a clear error
        when it does not."""
        rng = np.random.default_rng(0)
        count = _probe_count({n for array in self.layout.arrays for n in (*array.shape, array.size)})
        flat = self.layout.flat + self._probe_offsets() * rng.uniform(0.5, 1.0, (count, self.layout.n))
        points = self.layout.split(flat)
        try:
            with _quiet():
                each = np.array([self.single([p[k] for p in points], False) for k in range(count)])
                together = self.batch_call(points, count, False)
        except Exception as err:  # noqa: BLE001  (whatever f raises, it does not take this batch)
            problem = f"{type(err).__name__}: {_first_line(err)}"
        else:
            unknown = self.batched and not np.isfinite(each).any()
            problem = None if unknown or _agree(together, each, self.f0, self.tolerance_eps) else \
                f"it returned {together.tolist()} for points where f gives {each.tolist()}"
        if problem and self.batched:
            raise ValueError(f"batched=True, but f does not evaluate a batch of points along a leading axis "
                             f"({problem}); pass batched=None or False")
        return problem is None

    def _structured_probe(self, complex_rows: bool) -> bool:
        """Whether f computes the same on PerturbedRows as on dense rows, without materializing."""
        layout = self.layout
        largest = layout.offsets[layout.largest] + layout.arrays[layout.largest].size // 2
        idx = np.unique([np.argmax(layout.flat), np.argmin(layout.flat), layout.n // 2, largest])
        idx = np.concatenate([idx, idx])
        delta = self._probe_offsets()[idx] * np.repeat([1.0, 0.5], len(idx) // 2)
        vals = layout.perturbed(idx, 1j * delta if complex_rows else delta)
        log = Materializations()
        try:
            with _quiet():
                dense = self.batch_call(layout.batch(idx, vals), len(idx), complex_rows)
                structured = self.batch_call(layout.batch(idx, vals, log), len(idx), complex_rows)
        except Exception:  # noqa: BLE001  (f does not run on PerturbedRows: use dense rows)
            return False
        return not log.reasons and _agree(structured, dense, self.f0, self.tolerance_eps)

    def check_complex(self, step: float) -> None:
        """A clear TypeError when f cannot be evaluated at a complex point."""
        value = self.layout.perturbed(np.array([0]), np.array([1j * step]))[0]
        try:
            with _complex_guard(True):
                value = self.layout.call(self.f, self.layout.point(0, complex(value)))
        except Exception as err:  # noqa: BLE001  (f(x) worked: complex input is what it rejects)
            raise TypeError(f"method='complex' needs an f that accepts complex numbers, but "
                            f"f({self.layout.label(0)} + {step:.3g}j) raised {type(err).__name__}: "
                            f"{_first_line(err)}") from None
        _output(value, (), True)


def _probe_count(sizes: set) -> int:
    """The smallest prime of at least 3 that is none of ``sizes`` (the batch size of the batching probe).

    Example:
        >>> _probe_count({2, 3, 4}), _probe_count({5, 10})
        (5, 3)
    """
    count = 3
    while count in sizes or any(count % p == 0 for p in range(3, int(count ** 0.5) + 1, 2)):
        count += 2
    return count


def _output(value: Any, shape: tuple, complex_rows: bool) -> np.ndarray:
    """f's value(s) checked: numbers of the expected shape, complex exactly for complex points."""
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        raise TypeError(f"f must return a number, got {type(value).__name__}")
    if array.shape != shape:
        if shape == ():
            raise ValueError(f"f must return a scalar, got an array of shape {array.shape}")
        raise ValueError(f"f was given a batch of {shape[0]} points along a leading axis and returned shape "
                         f"{array.shape}; a batched f must return one value per point, shape {shape}")
    if complex_rows and array.dtype.kind != "c":
        raise TypeError("method='complex' needs f to keep complex numbers, but f returned a real value at a "
                        "complex point, dropping the imaginary part that carries the derivative "
                        "(np.abs, np.real, float(), math.*?); write f with sg.* functions or use another method")
    if not complex_rows and array.dtype.kind == "c":
        raise TypeError("f returned a complex value at a real point; fd_gradient differentiates real-valued f")
    return array.astype(np.complex128 if complex_rows else np.float64)


def _agree(a: np.ndarray, b: np.ndarray, f0: float, eps: float) -> bool:
    """Whether two evaluations of the same points agree to rounding, with a margin far below the
    change the probe's perturbation makes."""
    change = np.maximum(np.abs(a - f0), np.abs(b - f0))
    size = np.maximum(abs(f0), np.maximum(np.abs(a), np.abs(b)))
    return bool(np.all(np.abs(a - b) <= 1e-6 * change + 1e3 * eps * size))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _complex_guard(complex_rows: bool) -> Iterator[None]:
    """Turn NumPy's "discarding the imaginary part" warning into an error at complex points."""
    with warnings.catch_warnings():
        if complex_rows:
            warnings.simplefilter("error", _COMPLEX_WARNING)
        yield


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [""])[0]


# --- the difference formulas ------------------------------------------------------------------


def _estimate(ev: _Evaluator, method: str, h: np.ndarray, strict: bool) -> tuple:
    """The method's estimate per element, its error estimate (or None), and the one-sided data
    for the kink test: ``(f(x + h), f(x - h), refine)`` (None for complex step). ``strict``: a
    non-finite value the method needs is an error."""
    n = ev.layout.n
    elements = np.arange(n)
    if method == "complex":
        v = ev.values(elements, 1j * h)
        if strict:
            _require_finite(ev.layout, v, 1j * h)
        return v.imag / h, None, None
    levels = _RICHARDSON_LEVELS if method == "richardson" else 1
    steps = h / 2.0 ** np.arange(levels)[:, None]                     # (levels, n)
    delta = np.stack([steps, -steps], axis=1).reshape(-1)             # +h, -h, +h/2, -h/2, ...
    v = ev.values(np.tile(elements, 2 * levels), delta).reshape(2 * levels, n)
    needed = {"forward": [0], "backward": [1]}.get(method, range(2 * levels))
    if strict:
        for row in needed:
            _require_finite(ev.layout, v[row], delta[row * n:(row + 1) * n])
    fp, fm, f0 = v[0], v[1], ev.f0
    refine = None
    error = None
    if method == "forward":
        gradient = (fp - f0) / h
    elif method == "backward":
        gradient = (f0 - fm) / h
    elif method == "central":
        gradient = (fp - fm) / (2 * h)
    else:
        gradient, error = _richardson(v, steps, f0, ev.layout.eps)
        level = int(np.log2(_KINK_REFINE))                            # the h / _KINK_REFINE rows exist
        refine = lambda k: (v[2 * level, k], v[2 * level + 1, k])     # noqa: E731
    return gradient, error, (fp, fm, refine)


def _richardson(v: np.ndarray, steps: np.ndarray, f0: float, eps: np.ndarray) -> tuple:
    """Central differences at h, h/2, h/4 extrapolated to O(h^6). The error estimate adds the
    changes of the last two extrapolation steps (the second is the error of the O(h^4) values,
    an upper bound for a smooth f that also catches a kink between the steps) and the rounding
    the extrapolation weights amplify."""
    d = (v[0::2] - v[1::2]) / (2 * steps)
    r1 = (4 * d[1:] - d[:-1]) / 3
    r2 = (16 * r1[1] - r1[0]) / 15
    size = np.maximum(abs(f0), np.abs(v).max(axis=0))
    return r2, np.abs(r2 - r1[1]) + np.abs(r1[1] - r1[0]) + 8 * eps * size / steps[0]


def _require_finite(layout: _Layout, values: np.ndarray, delta: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = bad[0]
        step = delta[i]
        offset = f"+ {step.imag:.3g}j" if np.iscomplexobj(step) else f"{'+' if step > 0 else '-'} {abs(step):.3g}"
        raise ValueError(f"f is not finite ({values[i]}) at {layout.label(i)} {offset}"
                         + (f" (and {bad.size - 1} more points)" if bad.size > 1 else "")
                         + "; finite differences need f defined around x (try a smaller h or a one-sided method)")


# --- kinks ----------------------------------------------------------------------------------------


def _kinks(ev: _Evaluator, fp: np.ndarray, fm: np.ndarray, h: np.ndarray,
           refine: Optional[Callable]) -> np.ndarray:
    """Elements whose one-sided slopes disagree at h, re-examined at h / 4 (see the module)."""
    forward, backward, noise = _slopes(ev.f0, fp, fm, h, ev.layout.eps)
    with np.errstate(invalid="ignore"):
        gap = np.abs(forward - backward)
        suspects = np.flatnonzero(gap > noise)
    kinks = np.zeros(ev.layout.n, bool)
    if suspects.size:
        fine = h[suspects] / _KINK_REFINE
        if refine is None:
            v = ev.values(np.concatenate([suspects, suspects]), np.concatenate([fine, -fine]))
            fp2, fm2 = v[:suspects.size], v[suspects.size:]
        else:
            fp2, fm2 = refine(suspects)
        forward2, backward2, noise2 = _slopes(ev.f0, fp2, fm2, fine, ev.layout.eps[suspects])
        forward, backward, gap = forward[suspects], backward[suspects], gap[suspects]
        # A kink at x: each side's slope stays put (a smooth f's moves by 3/8 of the gap).
        at_x = (np.maximum(np.abs(forward2 - forward), np.abs(backward2 - backward)) < gap / 4) \
            & (np.abs(forward2 - backward2) > noise2)
        # A kink the step straddles: at h / 4 both slopes agree, with one side's slope at h.
        middle = (forward2 + backward2) / 2
        straddled = (np.abs(forward2 - backward2) < gap / 8) \
            & (np.minimum(np.abs(forward - middle), np.abs(backward - middle)) < gap / 8) \
            & (gap > _STRADDLE_RTOL * np.maximum(np.abs(forward), np.abs(backward)))
        kinks[suspects] = at_x | straddled
    return kinks


def _slopes(f0: float, fp: np.ndarray, fm: np.ndarray, h: np.ndarray, eps: np.ndarray) -> tuple:
    """The forward and backward slopes, and the gap between them that rounding in f can make."""
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.maximum(abs(f0), np.maximum(np.abs(fp), np.abs(fm)))
        return (fp - f0) / h, (f0 - fm) / h, _NOISE * eps * size / h


def _kink_error(layout: _Layout, kinks: np.ndarray, f0: float, fp: np.ndarray, fm: np.ndarray,
                h: np.ndarray) -> NonDifferentiableError:
    where = np.flatnonzero(kinks)
    i = where[0]
    more = f" (and {where.size - 1} more elements)" if where.size > 1 else ""
    return NonDifferentiableError(
        f"f is not differentiable at {layout.label(i)}{more}: its slope is {(fp[i] - f0) / h[i]:.6g} to the "
        f"right and {(f0 - fm[i]) / h[i]:.6g} to the left; pass full_output=True to get NaN there and the "
        f"list in .kinks", [layout.element(k) for k in where])


# --- steps and options ----------------------------------------------------------------------------


def _check_options(f: Any, method: Any, batched: Any) -> None:
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    _check_method(method)
    if batched not in (None, True, False):
        raise TypeError(f"batched must be None (detect), True or False; got {batched!r}")


def _check_method(method: Any) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")


def _default_steps(layout: _Layout, method: str) -> np.ndarray:
    raw = layout.eps ** _STEP_EXPONENTS[method] * np.maximum(1.0, np.abs(layout.flat.astype(float)))
    return 2.0 ** np.round(np.log2(raw))


def _steps(layout: _Layout, method: str, h: Any) -> tuple:
    """The step per element as taken (in each element's dtype), and the step as reported."""
    if h is None:
        steps = layout.representable(_default_steps(layout, method))
        return steps, layout.structure(steps)
    steps = layout.representable(_given_steps(layout, h))
    if np.any(steps == 0):
        raise ValueError(f"h={h} rounds to 0 in {layout.dtype}")
    if method != "complex":
        smallest = steps / (2.0 ** (_RICHARDSON_LEVELS - 1) if method == "richardson" else 1.0)
        still = np.flatnonzero(layout.perturbed(np.arange(layout.n), smallest) == layout.flat)
        if still.size:
            i = still[0]
            raise ValueError(f"h={smallest[i]:.3g} is too small for {layout.label(i)}={layout.flat[i]}: "
                             f"x + h == x in {layout.flat.dtype}")
    if np.ndim(h) == 0 and not isinstance(h, dict) and layout.n:
        return steps, float(steps[0])
    return steps, layout.structure(steps)


def _given_steps(layout: _Layout, h: Any) -> np.ndarray:
    """A user's h (a number, an array of x's shape, or a dict like x) as one positive step per element."""
    if isinstance(h, dict):
        if layout.names is None or set(h) != set(layout.names):
            raise ValueError(f"h as a dict must have the names of x ({', '.join(layout.names or [])})")
        pieces = [(h[name], a.shape) for name, a in zip(layout.names, layout.arrays)]
    elif np.ndim(h) == 0:
        pieces = [(h, (layout.n,))]
    elif layout.names is None:
        pieces = [(h, layout.arrays[0].shape)]
    else:
        raise ValueError("h must be a number, or a dict like x")
    flat = np.concatenate([_step_array(value, shape) for value, shape in pieces])
    bad = np.flatnonzero(~(np.isfinite(flat) & (flat > 0)))
    if bad.size:
        where = "" if np.ndim(h) == 0 else f" for {layout.label(bad[0])}"
        raise ValueError(f"h must be positive and finite, got {flat[bad[0]]:g}{where}")
    return flat


def _step_array(value: Any, shape: tuple) -> np.ndarray:
    try:
        return np.broadcast_to(np.asarray(value, dtype=float), shape).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"h must be a positive number or one per element of x, got {value!r}") from None


def _curve_steps(layout: _Layout, hs: Any) -> np.ndarray:
    if hs is None:
        decades = int(np.ceil(-np.log10(layout.eps[0])))
        steps = max(1.0, abs(float(layout.flat[0]))) * np.logspace(-decades, 0, 4 * decades + 1)
    else:
        try:
            steps = np.asarray(hs, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"hs must be a sequence of positive steps, got {type(hs).__name__}") from None
        if steps.size == 0 or not np.all(np.isfinite(steps) & (steps > 0)):
            raise ValueError("hs must be a non-empty sequence of positive, finite steps")
    steps = steps.astype(layout.dtype).astype(float)
    if np.any(steps == 0):
        raise ValueError(f"some steps in hs round to 0 in {layout.dtype}")
    return steps


# --- the reference of the error curve ---------------------------------------------------------------


def _exact_reference(exact: Any) -> float:
    try:
        value = float(np.asarray(exact, dtype=float).reshape(-1)[0]) if np.size(exact) == 1 else None
    except (TypeError, ValueError):
        value = None
    if value is None or not np.isfinite(value):
        raise ValueError(f"exact must be a finite number (the exact derivative), got {exact!r}")
    return value


def _reference(f: Callable, layout: _Layout, ev: _Evaluator) -> tuple:
    """The derivative to measure errors against: symbolic when SymPy can trace f, else complex step."""
    try:
        return _symbolic_derivative(f, layout), "symbolic"
    except Exception:  # noqa: BLE001  (f is not traceable with SymPy, or derive is not available)
        pass
    step = layout.representable(_default_steps(layout, "complex"))
    try:
        ev.check_complex(step[0])
    except TypeError as err:
        raise ValueError(f"fd_error_curve has no reference: SymPy cannot trace f and {err}; "
                         f"pass exact=") from None
    return float(_estimate(ev, "complex", step, strict=True)[0][0]), "complex"


def _symbolic_derivative(f: Callable, layout: _Layout) -> float:
    from .symbolic.derive import derive  # noqa: PLC0415  (loads SymPy, only for this reference)

    name = next(iter(inspect.signature(f).parameters))
    gradient = derive(f, shapes={name: layout.arrays[0].shape}).gradient(**{name: layout.structure(layout.flat)})
    value = float(np.asarray(gradient[name], dtype=float).reshape(-1)[0])
    if not np.isfinite(value):
        raise ValueError("the symbolic derivative is not finite at x")
    return value
