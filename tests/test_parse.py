"""The safe parser: parsed text equals hand-built SymPy; anything else is refused, quickly, with nothing run.

The hostile inputs are parsed while ``eval``, ``exec``, ``compile``, ``sympify``
and ``parse_expr`` are watched: none of them may ever see the user's text.
"""
from __future__ import annotations

import ast
import builtins
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy
from sympy.parsing import sympy_parser

import symgrad as sg
from symgrad.symbolic import parse as parse_module
from symgrad.symbolic.parse import MAX_DEPTH, MAX_LENGTH, ParseError, parse, parse_function, shorten

w, x, b, y, z = sympy.symbols("w x b y z", real=True)
w1, w2, x1, x2 = sympy.symbols("w1 w2 x1 x2", real=True)

PARSED = [
    ("(w*x + b - y)**2", (w * x + b - y) ** 2),
    ("tanh(w1*x1 + w2*x2 + b)", sympy.tanh(w1 * x1 + w2 * x2 + b)),
    ("-x**2", -(x ** 2)),
    ("2**3**2", sympy.Integer(512)),
    ("x**y**z", x ** (y ** z)),
    ("x**-1", 1 / x),
    ("a - b - c", sympy.Symbol("a", real=True) - b - sympy.Symbol("c", real=True)),
    ("x / y / z", x / y / z),
    ("1/2*x", x / 2),
    ("0.5*x", sympy.Float(0.5) * x),
    ("+x - -y", x + y),
    ("  w *\t x  ", w * x),
    ("(w*x +\n b)", w * x + b),
    ("exp(x) + log(x) + sin(x) + cos(x) + sqrt(x) + abs(x)",
     sympy.exp(x) + sympy.log(x) + sympy.sin(x) + sympy.cos(x) + sympy.sqrt(x) + sympy.Abs(x)),
    ("sigmoid(z)", 1 / (1 + sympy.exp(-z))),
    ("relu(z)", sympy.Piecewise((z, z > 0), (0, True))),
    ("maximum(x, y) - minimum(x, 0)", sympy.Max(x, y) - sympy.Min(x, 0)),
    ("α*x", sympy.Symbol("α", real=True) * x),
]


@pytest.mark.parametrize("text, expected", PARSED)
def test_parse_equals_hand_built_sympy(text, expected):
    parsed = parse(text)
    assert parsed == expected
    assert all(s.is_real for s in parsed.free_symbols)


def test_long_chains_become_one_sum():
    text = " + ".join(f"x{i}" for i in range(1000)) + " - y"
    parsed = parse(text)
    assert parsed.is_Add and len(parsed.args) == 1001


HOSTILE = [
    ("__import__('os').system('echo hacked')", "call of", 1),
    ("os.system('echo hacked')", "call of", 1),
    ("x.__class__.__bases__[0].__subclasses__()", "call of", 1),
    ("(lambda: 0)()", "call of", 1),
    ("exec('1')", "unknown function 'exec'", 1),
    ("eval('1')", "unknown function 'eval'", 1),
    ("getattr(x, 'y')", "unknown function 'getattr'", 1),
    ("x + os.path", "attribute access 'os.path'", 5),
    ("x[0]", "subscript 'x[0]'", 1),
    ("lambda: 1", "lambda", 1),
    ("'abc'", "string", 1),
    ("b'abc'", "bytes", 1),
    ("f'{x}'", "f-string", 1),
    ("x if y else z", "conditional expression", 1),
    ("[x, y]", "list", 1),
    ("x, y", "tuple", 1),
    ("{x: y}", "dict", 1),
    ("[i for i in x]", "list comprehension", 1),
    ("(y := 1)", "assignment expression", 2),
    ("x < y", "comparison", 1),
    ("x and y", "boolean operator", 1),
    ("not x", "operator 'not'", 1),
    ("~x", "operator '~'", 1),
    ("x // y", "operator '//'", 1),
    ("x % y", "operator '%'", 1),
    ("x @ y", "operator '@'", 1),
    ("__builtins__", "name '__builtins__'", 1),
    ("exp", "function name 'exp' without a call", 1),
    ("exp(x, y)", "exp() with 2 arguments", 1),
    ("exp(x=1)", "keyword argument", 7),
    ("exp(*x)", "starred expression", 5),
    ("1j", "complex number", 1),
    ("True", "constant", 1),
    ("None", "constant", 1),
    ("x = 1", "", None),        # what Python's parser says, and where it points, varies with its version
    ("x; y", "", None),
    ("x y", "", None),
    ("x * / y", "", None),
    ("x) + (y", "unmatched ')'", 2),
    ("(x", "'(' never closed", 1),
    ("", "empty expression", 1),
    ("a\x00b", "control character", 2),
]


