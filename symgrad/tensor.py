"""The reverse-mode engine: :class:`Tensor`, the graph it records, and backward.

A Tensor wraps a NumPy (or CuPy) array. Every operation on tensors that require
grad records one node: the rule from :mod:`symgrad.rules`, the arguments and
what the rule's VJPs read. :meth:`Tensor.backward` takes the nodes from a heap,
newest first (a reverse topological order, without recursion), calls each rule's
vector-Jacobian products, undoes broadcasting once per edge, accumulates the
gradients of shared nodes and frees each node's buffers as soon as it has been
used; the leaves' ``grad`` is written once the whole pass has succeeded.

Example:
    >>> a = tensor(2.0, requires_grad=True)
    >>> b = tensor(-3.0, requires_grad=True)
    >>> loss = (a * b + 10.0) * -2.0
    >>> loss.backward()
    >>> float(a.grad), float(b.grad)
    (6.0, -4.0)
"""
from __future__ import annotations

from contextlib import contextmanager
from heapq import heappop, heappush
from itertools import count
from numbers import Number
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from . import backend
from .rules import RULES, Rule, unbroadcast

__all__ = ["Tensor", "tensor", "apply", "shape_error", "type_error", "operand_error", "tracing", "traced_input"]


def _constant(value: Any, rule: Rule, operands: Sequence[Any]) -> Any:
    """A non-tensor operand that is not a float, int or ndarray, as the engine keeps it: NumPy scalars
    become Python scalars, so that they stay weakly typed and never upcast float32 arrays, and lists
    become arrays. Anything that is not a number or an array of numbers is refused here, off the
    operators' fast path, with the TypeError of :func:`operand_error`."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, (list, tuple)) or (hasattr(value, "__array__") and not hasattr(value, "dtype")):
        try:
            value = np.asarray(value)
        except ValueError:                # a ragged list
            raise operand_error(rule, operands) from None
    if not _numeric(value):
        raise operand_error(rule, operands)
    return value


def _numeric(value: Any) -> bool:
    """True for a number or an array (NumPy, CuPy) of numbers: what an operation accepts besides tensors."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in _NUMERIC_KINDS if kind is not None else isinstance(value, Number)


def _describe(value: Any) -> str:
    """How an error message names an operand: its type, and an array's dtype when that is not numeric."""
    name = "None" if value is None else type(value).__name__
    return f"{name} of dtype {value.dtype}" if isinstance(value, np.ndarray) and not _numeric(value) else name


def operand_error(rule: Rule, operands: Sequence[Any]) -> TypeError:
    """The one-line TypeError for an operation given something other than numbers, arrays or tensors.

    Example:
        >>> operand_error(RULES["add"], [tensor(1.0), "x"]).args[0]
        'unsupported operand for +: Tensor and str (operands must be numbers, arrays of numbers or Tensors)'
    """
    what = " and ".join(_describe(x) for x in operands)
    return TypeError(f"unsupported operand for {_SYMBOLS.get(rule.name, rule.name)}: {what} "
                     "(operands must be numbers, arrays of numbers or Tensors)")


