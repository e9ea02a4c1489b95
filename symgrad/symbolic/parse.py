"""Safe parsing of expression text: Python's ``ast`` walked through a whitelist.

``parse("tanh(w1*x1 + w2*x2 + b)")`` returns the SymPy expression you would
build by hand from the same operators (every name becomes a real
``sympy.Symbol``); :func:`parse_function` returns a Python function that
evaluates the same text with the ``sg.*`` functions, so that the engine and
finite differences compute exactly what SymPy differentiates.

The text is never given to ``eval``, ``exec``, ``sympify`` or ``parse_expr``.
Only numbers, names, ``+ - * / **``, unary ``-``/``+``, parentheses and calls of
the functions in :data:`FUNCTIONS` are accepted; anything else raises
:class:`ParseError`, which names what was found, where (``column``, counted in
characters from 1) and what is allowed. Absurd input is refused before any
work: more than :data:`MAX_LENGTH` characters, parentheses nested deeper than
:data:`MAX_DEPTH`, or an expression nested deeper than that.

Numbers mean what they say. A float literal must be a float, neither too large
(``1e400`` would be inf) nor too small (``1e-400`` would be 0). SymPy keeps
integers and fractions exact, so the digits of the numbers it would make of each
part are bounded first, and more than :data:`MAX_DIGITS` (``2**100000``,
``(x*2**999)**10**9``) is refused before anything computes them.

Example:
    >>> parse("(w*x + b - y)**2")
    (b + w*x - y)**2
    >>> try:
    ...     parse("__import__('os').system('ls')")
    ... except ParseError as err:
    ...     print(err.column)
    1
"""
from __future__ import annotations

import ast
import math
import operator
import re
from fractions import Fraction
from functools import reduce
from typing import Any, Callable, Mapping, Union

import numpy as np

__all__ = ["ParseError", "parse", "parse_function", "ExpressionFunction", "check_arguments", "shorten",
           "FUNCTIONS", "MAX_LENGTH", "MAX_DEPTH", "MAX_DIGITS"]

#: The callable functions and their number of arguments.
FUNCTIONS = {"exp": 1, "log": 1, "tanh": 1, "sigmoid": 1, "relu": 1, "sin": 1, "cos": 1, "sqrt": 1, "abs": 1,
             "maximum": 2, "minimum": 2}
#: The longest text accepted, in characters.
MAX_LENGTH = 10_000
#: The deepest nesting accepted: of parentheses, and of operations (a chain ``a + b - c + ...`` counts once).
MAX_DEPTH = 100
#: The most digits of an exact number: a literal, or a constant part such as ``2**3000`` (a fraction's
#: numerator and denominator together). SymPy computes them all exactly; ``9**9**9`` would have 10**8 digits.
MAX_DIGITS = 1000

ALLOWED = ("allowed: numbers, variable names, + - * / **, unary minus, parentheses and calls to "
           + ", ".join(sorted(FUNCTIONS)))


class ParseError(ValueError):
    """Text that is not an allowed expression; ``column`` (from 1) says where.

    The message ends with what is allowed, unless ``allowed`` is False (for a
    problem that the list would not help with: a number out of range, text cut short).

    Example:
        >>> err = ParseError("attribute access 'os.path'", 3)
        >>> err.column, str(err).split(";")[0]
        (3, "attribute access 'os.path' at column 3")
        >>> str(ParseError("number '1e400' too large for a float", 1, allowed=False))
        "number '1e400' too large for a float at column 1"
    """

    def __init__(self, what: str, column: int, allowed: bool = True):
        self.what = what
        self.column = column
        super().__init__(f"{what} at column {column}" + (f"; {ALLOWED}" if allowed else ""))


def shorten(text: str, width: int = 60) -> str:
    """``text`` on one line (blanks collapsed), cut to ``width`` characters with "…" when longer.

    Example:
        >>> shorten("(w*x +\\n b - y)**2")
        '(w*x + b - y)**2'
        >>> shorten("x1 + x2 + x3 + x4 + x5", 12)
        'x1 + x2 + x…'
    """
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


# --- the validated tree ---------------------------------------------------------------------
# Nodes are tuples: ("number", value) ("name", id) ("negative", x) ("power", base, exponent)
# ("call", function, args) ("sum", first, [(sign, term), ...]) ("product", first, [(divide, factor), ...]).

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//",
           ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
           ast.BitXor: "^", ast.BitAnd: "&"}