@pytest.fixture
def watched(monkeypatch):
    """Every string given to eval/exec/sympify/parse_expr, or compiled to code (not to a syntax tree)."""
    seen: list = []

    def spy(original):
        def wrapper(source, *args, **kwargs):
            flags = kwargs.get("flags", args[2] if len(args) > 2 else 0)
            to_tree = name == "compile" and flags & ast.PyCF_ONLY_AST
            if isinstance(source, str) and not to_tree:
                seen.append(source)
            return original(source, *args, **kwargs)
        name = original.__name__
        return wrapper

    sympify_module = sys.modules["sympy.core.sympify"]
    for module, name in [(builtins, "eval"), (builtins, "exec"), (builtins, "compile"), (sympy, "sympify"),
                         (sympy_parser, "parse_expr"), (sympify_module, "sympify")]:
        monkeypatch.setattr(module, name, spy(getattr(module, name)))
    return seen


@pytest.mark.parametrize("text, what, column", HOSTILE)
def test_hostile_text_is_refused_with_what_where_and_what_is_allowed(text, what, column, watched, tmp_path):
    with pytest.raises(ParseError) as info:
        parse(text)
    message = str(info.value)
    assert what in message and f"at column {info.value.column};" in message and "allowed:" in message
    assert info.value.column == column if column else 1 <= info.value.column <= len(text)
    assert "\n" not in message and "invalid syntax (" not in message
    assert not any(text in source for source in watched if text)
    with pytest.raises(ParseError):
        parse_function(text)


def test_code_in_text_is_never_run(tmp_path):
    marker = tmp_path / "marker"
    for text in [f"__import__('os').system('touch {marker}')", f"open('{marker}', 'w')",
                 f"exec(\"open('{marker}', 'w')\")"]:
        with pytest.raises(ParseError):
            parse(text)
    assert not marker.exists()


@pytest.mark.parametrize("text, what, column", [
    ("x**", "the expression ends too early, after '**'", 4),
    ("  x +  ", "the expression ends too early, after '+'", 6),
    ("(w*x +\n b) -\n", "the expression ends too early, after '-'", 13),
    ("x * / y", "unexpected '/'", 5),
    ("  x y", "unexpected 'y'", 5),
    ("(x +\n)", "unexpected ')'", 6),
    ("x\udcff", "invalid character: the text is not valid UTF-8", 2),       # a byte 0xff, as Python escapes it
])
def test_syntax_errors_say_what_is_wrong_where(text, what, column):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert str(info.value).startswith(f"{what} at column {column}")
    assert info.value.column == column


@pytest.mark.parametrize("text, what, column", [
    ("x*1e999", "number '1e999' too large for a float", 3),
    ("x*1e-400", "number '1e-400' too small for a float (it would be 0)", 3),
    ("x*(2**100000)", "number in '2**100000' too large to compute exactly (about 30,103 digits; the limit is 1,000)",
     4),
    ("9**9**9**9", "number in '9**9**9' too large to compute exactly", 4),
    ("(1/2)**-10**9", "number in '(1/2)**-10**9' too large to compute exactly", 1),
    ("x*" + "*".join(["2**999"] * 5), "number in 'x*2**999*2**999*2**999*2**999*2**999' too large", 1),
    ("(x*2**999)**10**9", "number in '(x*2**999)**10**9' too large", 1),
    ("sqrt(4)**10**6", "number in 'sqrt(4)**10**6' too large", 1),
    ("exp(log(3))**10**9", "number in 'exp(log(3))**10**9' too large", 1),
    ("x + " + "1" * 1001, "number of 1,001 digits (the limit is 1,000)", 5),
])
def test_numbers_out_of_range_are_refused_before_anything_computes_them(text, what, column):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert str(info.value).startswith(what) and str(info.value).endswith(f" at column {column}")
    with pytest.raises(ParseError):
        parse_function(text)


