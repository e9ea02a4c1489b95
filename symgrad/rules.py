"""The derivative table: every primitive's forward and its vector-Jacobian products.

Each entry reads like a line of a calculus book::

    tanh:  y = tanh(x)        dx = g * (1 - y**2)

A rule is ``defrule(name, forward, vjp_0, vjp_1, ...)`` with one VJP per input.
A VJP has the signature ``vjp(g, out, *inputs, **params)``: ``g`` is the gradient
flowing into the output ``out`` and the result is the gradient for that input,
possibly still broadcast (the engine undoes broadcasting once, in
:func:`unbroadcast`). ``None`` marks an input that is not differentiable (a
condition, integer labels). A rule may also declare a ``check`` of the values of
some of its inputs (``check_reads``: cross-entropy's labels must name a class),
which a compiled replay runs before the forward when those inputs can change, and
which values its VJPs ``reads`` ("out" and input positions; undeclared: all of
them), so that a compiled replay may write the result of a NumPy ``ufunc`` over an
input that nothing reads any more. A *variadic* rule (concatenate, stack) has a
single VJP that also receives the position ``i`` of the input it differentiates. A rule
that *saves* returns ``(out, saved)`` from its forward, and ``saved`` (say the
exponentials of cross-entropy) reaches its VJPs after the inputs, so that the
backward pass does not compute it again.

The forwards work on NumPy and CuPy arrays alike (ufuncs and array methods), and
on complex arrays too, so that complex-step differentiation runs through every
function: the non-analytic ones (``abs``, ``relu``, ``max``...) compare real parts.

Example:
    >>> import numpy as np
    >>> rule = RULES["tanh"]
    >>> x = np.array([0.0, 1.0])
    >>> y = rule.forward(x)
    >>> rule.vjps[0](np.ones(2), y, x)
    array([1.        , 0.41997434])
"""
from __future__ import annotations

import math
import operator
from functools import partial
from typing import Any, Callable, Optional

import numpy as np

from . import backend

__all__ = ["Rule", "RULES", "defrule", "unbroadcast", "broadcast_axes", "check_label_range"]


class Rule:
    """One primitive: its name, its forward function and one VJP per input.

    Example:
        >>> rule = RULES["mul"]
        >>> rule.name, rule.run(2.0, 3.0)
        ('mul', (6.0, (2.0, 3.0)))
    """

    __slots__ = ("name", "forward", "vjps", "saves", "check", "check_reads", "reads", "ufunc", "freed")

    def __init__(self, name: str, forward: Callable, vjps: tuple, variadic: bool = False, saves: bool = False,
                 check: Optional[Callable] = None, check_reads: Optional[set] = None, reads: Optional[set] = None,
                 ufunc: Optional[np.ufunc] = None):
        self.name = name
        self.forward = forward
        self.vjps = _Positional(vjps[0]) if variadic else vjps
        self.saves = saves
        self.check = check
        self.check_reads = None if check_reads is None else frozenset(check_reads)
        self.reads = None if reads is None else frozenset(reads)
        self.ufunc = ufunc if ufunc is not None or not isinstance(forward, np.ufunc) else forward
        self.freed = (self,)              # what a recorded node becomes once backward has used it

    def run(self, *inputs: Any, **params: Any) -> tuple:
        """``(out, vjp_inputs)``: the forward's result and the inputs its VJPs take after ``g, out``."""
        out = self.forward(*inputs, **params)
        if self.saves:
            out, saved = out
            return out, inputs + (saved,)
        return out, inputs

    def __repr__(self) -> str:
        return f"Rule({self.name!r})"


class _Positional:
    """The VJPs of a variadic rule: ``vjps[i]`` is its one VJP with the position ``i`` bound."""

    __slots__ = ("vjp",)

    def __init__(self, vjp: Callable):
        self.vjp = vjp

    def __getitem__(self, i: int) -> Callable:
        return partial(self.vjp, i)


RULES: dict[str, Rule] = {}


def defrule(name: str, forward: Callable, *vjps: Optional[Callable], variadic: bool = False,
            saves: bool = False, check: Optional[Callable] = None, check_reads: Optional[set] = None,
            reads: Optional[set] = None, ufunc: Optional[np.ufunc] = None) -> Rule:
    """Declare a primitive: its forward and the VJP of each input, side by side.

    Example:
        >>> r = defrule("square_demo", lambda x: x * x, lambda g, out, x: 2 * g * x)
        >>> r.vjps[0](1.0, 9.0, 3.0)
        6.0
        >>> del RULES["square_demo"]
    """
    rule = Rule(name, forward, vjps, variadic, saves, check, check_reads, reads, ufunc)
    RULES[name] = rule
    return rule


