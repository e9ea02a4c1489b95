"""Cross-checking gradients: exact (SymPy), finite differences and backpropagation, side by side.

:func:`check` computes the gradient of a loss with respect to every weight by
each method and returns a :class:`~symgrad.report.CheckReport`, one row per
weight element, worst first, judged against the exact value.
:func:`assert_gradients_close` is the pytest form (finite differences against
backprop by default, fast enough for a test suite), and :func:`check_backward`
verifies a hand-written backward pass (a vector-Jacobian product) on plain NumPy.

A method that does not apply to a function (SymPy cannot trace it, complex step
on non-analytic code) is left out of the report with a note saying why; an entry
on a kink passes when backprop lies between the one-sided slopes.

Example:
    >>> import symgrad as sg
    >>> report = sg.check(lambda w, x, y: (w * x - y) ** 2, {"w": 1.0}, {"x": 1.0, "y": 2.0})
    >>> report.ok, report.rows[0].backprop
    (True, -2.0)
"""
from __future__ import annotations

import inspect
import math
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from . import functions as sgf
from .report import METHODS, TITLES, CheckReport, Row, judge
from .tensor import Tensor
from .transforms import value_and_gradients

__all__ = ["check", "assert_gradients_close", "check_backward", "CheckReport", "Row"]

FD_METHODS = ("forward", "backward", "central", "complex", "richardson")
MAX_ASSERT_ROWS = 30          # the AssertionError lists at most this many disagreeing entries
MAX_PRECISE_ROWS = 64         # entries in doubt whose exact value is re-evaluated past float64, at most
PRECISE_KEPT = 1e-3           # float64 rounding of an exact formula allowed for, at most, relative to its value


def check(f: Callable[..., Any], params: Mapping[str, Any], data: Optional[Mapping[str, Any]] = None,
          rtol: Optional[float] = None, atol: Optional[float] = None, fd_method: str = "central", *,
          h: Optional[float] = None, methods: Sequence[str] = METHODS, title: str = "") -> CheckReport:
    """The gradient of ``f(**params, **data)`` by each of ``methods``, compared entry by entry.

    ``f`` is written over the ``sg.*`` functions (so that it runs on SymPy
    symbols, NumPy arrays and tensors alike) and returns a scalar. The exact
    value judges where SymPy can derive it; tolerances come from the dtype and the
    finite-difference scheme (``fd_method``, step ``h``) unless ``rtol``/``atol``
    are given, and the report prints the ones it used.

    Example:
        >>> import symgrad as sg
        >>> r = sg.check(lambda a, b, c, f: (a * b + c) * f, {"a": 2.0, "b": -3.0, "c": 10.0, "f": -2.0})
        >>> [(row.name, row.symbolic, row.verdict) for row in sorted(r.rows, key=lambda row: row.name)]
        [('a', 6.0, 'ok'), ('b', -4.0, 'ok'), ('c', -2.0, 'ok'), ('f', 4.0, 'ok')]
    """
    methods = _methods(methods)
    _fd_method_known(fd_method)
    params = {name: _real_array(f"param {name!r}", value, keep_scalar=True) for name, value in _params(params)}
    data = dict(data or {})
    value, dtype = _loss_value(f, params, data)
    run = _Methods(fd_method, h)
    for method in methods:
        run.gradient(method, f, params, data)
    return run.report({name: np.shape(v) for name, v in params.items()}, rtol=rtol, atol=atol,
                      dtype=_least_precise(dtype, *params.values()), value=value, timings=run.timings, title=title)


def assert_gradients_close(f: Callable[..., Any], params: Mapping[str, Any],
                           data: Optional[Mapping[str, Any]] = None, *, rtol: Optional[float] = None,
                           atol: Optional[float] = None, fd_method: str = "central", h: Optional[float] = None,
                           methods: Sequence[str] = ("finite_diff", "backprop")) -> CheckReport:
    """Raise AssertionError, with the table of the disagreeing entries, unless the gradients agree.

    By default finite differences are compared with backprop (add ``"symbolic"`` to
    ``methods`` for the exact value as judge). The message lists the disagreeing
    entries only, worst first, and says how many agree. Returns the report.

    Example:
        >>> import symgrad as sg, numpy as np
        >>> sg.assert_gradients_close(lambda w: sg.sum(sg.tanh(w) ** 2), {"w": np.linspace(-1, 1, 5)}).ok
        True
    """
    report = check(f, params, data, rtol=rtol, atol=atol, fd_method=fd_method, h=h, methods=methods)
    if not report.ok:
        raise AssertionError(failure_message(report))
    return report


