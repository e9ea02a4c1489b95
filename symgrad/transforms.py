"""Functional transforms over the engine: ``grad`` and ``value_and_grad``.

With ``compile=True`` the function is traced once per signature of its arguments
(the shapes, dtypes and devices of its arrays, the values of everything else) and
each later call replays the recorded graph as straight-line code
(:mod:`symgrad.trace`), without the engine's per-op bookkeeping.

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
from .tensor import Tensor, tensor, traced_input, tracing
from .trace import replay_program

__all__ = ["grad", "value_and_grad", "value_and_gradients"]


def _leaf(value: Any, what: str) -> Tensor:
    """``value`` as a new leaf that requires grad: float64 unless it is already floating-point or complex."""
    try:
        data = tensor(value).data
    except (TypeError, ValueError) as err:
        raise type(err)(f"{what}: {err}") from None
    return Tensor(data if data.dtype.kind in "fc" else data.astype(np.float64), requires_grad=True)


def _scalar(out: Any, what: str) -> Any:
    """The data of ``out``, the function's result: a TypeError unless it is a number, a ValueError unless
    it has one element."""
    data = out.data if isinstance(out, Tensor) else out if hasattr(out, "dtype") else np.asarray(out)
    if data.dtype.kind not in "biufc":
        raise TypeError(f"{what}: the function must return a number, computed from its arguments with sg.* "
                        f"functions and operators; it returned {'None' if out is None else type(out).__name__}")
    if data.size != 1:
        raise ValueError(f"{what}: the function must return a scalar; it returned shape {tuple(data.shape)}")
    return data


def _unconnected(what: str) -> TypeError:
    """The TypeError for a result that depends on no differentiated argument as the engine sees it."""
    return TypeError(f"{what}: the result does not depend on the differentiated argument(s) as the engine "
                     "sees it: compute it from them with sg.* functions and operators (not math.*, numpy "
                     "on .data or float())")


def _backpropagate(out: Any, what: str, constant_ok: bool = False) -> Any:
    """Backpropagate from ``out``, the function's scalar result, and return its value as a 0-d array.

    A result that is not a recorded tensor (a number, or a tensor that needs no
    gradient) is a TypeError, the engine seeing no path to the leaves, unless
    ``constant_ok``: then every gradient stays zero.
    """
    data = _scalar(out, what)
    if not (isinstance(out, Tensor) and out.requires_grad):
        if constant_ok:
            return data.reshape(())
        raise _unconnected(what)
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


def _value_and_grad(f: Callable, argnums: Any, what: str, compile: bool = False) -> Callable:
    """The function behind :func:`value_and_grad` and :func:`grad`; ``what`` names it in errors."""
    nums = _argnums(argnums, what)
    many = isinstance(argnums, _SEQUENCES)
    if compile:
        return _compiled(f, nums, many, f"{what}(compile=True)")

    def wrapped(*args: Any, **kwargs: Any) -> tuple:
        positions = _positions(nums, len(args), what)
        args = list(args)
        leaves = {}
        for p in positions:
            if p not in leaves:
                leaves[p] = args[p] = _leaf(args[p], f"{what}: argument {p}")
        value = _backpropagate(f(*args, **kwargs), what)
        result = value, tuple(_gradient_of(leaf) for leaf in leaves.values())
        finish = _finisher(positions, many)
        return result if finish is None else finish(*result)

    return wrapped


_PROGRAMS_KEPT = 32          # compiled replays kept per function, one per signature, the oldest dropped first


def _compiled(f: Callable, nums: tuple, many: bool, what: str) -> Callable:
    """:func:`_value_and_grad` by replays of ``f``'s graph, recorded once per signature of its arguments."""
    programs: dict = {}         # signature -> replay
    direct: dict = {}           # (class, shape, dtype) of every argument -> the whole call, for replays that
                                # take the arguments as they are given: the common call, looked up first

    def wrapped(*args: Any, **kwargs: Any) -> tuple:
        if not kwargs:
            try:
                entry = direct.get(tuple([(a.__class__, a.shape, a.dtype) for a in args]))
            except (AttributeError, TypeError):     # an argument that is not an array
                entry = None
            if entry is not None:
                return entry(*args)
        positions = _positions(nums, len(args), what)
        key, arrays, places, wanted = _signature(args, kwargs, positions, what)
        replay = programs.get(key)
        if replay is None:
            replay = _kept(programs, key, _recorded(f, args, kwargs, arrays, places, wanted, what))
        finish = _finisher(positions, many)
        call = replay if finish is None else lambda *arrays: finish(*replay(*arrays))
        if not kwargs and len(arrays) == len(args) and all(a is b for a, b in zip(arrays, args)):
            _kept(direct, tuple((a.__class__, a.shape, a.dtype) for a in args), call)
        return call(*arrays)

    return wrapped


def _kept(table: dict, key: Any, value: Any) -> Any:
    """``value``, stored in ``table`` under ``key``; the oldest entry goes once there are too many."""
    table[key] = value
    if len(table) > _PROGRAMS_KEPT:
        del table[next(iter(table))]
    return value