@pytest.mark.parametrize("text, expected", [
    ("x*1e-310", x * sympy.Float(1e-310)),                 # subnormal, but not 0
    ("x*0e-400", sympy.Integer(0)),                         # written as 0: it is 0
    ("x*2**3000", x * sympy.Integer(2) ** 3000),
    ("1" * 1000, sympy.Integer("1" * 1000)),
    ("(x**10)**1000", x ** 10000),
    ("x*10**400/10**400", x),
])
def test_numbers_in_range_are_exact(text, expected):
    assert parse(text) == expected


ABSURD = [
    "x+" * 50_000 + "x",                         # 100,001 characters
    "(" * 5_000 + "x" + ")" * 5_000,              # 5,000 nested parentheses
    "-" * 5_000 + "x",                            # 5,000 nested operations
    "exp(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
    "x**" * 2_000 + "x",
    "1" * 5_000,
]


@pytest.mark.parametrize("text", ABSURD, ids=lambda t: f"{t[:8]}...{len(t)}")
def test_absurd_text_is_refused_with_a_parse_error(text):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert 1 <= info.value.column <= max(len(text), MAX_LENGTH + 1)


@pytest.mark.parametrize("terms", [4_000, 5_000])
def test_a_long_flat_sum_is_its_value_or_a_parse_error_naming_the_nesting(terms):
    """How deep a chain CPython's own parser takes depends on its version (3.11 stops near 3,000 terms,
    3.13 goes past 4,000); either way the answer is right or refused, never a crash."""
    assert parse("+".join(["x"] * 1_000)) == 1_000 * x
    try:
        parsed = parse("+".join(["x"] * terms))
    except ParseError as err:
        assert "too deeply nested for the parser" in str(err) and err.column == 1
    else:
        assert parsed == terms * x


