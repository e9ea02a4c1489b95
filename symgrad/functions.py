"""The polymorphic ``sg.*`` functions: one loss definition, three kinds of input.

Each function looks at its arguments once, in :func:`call`:

- a :class:`~symgrad.tensor.Tensor` anywhere: the op is recorded for backpropagation;
- a SymPy expression, or a NumPy object array of them: the SymPy form from
  :mod:`symgrad.symbolic.ops` (SymPy is imported only then);
- otherwise (floats, ints, NumPy or CuPy arrays, complex too): plain array math.

Example:
    >>> import numpy as np
    >>> import symgrad as sg
    >>> float(sg.tanh(0.0)), type(sg.tanh(sg.tensor(0.0))).__name__
    (0.0, 'Tensor')
"""
from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

import numpy as np

from . import backend
from .rules import RULES, check_label_range, check_reduction
from .tensor import Tensor, apply, shape_error, type_error

__all__ = [
    "exp", "log", "tanh", "sigmoid", "relu", "sin", "cos", "sqrt", "abs",
    "sum", "mean", "max", "maximum", "minimum", "where", "matmul", "reshape", "transpose",
    "concatenate", "stack", "softmax", "log_softmax", "mse_loss", "cross_entropy",
]


def is_symbolic(value: Any) -> bool:
    """True for a SymPy object or a NumPy object array (of SymPy expressions).

    Never imports SymPy: if SymPy is not loaded, nothing can be symbolic.

    Example:
        >>> is_symbolic(1.0)
        False
    """
    sympy = sys.modules.get("sympy")
    if isinstance(value, np.ndarray):
        return value.dtype == object
    return sympy is not None and isinstance(value, sympy.Basic)


def call(name: str, *args: Any, **params: Any) -> Any:
    """Evaluate the primitive ``name`` on whatever kind of input it was given.

    Example:
        >>> float(call("mul", 2.0, 3.0))
        6.0
    """
    rule = RULES[name]
    for a in args:
        if isinstance(a, Tensor):
            return apply(rule, *args, **params)
    for a in args:
        if is_symbolic(a):
            from .symbolic import ops  # noqa: PLC0415  (SymPy is loaded only for symbolic input)

            return getattr(ops, name)(*args, **params)
    inputs = [a if hasattr(a, "dtype") else np.asarray(a) for a in args]
    try:
        return rule.run(*inputs, **params)[0]
    except ValueError as err:
        raise shape_error(rule, inputs, err) from None
    except TypeError as err:
        raise type_error(rule, inputs, args, err) from None


def exp(x: Any) -> Any:
    """e**x. Example: ``sg.exp(0.0)`` is 1.0."""
    return call("exp", x)