def failure_message(report: CheckReport, limit: int = MAX_ASSERT_ROWS) -> str:
    """The text of the AssertionError: the disagreeing rows (worst first), how many agree, the tolerance.

    Example:
        >>> r = check(lambda w: w ** 2, {"w": 3.0}, methods=("finite_diff", "backprop"))
        >>> failure_message(r).splitlines()[0]
        'gradients agree: all 1 entries'
    """
    failures = report.failures
    agree = len(report.rows) - len(failures)
    if not failures:
        return f"gradients agree: all {len(report.rows)} entries"
    lines = [f"gradients disagree: {len(failures)} of {len(report.rows)} entries differ, {agree} agree",
             report.tolerance_text(), report.to_table(failures[:limit])]
    if len(failures) > limit:
        lines.append(f"... and {len(failures) - limit} more disagreeing entries")
    return "\n".join(lines + report.footer())


def check_backward(forward: Callable[..., Any], backward: Callable[..., Any],
                   inputs: Union[Sequence[Any], Mapping[str, Any], np.ndarray], grad_output: Any = None, *,
                   rtol: Optional[float] = None, atol: Optional[float] = None, fd_method: str = "central",
                   h: Optional[float] = None, exact: bool = True) -> CheckReport:
    """Verify a hand-written backward pass (a vector-Jacobian product) on plain NumPy.

    ``forward(*inputs)`` returns an array; ``backward(grad_output, *inputs)``
    returns one gradient per input (a tuple; None for an input it does not
    differentiate), as ``torch.autograd.Function.backward`` does. Each gradient is
    compared with finite differences of ``sum(grad_output * forward(*inputs))``
    and, where SymPy can trace ``forward``, with the exact derivative. Inputs are
    named after ``forward``'s parameters, so the report names the input and the
    index that disagree; a dict of inputs is keyed by those names and passed in
    ``forward``'s order, whatever the dict's order. ``grad_output`` defaults to
    a fixed random array: all-ones would hide a transposed or mis-summed gradient.

    Example:
        >>> import numpy as np
        >>> def mse(pred, target): return ((pred - target) ** 2).mean()
        >>> def mse_backward(g, pred, target): return 2 * g * (pred - target) / pred.size, None
        >>> check_backward(mse, mse_backward, (np.array([1.0, 2.0]), np.array([0.0, 4.0]))).ok
        True
    """
    _fd_method_known(fd_method)
    names, values = _named_inputs(forward, inputs)
    arrays = [_real_array(f"input {name!r}", v) for name, v in zip(names, values)]
    out = np.asarray(forward(*arrays))
    g = _grad_output(grad_output, out)

    def inner(**values: Any) -> Any:
        """<grad_output, forward(inputs)>: its gradient is what backward must return."""
        return sgf.sum(g * forward(*(values[n] for n in names)))

    arrays_by_name = dict(zip(names, arrays))
    value, dtype = _loss_value(inner, arrays_by_name, {})
    start = time.perf_counter()
    returned = backward(g, *arrays)
    spent = time.perf_counter() - start
    returned = tuple(returned) if isinstance(returned, (tuple, list)) else (returned,)
    if len(returned) != len(names):
        raise ValueError(f"backward returned {len(returned)} gradient(s) for {len(names)} input(s) "
                         f"({', '.join(names)}): return one per input, None for an input it does not differentiate")
    tested = {n: gr for n, gr in zip(names, returned) if gr is not None}
    if not tested:
        raise ValueError("backward returned None for every input: there is nothing to check")
    checked = {n: arrays_by_name[n] for n in tested}
    others = {n: v for n, v in arrays_by_name.items() if n not in checked}
    run = _Methods(fd_method, h)
    run.notes += [f"backward returns None for {n}: not checked" for n in others]
    for method in ("symbolic", "finite_diff") if exact else ("finite_diff",):
        run.gradient(method, inner, checked, others)
    run.gradients["backprop"], run.timings["backprop"] = tested, spent
    return run.report({n: np.shape(v) for n, v in checked.items()}, rtol=rtol, atol=atol,
                      dtype=_least_precise(dtype, *checked.values()), value=value,
                      timings={m: run.timings[m] for m in METHODS if m in run.timings},
                 title=f"check_backward of {getattr(backward, '__name__', 'backward')} "
                       f"(grad_output of shape {out.shape})", labels={**TITLES, "backprop": "backward"})


# --- the three methods ------------------------------------------------------------------------------------