_CHAINS = {ast.Add: "sum", ast.Sub: "sum", ast.Mult: "product", ast.Div: "product"}
_DESCRIPTIONS = {
    ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
    ast.Compare: "comparison", ast.BoolOp: "boolean operator", ast.IfExp: "conditional expression",
    ast.List: "list", ast.Tuple: "tuple", ast.Set: "set", ast.Dict: "dict", ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension", ast.DictComp: "dict comprehension", ast.GeneratorExp: "generator expression",
    ast.NamedExpr: "assignment expression ':='", ast.Starred: "starred expression", ast.JoinedStr: "f-string",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield from", ast.Slice: "slice",
}


class _Text:
    """The source text, for turning AST positions (UTF-8 byte offsets) into character columns."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, line: int, byte_offset: int) -> int:
        """The character offset in the text (from 0) of a byte offset on a line (from 1), clamped to the text."""
        line = min(max(line, 1), len(self.lines))
        chars = len(self.lines[line - 1].encode()[:max(byte_offset, 0)].decode(errors="ignore"))
        return min(self.starts[line - 1] + chars, len(self.text))

    def column(self, node: ast.AST) -> int:
        return min(self.offset(node.lineno, node.col_offset) + 1, len(self.text))

    def source(self, node: ast.AST) -> str:
        """The text of ``node``, as typed."""
        return self.text[self.column(node) - 1:self.offset(node.end_lineno, node.end_col_offset)]

    def snippet(self, node: ast.AST) -> str:
        return repr(shorten(self.source(node), 40))

    def error(self, what: str, node: ast.AST, allowed: bool = True) -> ParseError:
        return ParseError(what, self.column(node), allowed)

    def syntax_error(self, err: SyntaxError, shift: int) -> ParseError:
        """Python's ``SyntaxError`` on the text as a ParseError, at the right column; ``shift`` is what the
        parsed line's positions lack (its stripped leading blanks, or -1 for the added parenthesis).

        Text that stops where more was needed (``x**``) is said to end too early, at the column after it.
        """
        line = err.lineno or 1
        end = len(self.text.rstrip())
        position = (self.starts[line - 1] + (err.offset or 0) - 1 + (shift if line == 1 else 0)
                    if line <= len(self.lines) else end)
        if not err.offset or position >= end:
            last = re.search(r"(\*\*|\S)\s*$", self.text).group(1)
            return ParseError(f"the expression ends too early, after {last!r}", end + 1, allowed=False)
        position = max(position, 0)
        width = (err.end_offset or 0) - err.offset if err.end_lineno == err.lineno else 0
        token = self.text[position:position + max(width, 1)].strip()
        what = f"unexpected {token!r}" if err.msg == "invalid syntax" and token else err.msg
        return ParseError(what, position + 1)


class _Tree:
    """A validated expression: the root node and its variable names in order of first appearance."""

    def __init__(self, root: tuple, names: list):
        self.root = root
        self.names = names


def _check_text(text: Any) -> None:
    """Refuse, before parsing, text that is not a string, too long, empty, with unbalanced or too deep
    brackets, control characters, bytes that were not UTF-8, or numbers with too many digits."""
    if not isinstance(text, str):
        raise TypeError(f"expected the expression as a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"text of {len(text):,} characters (the limit is {MAX_LENGTH:,})", MAX_LENGTH + 1)
    if not text.strip():
        raise ParseError("empty expression", 1)
    opened = []
    for i, char in enumerate(text):
        if char in "([{":
            opened.append(i)
            if len(opened) > MAX_DEPTH:
                raise ParseError(f"brackets nested more than {MAX_DEPTH} deep", i + 1)
        elif char in ")]}":
            if not opened:
                raise ParseError(f"unmatched {char!r}", i + 1)
            opened.pop()
        elif char < " " and char not in "\t\n\r":
            raise ParseError(f"control character {char!r}", i + 1)
        elif "\ud800" <= char <= "\udfff":        # a byte that was not UTF-8, escaped by Python (surrogateescape)
            raise ParseError("invalid character: the text is not valid UTF-8", i + 1, allowed=False)
    if opened:
        raise ParseError(f"{text[opened[-1]]!r} never closed", opened[-1] + 1)
    for number in re.finditer(r"(?<![\w.])[\d.][\w.]*", text):
        digits = sum(char in "0123456789" for char in number.group())
        if digits > MAX_DIGITS:
            raise ParseError(f"number of {digits:,} digits (the limit is {MAX_DIGITS:,})", number.start() + 1,
                             allowed=False)


def _tree(text: str) -> _Tree:
    """Parse and validate ``text`` into a :class:`_Tree` (raises :class:`ParseError`).

    One line is parsed without its leading blanks; text over several lines is
    parsed inside parentheses (its brackets are balanced), so that it may break
    anywhere. Positions are shifted back to the text's own characters.
    """
    _check_text(text)
    source = _Text(text)
    one_line = "\n" not in text and "\r" not in text
    shift = len(text) - len(text.lstrip()) if one_line else -1
    try:
        body = ast.parse(text.lstrip() if one_line else "(" + text + "\n)", mode="eval").body
    except SyntaxError as err:
        raise source.syntax_error(err, shift) from None
    except (RecursionError, MemoryError):
        raise ParseError("expression too long or too deeply nested for the parser", 1) from None
    for node in ast.walk(body):
        if getattr(node, "lineno", None) == 1:
            node.col_offset += shift
        if getattr(node, "end_lineno", None) == 1:
            node.end_col_offset += shift
    converter = _Converter(source)
    return _Tree(converter.convert(body, 1), list(converter.names))


Number = Union[Fraction, float]
#: (numerator digits, denominator digits): upper bounds for the numbers SymPy may make of a part.
Size = tuple

#: The value of each function at a constant, as a float (SymPy may be exact where these round).
_CONSTANT_FUNCTIONS = {"exp": math.exp, "log": math.log, "tanh": math.tanh, "sin": math.sin, "cos": math.cos,
                       "sqrt": math.sqrt, "abs": abs, "sigmoid": lambda v: 0.5 + 0.5 * math.tanh(v / 2),
                       "relu": lambda v: max(v, 0), "maximum": max, "minimum": min}


def _integer_size(value: int) -> Size:
    """The size of an integer literal: ``(digits, 0)``."""
    return (math.log10(abs(value)) if value else 0.0), 0.0


def _sum_size(sizes: list) -> Size:
    """The size of a sum of fractions n_i/d_i: over the product of the denominators, the numerator is
    the sum of n_i times the other denominators.

    Example:
        >>> [round(digits, 2) for digits in _sum_size([(0.0, math.log10(3)), (0.0, math.log10(7))])]  # 10/21
        [1.15, 1.32]
    """
    denominator = sum(d for _, d in sizes)
    return max(n + denominator - d for n, d in sizes) + math.log10(len(sizes)), denominator


def _product_size(sizes: list, divided: list) -> Size:
    """The size of a product of fractions, each divided by where ``divided`` says so (its size reversed)."""
    oriented = [(d, n) if divide else (n, d) for (n, d), divide in zip(sizes, divided)]
    return sum(n for n, _ in oriented), sum(d for _, d in oriented)


def _power_size(base: Size, exponent: Size, value: Any) -> Size:
    """The size of ``base ** exponent``; ``value`` is the exponent's value when it is constant (else None).

    A constant exponent e multiplies the digits by |e| (a negative one turns the fraction over); a variable
    one leaves the numbers of the base and the exponent as they are.

    Example:
        >>> _power_size((1.0, 0.0), (0.0, 0.0), Fraction(-3))        # 10**-3
        (0.0, 3.0)
    """
    if value is None:
        return base[0] + exponent[0], base[1] + exponent[1]
    try:
        scale = abs(float(value))
    except OverflowError:
        scale = math.inf
    if math.isnan(scale):                               # undefined: SymPy makes it nan, nothing to compute
        return base
    n, d = (base[1], base[0]) if value < 0 else base
    return (n * scale if n else 0.0), (d * scale if d else 0.0)


class _Converter:
    """Python AST -> validated tree, collecting the variable names, the size of the numbers SymPy will make
    of each part (to refuse a number too large to compute, ``2**100000``, before anything computes it),
    and the value of the constant parts (exact for integers and fractions, else float; nan if undefined)."""

    def __init__(self, source: _Text):
        self.source = source
        self.names: dict = {}
        self.sizes: dict = {}                # id(tree node) -> Size
        self.constants: dict = {}            # id(tree node) -> Fraction or float value, for constant subtrees

    def convert(self, node: ast.expr, depth: int) -> tuple:
        if depth > MAX_DEPTH:
            raise self.source.error(f"expression nested more than {MAX_DEPTH} operations deep", node)
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.UAdd):
                return self.convert(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                operand = self.convert(node.operand, depth + 1)
                return self.made(("negative", operand), node, self.sizes[id(operand)], lambda v: -v[0], [operand])
            symbol = {ast.Not: "not", ast.Invert: "~"}[type(node.op)]
            raise self.source.error(f"operator {symbol!r}", node)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        what = _DESCRIPTIONS.get(type(node), type(node).__name__.lower() + " expression")
        raise self.source.error(f"{what} {self.source.snippet(node)}", node)

    def made(self, tree: tuple, node: ast.AST, size: Size, value: Callable[[list], Number], parts: list) -> tuple:
        """``tree`` (typed as ``node``), refused if its numbers would have more than MAX_DIGITS digits, else
        remembered with its ``size`` and, when its ``parts`` are all constant, ``value`` of their values."""
        digits = max(size)
        if digits > MAX_DIGITS:
            raise self.source.error(f"number in {self.source.snippet(node)} too large to compute exactly "
                                    f"(about {digits:,.0f} digits; the limit is {MAX_DIGITS:,})", node,
                                    allowed=False)
        self.sizes[id(tree)] = size
        if all(id(part) in self.constants for part in parts):
            try:
                result = value([self.constants[id(part)] for part in parts])
            except OverflowError:
                result = math.inf
            except (ZeroDivisionError, ValueError):     # undefined: 1/0 is zoo in SymPy, log(-1) complex
                result = math.nan
            self.constants[id(tree)] = math.nan if isinstance(result, complex) else result
        return tree

    def number(self, node: ast.Constant) -> tuple:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = {str: "string", bytes: "bytes", complex: "complex number"}.get(type(value), "constant")
            raise self.source.error(f"{kind} {self.source.snippet(node)}", node)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.source.error(f"number {self.source.snippet(node)} too large for a float", node, allowed=False)
        written = self.source.source(node).lower().partition("e")[0]
        if value == 0 and any(digit in written for digit in "123456789"):
            raise self.source.error(f"number {self.source.snippet(node)} too small for a float (it would be 0)",
                                    node, allowed=False)
        exact = Fraction(value) if isinstance(value, int) else value
        size = _integer_size(value) if isinstance(value, int) else (0.0, 0.0)    # a float stays a 15-digit Float
        return self.made(("number", value), node, size, lambda v: exact, [])

    def name(self, node: ast.Name) -> tuple:
        if node.id in FUNCTIONS:
            raise self.source.error(f"function name {node.id!r} without a call", node)
        if node.id.startswith("__"):
            raise self.source.error(f"name {node.id!r} (names starting with '__' are reserved)", node)
        self.names.setdefault(node.id, None)
        tree = ("name", node.id)
        self.sizes[id(tree)] = (0.0, 0.0)
        return tree

    def binary(self, node: ast.BinOp, depth: int) -> tuple:
        op = type(node.op)
        if op not in _CHAINS and op is not ast.Pow:
            raise self.source.error(f"operator {_BINARY.get(op, op.__name__)!r}", node)
        if op is ast.Pow:
            base, exponent = self.convert(node.left, depth + 1), self.convert(node.right, depth + 1)
            size = _power_size(self.sizes[id(base)], self.sizes[id(exponent)], self.constants.get(id(exponent)))
            return self.made(("power", base, exponent), node, size, lambda v: v[0] ** v[1], [base, exponent])
        kind = _CHAINS[op]
        links, left = [], node               # walk the left spine of a + - (or * /) chain without recursion
        while isinstance(left, ast.BinOp) and _CHAINS.get(type(left.op)) == kind:
            links.append((left.op, left.right))
            left = left.left
        first = self.convert(left, depth + 1)
        rest = [(type(op) in (ast.Sub, ast.Div), self.convert(right, depth + 1)) for op, right in reversed(links)]
        terms = [first] + [term for _, term in rest]
        sizes = [self.sizes[id(term)] for term in terms]
        flags = [flag for flag, _ in rest]
        size = _sum_size(sizes) if kind == "sum" else _product_size(sizes, [False] + flags)
        combine = (lambda a, flag, v: a - v if flag else a + v) if kind == "sum" else (
            lambda a, flag, v: a / v if flag else a * v)

        def value(values: list) -> Number:
            return reduce(lambda acc, link: combine(acc, link[0], link[1]), zip(flags, values[1:]), values[0])

        return self.made((kind, first, rest), node, size, value, terms)

    def call(self, node: ast.Call, depth: int) -> tuple:
        if not isinstance(node.func, ast.Name):
            raise self.source.error(f"call of {self.source.snippet(node.func)} (only named functions can be called)",
                                    node)
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.source.error(f"call to unknown function {name!r}", node)
        if node.keywords:
            raise self.source.error(f"keyword argument in the call to {name!r}", node.keywords[0].value)
        if len(node.args) != FUNCTIONS[name]:
            count = FUNCTIONS[name]
            raise self.source.error(f"{name}() with {len(node.args)} arguments (it takes {count})", node)
        args = [self.convert(arg, depth + 1) for arg in node.args]
        digits = sum(n + d for n, d in (self.sizes[id(arg)] for arg in args))   # exp(log(2/3)) is 2/3 again
        return self.made(("call", name, args), node, (digits, digits), lambda v: _CONSTANT_FUNCTIONS[name](*v), args)


# --- evaluating the tree ------------------------------------------------------------------------------


class _Arithmetic:
    """How a tree's numbers, chains, powers and function calls are computed in one world."""

    def __init__(self, number: Callable, total: Callable, product: Callable, functions: Mapping[str, Callable]):
        self.number = number
        self.total = total
        self.product = product
        self.functions = functions

    def evaluate(self, node: tuple, values: Mapping[str, Any]) -> Any:
        kind = node[0]
        if kind == "number":
            return self.number(node[1])
        if kind == "name":
            return values[node[1]]
        if kind == "negative":
            return -self.evaluate(node[1], values)
        if kind == "call":
            return self.functions[node[1]](*(self.evaluate(arg, values) for arg in node[2]))
        if kind == "power":
            return self.evaluate(node[1], values) ** self.evaluate(node[2], values)
        first = self.evaluate(node[1], values)
        rest = [(flag, self.evaluate(term, values)) for flag, term in node[2]]
        return (self.total if kind == "sum" else self.product)(first, rest)


