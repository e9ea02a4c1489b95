"""Functional transforms over the engine: ``grad`` and ``value_and_grad``.

The result must be computed from the differentiated arguments with ``sg.*``
functions and operators: one computed with ``math.*`` or on ``.data`` escapes the
engine, and a result that depends on none of them as far as the engine can see is
a TypeError (it is that mistake far more often than a loss that ignores its
weights). A differentiated argument that the result does not use while it uses
another has a zero gradient.

Example:
    >>> import symgrad as sg
    >>> sg.grad(lambda x: x ** 2)(5.0)
    array(10.)
    >>> sg.grad(lambda x, y: sg.sum(x * 2.0), argnums=(0, 1))(1.0, [2.0, 3.0])
    (array(2.), array([0., 0.]))
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from . import backend
from .tensor import Tensor, tensor

__all__ = ["grad", "value_and_grad", "value_and_gradients"]


def _leaf(value: Any, what: str) -> Tensor:
    """``value`` as a new leaf that requires grad: float64 unless it is already floating-point or complex."""
    try:
        data = tensor(value).data
    except (TypeError, ValueError) as err:
        raise type(err)(f"{what}: {err}") from None
    return Tensor(data if data.dtype.kind in "fc" else data.astype(np.float64), requires_grad=True)


def _backpropagate(out: Any, what: str, constant_ok: bool = False) -> Any:
    """Backpropagate from ``out``, the function's scalar result, and return its value as a 0-d array.

    A result that is not a recorded tensor (a number, or a tensor that needs no
    gradient) is a TypeError, the engine seeing no path to the leaves, unless
    ``constant_ok``: then every gradient stays zero.
    """
    data = out.data if isinstance(out, Tensor) else out if hasattr(out, "dtype") else np.asarray(out)
    if data.dtype.kind not in "biufc":
        raise TypeError(f"{what}: the function must return a number, computed from its arguments with sg.* "
                        f"functions and operators; it returned {'None' if out is None else type(out).__name__}")
    if data.size != 1:
        raise ValueError(f"{what}: the function must return a scalar; it returned shape {tuple(data.shape)}")
    if not (isinstance(out, Tensor) and out.requires_grad):
        if constant_ok:
            return data.reshape(())
        raise TypeError(f"{what}: the result does not depend on the differentiated argument(s) as the engine "
                        "sees it: compute it from them with sg.* functions and operators (not math.*, numpy "
                        "on .data or float())")
    out.backward()
    return data.reshape(())


def _gradient_of(leaf: Tensor) -> Any:
    """The gradient gathered in ``leaf``, or zeros of its shape and dtype if backward never reached it."""
    return leaf.grad if leaf.grad is not None else backend.xp_of(leaf.data).zeros_like(leaf.data)


_SEQUENCES = (tuple, list, range, np.ndarray)        # argnums given as several positions


def _argnums(argnums: Any, what: str) -> tuple:
    """``argnums`` as a non-empty tuple of ints, checked; TypeError or ValueError otherwise."""
    nums = tuple(argnums) if isinstance(argnums, _SEQUENCES) else (argnums,)
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in nums):
        raise TypeError(f"{what}: argnums must be an int or a tuple of ints (positions of positional "
                        f"arguments), not {argnums!r}")
    if not nums:
        raise ValueError(f"{what}: argnums is empty: give the position of at least one positional argument")
    return tuple(int(n) for n in nums)


def _positions(nums: tuple, count: int, what: str) -> tuple:
    """Each of ``nums`` as a position in ``range(count)`` (negative ones count from the end)."""
    for n in nums:
        if not -count <= n < count:
            allowed = f", so argnums must lie in [{-count}, {count - 1}]" if count else ""
            raise ValueError(f"{what}: argnums {n} is out of range: the function got {count} positional "
                             f"argument(s){allowed}")
    return tuple(n % count for n in nums)


def _value_and_grad(f: Callable, argnums: Any, what: str) -> Callable:
    """The function behind :func:`value_and_grad` and :func:`grad`; ``what`` names it in errors."""
    nums = _argnums(argnums, what)
    many = isinstance(argnums, _SEQUENCES)

    def wrapped(*args: Any, **kwargs: Any) -> tuple:
        positions = _positions(nums, len(args), what)
        args = list(args)
        leaves = {}
        for p in positions:
            if p not in leaves:
                leaves[p] = args[p] = _leaf(args[p], f"{what}: argument {p}")
        value = _backpropagate(f(*args, **kwargs), what)
        grads = []
        for i, p in enumerate(positions):               # a position asked again gets its own copy
            g = _gradient_of(leaves[p])
            grads.append(g.copy() if p in positions[:i] else g)
        return value, tuple(grads) if many else grads[0]

    return wrapped


def value_and_grad(f: Callable, argnums: Union[int, Sequence[int]] = 0) -> Callable:
    """Return a function computing ``(f(*args), gradient)`` by backpropagation.

    ``argnums`` picks the positional argument(s) to differentiate: an int, or a
    tuple of ints and the gradient is a tuple too, one per entry (a position given
    twice gets the same gradient twice, as ``torch.autograd.grad`` does).
    Gradients have the shape and dtype of their argument (float64 for integers);
    an argument the result does not use has a zero gradient, but a result that uses
    none of them (computed outside the engine, say) is a TypeError.

    Example:
        >>> value, g = value_and_grad(lambda w, x: (w * x - 2.0) ** 2)(1.0, 1.0)
        >>> float(value), float(g)
        (1.0, -2.0)
    """
    return _value_and_grad(f, argnums, "value_and_grad")


def grad(f: Callable, argnums: Union[int, Sequence[int]] = 0) -> Callable:
    """Return a function computing the gradient of scalar ``f`` by backpropagation.

    ``argnums`` works as in :func:`value_and_grad`.

    Example:
        >>> import symgrad as sg
        >>> sg.grad(lambda w, b: sg.tanh(w + b), argnums=(0, 1))(0.0, 0.0)
        (array(1.), array(1.))
    """
    value_and_gradient = _value_and_grad(f, argnums, "grad")

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return value_and_gradient(*args, **kwargs)[1]

    return wrapped


def value_and_gradients(f: Callable, params: Mapping[str, Any],
                        data: Optional[Mapping[str, Any]] = None) -> tuple:
    """``f(**params, **data)`` and its gradient with respect to every param, as a dict.

    The convention of :func:`symgrad.check` and :func:`symgrad.descend`: params are
    differentiated, data are not. A param the result does not depend on has a zero
    gradient, even when it depends on none (:func:`symgrad.check` then compares
    that 0 with finite differences, which see any dependence the engine missed).

    Example:
        >>> value, g = value_and_gradients(lambda w, x, y: (w * x - y) ** 2, {"w": 1.0}, {"x": 1.0, "y": 2.0})
        >>> float(value), float(g["w"])
        (1.0, -2.0)
    """
    leaves = {name: _leaf(value, f"value_and_gradients: param {name!r}") for name, value in params.items()}
    value = _backpropagate(f(**leaves, **(data or {})), "value_and_gradients", constant_ok=True)
    return value, {name: _gradient_of(leaf) for name, leaf in leaves.items()}