class _NotApplicable(Exception):
    """A method cannot compute this gradient; the message says why."""


class _Methods:
    """Runs the methods one by one, collecting gradients, timings, kinks and notes (never raising for a method
    that does not apply), then judges them. ``one_sided`` holds the (left, right) slopes at the kinks; ``smooth``
    whether the exact value comes from a loss without non-smooth functions; ``precise`` re-evaluates exact
    partials past float64 (see :class:`symgrad.exact.Exact`)."""

    def __init__(self, fd_method: str, h: Optional[float]):
        self.fd_method, self.h = fd_method, h
        self.gradients: dict = {}
        self.timings: dict = {}
        self.kinks: dict = {}
        self.fd_error: dict = {}
        self.one_sided: dict = {}
        self.smooth = False
        self.precise: Optional[Callable[[list], list]] = None
        self.notes: list = []

    def report(self, shapes: dict, **fields: Any) -> CheckReport:
        """The judged report. With the default step and tolerances, those of the comparisons with finite
        differences include the finite differences' own error estimate (capped: see :func:`judge`).

        The exact value is evaluated again with 30 digits where it is in doubt: where an entry fails, and where
        finite differences gave no value to confirm it (they did not settle). Where its float64 evaluation was
        off, the entry is judged against the precise value; if float64 kept at least three digits of it, twice
        the formula's float64 rounding is allowed (any float64 computation of that derivative, backprop
        included, can be expected to round as much), else nothing is, and the entry fails: float64 cannot
        resolve that derivative there."""
        chosen = self.h is not None or fields.get("rtol") is not None or fields.get("atol") is not None
        settings = dict(fd_method=self.fd_method, kinks=self.kinks, one_sided=self.one_sided, smooth=self.smooth,
                        fd_error=None if chosen else self.fd_error)
        report = judge(self.gradients, shapes, notes=self.notes, **settings, **fields)
        doubtful = [r for r in report.rows if r.symbolic is not None and math.isfinite(r.symbolic)
                    and (not r.ok or (r.finite_diff is not None and math.isnan(r.finite_diff)))][:MAX_PRECISE_ROWS]
        if not doubtful or self.precise is None:
            return report
        exact = {n: np.array(g, dtype=np.float64) for n, g in self.gradients["symbolic"].items()}
        slack = {n: np.zeros(shapes[n]) for n in shapes}
        lossy, lost = [], []
        for row, precise in zip(doubtful, self.precise([(r.name, r.index) for r in doubtful])):
            if math.isfinite(precise) and precise != row.symbolic:
                rounding = abs(precise - row.symbolic)
                exact[row.name][row.index] = precise
                if rounding <= PRECISE_KEPT * abs(precise):
                    slack[row.name][row.index] = 2 * rounding
                    lossy.append(f"{row.element} ({rounding:.2g})")
                else:
                    lost.append(f"{row.element} (float64 {row.symbolic:.6g}, 30 digits {precise:.6g})")
        notes = list(self.notes)
        if lossy:
            notes.append(f"the exact formula loses digits to rounding in float64 at {_listed(lossy)}: judged there "
                         f"against its value to 30 digits, allowing twice that rounding")
        if lost:
            notes.append(f"float64 cannot resolve the exact derivative at {_listed(lost)}: judged there against its "
                         f"value to 30 digits, with no allowance")
        if not (lossy or lost):
            return report
        return judge({**self.gradients, "symbolic": exact}, shapes, notes=notes, slack=slack, **settings, **fields)

    def gradient(self, method: str, f: Callable[..., Any], params: dict, data: dict) -> None:
        """The gradient of ``f(**params, **data)`` by ``method``, or a note saying why it does not apply."""
        start = time.perf_counter()
        try:
            if method == "symbolic":
                self.gradients[method], self.smooth, self.precise = _exact_gradient(f, params, data, self.notes)
            elif method == "finite_diff":
                self.gradients[method], self.fd_error, self.kinks, self.one_sided, self.fd_method = _fd_gradient(
                    lambda **p: f(**p, **data), params, self.fd_method, self.h, self.notes)
            else:
                self.gradients[method] = value_and_gradients(f, params, data)[1]
        except _NotApplicable as err:
            self.notes.append(f"{TITLES[method]} does not apply: {err}")
            return
        self.timings[method] = time.perf_counter() - start