def log(x: Any) -> Any:
    """Natural logarithm. Example: ``sg.log(1.0)`` is 0.0."""
    return call("log", x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent, derivative 1 - tanh(x)**2. Example: ``sg.tanh(0.0)`` is 0.0."""
    return call("tanh", x)


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), computed without overflow. Example: ``sg.sigmoid(0.0)`` is 0.5."""
    return call("sigmoid", x)


def relu(x: Any) -> Any:
    """max(x, 0); its gradient at 0 is taken as 0. Example: ``sg.relu(-2.0)`` is 0.0."""
    return call("relu", x)


def sin(x: Any) -> Any:
    """Sine. Example: ``sg.sin(0.0)`` is 0.0."""
    return call("sin", x)


def cos(x: Any) -> Any:
    """Cosine. Example: ``sg.cos(0.0)`` is 1.0."""
    return call("cos", x)


def sqrt(x: Any) -> Any:
    """Square root. Example: ``sg.sqrt(4.0)`` is 2.0."""
    return call("sqrt", x)


def abs(x: Any) -> Any:  # noqa: A001  (the public name mirrors NumPy's)
    """Absolute value; its gradient at 0 is taken as 0. Example: ``sg.abs(-2.0)`` is 2.0."""
    return call("abs", x)


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis`` (None, an int or a tuple). Example: ``sg.sum([1.0, 2.0])`` is 3.0."""
    return call("sum", x, axis=axis, keepdims=keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``. Example: ``sg.mean([1.0, 3.0])`` is 2.0."""
    return call("mean", x, axis=axis, keepdims=keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Maximum over ``axis``; tied maxima share the gradient. Example: ``sg.max([1.0, 3.0])`` is 3.0."""
    return call("max", x, axis=axis, keepdims=keepdims)


def maximum(a: Any, b: Any) -> Any:
    """Elementwise maximum; a tie splits the gradient in half. Example: ``sg.maximum(1.0, 2.0)`` is 2.0."""
    return call("maximum", a, b)


def minimum(a: Any, b: Any) -> Any:
    """Elementwise minimum; a tie splits the gradient in half. Example: ``sg.minimum(1.0, 2.0)`` is 1.0."""
    return call("minimum", a, b)


def where(condition: Any, a: Any, b: Any) -> Any:
    """``a`` where ``condition`` holds, else ``b``. Example: ``sg.where(True, 1.0, 2.0)`` is 1.0."""
    if isinstance(condition, Tensor):
        condition = condition._values("sg.where(condition, ...)")
    return call("where", condition, a, b)


def matmul(a: Any, b: Any) -> Any:
    """Matrix product as ``np.matmul`` (1-D, 2-D, batched). Example: ``sg.matmul([1.0, 2.0], [3.0, 4.0])`` is 11.0."""
    return call("matmul", a, b)


def reshape(x: Any, shape: Sequence[int]) -> Any:
    """The same values in a new shape. Example: ``sg.reshape(np.arange(6.0), (2, 3)).shape`` is (2, 3)."""
    return call("reshape", x, shape=tuple(shape) if not isinstance(shape, int) else (shape,))


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """Permute axes (reverse them by default). Example: ``sg.transpose(np.ones((2, 3))).shape`` is (3, 2)."""
    return call("transpose", x, axes=None if axes is None else tuple(axes))


def concatenate(arrays: Sequence[Any], axis: Optional[int] = 0) -> Any:
    """Join arrays along an existing axis (None: flattened first, as NumPy does).

    Example: ``sg.concatenate([[1.0], [2.0]])`` is [1., 2.]."""
    return call("concatenate", *_some("concatenate", arrays), axis=axis)


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along a new axis. Example: ``sg.stack([[1.0], [2.0]]).shape`` is (2, 1)."""
    return call("stack", *_some("stack", arrays), axis=axis)


def _some(name: str, arrays: Sequence[Any]) -> list:
    """The arrays to join, as a list; ValueError if there is none (NumPy's own error would not say so)."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError(f"{name}: needs at least one array")
    return arrays


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along ``axis``, stable for large x. Example: ``sg.softmax([0.0, 0.0])`` is [.5, .5]."""
    return call("softmax", x, axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """x - logsumexp(x) along ``axis``, stable for large x. Example: ``sg.log_softmax([0.0, 0.0])`` is [-log 2] * 2."""
    return call("log_softmax", x, axis=axis)


def mse_loss(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error (``reduction`` "mean", "sum" or "none"), as PyTorch's.

    ``pred`` and ``target`` broadcast as NumPy does, as long as one of them has the
    shape of the result (a target row (C,) against predictions (N, C), say); shapes
    such as (N, 1) and (N,), which would compare every pair, are a ValueError.

    Example:
        >>> float(mse_loss(np.array([1.0, 3.0]), np.array([2.0, 2.0])))
        1.0
        >>> mse_loss(np.zeros((3, 1)), np.zeros(3))
        Traceback (most recent call last):
        ...
        ValueError: mse_loss: target of shape (3,) broadcasts against predictions of shape (3, 1) to (3, 3), \
comparing every pair; reshape one of them
    """
    check_reduction(reduction)
    pred_shape, target_shape = _shape(pred), _shape(target)
    if pred_shape != target_shape:
        try:
            shape = np.broadcast_shapes(pred_shape, target_shape)
        except ValueError:
            shape = pred_shape            # the op itself names the shapes that do not broadcast
        if shape != pred_shape and shape != target_shape:
            raise ValueError(f"mse_loss: target of shape {target_shape} broadcasts against predictions of shape "
                             f"{pred_shape} to {shape}, comparing every pair; reshape one of them")
    return call("mse_loss", pred, target, reduction=reduction)


def _shape(x: Any) -> tuple:
    """The shape of a tensor, an array (NumPy, CuPy, object) or anything NumPy reads as one."""
    return tuple(x.shape) if isinstance(x, Tensor) or hasattr(x, "dtype") else np.shape(x)


def cross_entropy(logits: Any, target: Any, reduction: str = "mean") -> Any:
    """Softmax cross-entropy of ``logits`` (..., C) — classes on the last axis — against integer
    class labels of shape (...) or class probabilities of the logits' shape; stable for large logits.

    Example:
        >>> round(float(cross_entropy(np.zeros((1, 4)), [2])), 6)  # log 4
        1.386294
    """
    check_reduction(reduction)
    return call("cross_entropy", logits, _class_target(logits, target), reduction=reduction)


def _class_target(logits: Any, target: Any) -> Any:
    """The target of cross_entropy as an array on the logits' device, checked against their shape."""
    array = logits.data if isinstance(logits, Tensor) else logits
    raw = target.data if isinstance(target, Tensor) else target
    if type(raw) is not np.ndarray or type(array) is not np.ndarray or raw.dtype.kind == "O":
        if is_symbolic(logits) or is_symbolic(target):
            return target
        if isinstance(array, np.generic) or not hasattr(array, "shape"):
            array = np.asarray(array)
        if isinstance(raw, np.generic) or not hasattr(raw, "dtype"):
            raw = np.asarray(raw)         # a NumPy scalar label too: labels stay arrays
        raw = backend.to_device(raw, backend.device_of(array))
        if not isinstance(target, Tensor):
            target = raw                  # labels follow the logits to the GPU
    check_class_target(raw, tuple(array.shape))
    if raw.dtype.kind in "iu" and not (isinstance(target, Tensor) and target._node is not None):
        return raw
    return target                         # probabilities, or labels a compiled gradient traces (see symgrad.trace)


def check_class_target(target: Any, logits_shape: tuple) -> None:
    """Raise cross_entropy's ValueError for a ``target`` array (integer labels, or probabilities of any
    other dtype) that does not fit logits of ``logits_shape``; the engine's and the SymPy forms share it.

    Example:
        >>> check_class_target(np.array([0.0, 1.0]), (2, 3))
        Traceback (most recent call last):
        ...
        ValueError: cross_entropy: class labels must be integers, got float64 of shape (2,); pass \
np.array([...]) of ints, or probabilities of the logits' shape (2, 3)
    """
    shape = tuple(target.shape)
    if not logits_shape:
        raise ValueError("cross_entropy: logits must have a class axis (shape (..., C)), got a scalar")
    if target.dtype.kind in "iu":
        if shape != logits_shape[:-1]:
            raise ValueError(f"cross_entropy: labels of shape {shape} do not match logits of shape "
                             f"{logits_shape}; expected {logits_shape[:-1]}")
        check_label_range(target, logits_shape[-1])
    elif shape == logits_shape[:-1]:
        raise ValueError(f"cross_entropy: class labels must be integers, got {target.dtype} of shape {shape}; "
                         f"pass np.array([...]) of ints, or probabilities of the logits' shape {logits_shape}")
    elif shape != logits_shape:
        raise ValueError(f"cross_entropy: target probabilities of shape {shape} do not match "
                         f"logits of shape {logits_shape} (give integer labels or probabilities)")
