"""NumPy source for a :class:`~symgrad.symbolic.reverse.Program`, compiled to one Python function.

Each shared subexpression becomes one variable (the program's DAG is the
common-subexpression elimination: no ``sympy.cse`` pass is needed), a value
used once is written inline where it is used, values the outputs do not need
are not computed, and each variable is deleted after its last use so that
NumPy can reuse its memory. Expressions are printed by SymPy's
``NumPyPrinter``, with fast paths for sums, products and powers.

The generated function takes the array module as its first argument (bound to
the name ``numpy`` inside), so that the same code runs on NumPy or CuPy arrays.
It never contains user text: variables get generated names, numbers are printed
from SymPy numbers and functions come from the printer's tables.

Example:
    >>> import numpy as np
    >>> import sympy
    >>> from symgrad.symbolic.reverse import gradient_program
    >>> w, x = sympy.symbols("w x", real=True)
    >>> fn = numpy_function(gradient_program(sympy.tanh(w * x), [w]), [w, x])
    >>> print(fn.source)
    def gradient(numpy, a0, a1):
        return (a1*(1 - numpy.tanh(a0*a1)**2),)
    >>> fn(np, 0.0, np.array([1.0, 2.0]))
    (array([1., 2.]),)
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import sympy
from sympy.printing.numpy import NumPyPrinter

from .reverse import Program, children

__all__ = ["numpy_function", "NumpyFunction"]

_FUNCTIONS = {sympy.exp: "exp", sympy.log: "log", sympy.tanh: "tanh", sympy.sin: "sin", sympy.cos: "cos",
              sympy.Abs: "abs", sympy.sign: "sign"}
_NUMBERS = {sympy.S.NaN: "numpy.nan", sympy.S.Infinity: "numpy.inf", sympy.S.NegativeInfinity: "(-numpy.inf)",
            sympy.S.ComplexInfinity: "numpy.nan", sympy.S.Pi: "numpy.pi", sympy.S.Exp1: "numpy.e",
            sympy.S.ImaginaryUnit: "1j", sympy.S.true: "True", sympy.S.false: "False"}
_CHAIN = {sympy.StrictGreaterThan: ">", sympy.GreaterThan: ">=", sympy.StrictLessThan: "<",
          sympy.LessThan: "<=", sympy.Equality: "==", sympy.Unequality: "!="}


class _Printer(NumPyPrinter):
    """NumPyPrinter that prints known subexpressions by their variable names."""

    def __init__(self, names: dict):
        super().__init__({"fully_qualified_modules": True, "strict": True})
        self.names = names

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if not isinstance(expr, sympy.Basic):
            return super()._print(expr, **kwargs)
        name = self.names.get(expr)
        if name is not None:
            return name if isinstance(name, str) else self._print(name)
        if isinstance(expr, sympy.Symbol):
            raise ValueError(f"symbol {expr} has no value in the compiled function")
        if expr.is_Number:
            return self._number(expr)
        if expr in _NUMBERS:
            return _NUMBERS[expr]
        if expr.is_Add:
            return self._sum(expr)
        if expr.is_Mul:
            return self._product(expr)
        if expr.is_Pow:
            return self._power(expr)
        head = _FUNCTIONS.get(expr.func)
        if head is not None:
            return f"numpy.{head}({self._print(expr.args[0])})"
        if type(expr) in _CHAIN:
            return f"{self._operand(expr.lhs, 30)} {_CHAIN[type(expr)]} {self._operand(expr.rhs, 30)}"
        return super()._print(expr, **kwargs)

    def _operand(self, expr: sympy.Basic, below: int) -> str:
        """``expr`` printed, in parentheses if its operator does not bind tighter than ``below``."""
        text = self._print(expr)
        return text if self._precedence(expr) > below else f"({text})"

    def _precedence(self, expr: sympy.Basic) -> int:
        """How tightly the printed ``expr`` binds: 100 a name or call, 60 ``**``, 50 ``* /``, 45 unary minus,
        40 ``+ -``, 30 a comparison."""
        expr = self._structure(expr)
        if isinstance(self.names.get(expr), str) or expr in _NUMBERS:
            return 100
        if expr.is_Number:
            return 45 if expr.is_negative else 50 if not (expr.is_Integer or expr.is_Float) else 100
        if expr.is_Add:
            return 40
        if expr.is_Mul:
            return 45 if expr.as_coeff_Mul()[0].is_negative else 50
        if expr.is_Pow:
            exponent = expr.exp
            if exponent == sympy.S.Half:
                return 100
            return 50 if exponent.is_Number and exponent.is_negative else 60
        return 30 if type(expr) in _CHAIN else 100

    def _number(self, number: sympy.Number) -> str:
        if number.is_Integer:
            return str(int(number))
        if number.is_Rational:
            return f"{number.p}/{number.q}"
        return repr(float(number))

    def _structure(self, expr: sympy.Basic) -> sympy.Basic:
        """The expression an inlined placeholder stands for (``expr`` itself otherwise)."""
        value = self.names.get(expr)
        return value if isinstance(value, sympy.Basic) else expr

    def _sum(self, expr: sympy.Add) -> str:
        text = ""
        for term in expr.args:
            term = self._structure(term)
            if term not in self.names and term.as_coeff_Mul()[0].is_negative:
                text += f" - {self._operand(-term, 40)}" if text else f"-{self._operand(-term, 45)}"
            else:
                text += f" + {self._operand(term, 40)}" if text else self._operand(term, 30)
        return text

    def _product(self, expr: sympy.Mul) -> str:
        coefficient, rest = expr.as_coeff_Mul()
        numerator, denominator = [], []
        for factor in sympy.Mul.make_args(rest):
            factor = self._structure(factor)
            if factor.is_Pow and factor not in self.names and factor.exp.is_Number and factor.exp.is_negative:
                denominator.append(factor.base if factor.exp == -1 else sympy.Pow(factor.base, -factor.exp))
            else:
                numerator.append(factor)
        sign = ""
        if coefficient == -1:
            sign = "-"
        elif coefficient != 1:
            numerator.insert(0, coefficient)
        text = "*".join(self._operand(f, 45 if i == 0 else 50) for i, f in enumerate(numerator)) or "1"
        if len(denominator) == 1:
            text += "/" + self._operand(denominator[0], 50)
        elif denominator:
            text += "/(" + "*".join(self._operand(f, 45) for f in denominator) + ")"
        return sign + text

    def _power(self, expr: sympy.Pow) -> str:
        base, exponent = expr.args
        if exponent == sympy.S.Half:
            return f"numpy.sqrt({self._print(base)})"
        if exponent == -sympy.S.Half:
            return f"1/numpy.sqrt({self._print(base)})"
        if exponent.is_Integer and exponent.is_negative:
            power = "" if exponent == -1 else f"**{-int(exponent)}"
            return f"1/{self._operand(base, 60 if power else 50)}{power}"
        return f"{self._operand(base, 60)}**{self._operand(exponent, 60)}"

    def _print_Heaviside(self, expr: sympy.Heaviside) -> str:
        half = expr.args[1] if len(expr.args) > 1 else sympy.S.Half
        return f"numpy.heaviside({self._print(expr.args[0])}, {self._print(half)})"

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._nested("numpy.maximum", expr.args)

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._nested("numpy.minimum", expr.args)

    def _print_And(self, expr: sympy.And) -> str:
        return self._nested("numpy.logical_and", expr.args)

    def _print_Or(self, expr: sympy.Or) -> str:
        return self._nested("numpy.logical_or", expr.args)

    def _print_Not(self, expr: sympy.Not) -> str:
        return f"numpy.logical_not({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        text = "numpy.nan"
        for value, condition in reversed(expr.args):
            text = (self._print(value) if condition == sympy.S.true
                    else f"numpy.where({self._print(condition)}, {self._print(value)}, {text})")
        return text

    def _nested(self, function: str, args: Sequence) -> str:
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{function}({text}, {self._print(arg)})"
        return text


class NumpyFunction:
    """A generated function ``fn(xp, *arrays) -> tuple of outputs``, with its ``source``.

    Example:
        >>> import numpy as np
        >>> x = sympy.Symbol("x", real=True)
        >>> from symgrad.symbolic.reverse import expression_program
        >>> numpy_function(expression_program([2 * x]), [x])(np, 3.0)
        (6.0,)
    """

    def __init__(self, function: Callable, source: str):
        self.function = function
        self.source = source

    def __call__(self, xp: Any, *arrays: Any) -> tuple:
        return self.function(xp, *arrays)


def numpy_function(program: Program, symbols: Sequence[sympy.Symbol], name: str = "gradient") -> NumpyFunction:
    """Compile ``program`` into one vectorized function of the values of ``symbols`` (one argument each).

    Raises ValueError for a symbol of the program that is not among ``symbols``,
    or for a function NumPy lacks.

    Example: see the module docstring.
    """
    names = {symbol: f"a{i}" for i, symbol in enumerate(symbols)}
    lines = _Body(program, names).lines()
    arguments = "".join(f", a{i}" for i in range(len(symbols)))
    source = "\n".join([f"def {name}(numpy{arguments}):"] + [f"    {line}" for line in lines])
    namespace: dict = {}
    exec(compile(source, f"<symgrad {name}>", "exec"), namespace)  # noqa: S102  (generated code, no user text)
    return NumpyFunction(namespace[name], source)


class _Body:
    """The statements of a generated function: liveness, inlining, printing and ``del``."""

    def __init__(self, program: Program, names: dict):
        self.program = program
        self.names = names
        self.printer = _Printer(names)
        self.counter = itertools.count()

    def lines(self) -> list:
        program = self.program
        uses = self._uses()
        statements: list = []                     # (variable assigned or None, line)
        for node in program.nodes:
            count = uses.get(program.names[node], 0)
            if count == 1:                        # printed where it is used
                self.names[program.names[node]] = node
            elif count > 1:
                self._assign(node, program.names[node], statements)
        for placeholder, expression in program.assignments:
            count = uses.get(placeholder, 0)
            if count == 1:
                self.names[placeholder] = expression
            elif count > 1:
                self._assign(expression, placeholder, statements)
        outputs = ", ".join(self._text(output) for output in program.outputs)
        statements.append((None, f"return ({outputs},)"))
        return self._with_deletes(statements)

    def _text(self, expr: sympy.Basic) -> str:
        try:
            return self.printer._print(expr)
        except (ValueError, TypeError, NotImplementedError) as err:
            raise ValueError(f"cannot compile to NumPy: {str(err).splitlines()[0]}") from None

    def _assign(self, expr: sympy.Basic, placeholder: sympy.Dummy, statements: list) -> None:
        """Compute ``expr`` into a new variable, by which it and its placeholder are printed from now on."""
        variable = f"v{next(self.counter)}"
        statements.append((variable, f"{variable} = {self._text(expr)}"))
        self.names[placeholder] = variable
        self.names[expr] = variable

    def _uses(self) -> dict:
        """How many times each placeholder is read by the live code (dead values read 0 times)."""
        program = self.program
        uses: dict = {}
        needed: set = set()

        def read(expr: sympy.Basic) -> None:
            for part in sympy.preorder_traversal(expr):
                if isinstance(part, sympy.Dummy):
                    uses[part] = uses.get(part, 0) + 1
                    needed.add(part)

        for output in program.outputs:
            read(output)
        for placeholder, expression in reversed(program.assignments):
            if placeholder in needed:
                read(expression)
        for node in reversed(program.nodes):
            if program.names[node] in needed:
                for part in children(node):
                    if part in program.names:
                        uses[program.names[part]] = uses.get(program.names[part], 0) + 1
                        needed.add(program.names[part])
        return uses

    @staticmethod
    def _with_deletes(statements: list) -> list:
        """The statements with ``del`` of each variable after its last reader."""
        variables = {target for target, _ in statements if target}
        last: dict = {}
        for i, (target, text) in enumerate(statements):
            for token in _identifiers(text.partition(" = ")[2] if target else text):
                if token in variables:
                    last[token] = i
        ends: dict = {}
        for variable, i in last.items():
            ends.setdefault(i, []).append(variable)
        lines = []
        for i, (_, text) in enumerate(statements):
            lines.append(text)
            if i in ends and not text.startswith("return"):
                lines.append("del " + ", ".join(sorted(ends[i])))
        return lines


def _identifiers(text: str) -> list:
    """The identifier-like tokens of a line of generated code."""
    token, tokens = "", []
    for char in text + " ":
        if char.isalnum() or char == "_":
            token += char
        else:
            if token:
                tokens.append(token)
            token = ""
    return tokens