def _finisher(positions: tuple, many: bool) -> Optional[Callable]:
    """The function turning a replay's ``(value, gradients)``, one gradient per differentiated argument,
    into what value_and_grad returns: one gradient per entry of ``positions`` (a repeated one copied),
    a tuple if ``many``; None when the replay's result is that already."""
    if not many:
        return lambda value, grads: (value, grads[0])
    if len(set(positions)) == len(positions):
        return None
    slot = {p: i for i, p in enumerate(dict.fromkeys(positions))}

    def finish(value: Any, grads: tuple) -> tuple:
        return value, tuple(grads[slot[p]] if p not in positions[:i] else grads[slot[p]].copy()
                            for i, p in enumerate(positions))

    return finish


def _signature(args: tuple, kwargs: dict, positions: tuple, what: str) -> tuple:
    """``(key, arrays, places, wanted)`` of one call of a compiled function: what a replay depends on
    (each array's shape, dtype and array type, every other argument's value), the arrays a replay takes
    (the differentiated arguments and every array argument, in order), where each was given (a position
    or a keyword) and the indices among them of the differentiated ones, in the order of ``positions``
    without repeats."""
    key, arrays, places, differentiated = [], [], [], {}
    for where, value in (*enumerate(args), *sorted(kwargs.items())):
        if where in positions and type(where) is int:
            array = value if type(value) is np.ndarray and value.dtype.kind in "fc" else (
                _leaf(value, f"{what}: argument {where}").data)
            differentiated[where] = len(arrays)
        elif isinstance(value, Tensor) or hasattr(value, "shape") and hasattr(value, "dtype"):
            if isinstance(value, Tensor) and value.requires_grad:
                raise TypeError(f"{what}: argument {where} is a tensor that requires grad but is not in argnums; "
                                "a compiled gradient returns the gradients of argnums only")
            array = value.data if isinstance(value, Tensor) else value
            if isinstance(array, np.generic):
                array = np.asarray(array)
        else:
            try:
                key.append((where, type(value), value, hash(value)))
            except TypeError:
                raise TypeError(f"{what}: argument {where} is a {type(value).__name__}, which a compiled gradient "
                                "cannot trace: pass an array, a tensor or a number") from None
            continue
        key.append((where, array.shape, array.dtype, type(array)))
        arrays.append(array)
        places.append(where)
    return tuple(key), arrays, places, tuple(differentiated[p] for p in dict.fromkeys(positions))


def _recorded(f: Callable, args: tuple, kwargs: dict, arrays: list, places: list, wanted: tuple,
              what: str) -> Callable:
    """The replay of ``f``'s graph, recorded by one call with tensors around ``arrays`` in their ``places``."""
    inputs = [Tensor(a, requires_grad=True) if i in wanted else traced_input(a) for i, a in enumerate(arrays)]
    args, kwargs = list(args), dict(kwargs)
    for where, t in zip(places, inputs):
        (args if type(where) is int else kwargs)[where] = t
    with tracing():
        out = f(*args, **kwargs)
    _scalar(out, what)
    replay = replay_program(out, inputs, wanted, what) if isinstance(out, Tensor) and out.requires_grad else None
    if replay is None or not replay.connected:
        raise _unconnected(what)
    return replay


def value_and_grad(f: Callable, argnums: Union[int, Sequence[int]] = 0, compile: bool = False) -> Callable:
    """Return a function computing ``(f(*args), gradient)`` by backpropagation.

    ``argnums`` picks the positional argument(s) to differentiate: an int, or a
    tuple of ints and the gradient is a tuple too, one per entry (a position given
    twice gets the same gradient twice, as ``torch.autograd.grad`` does).
    Gradients have the shape and dtype of their argument (float64 for integers);
    an argument the result does not use has a zero gradient, but a result that uses
    none of them (computed outside the engine, say) is a TypeError.

    ``compile=True`` records ``f``'s graph on the first call with each signature (the
    shapes, dtypes and devices of the array arguments, the values of the others) and
    replays it on later calls as straight-line code, with the same results and without
    the engine's per-op bookkeeping (the step of a small network gets several per cent
    faster). ``f`` then runs once per signature, on tensors that stand for every
    array argument, and must compute from them with ``sg.*`` functions and operators:
    reading their values in Python (``if``, ``float``, a comparison) is a TypeError,
    and what ``f`` takes from elsewhere (an array in a closure, a random draw) stays
    as it was at the first call, as in ``jax.jit``: pass data that changes (a
    mini-batch) as an argument. A tensor from a closure is read at each call, as the
    engine reads it, and must keep its shape and dtype (else RuntimeError).

    Example:
        >>> value, g = value_and_grad(lambda w, x: (w * x - 2.0) ** 2)(1.0, 1.0)
        >>> float(value), float(g)
        (1.0, -2.0)
        >>> import numpy as np, symgrad as sg
        >>> step = value_and_grad(lambda w, x: sg.sum(sg.tanh(x @ w)), compile=True)
        >>> value, g = step(np.zeros(2), np.ones((3, 2)))       # records, then replays
        >>> float(value), g.tolist()
        (0.0, [3.0, 3.0])
    """
    return _value_and_grad(f, argnums, "value_and_grad", compile)


def grad(f: Callable, argnums: Union[int, Sequence[int]] = 0, compile: bool = False) -> Callable:
    """Return a function computing the gradient of scalar ``f`` by backpropagation.

    ``argnums`` and ``compile`` work as in :func:`value_and_grad`.

    Example:
        >>> import symgrad as sg
        >>> sg.grad(lambda w, b: sg.tanh(w + b), argnums=(0, 1))(0.0, 0.0)
        (array(1.), array(1.))
    """
    value_and_gradient = _value_and_grad(f, argnums, "grad", compile)

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