def _sympy_arithmetic() -> _Arithmetic:
    import sympy  # noqa: PLC0415  (only parse() needs SymPy)

    from . import ops  # noqa: PLC0415

    def total(first: Any, rest: list) -> Any:
        return sympy.Add(first, *(-term if negative else term for negative, term in rest))

    def product(first: Any, rest: list) -> Any:
        return sympy.Mul(first, *(sympy.Pow(factor, -1) if divide else factor for divide, factor in rest))

    return _Arithmetic(
        number=lambda value: sympy.Integer(value) if isinstance(value, int) else sympy.Float(value),
        total=total, product=product, functions={name: getattr(ops, name) for name in FUNCTIONS})


def _float64(value: Any) -> Any:
    """A number as ``np.float64`` (a literal too large for a float is inf), so that arithmetic
    overflows to inf as NumPy's does instead of raising OverflowError."""
    try:
        return np.float64(value)
    except OverflowError:
        return np.float64(math.inf if value > 0 else -math.inf)


def _generic_arithmetic(exact: bool) -> _Arithmetic:
    """The arithmetic of the ``sg.*`` functions; ``exact`` keeps integer literals as ints (for SymPy input)."""
    from .. import functions  # noqa: PLC0415

    def fold(ops: tuple) -> Callable:
        return lambda first, rest: reduce(lambda acc, link: ops[link[0]](acc, link[1]), rest, first)

    return _Arithmetic(
        number=(lambda value: value) if exact else _float64, total=fold((operator.add, operator.sub)),
        product=fold((operator.mul, operator.truediv)),
        functions={name: getattr(functions, name) for name in FUNCTIONS})


