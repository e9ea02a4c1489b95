"""The SymPy forms of the ``sg.*`` functions.

:func:`symgrad.functions.call` sends here every call that has a SymPy
expression, or a NumPy object array of SymPy expressions, among its arguments.
Each function returns the same kind it was given: a SymPy expression for SymPy
scalars, an object array for object arrays (which keeps NumPy's broadcasting,
indexing and ``@``). A full reduction of an array returns a SymPy scalar, as
NumPy returns a scalar.

The forms are chosen so that SymPy's derivatives follow the engine's
conventions at kinks: ``relu(x)`` is ``Piecewise((x, x > 0), (0, True))``
(slope 0 at 0), ``maximum``/``minimum`` are ``Max``/``Min`` (whose derivative
``Heaviside(a - b)`` splits a tie in half) and ``abs`` is ``Abs`` (slope
``sign(0) = 0``). ``sigmoid(x)`` is ``1/(1 + exp(-x))``.

Example:
    >>> import numpy as np
    >>> import sympy
    >>> x = sympy.Symbol("x", real=True)
    >>> sigmoid(x)
    1/(1 + exp(-x))
    >>> w = np.array([sympy.Symbol("w0"), sympy.Symbol("w1")], dtype=object)
    >>> sum(w * 2)
    2*w0 + 2*w1
"""
from __future__ import annotations

import builtins
from typing import Any, Callable, Sequence

import numpy as np
import sympy

from ..functions import check_class_target
from ..rules import check_reduction

__all__ = [
    "exp", "log", "tanh", "sigmoid", "relu", "sin", "cos", "sqrt", "abs",
    "sum", "mean", "max", "maximum", "minimum", "where", "matmul", "reshape", "transpose",
    "concatenate", "stack", "softmax", "log_softmax", "mse_loss", "cross_entropy",
]


def as_sympy(value: Any) -> sympy.Basic:
    """A number or SymPy object as a SymPy object (never parses text).

    Example:
        >>> as_sympy(2), as_sympy(0.5), as_sympy(True)
        (2, 0.500000000000000, True)
    """
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        return sympy.true if value else sympy.false
    if isinstance(value, int):
        return sympy.Integer(value)
    if isinstance(value, float):
        return sympy.Float(value)
    if isinstance(value, complex):
        return sympy.Float(value.real) + sympy.I * sympy.Float(value.imag)
    raise TypeError(f"expected a number or a SymPy expression, got {type(value).__name__}")


def _objects(value: Any) -> np.ndarray:
    """Any array-like of numbers or SymPy expressions as an object array of SymPy objects."""
    array = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
    if array.dtype != object:
        array = array.astype(object)
    return _map(as_sympy, array)


