"""The reverse-mode engine: :class:`Tensor`, the graph it records, and backward.

A Tensor wraps a NumPy (or CuPy) array. Every operation on tensors that require
grad records one node: the rule from :mod:`symgrad.rules`, the arguments and
their arrays. :meth:`Tensor.backward` walks those nodes in reverse topological
order (built without recursion), calls each rule's vector-Jacobian products,
undoes broadcasting once per edge, accumulates the gradients of shared nodes and
frees each node's buffers as soon as it has been used.

Example:
    >>> a = tensor(2.0, requires_grad=True)
    >>> b = tensor(-3.0, requires_grad=True)
    >>> loss = (a * b + 10.0) * -2.0
    >>> loss.backward()
    >>> float(a.grad), float(b.grad)
    (6.0, -4.0)
"""
from __future__ import annotations

from itertools import count
from operator import attrgetter
from typing import Any, Optional, Sequence

import numpy as np

from . import backend
from .rules import RULES, Rule, unbroadcast

__all__ = ["Tensor", "tensor", "apply"]


def _constant(value: Any) -> Any:
    """A non-tensor operand as the engine keeps it: NumPy scalars become Python
    scalars, so that they stay weakly typed and never upcast float32 arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value


def shape_error(rule: Rule, inputs: Sequence[Any], err: Exception) -> ValueError:
    """The one-line ValueError for an op whose operands (or parameters) do not fit together.

    Example:
        >>> shape_error(RULES["matmul"], [np.ones((2, 3)), np.ones((4, 5))], ValueError("x")).args[0]
        'matmul: incompatible shapes (2, 3) and (4, 5): x'
        >>> shape_error(RULES["sum"], [np.ones(2)], ValueError("axis 3 is out of bounds")).args[0]
        'sum: cannot apply to shape (2,): axis 3 is out of bounds'
    """
    shapes = " and ".join(str(tuple(np.shape(x))) for x in inputs)
    what = "incompatible shapes" if len(inputs) > 1 else "cannot apply to shape"
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ValueError(f"{rule.name}: {what} {shapes}: {first_line}")


class Tensor:
    """An array that records the operations applied to it, for backpropagation.

    Build one with :func:`tensor`. Operators ``+ - * / ** @`` and unary ``-``
    broadcast as NumPy does, with a scalar or an array on either side.

    Example:
        >>> w = tensor([1.0, 2.0], requires_grad=True)
        >>> (w * w).sum().backward()
        >>> w.grad
        array([2., 4.])
    """

    __slots__ = ("data", "grad", "requires_grad", "_rule", "_args", "_inputs", "_params", "_wanted", "_acc",
                 "_retain", "_seq", "__weakref__")
    __array_ufunc__ = None          # make NumPy defer to Tensor's reflected operators
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False):
        self.data = data
        self.grad = None
        self.requires_grad = False
        self._rule = None
        self._args = self._inputs = self._params = self._wanted = self._acc = None
        self._retain = False
        self._seq = next(_counter)
        if requires_grad:
            self.requires_grad_(True)

    # --- properties -------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The shape of the data, as a tuple."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the data (kept through every operation)."""
        return self.data.dtype

    @property
    def device(self) -> str:
        """"cpu" or "gpu"."""
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """True for a tensor made by the user rather than by an operation."""
        return self._rule is None

    @property
    def op(self) -> Optional[str]:
        """The name of the operation that made this tensor (None for a leaf).

        Example:
            >>> (tensor(1.0, requires_grad=True) * 2).op
            'mul'
        """
        return None if self._rule is None else self._rule.name

    @property
    def inputs(self) -> tuple:
        """The arguments of the recorded operation: tensors and constants (empty for a leaf)."""
        return tuple(self._args or ())

    @property
    def params(self) -> dict:
        """The keyword parameters of the recorded operation (axis, shape, ...)."""
        return dict(self._params or {})

    @property
    def T(self) -> "Tensor":
        """The transpose (all axes reversed)."""
        return apply(RULES["transpose"], self, axes=None)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        """Turn gradient recording on or off for this leaf; returns self.

        Example:
            >>> tensor(1.0).requires_grad_().requires_grad
            True
        """
        if flag and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require grad; this one has dtype {self.data.dtype}")
        self.requires_grad = bool(flag)
        return self

    # --- conversion ----------------------------------------------------------------
    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor; this one has shape {self.shape}")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed)."""
        return backend.to_device(self.data, "cpu")

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, cut from the graph."""
        return Tensor(self.data)

    def to(self, device: str) -> "Tensor":
        """A copy of this tensor on ``device`` ("cpu" or "gpu"), as a new leaf."""
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)

    def __repr__(self) -> str:
        body = np.array2string(backend.to_device(self.data, "cpu"), separator=", ", prefix="tensor(")
        extra = "" if self.data.dtype == np.float64 else f", dtype={self.data.dtype}"
        extra += f", device='{self.device}'" if self.device != "cpu" else ""
        extra += f", op={self.op}" if self.op else (", requires_grad=True" if self.requires_grad else "")
        return f"tensor({body}{extra})"

    def __len__(self) -> int:
        return len(self.data)

    def __float__(self) -> float:
        return float(self.item())

    # --- gradients -------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Forget the accumulated gradient (sets ``grad`` to None)."""
        self.grad = None

    def retain_grad(self) -> "Tensor":
        """Keep this non-leaf tensor's gradient in ``grad`` after backward; returns self."""
        self._retain = True
        return self

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Backpropagate from this tensor, accumulating into the leaves' ``grad``.

        ``grad`` is the gradient of the final objective with respect to this tensor;
        it may be omitted for a one-element tensor (it is then 1). The graph is freed
        as it is walked unless ``retain_graph`` is true.

        Example:
            >>> x = tensor(3.0, requires_grad=True)
            >>> (x ** 2).backward()
            >>> float(x.grad)
            6.0
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: "
                               "build it from tensors made with requires_grad=True")
        xp = backend.xp_of(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without grad needs a one-element output; this tensor has shape "
                                   f"{self.shape}: pass grad= an array of that shape")
            seed = xp.ones(self.data.shape, dtype=self.data.dtype)      # ones_like is a slower Python wrapper
        else:
            seed = xp.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.data.dtype)
            if seed.shape != self.shape:
                raise ValueError(f"backward(): grad has shape {seed.shape} but the tensor has shape {self.shape}")
        order = _reverse_topological_order(self)
        self._acc = seed
        owned: set = {id(seed)}         # the caller's array may be the seed: a leaf copies it before keeping it
        try:
            for node in order:
                g = node._acc
                node._acc = None
                if g is None:
                    continue
                rule = node._rule
                if rule is None or node._retain:
                    node.grad = _accumulated(node.grad, g, node.data.dtype, owned)
                    if rule is None:
                        continue
                inputs, out, params = node._inputs, node.data, node._params
                args, vjps = node._args, rule.vjps
                for i in node._wanted:
                    arg = args[i]
                    gi = vjps[i](g, out, *inputs, **params) if params else vjps[i](g, out, *inputs)
                    if gi.shape != arg.data.shape:
                        gi = unbroadcast(gi, arg.data.shape)
                    acc = arg._acc
                    arg._acc = gi if acc is None else acc + gi
                if not retain_graph:      # free the buffers; keeping _rule marks the node as freed
                    node._args = node._inputs = node._params = node._wanted = None
        except BaseException:
            for node in order:      # a failed pass must not leak partial gradients into the next one
                node._acc = None
            raise

    # --- operators -------------------------------------------------------------------
    def __add__(self, other): return apply2(_ADD, self, other)
    def __radd__(self, other): return apply2(_ADD, other, self)
    def __sub__(self, other): return apply2(_SUB, self, other)
    def __rsub__(self, other): return apply2(_SUB, other, self)
    def __mul__(self, other): return apply2(_MUL, self, other)
    def __rmul__(self, other): return apply2(_MUL, other, self)
    def __truediv__(self, other): return apply2(_DIV, self, other)
    def __rtruediv__(self, other): return apply2(_DIV, other, self)
    def __pow__(self, other): return apply2(_POW, self, other)
    def __rpow__(self, other): return apply2(_POW, other, self)
    def __matmul__(self, other): return apply2(_MATMUL, self, other)
    def __rmatmul__(self, other): return apply2(_MATMUL, other, self)
    def __neg__(self): return apply(RULES["neg"], self)
    def __pos__(self): return self

    # Comparisons give plain boolean arrays (for masks and sg.where); they are not differentiable.
    def __lt__(self, other): return self.data < _data(other)
    def __le__(self, other): return self.data <= _data(other)
    def __gt__(self, other): return self.data > _data(other)
    def __ge__(self, other): return self.data >= _data(other)

    def __getitem__(self, index):
        return apply(RULES["getitem"], self, index=_index(index))

    # --- methods named like NumPy's -------------------------------------------------
    def sum(self, axis=None, keepdims=False) -> "Tensor":
        """Sum over ``axis`` (None, an int or a tuple)."""
        return apply(RULES["sum"], self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False) -> "Tensor":
        """Mean over ``axis`` (None, an int or a tuple)."""
        return apply(RULES["mean"], self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False) -> "Tensor":
        """Maximum over ``axis``; tied maxima share the gradient equally."""
        return apply(RULES["max"], self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape) -> "Tensor":
        """The same data in a new shape: ``t.reshape(2, 3)`` or ``t.reshape((2, 3))``."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return apply(RULES["reshape"], self, shape=shape)

    def transpose(self, *axes) -> "Tensor":
        """Permute the axes: ``t.transpose(1, 0, 2)``; no argument reverses them."""
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return apply(RULES["transpose"], self, axes=axes or None)

    def exp(self): return apply(RULES["exp"], self)
    def log(self): return apply(RULES["log"], self)
    def tanh(self): return apply(RULES["tanh"], self)
    def sigmoid(self): return apply(RULES["sigmoid"], self)
    def relu(self): return apply(RULES["relu"], self)
    def sin(self): return apply(RULES["sin"], self)
    def cos(self): return apply(RULES["cos"], self)
    def sqrt(self): return apply(RULES["sqrt"], self)
    def abs(self): return apply(RULES["abs"], self)


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _index(index: Any) -> Any:
    """An index with tensors replaced by their arrays and lists by arrays."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _accumulated(current: Any, g: Any, dtype: Any, owned: set) -> Any:
    """current + g as an array of the tensor's own dtype (NumPy may have promoted g on
    the way), never aliasing a view or an array that another tensor's grad already holds."""
    if current is not None:
        g = current + g
    elif g.base is not None or id(g) in owned:
        g = g.copy()
    if type(g) is not np.ndarray or g.dtype != dtype:
        g = backend.xp_of(g).asarray(g, dtype=dtype)      # also makes NumPy scalars 0-d arrays
    owned.add(id(g))
    return g