def unbroadcast(grad: Any, shape: tuple) -> Any:
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting.

    Example:
        >>> unbroadcast(np.ones((2, 3, 4)), (3, 1)).tolist()
        [[8.0], [8.0], [8.0]]
    """
    grad_shape = grad.shape if hasattr(grad, "shape") else np.shape(grad)
    if grad_shape == shape:
        return grad
    lead, kept = broadcast_axes(grad_shape, shape)
    if lead:
        grad = grad.sum(axis=lead)        # a fresh array: no view to copy
    if kept:
        grad = grad.sum(axis=kept, keepdims=True)
    return grad


def broadcast_axes(broadcast: tuple, shape: tuple) -> tuple:
    """``(lead, kept)``: the axes of an array of shape ``broadcast`` that :func:`unbroadcast` sums to
    reach ``shape``, first the leading ones that ``shape`` lacks, then (after those are gone) the
    ones where ``shape`` has 1 and ``broadcast`` does not.

    Example:
        >>> broadcast_axes((2, 3, 4), (3, 1))
        ((0,), (1,))
    """
    lead = len(broadcast) - len(shape)
    kept = tuple(i for i, n in enumerate(shape) if n == 1 and broadcast[lead + i] != 1) if 1 in shape else ()
    return tuple(range(lead)), kept


# --- helpers shared by several rules -------------------------------------------


def _is_complex(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)           # np.iscomplexobj is a Python-level wrapper: too slow per op
    return isinstance(x, complex) if dtype is None else dtype.kind == "c"


def _real(x: Any) -> Any:
    return x.real if _is_complex(x) else x


def _normalize_axis(axis: Any, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(a) % ndim if ndim else 0 for a in axes)


def _expand(g: Any, shape: tuple, axis: Any, keepdims: bool) -> Any:
    """Broadcast the gradient of a reduction back to the input's shape."""
    if not keepdims and len(shape):
        g = g.reshape([1 if i in _normalize_axis(axis, len(shape)) else n for i, n in enumerate(shape)])
    return backend.xp_of(g).broadcast_to(g, shape)