def type_error(rule: Rule, inputs: Sequence[Any], operands: Sequence[Any], err: TypeError) -> TypeError:
    """The TypeError to raise when ``rule`` failed with ``err`` on ``inputs`` (the numbers and arrays it ran
    on): :func:`operand_error` naming the ``operands`` as given if an input (an array of strings, say) is
    not numeric, else ``err`` itself.

    Example:
        >>> type_error(RULES["exp"], [np.array("x")], ["x"], TypeError("no loop")).args[0]
        'unsupported operand for exp: str (operands must be numbers, arrays of numbers or Tensors)'
    """
    if all(_numeric(x) for x in inputs):
        return err
    return operand_error(rule, operands)


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

    # _node is None for a tensor that needs no gradient, () for a leaf that does, and for a
    # recorded result the tuple (rule, args, (out, *inputs), params, wanted): the arguments, what
    # the VJPs read and the positions of the arguments that need a gradient. Backward frees it to
    # (rule,); retain_grad() appends True. _seq counts creation down (an op's output always has a
    # smaller _seq than its inputs); _acc gathers a gradient during backward.
    __slots__ = ("data", "grad", "_node", "_acc", "_seq", "__weakref__")
    __array_ufunc__ = None          # make NumPy defer to Tensor's reflected operators
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False):
        self.data = data
        self.grad = self._acc = self._node = None
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
        return not self._node

    @property
    def requires_grad(self) -> bool:
        """Whether operations on this tensor are recorded (settable on a leaf, as ``requires_grad_``)."""
        return self._node is not None

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    @property
    def op(self) -> Optional[str]:
        """The name of the operation that made this tensor (None for a leaf).

        Example:
            >>> (tensor(1.0, requires_grad=True) * 2).op
            'mul'
        """
        return self._node[0].name if self._node else None

    @property
    def inputs(self) -> tuple:
        """The arguments of the recorded operation: tensors and constants (empty for a leaf
        or once backward has freed the graph)."""
        return tuple(self._node[1]) if self._node and len(self._node) > 1 else ()

    @property
    def params(self) -> dict:
        """The keyword parameters of the recorded operation (axis, shape, ...)."""
        return dict(self._node[3]) if self._node and len(self._node) > 1 else {}

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
        if not flag:
            if self._node:
                raise RuntimeError(f"requires_grad_(False) on the result of {self.op}: only a leaf can stop "
                                   "requiring grad; use detach() for a copy cut from the graph")
            self._node = None
        elif self._node is None:
            self._node = ()
            self._seq = next(_counter)    # after every tensor it may already depend on
        return self

    # --- conversion ----------------------------------------------------------------
    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        data = self._values("item() or float()")
        if data.size != 1:
            raise ValueError(f"item() needs a one-element tensor; this one has shape {self.shape}")
        return data.item()

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed)."""
        return backend.to_device(self._values("numpy()"), "cpu")

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, cut from the graph."""
        return Tensor(self._values("detach()"))

    def to(self, device: str) -> "Tensor":
        """A copy of this tensor on ``device`` ("cpu" or "gpu"), as a new leaf."""
        return Tensor(backend.to_device(self._values("to()"), device), requires_grad=self.requires_grad)

    def _values(self, what: str) -> Any:
        """The data, for ``what`` to read outside the graph: a TypeError while a compiled gradient traces
        this tensor, since a value read then would be frozen into every replay."""
        if _tracing and self._node is not None:
            raise TypeError(f"{what} reads the values of a tensor that a compiled gradient is tracing; a "
                            "replay could not follow them: compute with sg.* functions and operators, or "
                            "use compile=False")
        return self.data

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

    def __bool__(self) -> bool:
        """The truth of a one-element tensor, as NumPy's: a ValueError for any other size.

        Example:
            >>> bool(tensor(0.0)), bool(tensor([2.0]))
            (False, True)
        """
        data = self._values("bool() (an if or a while on a tensor)")
        if data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous: "
                             "use t.data.any() or t.data.all()")
        return bool(data)

    # --- gradients -------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Forget the accumulated gradient (sets ``grad`` to None)."""
        self.grad = None

    def retain_grad(self) -> "Tensor":
        """Keep this non-leaf tensor's gradient in ``grad`` after backward; returns self."""
        if self._node and len(self._node) == 5:
            self._node += (True,)
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
        if self._node is None:
            raise RuntimeError("backward() on a tensor that does not require grad: "
                               "build it from tensors made with requires_grad=True")
        data = self.data
        if grad is None:
            if data.size != 1:
                raise RuntimeError(f"backward() without grad needs a one-element output; this tensor has shape "
                                   f"{self.shape}: pass grad= an array of that shape")
            seed = backend.xp_of(data).array(1, dtype=data.dtype)
            if data.ndim:
                seed = seed.reshape(data.shape)
        else:
            seed = backend.xp_of(data).asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=data.dtype)
            if seed.shape != data.shape:
                raise ValueError(f"backward(): grad has shape {seed.shape} but the tensor has shape {self.shape}")
        self._acc = seed
        pending = []                        # a heap: the most recently created tensor comes out first
        leaves = []                         # the leaves reached, each gathering its gradient in _acc
        kept = []                           # (tensor, gradient) of every tensor that retains its grad
        if self._node:
            pending.append((self._seq, self))
        else:
            leaves.append(self)
        try:
            while pending:
                node = heappop(pending)[1]
                g = node._acc
                node._acc = None
                try:
                    rule, args, inputs, params, wanted = node._node
                except ValueError:          # (rule,) once freed; a sixth entry if it retains its grad
                    if len(node._node) == 1:
                        raise RuntimeError("backward() through a graph that an earlier backward() already "
                                           "freed: pass retain_graph=True to the first call") from None
                    rule, args, inputs, params, wanted, _ = node._node
                    kept.append((node, g))
                vjps = rule.vjps
                for i in wanted:
                    arg = args[i]
                    gi = vjps[i](g, *inputs, **params)
                    if gi.shape != arg.data.shape:
                        gi = unbroadcast(gi, arg.data.shape)
                    acc = arg._acc
                    if acc is not None:
                        arg._acc = acc + gi
                        continue
                    arg._acc = gi
                    if arg._node:           # its consumers were all created after it: none is left behind
                        heappush(pending, (arg._seq, arg))
                    else:
                        leaves.append(arg)
                if not retain_graph:        # free the buffers; the rule stays for .op
                    node._node = rule.freed
            owned: set = {id(seed)}         # the caller's array may be the seed: a leaf copies it before keeping it
            grads = [(node, _accumulated(node.grad, g, node.data.dtype, owned)) for node, g in kept]
            for leaf in leaves:
                grads.append((leaf, _accumulated(leaf.grad, leaf._acc, leaf.data.dtype, owned)))
        except BaseException:
            for node in leaves + [entry[1] for entry in pending]:   # no partial gradient may leak
                node._acc = None
            raise
        for leaf in leaves:
            leaf._acc = None
        for node, g in grads:               # every .grad is written once the whole pass has succeeded
            node.grad = g

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
    def __lt__(self, other): return self._values("a comparison") < _data(other)
    def __le__(self, other): return self._values("a comparison") <= _data(other)
    def __gt__(self, other): return self._values("a comparison") > _data(other)
    def __ge__(self, other): return self._values("a comparison") >= _data(other)

    def __getitem__(self, index):
        index = _index(index)
        if type(self.data) is not np.ndarray and backend.xp_of(self.data) is not np:
            backend.check_index(self.shape, index)      # CuPy would wrap an index out of range around
        return apply(RULES["getitem"], self, index=index)

    # --- methods named like NumPy's -------------------------------------------------
    def sum(self, axis=None, keepdims=False, **numpy_only) -> "Tensor":
        """Sum over ``axis`` (None, an int or a tuple).

        Example:
            >>> tensor([[1.0, 2.0], [3.0, 4.0]]).sum(axis=0)
            tensor([4., 6.])
        """
        return self._reduced("sum", axis, keepdims, numpy_only)

    def mean(self, axis=None, keepdims=False, **numpy_only) -> "Tensor":
        """Mean over ``axis`` (None, an int or a tuple).

        Example:
            >>> tensor([1.0, 3.0]).mean()
            tensor(2.)
        """
        return self._reduced("mean", axis, keepdims, numpy_only)

    def max(self, axis=None, keepdims=False, **numpy_only) -> "Tensor":
        """Maximum over ``axis``; tied maxima share the gradient equally.

        Example:
            >>> tensor([1.0, 3.0]).max()
            tensor(3.)
        """
        return self._reduced("max", axis, keepdims, numpy_only)

    def _reduced(self, name: str, axis: Any, keepdims: bool, numpy_only: dict) -> "Tensor":
        """The reduction ``name``, refusing the extra arguments ``np.sum(t)`` and the like pass."""
        if numpy_only:
            raise _numpy_reduction_error(name, numpy_only)
        return apply(RULES[name], self, axis=axis, keepdims=keepdims)

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