def _exact_gradient(f: Callable[..., Any], params: dict, data: dict, notes: list) -> tuple:
    """The exact gradient from SymPy's partial derivatives (see :mod:`symgrad.exact`) in float64, whether the
    loss is smooth, and the function evaluating partials past float64 (or None)."""
    try:
        from .exact import exact_derivation  # noqa: PLC0415  (loads SymPy)

        gradient, how, smooth, precise = exact_derivation(f, params, data)
    except ImportError as err:
        raise _NotApplicable(f"the symbolic engine is not available ({err})") from None
    except Exception as err:  # noqa: BLE001  (any failure to trace means: no exact value, said in the report)
        raise _NotApplicable(f"SymPy cannot trace the function: {_first_line(err)}") from None
    if how != "derived whole":
        notes.append(f"exact value {how}")
    return gradient, smooth, precise


def _fd_gradient(f: Callable[..., Any], params: dict, fd_method: str, h: Optional[float], notes: list) -> tuple:
    """Finite differences of ``f(**params)``: (gradient, its error estimate (empty for complex step), kink
    masks, (left, right) slopes at the kinks (NaN elsewhere, shape ``(*shape, 2)``), the scheme actually used).
    Where they do not settle (``FDResult.unresolved``) the gradient is NaN and a note says so.

    Complex step needs code that carries the imaginary part through; where it
    does not (a TypeError from :func:`~symgrad.fd_gradient`), central differences
    are used instead and a note says why.
    """
    from .finite_diff import fd_gradient  # noqa: PLC0415

    try:
        result = fd_gradient(f, params, method=fd_method, h=h, full_output=True)
    except TypeError as err:
        if fd_method != "complex":
            raise _NotApplicable(f"{fd_method} differences failed: {_first_line(err)}") from None
        notes.append(f"complex step does not apply ({_first_line(err)}); central differences used instead")
        return _fd_gradient(f, params, "central", h, notes)
    except Exception as err:  # noqa: BLE001  (reported, not raised: the other methods still run)
        raise _NotApplicable(f"{fd_method} differences failed: {_first_line(err)}") from None
    gradient = {n: np.asarray(result.gradient[n], dtype=np.float64) for n in params}
    error = {} if result.error is None else {n: np.asarray(result.error[n], dtype=np.float64) for n in params}
    kinks = {}
    for element in result.kinks:
        name, index = _name_and_index(element, params)
        kinks.setdefault(name, np.zeros(np.shape(params[name]), dtype=bool))[index] = True
    one_sided = {}
    for element, slopes in result.one_sided.items():
        name, index = _name_and_index(element, params)
        one_sided.setdefault(name, np.full((*np.shape(params[name]), 2), np.nan))[index] = slopes
    if result.kinks:
        notes.append(f"not differentiable at {_listed(result.kinks)}: the one-sided differences disagree (a kink); "
                     f"those entries pass where backprop lies between the one-sided slopes")
    if result.unresolved:
        notes.append(f"finite differences do not settle at {_listed(result.unresolved)}: f changes on a scale "
                     f"smaller than the step there (a pole or a steep feature nearby); not compared there")
    return gradient, error, kinks, one_sided, fd_method


def _listed(elements: list, limit: int = 10) -> str:
    return ", ".join(str(e) for e in elements[:limit]) + (" ..." if len(elements) > limit else "")


def _name_and_index(element: str, params: dict) -> tuple:
    """``"w[0, 1]"`` -> ``("w", (0, 1))``: the weight and index of an element name of :func:`symgrad.fd_gradient`
    (``params`` tells a scalar weight's name from an element's).

    Example:
        >>> _name_and_index("w[0, 1]", {"w": np.zeros((2, 2))}), _name_and_index("b", {"b": 0.0})
        (('w', (0, 1)), ('b', ()))
    """
    if element in params:
        return element, ()
    name, _, index = element.partition("[")
    return name, tuple(int(i) for i in index.rstrip("]").split(","))


# --- inputs -------------------------------------------------------------------------------------------------


def _methods(methods: Sequence[str]) -> tuple:
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method {unknown[0]!r}; choose among {', '.join(METHODS)}" if unknown
                         else "methods is empty: choose among " + ", ".join(METHODS))
    return tuple(m for m in METHODS if m in methods)


def _fd_method_known(fd_method: str) -> None:
    if fd_method not in FD_METHODS:
        raise ValueError(f"unknown finite-difference method {fd_method!r}; choose one of {', '.join(FD_METHODS)}")