def test_absurd_text_in_a_fresh_interpreter_neither_crashes_nor_hangs():
    code = ("from symgrad.symbolic.parse import parse, ParseError\n"
            "for text in ['(' * 100000 + 'x' + ')' * 100000, '-' * 9999 + 'x', 'x**' * 3000 + 'x']:\n"
            "    try:\n        parse(text)\n    except ParseError as err:\n        print(err.column)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3


def test_limits_are_inclusive():
    assert parse("(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH) == x
    assert parse("x" + " " * (MAX_LENGTH - 1)) == x


def test_parse_error_is_a_value_error_and_the_public_name():
    assert issubclass(ParseError, ValueError)
    assert sg.ParseError is ParseError
    assert sg.parse is parse


def test_parse_needs_a_string():
    with pytest.raises(TypeError, match="string"):
        parse(42)


def test_column_counts_characters_not_bytes():
    with pytest.raises(ParseError) as info:
        parse("é + α + os.path")
    assert info.value.column == 9


# --- parse_function ------------------------------------------------------------------------------


def test_parse_function_evaluates_the_same_text_on_floats_arrays_and_tensors():
    f = parse_function("(w*x + b - y)**2 + sigmoid(w) - relu(b)")
    assert f.names == ["w", "x", "b", "y"]
    values = {"w": 0.5, "x": 2.0, "b": -1.0, "y": 0.25}
    expected = float(parse(f.text).subs({sympy.Symbol(k, real=True): v for k, v in values.items()}))
    assert float(f(**values)) == pytest.approx(expected, rel=1e-14)
    arrays = {k: np.full(3, v) for k, v in values.items()}
    np.testing.assert_allclose(f(**arrays), np.full(3, expected), rtol=1e-14)
    w_t = sg.tensor(0.5, requires_grad=True)
    f(**{**values, "w": w_t}).backward()
    exact = sympy.diff(parse(f.text), w).subs({sympy.Symbol(k, real=True): v for k, v in values.items()})
    assert float(w_t.grad) == pytest.approx(float(exact), rel=1e-12)


def test_parse_function_supports_complex_step():
    f = parse_function("tanh(w*x) + w**3")
    h = 1e-30
    slope = f(w=0.7 + h * 1j, x=1.5).imag / h
    exact = float(sympy.diff(sympy.tanh(w * x) + w ** 3, w).subs({w: 0.7, x: 1.5}))
    assert slope == pytest.approx(exact, rel=1e-13)


NAMES = ["self", "cls", "values", "f", "x", "wrt", "params", "data", "text", "names", "option"]


def test_any_variable_name_works_even_the_names_of_python_parameters():
    text = " + ".join(f"{i + 1}*{name}" for i, name in enumerate(NAMES))
    values = {name: float(i) for i, name in enumerate(NAMES)}
    expected = sum((i + 1) * i for i in range(len(NAMES)))
    assert parse_function(text)(**values) == expected
    assert parse_function(text).assigned(values) == values
    assert parse(text).subs({sympy.Symbol(n, real=True): int(v) for n, v in values.items()}) == expected


def test_messages_shorten_a_long_expression():
    f = parse_function(" + ".join(f"x{i}" for i in range(100)))
    with pytest.raises(ValueError) as info:
        f.assigned({**{f"x{i}": 1.0 for i in range(100)}, "q": 1.0})
    shown = str(info.value).partition("the expression ")[2]
    assert shown == repr(f.text[:59] + "…") and len(shown) == 62
    assert shorten("a +\n   b") == "a + b"


def test_parse_function_names_missing_and_unknown_values():
    f = parse_function("w*x")
    with pytest.raises(TypeError, match="missing value for 'x'"):
        f(w=1.0)
    with pytest.raises(TypeError, match="'q' is not a variable"):
        f(w=1.0, x=2.0, q=3.0)


def test_import_symgrad_does_not_load_sympy_and_parse_does():
    code = ("import sys, symgrad as sg\nsg.tanh(1.0)\nassert 'sympy' not in sys.modules\n"
            "sg.ParseError\nassert 'sympy' not in sys.modules\n"
            "from symgrad.symbolic.parse import parse\nparse('x')\nassert 'sympy' in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr


def test_parser_module_names_nothing_unsafe():
    source = open(parse_module.__file__).read()
    for call in ("eval(", "exec(", "sympify(", "parse_expr("):
        assert call not in source.replace("literal_eval(", "")


# --- overflow, and the checks shared with derive and the command line ------------------------------------


@pytest.mark.parametrize("text, values", [
    ("x**2", {"x": 1e200}),
    ("x*10**400", {"x": 1.0}),
    ("x*" + "1" + "0" * 400, {"x": 1}),
    ("x**2", {"x": 10 ** 200}),
])
def test_numeric_evaluation_overflows_to_inf_like_numpy(text, values):
    with np.errstate(over="ignore"):
        assert parse_function(text)(**values) == np.inf


def test_symbolic_evaluation_keeps_integer_literals_exact():
    x = sympy.Symbol("x", real=True)
    assert parse_function("x**2 + 10**400")(x=x) == x ** 2 + sympy.Integer(10) ** 400


def test_assigned_names_the_missing_or_unknown_variable():
    f = parse_function("w*x")
    assert f.assigned({"x": 2.0, "w": 1.0}) == {"w": 1.0, "x": 2.0}
    with pytest.raises(ValueError, match=r"^no value for x: give it with --at x=\.\.\.$"):
        f.assigned({"w": 1.0}, "--at")
    with pytest.raises(ValueError, match=r"^'q' does not appear in the expression 'w\*x'$"):
        f.assigned({"w": 1.0, "x": 1.0, "q": 3.0})


def test_check_arguments_is_shared_by_expression_functions_and_compiled_gradients():
    with pytest.raises(TypeError, match=r"^gradient: 'q' is not a variable \(variables: w, x\)$"):
        sg.derive("w*x", wrt="w").compile()(w=1.0, x=1.0, q=2.0)
    with pytest.raises(TypeError, match=r"^'w\*x': missing value for 'x' \(variables: w, x\)$"):
        parse_function("w*x")(w=1.0)