def _numpy_reduction_error(name: str, given: dict) -> TypeError:
    r"""The TypeError of ``t.sum(out=...)`` and the like: what ``np.sum(t)`` passes to the method.

    Example:
        >>> print(*_numpy_reduction_error("sum", {"out": None}).args[0].split(": "), sep=":\n")
        Tensor.sum() takes axis and keepdims only, not out:
        np.sum(t) cannot record the gradient; use sg.sum(t) or t.sum()
    """
    return TypeError(f"Tensor.{name}() takes axis and keepdims only, not {', '.join(given)}: np.{name}(t) cannot "
                     f"record the gradient; use sg.{name}(t) or t.{name}()")


def _data(x: Any) -> Any:
    return x._values("a comparison") if isinstance(x, Tensor) else x


def _index(index: Any) -> Any:
    """An index with tensors replaced by their arrays and lists by arrays."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._values("indexing with a tensor")
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


_counter = count(0, -1)      # creation order, counted down: the newest tensor has the smallest _seq
_tracing = 0                 # how many compiled gradients are tracing a function now (see symgrad.trace)


@contextmanager
def tracing() -> Iterator[None]:
    """Within this block, reading the values of a recorded tensor (``bool``, ``item``, a comparison...)
    is a TypeError: a traced function must compute with the engine alone.

    Example:
        >>> x = traced_input(np.array([1.0, -1.0]))
        >>> with tracing():
        ...     y = (x * 2).sum()
        ...     bool(y > 0)
        Traceback (most recent call last):
        ...
        TypeError: a comparison reads the values of a tensor that a compiled gradient is tracing; a replay \
