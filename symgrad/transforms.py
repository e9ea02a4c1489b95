"""Functional transforms over the engine: ``grad`` and ``value_and_grad``.

Example:
    >>> import symgrad as sg
    >>> sg.grad(lambda x: x ** 2)(5.0)
    array(10.)
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from .tensor import Tensor, tensor

__all__ = ["grad", "value_and_grad", "value_and_gradients"]


def _leaf(value: Any) -> Tensor:
    data = value.data if isinstance(value, Tensor) else value
    if not hasattr(data, "dtype") or getattr(data, "dtype", None) is not None and data.dtype.kind not in "fc":
        data = np.asarray(data, dtype=np.float64)
    return tensor(data, requires_grad=True)


def _scalar_output(out: Any, what: str) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"{what}: the function must compute its result from its arguments with sg.* functions "
                        f"and operators; it returned {type(out).__name__}")
    if out.data.size != 1:
        raise ValueError(f"{what}: the function must return a scalar; it returned shape {out.shape}")
    return out


def _gradient_of(leaf: Tensor) -> Any:
    return leaf.grad if leaf.grad is not None else leaf.data * 0


def value_and_grad(f: Callable, argnums: Union[int, Sequence[int]] = 0) -> Callable:
    """Return a function computing ``(f(*args), gradient)`` by backpropagation.

    ``argnums`` picks the positional argument(s) to differentiate; with a tuple the
    gradient is a tuple too. Gradients have the shape and dtype of their argument.

    Example:
        >>> value, g = value_and_grad(lambda w, x: (w * x - 2.0) ** 2)(1.0, 1.0)
        >>> float(value), float(g)
        (1.0, -2.0)
    """
    many = not isinstance(argnums, int)
    nums = tuple(argnums) if many else (argnums,)

    def wrapped(*args: Any, **kwargs: Any):
        for n in nums:
            if not -len(args) <= n < len(args):
                raise IndexError(f"argnums {n} is out of range for {len(args)} positional argument(s)")
        args = list(args)
        leaves = []
        for n in nums:
            args[n] = _leaf(args[n])
            leaves.append(args[n])
        out = _scalar_output(f(*args, **kwargs), "value_and_grad")
        if out.requires_grad:
            out.backward()
        grads = tuple(_gradient_of(leaf) for leaf in leaves)
        return out.data.reshape(()), grads if many else grads[0]

    return wrapped


def grad(f: Callable, argnums: Union[int, Sequence[int]] = 0) -> Callable:
    """Return a function computing the gradient of scalar ``f`` by backpropagation.

    Example:
        >>> import symgrad as sg
        >>> sg.grad(lambda w, b: sg.tanh(w + b), argnums=(0, 1))(0.0, 0.0)
        (array(1.), array(1.))
    """
    value_and_gradient = value_and_grad(f, argnums)

    def wrapped(*args: Any, **kwargs: Any):
        return value_and_gradient(*args, **kwargs)[1]

    return wrapped


def value_and_gradients(f: Callable, params: Mapping[str, Any],
                        data: Optional[Mapping[str, Any]] = None) -> tuple:
    """``f(**params, **data)`` and its gradient with respect to every param, as a dict.

    The convention of :func:`symgrad.check` and :func:`symgrad.descend`: params are
    differentiated, data are not.

    Example:
        >>> value, g = value_and_gradients(lambda w, x, y: (w * x - y) ** 2, {"w": 1.0}, {"x": 1.0, "y": 2.0})
        >>> float(value), float(g["w"])
        (1.0, -2.0)
    """
    leaves = {name: _leaf(value) for name, value in params.items()}
    out = _scalar_output(f(**leaves, **(data or {})), "value_and_gradients")
    if out.requires_grad:
        out.backward()
    return out.data.reshape(()), {name: _gradient_of(leaf) for name, leaf in leaves.items()}