def _reverse_topological_order(root: Tensor) -> list:
    """Every tensor that requires grad behind ``root``, consumers before their inputs.

    The nodes are gathered without recursion (a chain of any length is fine) and
    ordered by creation: an operation's output is always created after its inputs.
    """
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        wanted = node._wanted
        if wanted is None:
            if node._rule is not None:
                raise RuntimeError("backward() through a graph that an earlier backward() already freed: "
                                   "pass retain_graph=True to the first call")
            continue
        args = node._args
        for i in wanted:
            parent = args[i]
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return sorted(seen, key=_creation, reverse=True)


_creation = attrgetter("_seq")
_counter = count()


def _new_tensor(data: Any) -> Tensor:
    """A tensor around an op's result ``data`` (a NumPy scalar stays as it is), with no graph yet."""
    t = Tensor.__new__(Tensor)
    t.data = data if type(data) is np.ndarray or hasattr(data, "shape") else np.asarray(data)
    t.grad = t._acc = t._rule = t._args = t._inputs = t._params = t._wanted = None
    t.requires_grad = t._retain = False
    t._seq = next(_counter)
    return t


def apply(rule: Rule, *args: Any, **params: Any) -> Tensor:
    """Run ``rule`` forward on tensors and constants, recording a node when needed.

    A node keeps the rule, the arguments, their arrays and the positions of the
    arguments that need a gradient (a tuple of ints, which Python's cyclic garbage
    collector stops watching: recording stays cheap on long graphs).

    Example:
        >>> apply(RULES["mul"], tensor([1.0, 2.0]), 3.0).data
        array([3., 6.])
    """
    inputs = []
    wanted = None
    for a in args:
        kind = type(a)
        if kind is Tensor:
            if a.requires_grad:
                wanted = (len(inputs),) if wanted is None else wanted + (len(inputs),)
            inputs.append(a.data)
        else:
            inputs.append(a if kind is float or kind is int else _constant(a))
    try:
        out = rule.forward(*inputs, **params)
    except ValueError as err:
        raise shape_error(rule, inputs, err) from None
    if rule.saves:
        out, saved = out
        inputs.append(saved)
    t = _new_tensor(out)
    if wanted is not None:
        t.requires_grad = True
        t._rule, t._args, t._inputs, t._params, t._wanted = rule, args, tuple(inputs), params, wanted
    return t