could not follow them: compute with sg.* functions and operators, or use compile=False
    """
    global _tracing
    _tracing += 1
    try:
        yield
    finally:
        _tracing -= 1


def traced_input(array: Any) -> Tensor:
    """A leaf around ``array`` whose operations are recorded whatever its dtype (integer labels too),
    so that a trace can replay them on other arrays; it never gets a gradient of its own.

    Example:
        >>> (traced_input(np.arange(3)) * 2).op
        'mul'
    """
    t = Tensor(array)
    t._node = ()
    t._seq = next(_counter)
    return t


_blank = Tensor.__new__


def _new_tensor(data: Any, node: Optional[tuple] = None) -> Tensor:
    """A tensor around an op's result ``data`` (a NumPy scalar stays as it is), recorded as ``node``
    (rule, args, (out, *inputs), params, wanted) when that is given."""
    t = _blank(Tensor)
    t.data = data if type(data) is np.ndarray or hasattr(data, "shape") else np.asarray(data)
    t.grad = t._acc = None
    t._node = node
    if node is not None:
        t._seq = next(_counter)
    return t


def apply(rule: Rule, *args: Any, **params: Any) -> Tensor:
    """Run ``rule`` forward on tensors and constants, recording a node when needed.

    A node keeps the rule, the arguments, what the VJPs read (the output and the
    inputs' arrays) and the positions of the arguments that need a gradient.

    Example:
        >>> apply(RULES["mul"], tensor([1.0, 2.0]), 3.0).data
        array([3., 6.])
    """
    inputs = []
    wanted = None
    for a in args:
        kind = type(a)
        if kind is Tensor:
            if a._node is not None:
                wanted = (len(inputs),) if wanted is None else wanted + (len(inputs),)
            inputs.append(a.data)
        else:
            inputs.append(a if kind in _AS_IS else _constant(a, rule, args))
    try:
        out, inputs = rule.run(*inputs, **params)
    except ValueError as err:
        raise shape_error(rule, inputs, err) from None
    except TypeError as err:
        raise type_error(rule, inputs, args, err) from None
    if wanted is None:
        return _new_tensor(out)
    return _new_tensor(out, (rule, args, (out, *inputs), params, wanted))


def apply2(rule: Rule, a: Any, b: Any) -> Tensor:
    """:func:`apply` for a binary rule without parameters: the operators' fast path.

    Example:
        >>> apply2(RULES["add"], 1.0, tensor([1.0, 2.0])).data
        array([2., 3.])
    """
    if type(a) is Tensor:
        x, grad_a = a.data, a._node is not None
    else:
        x, grad_a = (a if type(a) in _AS_IS else _constant(a, rule, (a, b))), False
    if type(b) is Tensor:
        y, grad_b = b.data, b._node is not None
    else:
        y, grad_b = (b if type(b) in _AS_IS else _constant(b, rule, (a, b))), False
    try:
        out = rule.forward(x, y)
    except ValueError as err:
        raise shape_error(rule, (x, y), err) from None
    except TypeError as err:
        raise type_error(rule, (x, y), (a, b), err) from None
    if grad_a:
        return _new_tensor(out, (rule, (a, b), (out, x, y), _NO_PARAMS, (0, 1) if grad_b else (0,)))
    if grad_b:
        return _new_tensor(out, (rule, (a, b), (out, x, y), _NO_PARAMS, (1,)))
    return _new_tensor(out)


_NO_PARAMS: dict = {}
_AS_IS = frozenset((float, int, np.ndarray))       # constants kept as they are (see _constant)
_NUMERIC_KINDS = frozenset("biufc")                 # dtype kinds of numbers: bool, ints, floats, complex
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@"}
_ADD, _SUB, _MUL, _DIV, _POW, _MATMUL = (RULES[n] for n in ("add", "sub", "mul", "div", "pow", "matmul"))


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: Optional[str] = None) -> Tensor:
    """Make a leaf tensor.

    Python numbers and lists become float64 (complex128 if they hold complex numbers)
    unless ``dtype`` says otherwise; a NumPy array keeps its dtype and shares its
    memory. ``device`` is "cpu" or "gpu" (needs CuPy); by default the data stays where
    it is (a CuPy array on the GPU, anything else on the CPU). Integer tensors cannot
    require grad. Anything but numbers (None, text, a ragged list) is an error.

    Example:
        >>> t = tensor([[1, 2], [3, 4]], requires_grad=True)
        >>> t.dtype, t.shape
        (dtype('float64'), (2, 2))
        >>> tensor(None)
        Traceback (most recent call last):
        ...
        TypeError: tensor() needs numbers or arrays of numbers, not None
    """
    if isinstance(data, Tensor):
        data = data._values("sg.tensor()")
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"tensor(): dtype {dtype!r} is not a NumPy dtype") from None
    device = backend.device_of(data) if device is None else backend.check_device(device)
    xp = backend.array_module(device)
    if hasattr(data, "__array__") or hasattr(data, "__cuda_array_interface__"):
        array = xp.asarray(backend.to_device(data, device), dtype=dtype)   # NumPy scalars become 0-d arrays
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"tensor() needs numbers, not an array of dtype {array.dtype}")
    else:
        array = xp.asarray(_numbers(data, dtype))
    return Tensor(array, requires_grad=requires_grad)


def _numbers(data: Any, dtype: Any) -> np.ndarray:
    """Python numbers, or nested lists of them, as a NumPy array of ``dtype`` (by default float64, or
    complex128 for complex numbers): a TypeError names what is not a number, a ValueError a ragged list
    or numbers that do not fit the dtype."""
    try:
        array = np.asarray(data)
    except ValueError:
        raise ValueError("tensor() needs a rectangular array: the nested lists have different lengths") from None
    if array.dtype == object:             # None, a dict... or numbers NumPy keeps as objects (Fraction, tensors)
        odd = [x for x in array.flat if not isinstance(x, (Number, Tensor))]
        what = _describe(odd[0]) if odd else None
    else:
        what = None if array.dtype.kind in _NUMERIC_KINDS else type(array.flat[0].item()).__name__
    if what is not None:
        inside = " in a list" if isinstance(data, (list, tuple)) else ""
        raise TypeError(f"tensor() needs numbers or arrays of numbers, not {what}{inside}")
    if dtype is None:
        dtype = np.dtype(np.float64) if array.dtype == object else np.result_type(array.dtype, np.float64)
        data = array
    try:
        return np.asarray(data, dtype=dtype)  # a list again when dtype was given: NumPy checks each number's range
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"tensor() cannot make these numbers {dtype}: {err}") from None
