"""A batch of points that each differ from one base point in a single element.

Finite differences evaluate f at ``x ± h·e_i`` for every i: points that share
every value but one. Held densely, m such points of n values cost m·n memory
and m·n work per operation; held as "the base point, plus one replaced element
per row" they cost m + n. :class:`PerturbedRows` is that representation, shaped
and behaving like the dense ``(m, *base.shape)`` NumPy array it stands for:

- elementwise ufuncs (``+ * ** sin exp maximum ...``), ``np.where`` and
  ``np.clip`` apply to the base point once and to the m replaced values once;
- ``sum``, ``mean``, ``max`` and ``min`` over point axes (never the batch axis)
  use the base point's reduction and correct it per row;
- anything else (``@``, indexing, reshaping, ``np.asarray``...) materializes the
  dense array, notes why in the shared :class:`Materializations` record, and
  carries on in plain NumPy, so a result never depends on which path ran
  (up to rounding in the corrected reductions).

Example:
    >>> import numpy as np
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> rows = PerturbedRows(x, np.array([0, 2]), np.array([1.5, 2.5]), Materializations())
    >>> (rows ** 2).sum(axis=-1)          # [1.5, 2, 3] and [1, 2, 2.5], squared and summed
    array([15.25, 11.25])
    >>> np.asarray(rows)
    array([[1.5, 2. , 3. ],
           [1. , 2. , 2.5]])
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["PerturbedRows", "Materializations", "TooLargeToMaterialize"]


class TooLargeToMaterialize(RuntimeError):
    """Raised when an operation needs the dense batch and it exceeds the record's byte limit.

    Example:
        >>> issubclass(TooLargeToMaterialize, RuntimeError)
        True
    """


class Materializations:
    """The operations that made a family of :class:`PerturbedRows` fall back to dense arrays.

    ``limit_bytes`` (None: no limit) bounds the dense arrays they may build; past it
    :class:`TooLargeToMaterialize` is raised and ``exceeded`` is set, even if the caller's
    code swallows the exception.

    Example:
        >>> log = Materializations()
        >>> rows = PerturbedRows(np.zeros(2), np.array([1]), np.array([1.0]), log)
        >>> _ = rows[0]
        >>> log.reasons
        ['indexing']
    """

    def __init__(self, limit_bytes: Optional[int] = None):
        self.reasons: list = []
        self.limit_bytes = limit_bytes
        self.exceeded = False


class PerturbedRows(NDArrayOperatorsMixin):
    """Rows ``k = 0..m-1`` each equal to ``base`` with flat element ``pos[k]`` replaced by ``val[k]``.

    Behaves as the dense array of shape ``(m, *base.shape)`` (see the module docstring).
    Rows built on the same ``pos`` array combine elementwise without materializing.

    Example:
        >>> rows = PerturbedRows(np.zeros(3), np.array([1, 1]), np.array([1.0, -1.0]), Materializations())
        >>> rows.shape, np.sin(rows).max(axis=1).round(3).tolist()
        ((2, 3), [0.841, 0.0])
    """

    __slots__ = ("base", "pos", "val", "log")

    def __init__(self, base: np.ndarray, pos: np.ndarray, val: np.ndarray, log: Materializations):
        self.base = base
        self.pos = pos
        self.val = val
        self.log = log

    # --- array attributes ---------------------------------------------------------------

    @property
    def shape(self) -> tuple:
        """``(m, *base.shape)``. Example: ``PerturbedRows(np.zeros(3), ...)`` with 2 rows has shape (2, 3)."""
        return (len(self.pos),) + self.base.shape

    @property
    def ndim(self) -> int:
        """Number of axes, the batch axis included."""
        return 1 + self.base.ndim

    @property
    def size(self) -> int:
        """Number of elements of the dense array."""
        return len(self.pos) * self.base.size

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the dense array (base and replaced values promoted together)."""
        return np.result_type(self.base.dtype, self.val.dtype)

    @property
    def real(self) -> "PerturbedRows":
        """Real part, elementwise."""
        return PerturbedRows(self.base.real, self.pos, self.val.real, self.log)

    @property
    def imag(self) -> "PerturbedRows":
        """Imaginary part, elementwise."""
        return PerturbedRows(self.base.imag, self.pos, self.val.imag, self.log)

    def astype(self, dtype: Any, **kwargs: Any) -> Any:
        """The rows cast to ``dtype`` (elementwise; other options materialize)."""
        if kwargs:
            return self.dense("astype").astype(dtype, **kwargs)
        return PerturbedRows(self.base.astype(dtype), self.pos, self.val.astype(dtype), self.log)

    def __len__(self) -> int:
        return len(self.pos)

    def __repr__(self) -> str:
        return f"PerturbedRows(shape={self.shape}, dtype={self.dtype})"

    def __setitem__(self, index: Any, value: Any) -> None:
        raise TypeError("PerturbedRows is read-only (a batch of perturbed points)")

    def __getattr__(self, name: str) -> Any:
        # Any other ndarray attribute (.T, .reshape, .dot...) works on the dense array.
        if name.startswith("__") or name in PerturbedRows.__slots__:
            raise AttributeError(name)
        return getattr(self.dense(name), name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        dense = self.dense("asarray")
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def dense(self, why: str) -> np.ndarray:
        """The dense ``(m, *base.shape)`` array, recording ``why`` it was needed.

        Example:
            >>> PerturbedRows(np.zeros(2), np.array([0]), np.array([5.0]), Materializations()).dense("demo")
            array([[5., 0.]])
        """
        m = len(self.pos)
        nbytes = m * self.base.size * self.dtype.itemsize
        self.log.reasons.append(why)
        if self.log.limit_bytes is not None and nbytes > self.log.limit_bytes:
            self.log.exceeded = True
            raise TooLargeToMaterialize(f"{why} needs the dense batch of {nbytes} bytes")
        out = np.empty((m, self.base.size), dtype=self.dtype)
        out[...] = self.base.reshape(-1)
        out[np.arange(m), self.pos] = self.val
        return out.reshape(self.shape)

    # --- NumPy protocols ---------------------------------------------------------------

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "__call__" and ufunc.signature is None and ufunc.nout == 1 and not kwargs:
            parts = self._elementwise_parts(inputs)
            if parts is not None:
                return PerturbedRows(ufunc(*parts[0]), self.pos, ufunc(*parts[1]), self.log)
        why = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        return getattr(ufunc, method)(*_densify(inputs, why), **_densify(kwargs, why))

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        if func in _REDUCTIONS and args and isinstance(args[0], PerturbedRows):
            return getattr(args[0], _REDUCTIONS[func])(*args[1:], **kwargs)
        if func in _ELEMENTWISE and len(args) == 3 and not kwargs:
            parts = self._elementwise_parts(args)
            if parts is not None:
                return PerturbedRows(func(*parts[0]), self.pos, func(*parts[1]), self.log)
        if func in _METADATA:
            return func(*_stand_ins(args), **_stand_ins(kwargs))
        why = getattr(func, "__name__", "function")
        return func(*_densify(args, why), **_densify(kwargs, why))

    def _elementwise_parts(self, operands: tuple) -> Optional[tuple]:
        """``(bases, values)``: each operand at the base point and at the replaced positions,
        or None when an operand does not keep the one-element-per-row structure."""
        bases, values = [], []
        shape = self.base.shape
        for a in operands:
            if isinstance(a, PerturbedRows):
                if a.pos is not self.pos:
                    return None
                bases.append(a.base)
                values.append(a.val)
            elif isinstance(a, (bool, int, float, complex, np.generic)):
                bases.append(a)
                values.append(a)
            elif isinstance(a, np.ndarray) and a.dtype != object and a.ndim <= len(shape) \
                    and _broadcasts_into(a.shape, shape):
                bases.append(a)
                values.append(np.broadcast_to(a, shape).reshape(-1)[self.pos])
            else:
                return None
        return bases, values

    # --- reductions ---------------------------------------------------------------------

    def sum(self, *args: Any, **kwargs: Any) -> Any:
        """Sum, as ``ndarray.sum``; over point axes it stays O(m + n)."""
        return self._reduction("sum", args, kwargs)

    def mean(self, *args: Any, **kwargs: Any) -> Any:
        """Mean, as ``ndarray.mean``; over point axes it stays O(m + n)."""
        return self._reduction("mean", args, kwargs)

    def max(self, *args: Any, **kwargs: Any) -> Any:
        """Maximum, as ``ndarray.max``; over point axes it stays O(m + n)."""
        return self._reduction("max", args, kwargs)

    def min(self, *args: Any, **kwargs: Any) -> Any:
        """Minimum, as ``ndarray.min``; over point axes it stays O(m + n)."""
        return self._reduction("min", args, kwargs)

    def _reduction(self, kind: str, args: tuple, kwargs: dict) -> Any:
        options = dict(kwargs)
        axis = args[0] if args else options.pop("axis", None)
        keepdims = options.pop("keepdims", False)
        plain = len(args) <= 1 and all(options.pop(k, None) is None for k in ("dtype", "out")) and not options
        axes = _point_axes(axis, self.ndim) if plain else None
        if axes is None:
            return getattr(self.dense(kind), kind)(*args, **kwargs)
        return self._reduce_point_axes(kind, axes, bool(keepdims))

    def _reduce_point_axes(self, kind: str, reduced: list, keepdims: bool) -> Any:
        shape = self.base.shape
        kept = [a for a in range(len(shape)) if a not in reduced]
        kept_shape = tuple(shape[a] for a in kept)
        width = math.prod(shape[a] for a in reduced)
        table = self.base.transpose(kept + reduced).reshape(-1, width)     # one row per output element
        coords = np.unravel_index(self.pos, shape)
        out_pos = np.ravel_multi_index([coords[a] for a in kept], kept_shape) if kept else np.zeros_like(self.pos)
        in_slice = np.ravel_multi_index([coords[a] for a in reduced], tuple(shape[a] for a in reduced))
        replaced = table[out_pos, in_slice]
        if kind in ("sum", "mean"):
            totals = table.sum(axis=1)
            base, val = totals, totals[out_pos] - replaced + self.val
            if kind == "mean":
                base, val = base / width, val / width
        else:
            base, val = _extreme_without(kind, table, out_pos, in_slice, self.val)
        out_shape = tuple(1 if a in reduced else n for a, n in enumerate(shape)) if keepdims else kept_shape
        if math.prod(out_shape) == 1:                  # one element per row: a plain dense result
            return val.reshape((len(self.pos),) + out_shape)
        return PerturbedRows(base.reshape(out_shape), out_pos, val, self.log)


def _dense_method(name: str, why: str) -> Any:
    def method(self: PerturbedRows, *args: Any) -> Any:
        return getattr(self.dense(why), name)(*args)
    method.__name__ = name
    method.__doc__ = f"``{name}`` of the dense array."
    return method


for _name, _why in [("__getitem__", "indexing"), ("__iter__", "iteration"), ("__bool__", "bool"),
                    ("__float__", "float"), ("__int__", "int"), ("__complex__", "complex"),
                    ("__index__", "index"), ("__contains__", "in")]:
    setattr(PerturbedRows, _name, _dense_method(_name, _why))


def _extreme_without(kind: str, table: np.ndarray, out_pos: np.ndarray, in_slice: np.ndarray,
                     val: np.ndarray) -> tuple:
    """Max (or min) of each table row, and of the row of each replaced element once replaced."""
    rows = np.arange(len(table))
    first = (np.argmax if kind == "max" else np.argmin)(table, axis=1)
    best = table[rows, first]
    if table.shape[1] == 1:
        return best, val
    others = table.copy()
    others[rows, first] = table[rows, (first + 1) % table.shape[1]]   # a duplicate never changes an extreme
    runner_up = getattr(others, kind)(axis=1)
    without = np.where(in_slice == first[out_pos], runner_up[out_pos], best[out_pos])
    return best, (np.maximum if kind == "max" else np.minimum)(without, val)


def _point_axes(axis: Any, ndim: int) -> Optional[list]:
    """The point axes (batch axis excluded, counted from 0) an ``axis`` argument names, or
    None when it names the batch axis, is invalid, or covers nothing (left to NumPy)."""
    if axis is None:
        return None
    try:
        axes = [int(axis)] if np.ndim(axis) == 0 else [int(a) for a in axis]
    except TypeError:
        return None
    axes = [a + ndim if a < 0 else a for a in axes]
    if not axes or len(set(axes)) != len(axes) or any(not 1 <= a < ndim for a in axes):
        return None
    return sorted(a - 1 for a in axes)


def _broadcasts_into(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _densify(value: Any, why: str) -> Any:
    """``value`` with every PerturbedRows inside (lists, tuples, dicts) replaced by its dense array."""
    if isinstance(value, PerturbedRows):
        return value.dense(why)
    if isinstance(value, (list, tuple)):
        return type(value)(_densify(v, why) for v in value)
    if isinstance(value, dict):
        return {k: _densify(v, why) for k, v in value.items()}
    return value


def _stand_ins(value: Any) -> Any:
    """``value`` with every PerturbedRows replaced by a zero-stride array of its shape and dtype."""
    if isinstance(value, PerturbedRows):
        return np.broadcast_to(np.zeros((), value.dtype), value.shape)
    if isinstance(value, (list, tuple)):
        return type(value)(_stand_ins(v) for v in value)
    if isinstance(value, dict):
        return {k: _stand_ins(v) for k, v in value.items()}
    return value


_REDUCTIONS = {np.sum: "sum", np.mean: "mean", np.max: "max", np.amax: "max", np.min: "min", np.amin: "min"}
_ELEMENTWISE = {np.where, np.clip}
_METADATA = {np.shape, np.ndim, np.size, np.iscomplexobj, np.isrealobj, np.result_type}
