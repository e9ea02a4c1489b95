"""``sg.derive``: the exact partial derivative of a loss with respect to every weight.

A loss is given as expression text, as a SymPy expression, or as a Python
function over the ``sg.*`` functions (called with SymPy symbols, or NumPy object
arrays of them, for the arguments named in ``shapes``). The partials are found
by reverse-mode differentiation over the expression's DAG
(:mod:`symgrad.symbolic.reverse`), so they share every subexpression, and are
compiled into one vectorized NumPy function (:mod:`symgrad.symbolic.codegen`).

Example:
    >>> d = derive("(w*x + b - y)**2", wrt="w,b")
    >>> print(d)
    ∂L/∂w = 2*x*(b + w*x - y)
    ∂L/∂b = 2*(b + w*x - y)
    >>> d.at(w=1, b=0, x=1, y=2)
    {'w': -2.0, 'b': -2.0}
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import sympy

from .. import backend
from ..rules import check_reduction
from .codegen import numpy_function
from .ops import as_sympy
from .parse import check_arguments, parse, parse_function
from .reverse import Program, expression_program, gradient_program

__all__ = ["derive", "Derivatives", "CompiledGradient"]

Loss = Union[str, sympy.Expr, Callable[..., Any]]


def element_name(name: str, index: tuple) -> str:
    """The name of one element of a weight: ``W1[0, 1]`` (``w`` for a scalar).

    Example:
        >>> element_name("W1", (0, 1)), element_name("b", (2,)), element_name("w", ())
        ('W1[0, 1]', 'b[2]', 'w')
    """
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def _symbols(name: str, shape: tuple) -> np.ndarray:
    """An object array of real symbols named like the elements of ``name`` (0-d for a scalar)."""
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(shape):
        out[index] = sympy.Symbol(element_name(name, index), real=True)
    return out


def _latex_symbol(name: str) -> str:
    base, _, index = name.partition("[")
    return sympy.latex(sympy.Symbol(base)) + (f"[{index}" if index else "")


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class Derivatives:
    """The exact partials of a loss, one per weight element (made by :func:`derive`).

    ``expr`` is the loss, ``wrt`` the weights' names, ``shapes`` their shapes,
    ``names`` the element names (``"w"``, ``"W1[0, 1]"``), ``exprs`` the partials
    (element name -> SymPy expression) and ``inputs`` every variable that a value
    is needed for (weights and data), name -> shape.

    Example:
        >>> d = derive("tanh(w*x)", wrt=["w"])
        >>> d.exprs["w"]
        x*(1 - tanh(w*x)**2)
        >>> print(d.latex())
        \\frac{\\partial L}{\\partial w} = x \\left(1 - \\tanh^{2}{\\left(w x \\right)}\\right)
    """

    def __init__(self, expr: sympy.Expr, variables: Mapping[str, np.ndarray], wrt: Sequence[str],
                 exprs: Optional[Sequence[sympy.Expr]] = None):
        self.expr = expr
        self.wrt = list(wrt)
        self._variables = dict(variables)
        self.shapes = {name: self._variables[name].shape for name in self.wrt}
        self.inputs = {name: symbols.shape for name, symbols in self._variables.items()}
        self._elements = [(name, index, self._variables[name][index])
                          for name in self.wrt for index in np.ndindex(self.shapes[name])]
        self.names = [element_name(name, index) for name, index, _ in self._elements]
        self._given = None if exprs is None else list(exprs)
        self._program = None
        self._exprs: Optional[dict] = None
        self._compiled: dict = {}

    @property
    def exprs(self) -> dict:
        """Element name -> the partial derivative of the loss by that element, a SymPy expression."""
        if self._exprs is None:
            exprs = self._given if self._given is not None else self._partials_program().expressions()
            self._exprs = dict(zip(self.names, exprs))
        return self._exprs

    def _partials_program(self) -> Program:
        """The program computing the partials: reverse mode over the loss, or the given (simplified) ones."""
        if self._program is None:
            self._program = (expression_program(self._given) if self._given is not None
                             else gradient_program(self.expr, [symbol for _, _, symbol in self._elements]))
        return self._program

    def __str__(self) -> str:
        return "\n".join(f"∂L/∂{name} = {expr}" for name, expr in self.exprs.items())

    def __repr__(self) -> str:
        return f"<Derivatives of L = {self.expr} with respect to {', '.join(self.wrt)}>"

    def latex(self) -> str:
        """The partials in LaTeX, one ``\\frac{\\partial L}{\\partial w} = ...`` per line (joined by ``\\\\``).

        Example:
            >>> print(derive("w**2", wrt=["w"]).latex())
            \\frac{\\partial L}{\\partial w} = 2 w
        """
        symbol_names = {symbol: _latex_symbol(str(symbol)) for symbol in self.expr.free_symbols
                        if "[" in str(symbol)}
        return " \\\\\n".join(
            rf"\frac{{\partial L}}{{\partial {_latex_symbol(name)}}} = "
            + sympy.latex(expr, symbol_names=symbol_names) for name, expr in self.exprs.items())

    def simplify(self) -> "Derivatives":
        """The same partials passed through ``sympy.simplify`` (a new Derivatives).

        Example:
            >>> print(derive("(w*x + b - y)**2 - (w*x)**2", wrt=["w"]).simplify())
            ∂L/∂w = 2*x*(b - y)
        """
        return Derivatives(self.expr, self._variables, self.wrt,
                           [sympy.simplify(expr) for expr in self.exprs.values()])

    def compile(self, reduction: str = "mean") -> "CompiledGradient":
        """One vectorized function computing every partial: ``f(**arrays) -> {weight: gradient}``.

        Arrays whose shape has leading axes beyond a variable's own shape form a
        batch (broadcast together); the gradients are averaged over it
        (``reduction="mean"``, the gradient of the mean loss), summed (``"sum"``)
        or returned per batch entry (``"none"``). NumPy or CuPy arrays.

        Example:
            >>> import numpy as np
            >>> grad = derive("(w*x + b - y)**2", wrt="w,b").compile()
            >>> g = grad(w=1.0, b=0.0, x=np.array([1.0, 2.0]), y=np.array([2.0, 2.0]))
            >>> float(g["w"]), float(g["b"])
            (-1.0, -1.0)
        """
        check_reduction(reduction)
        if reduction not in self._compiled:
            symbols = [s for array in self._variables.values() for s in array.reshape(-1)]
            function = numpy_function(self._partials_program(), symbols)
            self._compiled[reduction] = CompiledGradient(function, self.inputs, self.shapes, reduction)
        return self._compiled[reduction]

    def gradient(self, /, **values: Any) -> dict:
        """The gradient at ``values`` (every input): weight name -> array of its shape (a float for a scalar).

        Example:
            >>> derive("w**2 + v", wrt="w,v").gradient(w=3.0, v=1.0)
            {'w': 6.0, 'v': 1.0}
        """
        return {name: float(g) if self.shapes[name] == () else g for name, g in self.compile()(**values).items()}

    def at(self, /, **values: Any) -> dict:
        """Every partial at ``values`` (every input): element name -> float.

        Example:
            >>> derive("w*x", wrt="w").at(w=2.0, x=3.0)
            {'w': 3.0}
        """
        gradient = self.compile()(**values)
        return {element_name(name, index): float(gradient[name][index]) for name, index, _ in self._elements}


class CompiledGradient:
    """The compiled partials of a :class:`Derivatives`: ``grad(**arrays) -> {weight: gradient}``.

    ``source`` is the generated NumPy code; see :meth:`Derivatives.compile`. Each
    element of each input becomes one contiguous array over the (flattened)
    batch, and on the CPU the batch is evaluated in chunks of ``chunk`` samples,
    so that every intermediate array stays in the processor's cache.

    Example:
        >>> grad = derive("w*x", wrt="w").compile(reduction="none")
        >>> grad(w=0.5, x=np.array([1.0, 2.0]))["w"]
        array([1., 2.])
    """

    chunk = 8192

    def __init__(self, function: Any, inputs: Mapping[str, tuple], shapes: Mapping[str, tuple], reduction: str):
        self.function = function
        self.source = function.source
        self.inputs = dict(inputs)
        self.shapes = dict(shapes)
        self.reduction = reduction

    def __call__(self, /, **arrays: Any) -> dict:
        check_arguments("gradient", arrays, self.inputs)
        xp = next((backend.xp_of(a) for a in arrays.values() if backend.xp_of(a) is not np), np)
        values = {name: _as_array(xp, name, arrays[name]) for name in self.inputs}
        batch = self._batch(values)
        size = int(np.prod(batch))
        elements = [e for name, value in values.items() for e in self._elements(xp, value, self.inputs[name], batch)]
        dtype = xp.result_type(*values.values())
        with np.errstate(all="ignore"):
            outputs = self._evaluated(xp, elements, size, dtype)
        gradients, start = {}, 0
        for name, shape in self.shapes.items():
            count = int(np.prod(shape))
            part = outputs[..., start:start + count]
            gradients[name] = part.reshape((batch if self.reduction == "none" else ()) + shape)
            start += count
        return gradients

    def _batch(self, values: Mapping[str, Any]) -> tuple:
        batches = {}
        for name, value in values.items():
            shape = self.inputs[name]
            lead = value.ndim - len(shape)
            if lead < 0 or tuple(value.shape[lead:]) != shape:
                raise ValueError(f"gradient: {name} must have shape {shape} (after any batch axes), "
                                 f"got {tuple(value.shape)}")
            batches[name] = tuple(value.shape[:lead])
        try:
            return np.broadcast_shapes(*batches.values())
        except ValueError:
            raise ValueError("gradient: the batch axes of the inputs do not broadcast together: "
                             + ", ".join(f"{n} {b}" for n, b in batches.items())) from None

    @staticmethod
    def _elements(xp: Any, value: Any, shape: tuple, batch: tuple) -> list:
        """One value per element of an input: a scalar, or a contiguous 1-D array over the flattened batch."""
        if value.ndim == len(shape):
            return [value[index] for index in np.ndindex(shape)]
        value = xp.broadcast_to(value, batch + shape).reshape((-1,) + shape)
        columns = xp.ascontiguousarray(xp.moveaxis(value, 0, -1))
        return [columns[index] for index in np.ndindex(shape)]

    def _evaluated(self, xp: Any, elements: list, size: int, dtype: Any) -> Any:
        """All outputs, reduced over the batch (shape (n,)) or not (shape (size, n))."""
        count = sum(int(np.prod(shape)) for shape in self.shapes.values())
        result = xp.zeros((size if self.reduction == "none" else 1, count), dtype=dtype)
        batched = any(getattr(e, "ndim", 0) for e in elements)
        step = self.chunk if xp is np else max(size, 1)
        for start in range(0, size, step) if batched else [0]:
            rows = min(step, size - start)
            outputs = self.function(xp, *(e[start:start + step] if getattr(e, "ndim", 0) else e for e in elements))
            for k, output in enumerate(outputs):
                if self.reduction == "none":
                    result[start:start + rows, k] = output
                else:
                    result[0, k] += output.sum() if getattr(output, "ndim", 0) else output * rows
        if self.reduction == "none":
            return result
        return result[0] / size if self.reduction == "mean" else result[0]


def _as_array(xp: Any, name: str, value: Any) -> Any:
    try:
        array = xp.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"gradient: the value of {name} is not numeric: {err}") from None
    if array.dtype.kind not in "fc":
        if array.dtype.kind not in "iub":
            raise TypeError(f"gradient: the value of {name} is not numeric (dtype {array.dtype})")
        array = array.astype(np.float64)
    return array


# --- derive ---------------------------------------------------------------------------------------


def derive(loss: Loss, wrt: Union[None, str, Iterable[str]] = None, *,
           shapes: Optional[Mapping[str, Any]] = None, data: Optional[Mapping[str, Any]] = None) -> Derivatives:
    """The exact partial derivatives of ``loss`` with respect to every element of the weights ``wrt``.

    ``loss`` is expression text (see :func:`symgrad.parse`), a SymPy expression,
    or a Python function called by keyword: then ``shapes`` maps each argument
    to differentiate or to keep symbolic to its shape (``()`` for a scalar) and
    ``data`` maps the others to numeric values, which enter as constants. For
    text or a SymPy expression, ``data`` substitutes numbers for variables.
    ``wrt`` (a list or ``"w,b"``) defaults to every variable not in ``data``.

    Raises ValueError (a :class:`~symgrad.ParseError` for bad text) naming the
    problem.

    Example:
        >>> import symgrad as sg
        >>> def loss(w, b, x, y):
        ...     return sg.mse_loss(sg.tanh(x @ w + b), y)
        >>> d = derive(loss, ["w", "b"], shapes={"w": (2,), "b": ()}, data={"x": np.array([1.0, 2.0]), "y": 0.5})
        >>> d.names
        ['w[0]', 'w[1]', 'b']
    """
    data = dict(data or {})
    if isinstance(loss, str) or isinstance(loss, sympy.Basic):
        if shapes:
            raise ValueError("shapes is for a Python loss function; the variables of an expression are scalars")
        expr, variables = _expression_variables(loss, data)
    elif callable(loss):
        expr, variables = _function_variables(loss, dict(shapes or {}), data)
    else:
        raise TypeError(f"derive: the loss must be text, a SymPy expression or a function, "
                        f"not {type(loss).__name__}")
    if expr.has(sympy.I):
        raise ValueError(f"the loss is complex for real inputs ({expr}): a constant such as sqrt(-2) or log(-1) "
                         f"is outside the real domain")
    names = _wrt_names(wrt, variables, data)
    order = names + [name for name in variables if name not in names]
    return Derivatives(expr, {name: variables[name] for name in order}, names)


def _wrt_names(wrt: Union[None, str, Iterable[str]], variables: Mapping[str, Any], data: Mapping) -> list:
    if wrt is None:
        names = list(variables)
    else:
        names = [n.strip() for n in wrt.split(",")] if isinstance(wrt, str) else _name_list(wrt)
        for name in names:
            if name in data:
                raise ValueError(f"wrt: {name!r} is given as data; it cannot also be differentiated")
            if name not in variables:
                known = ", ".join(variables) or "none"
                raise ValueError(f"wrt: {name!r} is not a variable of the loss (variables: {known})")
        if len(set(names)) != len(names):
            raise ValueError(f"wrt: a name is repeated in {', '.join(names)}")
    if not names:
        raise ValueError("the loss has no variable to differentiate" + (" (all are in data)" if data else ""))
    return names


def _name_list(wrt: Any) -> list:
    """``wrt`` given as an iterable of names, as a list; TypeError naming ``wrt`` otherwise."""
    try:
        names = list(wrt)
    except TypeError:
        raise TypeError(f"wrt must be a name, a comma-separated string or a list of names, "
                        f"not {type(wrt).__name__}") from None
    wrong = [n for n in names if not isinstance(n, str)]
    if wrong:
        raise TypeError(f"wrt: every name must be a string, got {wrong[0]!r}")
    return names


def _expression_variables(loss: Union[str, sympy.Basic], data: Mapping[str, Any]) -> tuple:
    """The SymPy loss of text or an expression, and its variables (name -> 0-d symbol array), data substituted."""
    if isinstance(loss, str):
        expr = parse(loss)
        order = parse_function(loss).names
    else:
        if not isinstance(loss, sympy.Expr):
            raise TypeError(f"derive: expected a SymPy expression, got {type(loss).__name__}")
        real = {s: sympy.Symbol(s.name, real=True) for s in loss.free_symbols
                if isinstance(s, sympy.Symbol) and not s.is_real}
        expr = loss.xreplace(real) if real else loss
        order = sorted((s.name for s in expr.free_symbols), key=_natural)
    by_name = {s.name: s for s in expr.free_symbols if isinstance(s, sympy.Symbol)}
    unknown = [name for name in data if name not in order]
    if unknown:
        raise ValueError(f"data: {unknown[0]!r} is not a variable of the loss (variables: {', '.join(order)})")
    substitutions = {}
    for name, value in data.items():
        if np.ndim(value) != 0:
            raise ValueError(f"data: {name!r} must be a number for an expression, got shape {np.shape(value)}")
        number = value.item() if hasattr(value, "item") else value
        substitutions[by_name.get(name, sympy.Symbol(name, real=True))] = as_sympy(
            int(number) if isinstance(number, float) and number.is_integer() else number)
    expr = expr.xreplace(substitutions) if substitutions else expr
    variables = {}
    for name in order:
        if name not in data:
            variables[name] = np.empty((), dtype=object)
            variables[name][()] = by_name.get(name, sympy.Symbol(name, real=True))
    return expr, variables


def _shape(name: str, shape: Any) -> tuple:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        shape = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shapes: the shape of {name!r} must be a tuple of integers, got {shape!r}") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"shapes: the shape of {name!r} has a negative size: {shape}")
    return shape


def _function_variables(loss: Callable, shapes: dict, data: dict) -> tuple:
    """Call ``loss`` with symbols for the arguments in ``shapes`` and ``data`` for the others."""
    title = getattr(loss, "__name__", "loss")
    try:
        parameters = inspect.signature(loss).parameters.values()
    except (TypeError, ValueError):
        raise TypeError(f"derive: cannot read the arguments of {title}") from None
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    open_ended = any(p.kind == p.VAR_KEYWORD for p in parameters)
    both = sorted(shapes.keys() & data.keys())
    if both:
        raise ValueError(f"{both[0]!r} is in both shapes and data; give it in one of them")
    known = {p.name for p in named}
    for name in list(shapes) + list(data):
        if name not in known and not open_ended:
            raise ValueError(f"{name!r} is not an argument of {title}({', '.join(p.name for p in named)})")
    for p in named:
        if p.name not in shapes and p.name not in data and p.default is p.empty:
            raise ValueError(f"shapes: give the shape of {p.name!r} (or its value in data)")
    variables = {name: _symbols(name, _shape(name, shape)) for name, shape in shapes.items()}
    arguments = {name: symbols[()] if symbols.ndim == 0 else symbols for name, symbols in variables.items()}
    try:
        out = loss(**arguments, **data)
    except (TypeError, AttributeError, ValueError) as err:
        raise ValueError(f"calling {title} with symbols failed ({type(err).__name__}: {str(err)[:200]}); "
                         f"it must compute with sg.* functions and operators") from None
    return _scalar_expression(out, title), variables


def _scalar_expression(out: Any, title: str) -> sympy.Expr:
    if isinstance(out, np.ndarray):
        if out.size != 1:
            raise ValueError(f"{title} must return a scalar loss; it returned an array of shape {out.shape}")
        out = out.reshape(())[()]
    try:
        expr = as_sympy(out)
    except TypeError:
        raise TypeError(f"{title} must return a scalar loss computed with sg.* functions; "
                        f"it returned {type(out).__name__}") from None
    if not isinstance(expr, sympy.Expr):
        raise TypeError(f"{title} must return a number-valued expression, not {type(expr).__name__}")
    return expr