def _map(f: Callable, *values: Any) -> Any:
    """``f`` elementwise over broadcast arguments; scalars in, scalar out."""
    if not builtins.any(isinstance(v, np.ndarray) for v in values):
        return f(*values)
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=object) for v in values))
    out = np.empty(arrays[0].shape, dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = f(*(a[index] for a in arrays))
    return out


def _unary(name: str, form: Callable[[sympy.Expr], sympy.Expr]) -> Callable[[Any], Any]:
    def op(x: Any) -> Any:
        return _map(lambda v: form(as_sympy(v)), x)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"The SymPy form of ``sg.{name}``, elementwise. Example: ``{name}(sympy.Symbol('x'))``."
    return op


def _relu(x: sympy.Expr) -> sympy.Expr:
    return sympy.Piecewise((x, x > 0), (0, True))


exp = _unary("exp", sympy.exp)
log = _unary("log", sympy.log)
tanh = _unary("tanh", sympy.tanh)
sigmoid = _unary("sigmoid", lambda x: 1 / (1 + sympy.exp(-x)))
relu = _unary("relu", _relu)
sin = _unary("sin", sympy.sin)
cos = _unary("cos", sympy.cos)
sqrt = _unary("sqrt", sympy.sqrt)
abs = _unary("abs", sympy.Abs)  # noqa: A001  (mirrors sg.abs)


def maximum(a: Any, b: Any) -> Any:
    """Elementwise ``Max(a, b)``. Example: ``maximum(x, 0)`` is ``Max(0, x)``."""
    return _map(lambda u, v: sympy.Max(as_sympy(u), as_sympy(v)), a, b)


def minimum(a: Any, b: Any) -> Any:
    """Elementwise ``Min(a, b)``. Example: ``minimum(x, 0)`` is ``Min(0, x)``."""
    return _map(lambda u, v: sympy.Min(as_sympy(u), as_sympy(v)), a, b)


def where(condition: Any, a: Any, b: Any) -> Any:
    """``a`` where ``condition`` holds, else ``b``: a ``Piecewise`` (or a plain choice for a known condition).

    Example:
        >>> x = sympy.Symbol("x", real=True)
        >>> where(x > 0, x, 0)
        Piecewise((x, x > 0), (0, True))
    """
    return _map(lambda c, u, v: sympy.Piecewise((as_sympy(u), as_sympy(c)), (as_sympy(v), True)), condition, a, b)


# --- reductions --------------------------------------------------------------------------


def _axes(axis: Any, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
    return tuple(sorted(int(a) % ndim for a in axes))


def _reduce(x: Any, axis: Any, keepdims: bool, combine: Callable[[list], sympy.Expr]) -> Any:
    """``combine`` (which takes a list of elements) over ``axis`` of an object array."""
    if not isinstance(x, np.ndarray):
        _axes(axis, 0)
        return combine([as_sympy(x)])
    x = _objects(x)
    axes = _axes(axis, x.ndim)
    kept = [i for i in range(x.ndim) if i not in axes]
    rows = np.transpose(x, kept + list(axes)).reshape(tuple(x.shape[i] for i in kept) + (-1,))
    out = np.empty(rows.shape[:-1], dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = combine(list(rows[index]))
    if keepdims:
        return out.reshape(tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
    return out[()] if out.ndim == 0 else out


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """The sum over ``axis`` as one ``Add``. Example: ``sum(np.array([x, y], dtype=object))`` is ``x + y``."""
    return _reduce(x, axis, keepdims, lambda items: sympy.Add(*items))


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The mean over ``axis``. Example: ``mean(np.array([x, y], dtype=object))`` is ``x/2 + y/2``."""
    return _reduce(x, axis, keepdims, lambda items: sympy.Add(*items) / len(items))


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """The maximum over ``axis`` as one ``Max``. Example: ``max(np.array([x, y], dtype=object))`` is ``Max(x, y)``."""
    return _reduce(x, axis, keepdims, lambda items: sympy.Max(*items))


# --- shapes ---------------------------------------------------------------------------------


def matmul(a: Any, b: Any) -> Any:
    """The matrix product of object arrays (1-D, 2-D or batched), as ``np.matmul``.

    Example:
        >>> w = np.array(sympy.symbols("w0 w1"), dtype=object)
        >>> matmul(np.array([1.0, 2.0]), w)
        1.0*w0 + 2.0*w1
    """
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got shapes "
                         f"{np.shape(a)} and {np.shape(b)}")
    try:
        out = np.matmul(_objects(a), _objects(b))
    except ValueError as err:
        raise ValueError(f"matmul: incompatible shapes {np.shape(a)} and {np.shape(b)}: {err}") from None
    return as_sympy(out) if not isinstance(out, np.ndarray) else out


def reshape(x: Any, shape: Sequence[int] = ()) -> np.ndarray:
    """The same elements in a new shape. Example: ``reshape(w, (2, 1)).shape`` is ``(2, 1)``."""
    return _objects(x).reshape(shape)


def transpose(x: Any, axes: Sequence[int] | None = None) -> np.ndarray:
    """Permuted axes (reversed by default). Example: ``transpose(W).shape`` is ``W.shape[::-1]``."""
    return np.transpose(_objects(x), axes)


def _sequence(arrays: tuple) -> list:
    if len(arrays) == 1 and isinstance(arrays[0], (list, tuple)):
        arrays = tuple(arrays[0])
    return [_objects(a) for a in arrays]


def concatenate(*arrays: Any, axis: int = 0) -> np.ndarray:
    """Arrays joined along an existing axis. Example: ``concatenate(w, w).shape`` is ``(4,)`` for 2-element w."""
    return np.concatenate(_sequence(arrays), axis=axis)


def stack(*arrays: Any, axis: int = 0) -> np.ndarray:
    """Arrays joined along a new axis. Example: ``stack(w, w).shape`` is ``(2, 2)`` for 2-element w."""
    return np.stack(_sequence(arrays), axis=axis)


# --- softmax and losses ------------------------------------------------------------------------


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis``. Example: ``softmax(np.array([a, b], dtype=object))[0]``
    is ``exp(a)/(exp(a) + exp(b))``."""
    e = exp(_objects(x))
    return e / sum(e, axis=axis, keepdims=True)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - log(sum(exp(x)))`` along ``axis``. Example: ``log_softmax(np.array([a, b], dtype=object))[0]``
    is ``a - log(exp(a) + exp(b))``."""
    x = _objects(x)
    return x - log(sum(exp(x), axis=axis, keepdims=True))


def _reduced(values: Any, reduction: str) -> Any:
    if reduction == "mean":
        return mean(values)
    if reduction == "sum":
        return sum(values)
    check_reduction(reduction)
    return values


def mse_loss(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Squared errors, reduced by ``reduction`` ("mean", "sum", "none").

    Example:
        >>> p, y = sympy.symbols("p y")
        >>> mse_loss(p, y)
        (p - y)**2
    """
    if isinstance(pred, np.ndarray) or isinstance(target, np.ndarray):
        pred, target = _objects(pred), _objects(target)
    else:
        pred, target = as_sympy(pred), as_sympy(target)
    return _reduced((pred - target) ** 2, reduction)


def _is_labels(target: Any) -> bool:
    if isinstance(target, np.ndarray):
        return target.dtype.kind in "iu"
    return isinstance(target, (int, np.integer, sympy.Integer)) and not isinstance(target, bool)


def cross_entropy(logits: Any, target: Any, reduction: str = "mean") -> Any:
    """Softmax cross-entropy of ``logits`` (..., C) against integer labels or class probabilities.

    Example:
        >>> a, b = sympy.symbols("a b")
        >>> cross_entropy(np.array([a, b], dtype=object), 1)
        -b + log(exp(a) + exp(b))
    """
    logits = _objects(logits)
    target = np.asarray(target, dtype=np.int64) if _is_labels(target) else np.asarray(target)
    check_class_target(target, logits.shape)
    lsm = log_softmax(logits, -1)
    if target.dtype.kind in "iu":
        losses = -np.take_along_axis(lsm, target[..., None], axis=-1)[..., 0]
    else:
        losses = -sum(_objects(target) * lsm, axis=-1)
    losses = losses if isinstance(losses, np.ndarray) else np.asarray(losses, dtype=object)
    out = _reduced(losses, reduction)
    return out[()] if isinstance(out, np.ndarray) and out.ndim == 0 else out