def parse(text: str) -> "sympy.Expr":
    """The SymPy expression of ``text``; every variable is a real ``sympy.Symbol``.

    Raises :class:`ParseError` for anything outside the whitelist, TypeError if
    ``text`` is not a string, and ValueError if SymPy refuses the expression
    (``maximum(w, sqrt(-2))``: a comparison with a complex constant).

    Example:
        >>> parse("tanh(w1*x1 + w2*x2 + b)")
        tanh(b + w1*x1 + w2*x2)
        >>> parse("sigmoid(z)")
        1/(1 + exp(-z))
    """
    import sympy  # noqa: PLC0415

    tree = _tree(text)
    symbols = {name: sympy.Symbol(name, real=True) for name in tree.names}
    try:
        return _sympy_arithmetic().evaluate(tree.root, symbols)
    except (TypeError, ValueError) as err:      # e.g. maximum(w, sqrt(-2)): SymPy cannot compare with I
        raise ValueError(f"SymPy cannot build {shorten(text)!r}: {str(err).splitlines()[0]}") from None


class ExpressionFunction:
    """Expression text as a Python function ``f(**values)`` over the ``sg.*`` functions.

    Values may be floats, NumPy (complex too) or CuPy arrays, or ``sg.Tensor``; the
    result has the kind of its inputs, so the engine, finite differences and
    complex step all evaluate exactly the parsed expression. ``names`` lists the
    variables in order of first appearance; any name works, ``self`` too.

    Example:
        >>> f = parse_function("(w*x + b - y)**2")
        >>> f.names
        ['w', 'x', 'b', 'y']
        >>> float(f(w=1.0, x=1.0, b=0.0, y=2.0))
        1.0
        >>> float(parse_function("self*x")(self=2.0, x=3.0))
        6.0
    """

    def __init__(self, text: str):
        tree = _tree(text)
        self.text = text
        self.names = tree.names
        self._root = tree.root
        self._numeric = _generic_arithmetic(exact=False)
        self._symbolic = _generic_arithmetic(exact=True)

    def __call__(self, /, **values: Any) -> Any:
        from ..functions import is_symbolic  # noqa: PLC0415

        check_arguments(repr(shorten(self.text)), values, self.names)
        values = {k: _float64(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                  for k, v in values.items()}
        symbolic = any(is_symbolic(v) for v in values.values())
        return (self._symbolic if symbolic else self._numeric).evaluate(self._root, values)

    def assigned(self, values: Mapping[str, Any], option: str = "") -> dict:
        """``values`` restricted to the variables, in their order; ValueError naming a missing or unknown one.

        ``option`` (e.g. ``"--at"``) is the command-line option the values came from, for the message.

        Example:
            >>> f = parse_function("w*x")
            >>> f.assigned({"x": 2.0, "w": 1.0})
            {'w': 1.0, 'x': 2.0}
            >>> f.assigned({"w": 1.0}, "--at")
            Traceback (most recent call last):
            ...
            ValueError: no value for x: give it with --at x=...
        """
        missing = [n for n in self.names if n not in values]
        if missing:
            hint = f": give it with {option} {missing[0]}=..." if option else ""
            raise ValueError(f"no value for {', '.join(missing)}{hint}")
        unknown = [n for n in values if n not in self.names]
        if unknown:
            prefix = f"{option}: " if option else ""
            raise ValueError(f"{prefix}{unknown[0]!r} does not appear in the expression {shorten(self.text)!r}")
        return {n: values[n] for n in self.names}

    def __repr__(self) -> str:
        return f"parse_function({self.text!r})"


def check_arguments(owner: str, given: Mapping[str, Any], expected: Any) -> None:
    """Raise a TypeError, as a Python call would, if ``given`` lacks a name of ``expected`` or has another.

    Example:
        >>> check_arguments("f", {"w": 1.0}, ["w", "x"])
        Traceback (most recent call last):
        ...
        TypeError: f: missing value for 'x' (variables: w, x)
    """
    missing = [n for n in expected if n not in given]
    unknown = [n for n in given if n not in expected]
    if missing or unknown:
        problem = (f"missing value for {', '.join(map(repr, missing))}" if missing
                   else f"{', '.join(map(repr, unknown))} is not a variable")
        raise TypeError(f"{owner}: {problem} (variables: {', '.join(expected)})")


def parse_function(text: str) -> ExpressionFunction:
    """A Python function evaluating ``text`` with the ``sg.*`` functions (see :class:`ExpressionFunction`).

    Example:
        >>> import symgrad as sg
        >>> f = parse_function("tanh(w*x)")
        >>> w = sg.tensor(0.0, requires_grad=True)
        >>> f(w=w, x=2.0).backward()
        >>> float(w.grad)
        2.0
    """
    return ExpressionFunction(text)