def _params(params: Mapping[str, Any]) -> list:
    """The (name, value) pairs of the weights: a non-empty dict, tensors unwrapped."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of name -> number or array, not {type(params).__name__}")
    if not params:
        raise ValueError("params is empty: there is no weight to differentiate")
    pairs = [(name, value.data if isinstance(value, Tensor) else value) for name, value in params.items()]
    empty = [name for name, value in pairs if np.size(value) == 0]
    if empty:
        raise ValueError(f"param {empty[0]!r} is an empty array: there is no weight to differentiate in it")
    return pairs


def _real_array(what: str, value: Any, keep_scalar: bool = False) -> Any:
    """``value`` as a finite real array (ints become float64; a Python number stays a float if ``keep_scalar``)."""
    array = np.asarray(value)
    if array.dtype.kind in "iub":
        array = array.astype(np.float64)
    if array.dtype.kind != "f":
        raise TypeError(f"{what} must be a real number or array, not {array.dtype} ({type(value).__name__})")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinity")
    return float(array) if keep_scalar and isinstance(value, (int, float)) else array


def _loss_value(f: Callable[..., Any], params: dict, data: dict) -> tuple:
    """``f`` on plain NumPy: its scalar value and the dtype it was computed in (a NaN value is an error)."""
    with np.errstate(all="ignore"):             # a NaN is reported below; an overflow shows in the report
        out = f(**params, **data)
    out = out.data if isinstance(out, Tensor) else out
    array = np.asarray(out)
    if array.size != 1:
        raise ValueError(f"the loss must return a scalar; it returned shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise TypeError(f"the loss must return a real number, not {array.dtype}")
    value = float(array.reshape(()))
    if np.isnan(value):
        raise ValueError("the loss is nan at this point (outside its domain?): there is no gradient to check there")
    return value, array.dtype if array.dtype.kind == "f" else np.dtype(np.float64)


def _least_precise(dtype: np.dtype, *arrays: Any) -> np.dtype:
    """The least precise float dtype among ``dtype`` (the loss's) and those of ``arrays`` (the weights'): finite
    differences step by each weight's precision, so the tolerances follow the coarsest.

    Example:
        >>> _least_precise(np.dtype(np.float64), np.ones(2, np.float32), 1.0)
        dtype('float32')
    """
    dtypes = [np.dtype(dtype)] + [np.asarray(a).dtype for a in arrays if np.asarray(a).dtype.kind == "f"]
    return max(dtypes, key=lambda d: np.finfo(d).eps)


def _named_inputs(forward: Callable[..., Any], inputs: Any) -> tuple:
    """The names and values of the inputs, in the order ``forward`` takes them.

    A dict keyed by ``forward``'s parameter names is put in their order; a dict keyed by other labels is
    taken in its own order. Other inputs are named after ``forward``'s parameters (``input0``, ``input1``...
    when it does not name them).

    Example:
        >>> _named_inputs(lambda a, b: a * b, {"b": 2.0, "a": 1.0})
        (['a', 'b'], [1.0, 2.0])
        >>> _named_inputs(lambda a, b: a * b, {"left": 1.0, "right": 2.0})
        (['left', 'right'], [1.0, 2.0])
    """
    if isinstance(inputs, Mapping):
        names = _parameter_names(forward, len(inputs)) or []
        if set(names) != set(inputs):
            if set(names) & set(inputs):
                raise ValueError(f"the inputs are named {', '.join(map(str, inputs))} and forward takes "
                                 f"({', '.join(names)}): key them all by forward's parameter names, or by other "
                                 "labels in forward's order")
            names = list(inputs)
        values = [inputs[name] for name in names]
    else:
        values = [inputs] if isinstance(inputs, np.ndarray) or np.isscalar(inputs) else list(inputs)
        names = _parameter_names(forward, len(values)) or [f"input{i}" for i in range(len(values))]
    if not values:
        raise ValueError("inputs is empty: give the arrays forward is called with")
    return names, values


def _parameter_names(forward: Callable[..., Any], count: int) -> Optional[list]:
    """The names of ``forward``'s first ``count`` positional parameters; None when it does not name that many."""
    try:
        parameters = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional[:count] if len(positional) >= count else None


def _grad_output(grad_output: Any, out: np.ndarray) -> Any:
    """The cotangent: the one given (checked against the output's shape) or a fixed random one."""
    dtype = out.dtype if out.dtype.kind == "f" else np.float64
    if grad_output is None:
        g = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
    else:
        g = np.asarray(grad_output, dtype=dtype)
        if g.shape != out.shape:
            raise ValueError(f"grad_output has shape {g.shape} but forward returns shape {out.shape}")
    return g.item() if g.ndim == 0 and dtype == np.float64 else g


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