def _count(x: Any, out: Any) -> int:
    return max(np.size(x) // max(np.size(out), 1), 1)


def _shifted(x: Any, axis: int) -> Any:
    """x minus its largest entry (by real part) along ``axis``: exp of the result cannot overflow."""
    real = x.real if x.dtype.kind == "c" else x
    if type(real) is np.ndarray and real.ndim == 2 and axis in (-1, 1):
        # NumPy's max along a short last axis is slow (10 µs for 128 rows of 10 float32); argmax is not
        # (and as max, it takes a row's first NaN): this takes half the time or less
        return x - real[_row_numbers(real), real.argmax(axis=1)][:, None]
    return x - real.max(axis=axis, keepdims=True)


_ROW_NUMBERS: dict = {}


def _row_numbers(x: Any) -> Any:
    """``arange(len(x))`` on the device of ``x``: the row index of a fancy index that picks one entry per
    row. NumPy's are made once per length and read-only."""
    if type(x) is not np.ndarray:
        return backend.xp_of(x).arange(x.shape[0])
    rows = _ROW_NUMBERS.get(x.shape[0])
    if rows is None:
        if len(_ROW_NUMBERS) >= 16:
            _ROW_NUMBERS.clear()
        rows = _ROW_NUMBERS[x.shape[0]] = np.arange(x.shape[0])
        rows.flags.writeable = False
    return rows


def _log_softmax(x: Any, axis: int = -1) -> Any:
    s = _shifted(x, axis)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def _softmax(x: Any, axis: int = -1) -> Any:
    e = np.exp(_shifted(x, axis))
    return e / e.sum(axis=axis, keepdims=True)


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: Any) -> None:
    """Raise ValueError unless ``reduction`` is one of :data:`REDUCTIONS` (the losses' reductions).

    Example:
        >>> check_reduction("mean")
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def _reduce(values: Any, reduction: str) -> Any:
    if reduction == "mean":
        return values.sum() / values.size         # as values.mean() (nan for none), without its Python wrapper
    if reduction == "sum":
        return values.sum()
    check_reduction(reduction)
    return values


def _reduction_scale(g: Any, shape: tuple, reduction: str) -> Any:
    """The gradient of each element of a reduced loss, broadcast to ``shape``."""
    if reduction == "mean":
        return g / max(math.prod(shape), 1)
    return g


def _row_gradient(g: Any, total: Any, reduction: str) -> Any:
    """The gradient reaching each row's loss of cross-entropy, ready to broadcast over the classes
    (``total`` has one entry per row: the shape of the logits with 1 class)."""
    g = _reduction_scale(g, total.shape, reduction)
    return g[..., None] if reduction == "none" else g


# --- arithmetic -------------------------------------------------------------------

defrule("add", operator.add,
        lambda g, out, a, b: g,
        lambda g, out, a, b: g, reads=set(), ufunc=np.add)
defrule("sub", operator.sub,
        lambda g, out, a, b: g,
        lambda g, out, a, b: -g, reads=set(), ufunc=np.subtract)
defrule("mul", operator.mul,
        lambda g, out, a, b: g * b,
        lambda g, out, a, b: g * a, reads={0, 1}, ufunc=np.multiply)
defrule("div", operator.truediv,
        lambda g, out, a, b: g / b,
        lambda g, out, a, b: -g * out / b, reads={1, "out"}, ufunc=np.true_divide)
defrule("neg", operator.neg,
        lambda g, out, a: -g, reads=set(), ufunc=np.negative)


def _pow_exponent_vjp(g: Any, out: Any, a: Any, b: Any) -> Any:
    # d(a**b)/db = a**b * log(a); taken as 0 where a == 0 (the limit for b > 0).
    a = backend.xp_of(out).asarray(a, dtype=out.dtype)   # a Python base must not upcast float32
    safe = np.where(a == 0, 1, a)
    return g * np.where(a == 0, 0, out * np.log(safe))


def _pow_base_vjp(g: Any, out: Any, a: Any, b: Any) -> Any:
    # d(a**b)/da = b * a**(b-1); 0 where b == 0 (a**0 is constant, also at a = 0, where a**-1 is inf).
    if not hasattr(b, "shape"):           # a Python number, as in the common x**2
        return g * b * a ** (b - 1) if b != 0 else g * 0
    nonzero = b != 0
    return g * np.where(nonzero, b * a ** np.where(nonzero, b - 1, 1), 0)


defrule("pow", operator.pow, _pow_base_vjp, _pow_exponent_vjp)


def _matmul_vjp_a(g: Any, out: Any, a: Any, b: Any) -> Any:
    if b.ndim == 1:                       # (..., n) @ (n,) -> (...)
        return g[..., None] * b
    if a.ndim == 1:                       # (n,) @ (..., n, m) -> (..., m)
        return (b @ g[..., None])[..., 0]
    return g @ b.swapaxes(-1, -2)


def _matmul_vjp_b(g: Any, out: Any, a: Any, b: Any) -> Any:
    if b.ndim == 1:
        if a.ndim == 1:
            return g * a
        return (a.swapaxes(-1, -2) @ g[..., None])[..., 0]
    if a.ndim == 1:
        return a[:, None] * g[..., None, :]
    return a.swapaxes(-1, -2) @ g


defrule("matmul", operator.matmul, _matmul_vjp_a, _matmul_vjp_b, reads={0, 1})


def _maximum(a: Any, b: Any) -> Any:
    if _is_complex(a) or _is_complex(b):
        return np.where(_real(a) >= _real(b), a, b)
    return np.maximum(a, b)


def _minimum(a: Any, b: Any) -> Any:
    if _is_complex(a) or _is_complex(b):
        return np.where(_real(a) <= _real(b), a, b)
    return np.minimum(a, b)


def _tie_share(g: Any, wins: Any, ties: Any) -> Any:
    """g where this side wins, g/2 on a tie (the average of the one-sided slopes)."""
    return np.where(wins, g, np.where(ties, g * 0.5, 0))


defrule("maximum", _maximum,
        lambda g, out, a, b: _tie_share(g, a > b, a == b),
        lambda g, out, a, b: _tie_share(g, b > a, a == b))
defrule("minimum", _minimum,
        lambda g, out, a, b: _tie_share(g, a < b, a == b),
        lambda g, out, a, b: _tie_share(g, b < a, a == b))
defrule("where", lambda c, a, b: np.where(c, a, b),
        None,
        lambda g, out, c, a, b: np.where(c, g, 0),
        lambda g, out, c, a, b: np.where(c, 0, g))

# --- elementwise functions -----------------------------------------------------------


def _sigmoid(x: Any) -> Any:
    if _is_complex(x):
        return 1 / (1 + np.exp(-x))
    e = np.exp(-np.abs(x))                # never overflows
    return np.where(x >= 0, 1, e) / (1 + e)


def _relu(x: Any) -> Any:
    if _is_complex(x):
        return np.where(x.real > 0, x, 0)
    return np.maximum(x, 0)


def _abs(x: Any) -> Any:
    if _is_complex(x):                    # the analytic continuation of |x| off the real axis
        return x * np.sign(x.real)
    return np.abs(x)


defrule("exp", np.exp, lambda g, out, x: g * out, reads={"out"})
defrule("log", np.log, lambda g, out, x: g / x, reads={0})
def _tanh_vjp(g: Any, out: Any, x: Any) -> Any:
    d = out * out                         # g * (1 - out**2), with a single temporary when d is an array
    if type(d) is not np.ndarray or d.shape != np.shape(g) or d.dtype != g.dtype:
        return g * (1 - d)
    np.subtract(1, d, out=d)
    return np.multiply(g, d, out=d)


defrule("tanh", np.tanh, _tanh_vjp, reads={"out"})
defrule("sigmoid", _sigmoid, lambda g, out, x: g * out * (1 - out), reads={"out"})
defrule("relu", _relu, lambda g, out, x: np.where(x > 0, g, 0))
defrule("sin", np.sin, lambda g, out, x: g * np.cos(x), reads={0})
defrule("cos", np.cos, lambda g, out, x: -g * np.sin(x), reads={0})
defrule("sqrt", np.sqrt, lambda g, out, x: g / (2 * out), reads={"out"})
defrule("abs", _abs, lambda g, out, x: g * np.sign(x))

# --- reductions ---------------------------------------------------------------------


def _max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    if _is_complex(x):                    # average of the entries whose real part is largest
        hit = x.real == x.real.max(axis=axis, keepdims=True)
        return np.where(hit, x, 0).sum(axis=axis, keepdims=keepdims) / hit.sum(axis=axis, keepdims=keepdims)
    return x.max(axis=axis, keepdims=keepdims)


def _max_vjp(g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    hit = x == _expand(out, x.shape, axis, keepdims)   # ties share the gradient equally
    share = hit / hit.sum(axis=axis, keepdims=True)
    return (_expand(g, x.shape, axis, keepdims) * share).astype(g.dtype, copy=False)


defrule("sum", lambda x, axis=None, keepdims=False: x.sum(axis=axis, keepdims=keepdims),
        lambda g, out, x, axis=None, keepdims=False: _expand(g, x.shape, axis, keepdims), reads=set())
defrule("mean", lambda x, axis=None, keepdims=False: x.mean(axis=axis, keepdims=keepdims),
        lambda g, out, x, axis=None, keepdims=False: _expand(g / _count(x, out), x.shape, axis, keepdims),
        reads=set())
defrule("max", _max, _max_vjp)

# --- shapes and indexing --------------------------------------------------------------


def _getitem_vjp(g: Any, out: Any, x: Any, index: Any = None) -> Any:
    xp = backend.xp_of(g)
    grad = xp.zeros(x.shape, dtype=g.dtype)
    xp.add.at(grad, index, g)                       # repeated indices accumulate (CuPy: since 12)
    return grad


def _transpose_vjp(g: Any, out: Any, x: Any, axes: Any = None) -> Any:
    return g.transpose() if axes is None else g.transpose(tuple(np.argsort([a % x.ndim for a in axes])))


defrule("reshape", lambda x, shape=None: x.reshape(shape),
        lambda g, out, x, shape=None: g.reshape(x.shape))
defrule("transpose", lambda x, axes=None: x.transpose(axes), _transpose_vjp)
defrule("getitem", lambda x, index=None: x[index], _getitem_vjp)


def _concatenate_vjp(i: int, g: Any, out: Any, *inputs: Any, axis: Optional[int] = 0) -> Any:
    if axis is None:                      # NumPy's axis=None joins the flattened arrays
        start = sum(np.size(x) for x in inputs[:i])
        return g[start:start + np.size(inputs[i])].reshape(np.shape(inputs[i]))
    axis = axis % g.ndim
    start = sum(x.shape[axis] for x in inputs[:i])
    index = (slice(None),) * axis + (slice(start, start + inputs[i].shape[axis]),)
    return g[index]


def _stack_vjp(i: int, g: Any, out: Any, *inputs: Any, axis: int = 0) -> Any:
    return backend.xp_of(g).moveaxis(g, axis, 0)[i]


defrule("concatenate", lambda *xs, axis=0: backend.xp_of(xs[0]).concatenate(xs, axis=axis),
        _concatenate_vjp, variadic=True)
defrule("stack", lambda *xs, axis=0: backend.xp_of(xs[0]).stack(xs, axis=axis),
        _stack_vjp, variadic=True)

# --- softmax and losses -------------------------------------------------------------------

defrule("softmax", lambda x, axis=-1: _softmax(x, axis),
        lambda g, out, x, axis=-1: out * (g - (g * out).sum(axis=axis, keepdims=True)))
defrule("log_softmax", lambda x, axis=-1: _log_softmax(x, axis),
        lambda g, out, x, axis=-1: g - np.exp(out) * g.sum(axis=axis, keepdims=True))


def _mse_loss_vjp(g: Any, out: Any, pred: Any, target: Any, reduction: str = "mean") -> Any:
    return _reduction_scale(g, np.broadcast_shapes(np.shape(pred), np.shape(target)), reduction) * 2 * (pred - target)


defrule("mse_loss", lambda pred, target, reduction="mean": _reduce((pred - target) ** 2, reduction),
        _mse_loss_vjp,
        lambda g, out, pred, target, reduction="mean": -_mse_loss_vjp(g, out, pred, target, reduction))


def _cross_entropy(logits: Any, target: Any, reduction: str = "mean") -> tuple:
    """The loss, and what the VJPs reuse: the logits shifted by their row maximum ``s`` (kept for a target
    of probabilities only), ``e = exp(s)``, its row sums and their logs (log-softmax is ``s - log_total``).
    ``target`` holds integer class labels (one per row of logits) or class probabilities (the logits'
    shape)."""
    s = _shifted(logits, -1)
    e = np.exp(s)
    total = e.sum(axis=-1, keepdims=True)
    log_total = np.log(total)
    if target.dtype.kind not in "iu":
        return _reduce((target * (log_total - s)).sum(axis=-1), reduction), (s, e, total, log_total)
    saved = (None, e, total, log_total)   # labels get no gradient: s is not needed again
    if s.ndim == 2:                       # (N, C): plain fancy indexing, cheaper than take_along_axis
        picked = s[_row_numbers(s), target]
    else:
        picked = backend.xp_of(s).take_along_axis(s, target[..., None], axis=-1)[..., 0]
    if reduction == "none":
        return log_total[..., 0] - picked, saved
    loss = log_total.sum() - picked.sum()  # picked <= 0 <= log_total: the difference cancels nothing
    return (loss / picked.size if reduction == "mean" else loss), saved          # "sum"


def _cross_entropy_vjp(g: Any, out: Any, logits: Any, target: Any, saved: tuple, reduction: str = "mean") -> Any:
    _, e, total, _ = saved
    d = e / total                         # the softmax: a fresh array of our own
    if target.dtype.kind not in "iu":
        d = d * target.sum(axis=-1, keepdims=True) - target
    elif d.ndim == 2:                     # minus the one-hot labels, in place
        d[_row_numbers(d), target] -= 1
    else:
        xp, index = backend.xp_of(d), target[..., None]
        xp.put_along_axis(d, index, xp.take_along_axis(d, index, axis=-1) - 1, axis=-1)
    g = _row_gradient(g, total, reduction)
    if getattr(g, "dtype", None) != d.dtype:
        return d * g                      # g may be complex (complex-step) or wider when d is not
    d *= g
    return d


def _cross_entropy_target_vjp(g: Any, out: Any, logits: Any, target: Any, saved: tuple,
                              reduction: str = "mean") -> Any:
    s, _, total, log_total = saved
    return _row_gradient(g, total, reduction) * (log_total - s)


def check_label_range(target: Any, classes: int) -> None:
    """Raise cross_entropy's ValueError unless every integer label lies in [0, ``classes``).

    NumPy would take a negative label from the end, and CuPy any label out of range
    modulo the classes: a silent wrong answer either way.

    Example:
        >>> check_label_range(np.array([0, 3]), 3)
        Traceback (most recent call last):
        ...
        ValueError: cross_entropy: class labels must lie in [0, 2], got 0..3
    """
    low, high = backend.extremes(target) if target.size else (0, 0)
    if low < 0 or high >= classes:
        raise ValueError(f"cross_entropy: class labels must lie in [0, {classes - 1}], got {int(low)}..{int(high)}")


def _check_cross_entropy(logits: Any, target: Any, reduction: str = "mean") -> None:
    if target.dtype.kind in "iu":
        check_label_range(target, logits.shape[-1])


defrule("cross_entropy", _cross_entropy, _cross_entropy_vjp, _cross_entropy_target_vjp, saves=True,
        check=_check_cross_entropy, check_reads={1})
