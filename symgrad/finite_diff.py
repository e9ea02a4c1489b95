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

Convergence. The elements re-examined at h/4 (and, for a one-sided method, those whose other
side is undefined, evaluated at h/4 too) are checked to be resolved by the step. An element is
*unresolved* when f changes on a scale smaller than the step (a pole, an infinite slope, a kink
or a steep feature within about h of x) and the data show it: the second difference does not
shrink like a smooth f's (fourfold at h/4, or faster at an inflection point), or the estimate
moves by more than 10 % (of itself and of the one-sided slopes) from h to h/4 and, evaluated at
h/2 as well, its changes shrink slower than at half its order (a smooth f's central estimate
converges even where the gradient is 0: x ** 3's is h² at x = 0, quartering at each halving).
The estimate checked is the central one (a one-sided one is it plus or minus half the gap,
which the second difference checks), or the method's own where the other side is undefined.
A default step is a guess made for f of unit scale. Where the data show it too long for f, an
element is tried again with a step 16 times smaller, up to twice, evaluating only those elements.
Two cases. (1) Central differences whose error estimate is over 32 times its rounding term and
over max(1e-5, sqrt(eps)) of the estimate and of the one-sided slopes (truncation dominates, and
not merely at a minimum): the shorter step is kept where its error estimate is lower and its
estimate lands where those at h and h/4 point, as truncation would have it (|f| can hide
rounding inside f, which a shorter step magnifies); its error estimate is then at least 1/256
of the longer step's (truncation falls no faster). (2) Any method where the step does not
settle or straddles a kink (not a kink at x: at a shorter step a small gap could hide in
rounding): the element is trusted only where it settles at a shorter step within 1 %, a step
16 x 1.37 times shorter still (off the powers of two, so that an alias of a fast oscillation
does not repeat) agrees within both error estimates, and the better of the two is within 1e-4;
otherwise it stays unresolved (a pole still a few steps away converges, with a truncation error
that shows). A retry over which f does not change at all is never trusted: its step is below
the rounding inside f, whatever |f| suggests. If f raises at a shorter step, the longer step's
finding stands. So float32 Richardson's 0.125 (half a period of sin(x**5) at 1.5) becomes
0.0078, and log(x) at 1e-5, one default step from its pole, is right to 3e-6 instead of off by
31 %. A step the caller gives is never changed. Unresolved elements raise
:class:`UnresolvedError`, or give NaN and ``.unresolved`` with ``full_output=True``. Complex
step is not checked: its step is tiny and nothing straddles it. With a step the caller gives, a
pole a few steps away is resolved (the differences converge) though the estimate is off:
``FDResult.error`` says by how much, an estimate that forward, backward and central
differences now get from the same data, without extra evaluations.

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
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .perturbed_rows import Materializations, PerturbedRows, TooLargeToMaterialize

__all__ = ["fd_gradient", "fd_error_curve", "default_step", "FDResult", "FDErrorCurve",
           "NonDifferentiableError", "UnresolvedError", "METHODS"]

METHODS = ("forward", "backward", "central", "complex", "richardson")

_STEP_EXPONENTS = {"forward": 1 / 2, "backward": 1 / 2, "central": 1 / 3, "richardson": 1 / 7, "complex": 2.0}
_RICHARDSON_LEVELS = 3          # central differences at h, h/2, h/4
_FINE, _MIDDLE = 2, 1           # re-examined at h / 2**2 (a smooth f's gap shrinks fourfold), and h / 2
_STRADDLE_RTOL = 0.1            # a gap that vanishes at h / 4 is a straddled kink if it was this large
_SETTLE_RTOL = 0.1              # an estimate moving less than this (relative) from h to h / 4 has settled
_ONE_SIDED = ("forward", "backward")
# A default step too long for f is tried again, at most _RETRIES times, each time _RETRY_SHRINK times shorter,
# where it does not settle or straddles a kink, or (central) where its error estimate is over _LONG_STEP times
# its rounding term and _LONG_RTOL of the estimate. An element that did not settle is trusted where it settles at
# a shorter step within _SETTLED_RTOL, a step _CONFIRM_SKEW times shorter still agrees within their error
# estimates, and the better of the two is within _RETRY_RTOL (each error estimate relative to its estimate, or at
# most _RETRY_ROUNDING times the rounding term).
_RETRIES, _RETRY_SHRINK, _LONG_STEP, _LONG_RTOL, _CONFIRM_SKEW = 2, 16, 32, 1e-5, 1.37
_SETTLED_RTOL, _RETRY_RTOL, _RETRY_ROUNDING = 1e-2, 1e-4, 4
_NOISE = 64                     # rounding in f taken as _NOISE * eps * |f| when telling kinks from noise
_ROUNDING = 8                   # ... and as _ROUNDING * eps * |f| in the error estimates
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


class UnresolvedError(ValueError):
    """Finite differences do not settle at some elements of x: f changes on a scale smaller than
    the step there (a pole, an infinite slope or a steep feature near x), so the estimate cannot
    be trusted. ``.unresolved`` lists the elements (named like ``.kinks``).

    Example:
        >>> import symgrad as sg
        >>> try:
        ...     sg.fd_gradient(lambda x: 1 / x, 1e-6)        # 7.6e-6 straddles the pole at 0, 4.8e-7 nears it
        ... except UnresolvedError as err:
        ...     print(err.unresolved)
        [()]
    """

    def __init__(self, message: str, unresolved: list):
        super().__init__(message)
        self.unresolved = unresolved


@dataclass
class FDResult:
    """What :func:`fd_gradient` returns with ``full_output=True``.

    ``gradient`` has the structure of x (NaN at kinks and unresolved elements); ``step`` the h
    used (per element, with x's structure, or the scalar given; a default step that did not settle
    shows the smaller one last tried, see the module); ``error`` an estimate of
    ``|gradient - f'(x)|`` with x's structure (NaN where the gradient is), None for complex
    step; ``kinks`` the elements where f is not differentiable; ``unresolved`` those where the
    differences do not settle (f changes on a scale smaller than the step: a pole, an infinite
    slope or a steep feature near x); ``evaluations`` the number of points at which f was
    evaluated; ``batching`` how: "none" (one call per point), "dense" or "structured" (batches of
    points); ``one_sided`` maps each kink of ``kinks`` to its ``(left, right)`` slopes, the
    backward and forward differences (every subgradient lies between them).

    ``error`` is a truncation estimate plus the rounding ``8 eps |f| / h``, with no extra
    evaluation of f. The truncation estimate, by method: Richardson: the changes of its last two
    extrapolation steps; central: 16/15 of the change of the central estimate from h to h/4
    where the one-sided slopes disagree beyond rounding (evaluated at h/4 for the kink test),
    else none (f is linear over the stencil to rounding; an h² f''' term at an inflection point
    is not measured); forward and backward: half the gap between the one-sided slopes (their
    h f''/2 term) plus the central estimate's, or, where the other side is undefined, 4/3 of the
    change of their own estimate from h to h/4.

    Example:
        >>> import symgrad as sg
        >>> r = sg.fd_gradient(lambda x: x ** 2, 3.0, method="forward", full_output=True)
        >>> r.method, r.step == 2.0 ** -26 * 4, round(r.gradient, 6)
        ('forward', True, 6.0)
        >>> k = sg.fd_gradient(sg.abs, 0.0, full_output=True)
        >>> k.kinks, k.one_sided
        ([()], {(): (-1.0, 1.0)})
        >>> p = sg.fd_gradient(lambda x: 1 / x, 1e-6, full_output=True)     # even h / 256 nears the pole
        >>> p.gradient, p.unresolved
        (nan, [()])
        >>> e = sg.fd_gradient(sg.exp, 700.0, h=2.0 ** -8, full_output=True)  # error h²/6 f'
        >>> f"{e.error / e.gradient:.3g}"
        '2.54e-06'
        >>> q = sg.fd_gradient(sg.log, 1e-5, full_output=True)   # the default 2**-17 nearly reaches the pole
        >>> q.step == 2.0 ** -25, f"{abs(q.gradient * 1e-5 - 1):.1g}", q.error * 1e-5 < 1e-5   # not 31 % off
        (True, '3e-06', True)
    """

    gradient: Any
    method: str
    step: Any
    error: Any = None
    kinks: list = field(default_factory=list)
    evaluations: int = 0
    batching: str = "none"
    one_sided: dict = field(default_factory=dict)
    unresolved: list = field(default_factory=list)


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
    per element from the method and the dtype (see :func:`default_step`), and made smaller
    where it does not settle (see the module).

    ``batched=True`` says that f takes a batch of points along a new leading axis (each dict
    entry gets it) and returns one value per point; ``None`` detects it safely (falling back
    to one call per point); ``False`` calls f once per point.

    At a kink (one-sided slopes that disagree) it raises :class:`NonDifferentiableError`;
    where the differences do not settle (a pole or an infinite slope within the step, see the
    module) :class:`UnresolvedError`; with ``full_output=True`` it returns an :class:`FDResult`
    with NaN there, ``.kinks`` and ``.unresolved``.

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
    if h is None and method != "complex":
        steps, (gradient, error, rows, kink_steps, found) = _adapted(ev, method, steps)
    else:
        gradient, error, rows, kink_steps, found = _differences(ev, method, steps)
    reported = layout.structure(steps) if h is None else reported
    if found.kinks.any() and not full_output:
        raise _kink_error(layout, found.kinks, ev.f0, rows[0], rows[1], kink_steps)
    if found.unresolved.any() and not full_output:
        raise _unresolved_error(layout, method, found)
    bad = found.kinks | found.unresolved
    gradient = np.where(bad, np.nan, gradient)
    if not full_output:
        return layout.structure(gradient)
    return FDResult(
        gradient=layout.structure(gradient), method=method, step=reported,
        error=None if error is None else layout.structure(np.where(bad, np.nan, error)),
        kinks=[layout.element(i) for i in np.flatnonzero(found.kinks)],
        evaluations=ev.evaluations, batching=ev.modes.get(method == "complex", "none"),
        one_sided={layout.element(i): (float((ev.f0 - rows[1][i]) / kink_steps[i]),
                                       float((rows[0][i] - ev.f0) / kink_steps[i]))
                   for i in np.flatnonzero(found.kinks).tolist()},
        unresolved=[layout.element(i) for i in np.flatnonzero(found.unresolved)],
    )


def _differences(ev: Any, method: str, steps: np.ndarray, strict: bool = True) -> tuple:
    """The method's estimate at the given steps, its error estimate (None for complex step), the rows
    of f(x ± h), the steps that examine kinks (the central default for complex step), and what
    :func:`_examine` finds; ``strict``: a value of f the method needs that is not finite is an error."""
    gradient, error, rows = _estimate(ev, method, steps, strict=strict)
    if rows is None:                                    # complex step: kinks need real one-sided slopes
        kink_steps = ev.layout.representable(_default_steps(ev.layout, "central"))
        rows = ev.values(np.tile(np.arange(ev.layout.n), 2), np.concatenate([kink_steps, -kink_steps]))
        rows = rows.reshape(2, ev.layout.n)
    else:
        kink_steps = steps
    found = _examine(ev, method, rows, kink_steps)
    return gradient, found.error if error is None else error, rows, kink_steps, found


def _adapted(ev: _Evaluator, method: str, steps: np.ndarray) -> tuple:
    """The default steps, made 16 times smaller (at most twice) where they are too long for f (see the
    module), and :func:`_differences` at the steps kept; a retry evaluates only the elements retried."""
    layout = ev.layout
    found = _differences(ev, method, steps)
    doubted, confirmed, final = (np.zeros(layout.n, bool) for _ in range(3))
    compared = np.full((4, layout.n), np.nan)   # the last two estimates compared, and their steps
    for _ in range(_RETRIES):
        gradient, error, rows, _, findings = found
        rounding = _rounding_of(ev, rows, steps)
        doubt = findings.unresolved | findings.straddled
        pending = doubted & ~doubt & ~findings.kinks & ~confirmed      # settled at a shorter step: confirm it
        long = ~doubted & ~doubt & ~findings.kinks & _too_long(ev, method, found, steps, rounding)
        # a confirming step off the powers of two: an alias of a fast oscillation does not repeat on it
        smaller = layout.representable(steps / np.where(pending, _RETRY_SHRINK * _CONFIRM_SKEW, _RETRY_SHRINK))
        fits = layout.perturbed(np.arange(layout.n), smaller) != layout.flat
        again = np.flatnonzero((doubt | pending | long) & ~final & fits)
        if not again.size:
            break
        part = _Part(ev, again)
        final[again] = True                     # a retry not taken (or failed, or confirming) is the last
        try:
            retry = _differences(part, method, smaller[again], strict=False)
        except Exception:  # noqa: BLE001  (f fails at a shorter step: the longer one's result stands)
            compared[:, again] = gradient[again], np.full(again.size, np.nan), steps[again], smaller[again]
            continue
        agree, lower = _compared(part, gradient[again], error[again], retry)
        # confirmed: settled within 1 %, a shorter step agrees, and the better of the two is within 1e-4
        before = gradient[again], error[again], rounding[again]
        agree &= _trusted(*before, _SETTLED_RTOL) & np.where(
            lower, _trusted(*retry[:2], _rounding_of(part, retry[2], smaller[again]), _RETRY_RTOL),
            _trusted(*before, _RETRY_RTOL))
        was_doubt, was_pending, was_long = doubt[again], pending[again], long[again]
        take = (was_doubt & np.isfinite(retry[0])) | (was_pending & agree & lower) \
            | (was_long & lower & _extrapolated(findings, again, retry[0], retry[1]))
        final[again[(was_doubt | was_long) & take]] = False   # shortened: it may be retried again
        confirmed[again[was_pending & agree]] = True
        doubted[again[was_doubt]] = True
        compared[:, again] = gradient[again], retry[0], steps[again], smaller[again]
        floor = error[again] / _RETRY_SHRINK ** 2  # truncation falls at most 256-fold (central)
        steps = steps.copy()
        steps[again[take]] = smaller[again[take]]
        found = _merged(found, retry, again[take], take)
        shortened = again[take & was_long]
        found[1][shortened] = np.fmax(found[1][shortened], floor[take & was_long])
    findings = found[4]
    failed = np.flatnonzero(doubted & ~confirmed)  # never settled, or settled without a shorter step agreeing
    findings.unresolved[failed], findings.kinks[failed], findings.own[failed] = True, False, True
    findings.coarse[failed], findings.fine[failed], findings.coarse_h[failed], findings.fine_h[failed] = \
        compared[:, failed]
    return steps, found


def _too_long(ev: _Evaluator, method: str, found: tuple, steps: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """Where a central step's error estimate shows truncation far above rounding (32 times its rounding
    term) and above max(1e-5, sqrt(eps)) of the estimate and of the one-sided slopes (so not at a
    minimum, where the gradient is ~0 and the slopes are not)."""
    if method != "central":
        return np.zeros(ev.layout.n, bool)
    gradient, error, rows = found[:3]
    forward, backward, _ = _slopes(ev.f0, rows[0], rows[1], steps)
    scale = np.fmax(np.abs(gradient), np.fmax(np.abs(forward), np.abs(backward)))
    with np.errstate(invalid="ignore"):
        return (error > _LONG_STEP * rounding) \
            & (error > np.fmax(_LONG_RTOL, np.sqrt(ev.layout.eps)) * scale)


def _trusted(gradient: np.ndarray, error: np.ndarray, rounding: np.ndarray, rtol: float) -> np.ndarray:
    """Whether an estimate's error estimate is within ``rtol`` of it, or mostly its ``rounding`` term."""
    with np.errstate(invalid="ignore"):
        return error <= rtol * np.abs(gradient) + _RETRY_ROUNDING * rounding


def _extrapolated(findings: _Findings, again: np.ndarray, retried: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Whether a central estimate at a step 16 times shorter lands where the estimates at h and h / 4 point,
    as truncation would have it (h² falls 16-fold from h to h / 4): rounding hidden inside f does not."""
    coarse, fine = findings.coarse[again], findings.fine[again]
    with np.errstate(invalid="ignore"):
        return np.abs(retried - (fine + (fine - coarse) / 15)) <= np.abs(coarse - fine) / 4 + error


def _compared(part: _Part, gradient: np.ndarray, error: np.ndarray, retry: tuple) -> tuple:
    """Whether a retry's estimate agrees with the longer step's within both error estimates (the retry
    settled), and whether its error estimate is lower. A retry over which f did not change at all is
    not sound: its step is below the rounding inside f, whatever |f| suggests."""
    retried, after, rows, findings = retry[0], retry[1], retry[2], retry[4]
    with np.errstate(invalid="ignore"):
        sound = np.isfinite(retried) & np.isfinite(after) & ~findings.unresolved & ~findings.kinks \
            & np.any(rows != part.f0, axis=0)
        return sound & (np.abs(retried - gradient) <= error + after), sound & (after < error)


def _merged(found: tuple, retry: tuple, where: np.ndarray, taken: np.ndarray) -> tuple:
    """:func:`_differences`' ``found`` for all elements with the ``taken`` entries of ``retry``, a retry of
    some of them, put at the elements ``where``."""
    def put(whole: Optional[np.ndarray], part: Optional[np.ndarray]) -> Optional[np.ndarray]:
        if whole is None:
            return None
        whole = whole.copy()
        whole[..., where] = part[..., taken]
        return whole

    findings = _Findings(*(put(getattr(found[4], f.name), getattr(retry[4], f.name)) for f in fields(_Findings)))
    return (*(put(whole, part) for whole, part in zip(found[:4], retry[:4])), findings)


class _Part:
    """An evaluator seen through some elements of x (``elements``): what :func:`_differences` needs of it."""

    def __init__(self, ev: _Evaluator, elements: np.ndarray):
        self.f0 = ev.f0
        self.layout = _PartLayout(ev.layout, elements)
        self._ev, self._elements = ev, elements

    def values(self, idx: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return self._ev.values(self._elements[idx], delta)


class _PartLayout:
    """The size, dtype epsilons and labels of some elements of a :class:`_Layout`."""

    def __init__(self, layout: _Layout, elements: np.ndarray):
        self.n, self.eps = elements.size, layout.eps[elements]
        self._layout, self._elements = layout, elements

    def label(self, i: int) -> str:
        return self._layout.label(self._elements[i])


def _rounding_of(ev: Any, rows: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The rounding term of the error estimates (see :class:`FDResult`), from the values f took."""
    with np.errstate(invalid="ignore"):
        return _rounding(ev.layout.eps, np.fmax(abs(ev.f0), np.nanmax(np.abs(rows), axis=0)), steps, _ROUNDING)


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
    """The method's estimate per element, Richardson's error estimate (else None), and the rows
    ``f(x + h), f(x - h), f(x + h/2), f(x - h/2), ...`` it evaluated, shape (2 * levels, n) (None
    for complex step). ``strict``: a non-finite value the method needs is an error."""
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
    if method == "richardson":
        return (*_richardson(v, steps, ev.f0, ev.layout.eps), v)
    return _formula(method, v[0], v[1], ev.f0, h), None, v


def _formula(method: str, fp: np.ndarray, fm: np.ndarray, f0: float, h: np.ndarray) -> np.ndarray:
    """The method's difference quotient from f(x + h), f(x - h) and f(x) (central for Richardson)."""
    with np.errstate(invalid="ignore", over="ignore"):
        if method == "forward":
            return (fp - f0) / h
        if method == "backward":
            return (f0 - fm) / h
        return (fp - fm) / (2 * h)


def _richardson(v: np.ndarray, steps: np.ndarray, f0: float, eps: np.ndarray) -> tuple:
    """Central differences at h, h/2, h/4 extrapolated to O(h^6). The error estimate adds the
    changes of the last two extrapolation steps (the second is the error of the O(h^4) values,
    an upper bound for a smooth f that also catches a kink between the steps) and the rounding
    the extrapolation weights amplify."""
    d = _formula("central", v[0::2], v[1::2], f0, steps)
    r1 = (4 * d[1:] - d[:-1]) / 3
    r2 = (16 * r1[1] - r1[0]) / 15
    size = np.maximum(abs(f0), np.abs(v).max(axis=0))
    return r2, np.abs(r2 - r1[1]) + np.abs(r1[1] - r1[0]) + _rounding(eps, size, steps[0], _ROUNDING)


def _require_finite(layout: _Layout, values: np.ndarray, delta: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = bad[0]
        step = delta[i]
        offset = f"+ {step.imag:.3g}j" if np.iscomplexobj(step) else f"{'+' if step > 0 else '-'} {abs(step):.3g}"
        raise ValueError(f"f is not finite ({values[i]}) at {layout.label(i)} {offset}"
                         + (f" (and {bad.size - 1} more points)" if bad.size > 1 else "")
                         + "; finite differences need f defined around x (try a smaller h or a one-sided method)")


# --- kinks and convergence ------------------------------------------------------------------------


@dataclass
class _Findings:
    """What :func:`_examine` finds, per element: kinks (``straddled``: those the step straddles, not at
    x), unresolved elements, whether the estimate checked to settle is the method's own (``own``: a
    one-sided one whose other side is undefined) rather than the central one, that estimate at two
    steps (``coarse`` at ``coarse_h``, ``fine`` at ``fine_h``: h and h / 4; NaN where not examined),
    and forward, backward and central differences' error estimate (else None)."""

    kinks: np.ndarray
    straddled: np.ndarray
    unresolved: np.ndarray
    own: np.ndarray
    coarse: np.ndarray
    fine: np.ndarray
    coarse_h: np.ndarray
    fine_h: np.ndarray
    error: Optional[np.ndarray] = None


def _examine(ev: _Evaluator, method: str, rows: np.ndarray, h: np.ndarray) -> _Findings:
    """Elements whose one-sided slopes at h (``rows[:2]``) disagree beyond rounding, and for a one-sided method
    those whose other side is undefined, re-examined at h / 4 for kinks and convergence (see the module)."""
    n, eps, f0 = ev.layout.n, ev.layout.eps, ev.f0
    forward, backward, size = _slopes(f0, rows[0], rows[1], h)
    with np.errstate(invalid="ignore"):
        curvature = forward - backward                                # h f'' for a smooth f
        examined = np.abs(curvature) > _rounding(eps, size, h, _NOISE)
    if method in _ONE_SIDED:
        examined |= ~np.isfinite(curvature)
    idx = np.flatnonzero(examined)
    fine_h = h[idx] / 2 ** _FINE
    fp4, fm4 = _at_level(ev, rows, h, idx, _FINE)
    forward4, backward4, size4 = _slopes(f0, fp4, fm4, fine_h)
    noise4 = _rounding(eps[idx], size4, fine_h, _NOISE)
    found = _Findings(*(np.zeros(n, bool) for _ in range(4)), *(np.full(n, np.nan) for _ in range(4)))
    at_x, straddled = _kink(forward[idx], backward[idx], forward4, backward4, noise4)
    kinks = found.kinks[idx] = at_x | straddled
    found.straddled[idx] = straddled & ~at_x
    if method == "complex":
        return found
    found.coarse_h[idx], found.fine_h[idx] = h[idx], fine_h
    lone = found.own[idx] = ~np.isfinite(curvature[idx])
    coarse = found.coarse[idx] = _judged(method, lone, rows[0][idx], rows[1][idx], f0, h[idx])
    fine = found.fine[idx] = _judged(method, lone, fp4, fm4, f0, fine_h)
    rough, moved = _rough_or_moved((forward[idx], backward[idx]), (forward4, backward4), coarse, fine, noise4)
    check = np.flatnonzero(moved & ~rough & ~kinks)
    fp2, fm2 = _at_level(ev, rows, h, idx[check], _MIDDLE)
    middle = _judged(method, lone[check], fp2, fm2, f0, h[idx[check]] / 2 ** _MIDDLE)
    slow = np.zeros(idx.size, bool)
    slow[check] = _slow(coarse[check], middle, fine[check], np.where(lone[check], 1, 2), noise4[check])
    found.unresolved[idx] = ~kinks & (rough | slow)
    if method != "richardson":
        found.error = _truncation(method, curvature, idx, lone, np.abs(coarse - fine)) \
            + _rounding(eps, size, h, _ROUNDING)
    return found


def _judged(method: str, lone: np.ndarray, fp: np.ndarray, fm: np.ndarray, f0: float, h: np.ndarray) -> np.ndarray:
    """The estimate checked to settle: central differences where both sides are defined (a one-sided
    estimate is the central one plus or minus half the gap, checked with the second difference),
    else (``lone``) the method's own."""
    return np.where(lone, _formula(method, fp, fm, f0, h), _formula("central", fp, fm, f0, h))


def _at_level(ev: _Evaluator, rows: np.ndarray, h: np.ndarray, idx: np.ndarray, level: int) -> tuple:
    """f(x + h / 2**level) and f(x - h / 2**level) at the elements idx: Richardson's rows where they
    exist, else evaluated."""
    if 2 * level < len(rows):
        return rows[2 * level, idx], rows[2 * level + 1, idx]
    step = h[idx] / 2.0 ** level
    values = ev.values(np.concatenate([idx, idx]), np.concatenate([step, -step]))
    return values[:idx.size], values[idx.size:]


def _kink(forward: np.ndarray, backward: np.ndarray, forward4: np.ndarray, backward4: np.ndarray,
          noise4: np.ndarray) -> tuple:
    """Which elements have a kink at x, and which one the step straddles, from their one-sided slopes at h
    and at h / 4 (see the module)."""
    with np.errstate(invalid="ignore"):
        gap = np.abs(forward - backward)
        # A kink at x: each side's slope stays put (a smooth f's moves by 3/8 of the gap).
        at_x = (np.maximum(np.abs(forward4 - forward), np.abs(backward4 - backward)) < gap / 4) \
            & (np.abs(forward4 - backward4) > noise4)
        # A kink the step straddles: at h / 4 both slopes agree, with one side's slope at h.
        middle = (forward4 + backward4) / 2
        straddled = (np.abs(forward4 - backward4) < gap / 8) \
            & (np.minimum(np.abs(forward - middle), np.abs(backward - middle)) < gap / 8) \
            & (gap > _STRADDLE_RTOL * np.maximum(np.abs(forward), np.abs(backward)))
    return at_x, straddled


def _rough_or_moved(slopes: tuple, slopes4: tuple, coarse: np.ndarray, fine: np.ndarray,
                    noise4: np.ndarray) -> tuple:
    """Whether the second difference (forward minus backward slope) fails to shrink like a smooth f's from h to
    h / 4 (fourfold, or faster at an inflection point), and whether the judged estimate moves from ``coarse`` to
    ``fine``: each by more than 10 % of the estimate and the slopes, and than rounding (so that rounding from
    cancellation inside f, which |f| does not show, is not taken for a change)."""
    curvature, curvature4 = slopes[0] - slopes[1], slopes4[0] - slopes4[1]
    with np.errstate(invalid="ignore"):
        scale = np.fmax(np.fmax(np.abs(coarse), np.abs(fine)), np.fmax(np.abs(slopes[0]), np.abs(slopes[1])))
        significant = _SETTLE_RTOL * scale + noise4
        rough = np.abs(curvature4 - curvature / 4) > np.abs(curvature) / 4 + significant
        return rough, ~(np.abs(coarse - fine) <= significant)


def _slow(coarse: np.ndarray, middle: np.ndarray, fine: np.ndarray, order: np.ndarray,
          noise: np.ndarray) -> np.ndarray:
    """Whether an estimate of the given order, at h (``coarse``), h / 2 and h / 4 (``fine``), changes by
    steps that shrink slower than at half its order, grow or turn back beyond rounding: it does not settle."""
    first, second = coarse - middle, middle - fine
    with np.errstate(invalid="ignore"):
        shrinks = (first * second > 0) & (np.abs(second) * 2.0 ** (order / 2) <= np.abs(first))
        return ~(shrinks | (np.abs(second) <= noise))


def _truncation(method: str, curvature: np.ndarray, idx: np.ndarray, lone: np.ndarray,
                change: np.ndarray) -> np.ndarray:
    """The truncation error of forward, backward or central differences (see :class:`FDResult`) from the
    ``change`` of the estimate judged at the elements idx from h to h / 4, where its error shrinks 16-fold
    (central) or 4-fold (``lone`` one-sided); one-sided estimates add half the gap, their h f''/2 term."""
    error = np.abs(curvature) / 2 if method in _ONE_SIDED else np.zeros(curvature.size)
    error[idx] = np.where(lone, 4 / 3 * change, error[idx] + 16 / 15 * change)
    return error


def _slopes(f0: float, fp: np.ndarray, fm: np.ndarray, h: np.ndarray) -> tuple:
    """The forward and backward slopes, and the size of f there (its largest finite value)."""
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.fmax(abs(f0), np.fmax(np.abs(fp), np.abs(fm)))
        return (fp - f0) / h, (f0 - fm) / h, size


def _rounding(eps: np.ndarray, size: np.ndarray, h: np.ndarray, ulps: float) -> np.ndarray:
    """The change rounding in f, taken as ``ulps * eps * size``, can make in a difference quotient of step h."""
    return ulps * eps * size / h


def _kink_error(layout: _Layout, kinks: np.ndarray, f0: float, fp: np.ndarray, fm: np.ndarray,
                h: np.ndarray) -> NonDifferentiableError:
    where = np.flatnonzero(kinks)
    i = where[0]
    more = f" (and {where.size - 1} more elements)" if where.size > 1 else ""
    return NonDifferentiableError(
        f"f is not differentiable at {layout.label(i)}{more}: its slope is {(fp[i] - f0) / h[i]:.6g} to the "
        f"right and {(f0 - fm[i]) / h[i]:.6g} to the left; pass full_output=True to get NaN there and the "
        f"list in .kinks", [layout.element(k) for k in where])


def _unresolved_error(layout: _Layout, method: str, found: _Findings) -> UnresolvedError:
    where = np.flatnonzero(found.unresolved)
    i = where[0]
    more = f" (and {where.size - 1} more elements)" if where.size > 1 else ""
    return UnresolvedError(
        f"finite differences do not settle at {layout.label(i)}={layout.flat[i]:g}{more}: the "
        f"{method if found.own[i] else 'central'} estimate is {found.coarse[i]:.3g} at "
        f"h={found.coarse_h[i]:.3g} and {found.fine[i]:.3g} at h={found.fine_h[i]:.3g}; f changes on a scale "
        f"smaller than the step (a pole, an infinite slope or a steep feature near x): try a smaller h, or pass "
        f"full_output=True to get NaN there and the list in .unresolved", [layout.element(k) for k in where])


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