def apply2(rule: Rule, a: Any, b: Any) -> Tensor:
    """:func:`apply` for a binary rule without parameters: the operators' fast path.

    Example:
        >>> apply2(RULES["add"], 1.0, tensor([1.0, 2.0])).data
        array([2., 3.])
    """
    if type(a) is Tensor:
        x, grad_a = a.data, a.requires_grad
    else:
        x, grad_a = (a if type(a) is float or type(a) is int else _constant(a)), False
    if type(b) is Tensor:
        y, grad_b = b.data, b.requires_grad
    else:
        y, grad_b = (b if type(b) is float or type(b) is int else _constant(b)), False
    try:
        out = rule.forward(x, y)
    except ValueError as err:
        raise shape_error(rule, (x, y), err) from None
    t = _new_tensor(out)
    if grad_a or grad_b:
        t.requires_grad = True
        t._rule, t._args, t._inputs, t._params = rule, (a, b), (x, y), _NO_PARAMS
        t._wanted = ((0, 1) if grad_b else (0,)) if grad_a else (1,)
    return t


_NO_PARAMS: dict = {}
_ADD, _SUB, _MUL, _DIV, _POW, _MATMUL = (RULES[n] for n in ("add", "sub", "mul", "div", "pow", "matmul"))


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: Optional[str] = None) -> Tensor:
    """Make a leaf tensor.

    Python numbers and lists become float64 (unless ``dtype`` says otherwise); a
    NumPy array keeps its dtype and shares its memory. ``device`` is "cpu" or "gpu"
    (needs CuPy); by default the data stays where it is (a CuPy array on the GPU,
    anything else on the CPU). Integer tensors cannot require grad.

    Example:
        >>> t = tensor([[1, 2], [3, 4]], requires_grad=True)
        >>> t.dtype, t.shape
        (dtype('float64'), (2, 2))
    """
    if isinstance(data, Tensor):
        data = data.data
    device = backend.device_of(data) if device is None else backend.check_device(device)
    xp = backend.array_module(device)
    if hasattr(data, "__array__") or hasattr(data, "__cuda_array_interface__"):
        array = xp.asarray(backend.to_device(data, device), dtype=dtype)   # NumPy scalars become 0-d arrays
        if array.dtype.kind not in "biufc":
            raise TypeError(f"tensor() needs numbers, not an array of dtype {array.dtype}")
    else:
        try:
            array = xp.asarray(data, dtype=dtype if dtype is not None else np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"tensor() needs numbers or arrays of numbers: {err}") from None
    return Tensor(array, requires_grad=requires_grad)
