"""Exact partials: ``derive`` against ``sympy.diff`` and the course's numbers, compiled gradients against the
engine, the ``sg.*`` functions on SymPy input against NumPy, and the ``symgrad derive`` command.

Oracles: ``sympy.diff`` of the same expression (exact, compared after
``simplify``), the hand-computed values of the course notes, the reverse-mode
engine (an independent implementation of every rule) on random batches, and the
NumPy forwards of ``sg.*`` for the SymPy forms. A hypothesis strategy builds
random expressions over the parser's whole whitelist.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import backend
from symgrad.cli.main import main as cli
from symgrad.symbolic import ops
from symgrad.symbolic.derive import Derivatives, derive
from symgrad.symbolic.parse import FUNCTIONS, parse

RNG = np.random.default_rng(2024)


def real(names: str):
    return sympy.symbols(names, real=True)


def assert_same(a: sympy.Expr, b: sympy.Expr) -> None:
    assert sympy.simplify(a - b) == 0, f"{a} != {b}"


# --- derive against sympy.diff -------------------------------------------------------------------------

DIFF_CASES = {
    "linear + MSE": ("(w*x + b - y)**2", "w,b"),
    "tanh neuron of the notes": ("(tanh(x1*w1 + x2*w2 + b) - y)**2", "w1,w2,b"),
    "sigmoid": ("sigmoid(w*x + b)", "w,b"),
    "log": ("log(w*x**2 + b)", "w,b"),
    "exp": ("exp(-w*x) * exp(b)", "w,b"),
    "pow": ("(w + x)**3 + w**b + sqrt(w)", "w,b"),
    "division": ("(w - y) / (b + x*w)", "w,b"),
    "trigonometry": ("sin(w*x)*cos(b)", "w,b"),
}


@pytest.mark.parametrize("case", sorted(DIFF_CASES))
def test_partials_equal_sympy_diff(case):
    text, wrt = DIFF_CASES[case]
    d = derive(text, wrt)
    loss = parse(text)
    symbols = {s.name: s for s in loss.free_symbols}
    assert d.names == wrt.split(",") and d.expr == loss
    for name in d.names:
        assert_same(d.exprs[name], sympy.diff(loss, symbols[name]))


def test_kinked_functions_differentiate_with_the_engine_conventions():
    d = derive("relu(w*x) + abs(w - 1) + maximum(w, x)", "w")
    values = {"w": 1.0, "x": 1.0}               # relu and abs at work, maximum at a tie
    assert d.at(**values)["w"] == pytest.approx(1.0 + 0.0 + 0.5)
    assert d.at(w=-2.0, x=1.0)["w"] == pytest.approx(0.0 - 1.0 + 0.0)
    assert d.at(w=0.0, x=1.0)["w"] == pytest.approx(0.0 - 1.0 + 0.0)     # relu'(0) = 0 like the engine


def test_course_numbers():
    # the graph of the notes: L = (a*b + c)*f at a=2, b=-3, c=10, f=-2
    graph = derive("(a*b + c)*f").at(a=2, b=-3, c=10, f=-2)
    assert graph == {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0}
    # the linear regression of the notes: x=1, y=2, w=1 gives dL/dw = -2
    assert derive("(x*w - y)**2", "w").at(x=1, y=2, w=1) == {"w": -2.0}
    # the tanh neuron: dL/dw1 = (2*o - 2*y) * x1 * (1 - tanh(n)**2)
    values = {"w1": 0.5, "w2": -1.0, "b": 0.1, "x1": 1.0, "x2": 2.0, "y": 0.3}
    n = values["x1"] * values["w1"] + values["x2"] * values["w2"] + values["b"]
    o = np.tanh(n)
    at = derive("(tanh(x1*w1 + x2*w2 + b) - y)**2", "w1,w2,b").at(**values)
    assert at["w1"] == pytest.approx((2 * o - 2 * values["y"]) * values["x1"] * (1 - o ** 2), rel=1e-14)
    assert at["b"] == pytest.approx((2 * o - 2 * values["y"]) * (1 - o ** 2), rel=1e-14)


def test_derive_from_a_sympy_expression_makes_its_symbols_real():
    x, w = sympy.symbols("x w")                  # no assumptions: |w| would not have a real derivative
    d = derive(sympy.Abs(w) * x, ["w"])
    assert d.at(w=-2.0, x=3.0) == {"w": -3.0}
    assert d.exprs["w"].free_symbols == {sympy.Symbol("w", real=True), sympy.Symbol("x", real=True)}


def test_data_substitutes_numbers():
    d = derive("(w*x + b - y)**2", data={"x": 1, "y": 2})
    assert d.wrt == ["w", "b"] and d.inputs == {"w": (), "b": ()}
    w, b = real("w b")
    assert_same(d.exprs["w"], 2 * (w + b - 2))
    assert d.gradient(w=1.0, b=0.0) == {"w": -2.0, "b": -2.0}


# --- a Python loss function with array weights -------------------------------------------------------------


def mlp(W1, b1, W2, b2, x, y):
    return sg.mse_loss(sg.tanh(x @ W1 + b1) @ W2 + b2, y)


MLP_SHAPES = {"W1": (2, 8), "b1": (8,), "W2": (8, 1), "b2": (1,), "x": (2,), "y": (1,)}
MLP_WEIGHTS = ["W1", "b1", "W2", "b2"]


def mlp_point(samples: int):
    params = {name: RNG.normal(size=shape) for name, shape in MLP_SHAPES.items() if name in MLP_WEIGHTS}
    data = {"x": RNG.normal(size=(samples, 2)), "y": RNG.normal(size=(samples, 1))}
    return params, data


@pytest.fixture(scope="module")
def mlp_derivatives() -> Derivatives:
    return derive(mlp, MLP_WEIGHTS, shapes=MLP_SHAPES)


def test_array_weights_have_element_names_and_shapes(mlp_derivatives):
    d = mlp_derivatives
    assert d.wrt == MLP_WEIGHTS and len(d.names) == 33
    assert d.names[:2] == ["W1[0, 0]", "W1[0, 1]"] and d.names[-1] == "b2[0]"
    assert d.shapes == {"W1": (2, 8), "b1": (8,), "W2": (8, 1), "b2": (1,)}
    assert d.inputs == MLP_SHAPES
    lines = str(d).splitlines()
    assert len(lines) == 33 and lines[1].startswith("∂L/∂W1[0, 1] = ")
    latex = d.latex()
    assert r"\frac{\partial L}{\partial W_{1}[0, 1]} = " in latex and latex.count("\\\\\n") == 32


def test_compiled_gradient_on_10000_samples_equals_the_engine(mlp_derivatives):
    params, data = mlp_point(10_000)
    compiled = mlp_derivatives.compile()(**params, **data)
    _, engine = sg.value_and_gradients(mlp, params, data)
    for name in MLP_WEIGHTS:
        assert compiled[name].shape == params[name].shape
        np.testing.assert_allclose(compiled[name], engine[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_sum_and_per_sample_reductions(mlp_derivatives):
    params, data = mlp_point(50)
    mean = mlp_derivatives.compile()(**params, **data)
    total = mlp_derivatives.compile("sum")(**params, **data)
    each = mlp_derivatives.compile("none")(**params, **data)
    for name in MLP_WEIGHTS:
        np.testing.assert_allclose(total[name], 50 * mean[name], rtol=1e-12)
        assert each[name].shape == (50,) + params[name].shape
        np.testing.assert_allclose(each[name].mean(axis=0), mean[name], rtol=1e-12, atol=1e-15)
    one = {"x": data["x"][7], "y": data["y"][7]}
    _, engine = sg.value_and_gradients(mlp, params, one)
    for name in MLP_WEIGHTS:
        np.testing.assert_allclose(each[name][7], engine[name], rtol=1e-12, atol=1e-15)


def test_chunked_evaluation_equals_one_pass(mlp_derivatives):
    params, data = mlp_point(10)
    for reduction in ("mean", "none"):
        grad = mlp_derivatives.compile(reduction)
        whole = grad(**params, **data)
        grad.chunk = 3                            # 10 samples in chunks of 3, 3, 3 and 1
        try:
            chunked = grad(**params, **data)
        finally:
            del grad.chunk
        for name in MLP_WEIGHTS:
            np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-13, atol=1e-16)


def test_float32_stays_float32():
    grad = derive("tanh(w*x)", "w").compile()
    x = np.linspace(0.1, 1, 5)
    out = grad(w=np.float32(0.5), x=x.astype(np.float32))["w"]
    assert out.dtype == np.float32
    assert float(out) == pytest.approx(np.mean(x * (1 - np.tanh(0.5 * x) ** 2)), rel=1e-6)


def test_compiled_code_shares_subexpressions(mlp_derivatives):
    source = mlp_derivatives.compile().source
    assert source.count("numpy.tanh(") == 8      # one per hidden unit, for all 33 partials
    assert "W1" not in source and "x[" not in source     # generated names only


def test_batched_weights_and_data_broadcast_together():
    d = derive("(w*x - y)**2", "w")
    grid = np.linspace(-1, 1, 5)[:, None]        # 5 weights x 3 samples
    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, -1.0])
    each = d.compile("none")(w=grid, x=x, y=y)["w"]
    np.testing.assert_allclose(each, 2 * x * (grid * x - y), rtol=1e-14)


def test_gradient_and_at_shapes(mlp_derivatives):
    params, data = mlp_point(1)
    one = {"x": data["x"][0], "y": data["y"][0]}
    gradient = mlp_derivatives.gradient(**params, **one)
    at = mlp_derivatives.at(**params, **one)
    assert gradient["W1"].shape == (2, 8) and at["W1[1, 7]"] == gradient["W1"][1, 7]
    assert isinstance(derive("w**2", "w").gradient(w=3.0)["w"], float)


def test_simplify_returns_simplified_partials_that_still_compile():
    d = derive("(w*x + b - y)**2 - (w*x)**2", "w,b").simplify()
    w, x, b, y = real("w x b y")
    assert isinstance(d, Derivatives)
    assert d.exprs["w"] == sympy.factor(2 * x * (b - y)) or sympy.expand(d.exprs["w"] - 2 * x * (b - y)) == 0
    assert d.at(w=5.0, x=2.0, b=1.0, y=3.0)["w"] == pytest.approx(2 * 2 * (1 - 3))


def test_losses_and_softmax_have_symbolic_forms_that_compile_to_the_engine_gradient():
    def classifier(W, b, x, labels, target):
        logits = x @ W + b
        return (sg.cross_entropy(logits, labels) + sg.mean(sg.log_softmax(logits) * target)
                + sg.sum(sg.softmax(logits) ** 2) + sg.mse_loss(sg.sigmoid(logits), target, reduction="sum"))

    x, target = RNG.normal(size=(4, 3)), RNG.uniform(size=(4, 2))
    labels = np.array([0, 1, 1, 0])
    params = {"W": RNG.normal(size=(3, 2)), "b": RNG.normal(size=2)}
    d = derive(classifier, ["W", "b"], shapes={"W": (3, 2), "b": (2,)}, data={"x": x, "labels": labels,
                                                                              "target": target})
    _, engine = sg.value_and_gradients(classifier, params, {"x": x, "labels": labels, "target": target})
    gradient = d.gradient(**params)
    for name in params:
        np.testing.assert_allclose(gradient[name], engine[name], rtol=1e-11, atol=1e-13)


def test_bad_input_gives_one_clear_error():
    with pytest.raises(ValueError, match="wrt: 'q' is not a variable of the loss"):
        derive("w*x", "q")
    with pytest.raises(ValueError, match="'x' is given as data"):
        derive("w*x", "x", data={"x": 1.0})
    with pytest.raises(ValueError, match="data: 'q' is not a variable"):
        derive("w*x", data={"q": 1.0})
    with pytest.raises(ValueError, match="no variable to differentiate"):
        derive("2 + 3")
    with pytest.raises(ValueError, match="give the shape of 'y'"):
        derive(lambda w, y: w * y, shapes={"w": ()})
    with pytest.raises(ValueError, match="must compute with sg"):
        derive(lambda w: np.tanh(w) + np.exp(w), shapes={"w": (2,)})
    with pytest.raises(ValueError, match="must return a scalar"):
        derive(lambda w: w * 2, shapes={"w": (2,)})
    with pytest.raises(TypeError, match="text, a SymPy expression or a function"):
        derive(3.0)
    grad = derive("w*x", "w").compile()
    with pytest.raises(TypeError, match="missing value for 'x'"):
        grad(w=1.0)
    with pytest.raises(ValueError, match="must have shape"):
        derive(mlp, MLP_WEIGHTS, shapes=MLP_SHAPES).compile()(**mlp_point(3)[0], x=np.ones(3), y=np.ones(1))
    with pytest.raises(ValueError, match="reduction"):
        derive("w*x", "w").compile("max")


def test_symbol_names_never_reach_the_generated_code():
    evil = sympy.Symbol("__import__('os').system('x')", real=True)
    w = sympy.Symbol("w", real=True)
    d = derive(w * evil + w ** 2, ["w"])
    source = d.compile().source
    assert "import" not in source and "system" not in source
    assert d.at(**{"w": 2.0, str(evil): 3.0}) == {"w": 7.0}


@pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a GPU")
def test_compiled_gradient_runs_on_gpu_arrays(mlp_derivatives):
    params, data = mlp_point(1000)
    on_gpu = {k: backend.to_device(v, "gpu") for k, v in {**params, **data}.items()}
    gpu = mlp_derivatives.compile()(**on_gpu)
    cpu = mlp_derivatives.compile()(**params, **data)
    for name in MLP_WEIGHTS:
        assert backend.device_of(gpu[name]) == "gpu"
        np.testing.assert_allclose(backend.to_device(gpu[name], "cpu"), cpu[name], rtol=1e-10, atol=1e-12)


# --- sg.* functions on SymPy input --------------------------------------------------------------------------


def _symbols(shape, prefix="s"):
    return np.array(sympy.symbols(f"{prefix}0:{int(np.prod(shape))}", real=True), dtype=object).reshape(shape)


def _evaluate(expr, symbols, values):
    mapping = dict(zip(symbols.flat, values.flat))
    return np.vectorize(lambda e: float(sympy.sympify(e).xreplace(mapping)), otypes=[float])(expr)


SG_CALLS = {
    "sum": lambda a: sg.sum(a, axis=0),
    "mean keepdims": lambda a: sg.mean(a, axis=1, keepdims=True),
    "max": lambda a: sg.max(a, axis=(0, 1)),
    "maximum": lambda a: sg.maximum(a, a[0]),
    "minimum": lambda a: sg.minimum(a, 0.25),
    "where": lambda a: sg.where(np.array([[True, False, True]]), a, -a),
    "matmul": lambda a: sg.matmul(a, a.T),
    "reshape": lambda a: sg.reshape(a, (3, 2)),
    "transpose": lambda a: sg.transpose(a),
    "concatenate": lambda a: sg.concatenate([a, a], axis=1),
    "stack": lambda a: sg.stack([a, 2 * a], axis=0),
    "softmax": lambda a: sg.softmax(a, axis=0),
    "log_softmax": lambda a: sg.log_softmax(a),
    "mse_loss": lambda a: sg.mse_loss(a, a[::-1], reduction="none"),
    "cross_entropy labels": lambda a: sg.cross_entropy(a, np.array([2, 0])),
    "cross_entropy probabilities": lambda a: sg.cross_entropy(a, np.full((2, 3), 1 / 3), reduction="sum"),
    "elementwise": lambda a: sg.exp(a) + sg.log(sg.abs(a)) + sg.tanh(a) + sg.sigmoid(a) + sg.relu(a)
    + sg.sin(a) + sg.cos(a) + sg.sqrt(sg.abs(a)),
}


@pytest.mark.parametrize("name", sorted(SG_CALLS))
def test_sg_functions_on_sympy_arrays_agree_with_numpy(name):
    call = SG_CALLS[name]
    symbols, values = _symbols((2, 3)), RNG.normal(size=(2, 3))
    symbolic, numeric = call(symbols), call(values)
    assert isinstance(symbolic, (np.ndarray, sympy.Basic))
    assert np.shape(symbolic) == np.shape(numeric)
    np.testing.assert_allclose(_evaluate(symbolic, symbols, values), numeric, rtol=1e-12, atol=1e-14)


def test_sg_functions_on_sympy_scalars_return_sympy():
    x = sympy.Symbol("x", real=True)
    assert sg.tanh(x) == sympy.tanh(x) and sg.sigmoid(x) == 1 / (1 + sympy.exp(-x))
    assert sg.sum(x) == x and sg.mse_loss(x, 2) == (x - 2) ** 2
    with pytest.raises(ValueError, match="matmul"):
        ops.matmul(x, x)


# --- random expressions: symbolic gradient == engine gradient --------------------------------------------------

LEAVES = st.sampled_from(["w", "b", "x", "2", "3", "0.5", "1.5"])
EXPONENTS = st.sampled_from(["2", "3", "0.5", "-1", "w", "b", "x"])
UNARY = sorted(name for name, arity in FUNCTIONS.items() if arity == 1)
BINARY = sorted(name for name, arity in FUNCTIONS.items() if arity == 2)


def _extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "/"]), children, children),
        st.tuples(st.just("**"), children, EXPONENTS),
        st.tuples(st.just("neg"), children),
        st.tuples(st.sampled_from(UNARY), children),
        st.tuples(st.sampled_from(BINARY), children, children))


TREES = st.recursive(LEAVES, _extend, max_leaves=8)


def text_of(tree) -> str:
    if isinstance(tree, str):
        return tree
    head, *args = tree
    if head == "neg":
        return f"(-{text_of(args[0])})"
    if head in ("+", "-", "*", "/", "**"):
        return f"({text_of(args[0])} {head} {text_of(args[1])})"
    return f"{head}({', '.join(text_of(a) for a in args)})"


KINKS = {"abs": lambda a: a == 0, "relu": lambda a: a == 0, "maximum": lambda a, b: a == b,
         "minimum": lambda a, b: a == b}


def engine_value(tree, values, kinks: list):
    """The same tree evaluated directly with Python operators and sg.* (no parser involved).

    Appends to ``kinks`` each function met exactly at its kink (where no derivative exists).
    """
    if isinstance(tree, str):
        return values[tree] if tree in values else np.float64(tree)
    head, *args = tree
    parts = [engine_value(a, values, kinks) for a in args]
    if head in KINKS and KINKS[head](*(float(p.data if isinstance(p, sg.Tensor) else p) for p in parts)):
        kinks.append(head)
    if head == "neg":
        return -parts[0]
    operators = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
                 "/": lambda a, b: a / b, "**": lambda a, b: a ** b}
    return operators[head](*parts) if head in operators else getattr(sg, head)(*parts)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES, point=st.tuples(*[st.floats(-2, 2).map(lambda v: round(v, 6))] * 3))
def test_random_expressions_engine_gradient_equals_symbolic_gradient(tree, point):
    text = text_of(tree)
    names = [n for n in ("w", "b", "x") if n in sg.symbolic.parse.parse_function(text).names]
    weights = [n for n in names if n != "x"]
    assume(weights)
    values = dict(zip(("w", "b", "x"), point))
    try:
        derivatives = derive(text, weights)
    except ValueError as err:       # a complex constant, sqrt(-2): not a real loss
        assume("complex" not in str(err) and "SymPy cannot build" not in str(err))
        raise
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        symbolic = derivatives.at(**{n: values[n] for n in names})
        leaves = {n: sg.tensor(values[n], requires_grad=n in weights) for n in names}
        kinks: list = []
        out = engine_value(tree, leaves, kinks)
        if isinstance(out, sg.Tensor) and out.requires_grad:
            out.backward()
    assume(not kinks)                                   # at a kink each side keeps its own valid convention
    assume(np.isfinite(float(out.data if isinstance(out, sg.Tensor) else out)))    # inside the domain
    for name in weights:
        grad = leaves[name].grad
        engine = 0.0 if grad is None else float(grad)
        if np.isfinite(engine) and np.isfinite(symbolic[name]) and max(abs(engine), abs(symbolic[name])) < 1e12:
            assert symbolic[name] == pytest.approx(engine, rel=1e-6, abs=1e-8), (text, values, name)


# --- the command line ----------------------------------------------------------------------------------------------


def run_cli(*args):
    return CliRunner().invoke(cli, ["derive", *args])


def test_cli_prints_partials_and_values():
    result = run_cli("(w*x + b - y)**2", "--wrt", "w,b", "--at", "x=1,y=2,w=1,b=0")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["L = (b + w*x - y)**2", "∂L/∂w = 2*x*(b + w*x - y) = -2",
                                          "∂L/∂b = 2*(b + w*x - y) = -2"]


def test_cli_wrt_defaults_to_the_variables_not_given_in_at():
    result = run_cli("(w*x + b - y)**2", "--at", "x=1,y=2", "--json")
    payload = json.loads(result.output)
    assert payload["wrt"] == ["w", "b"] and all(p["value"] is None for p in payload["partials"])
    everything = json.loads(run_cli("(w*x + b - y)**2", "--at", "x=1,y=2,w=1,b=0", "--json").output)
    assert everything["wrt"] == ["w", "x", "b", "y"]
    assert [p["value"] for p in everything["partials"]] == [-2.0, -2.0, -2.0, 2.0]


def test_cli_latex_and_simplify():
    result = run_cli("(w*x + b - y)**2 - (w*x)**2", "--wrt", "w", "--latex", "--simplify")
    assert result.exit_code == 0
    assert r"\frac{\partial L}{\partial w} = " in result.output and "2 x \\left(b - y\\right)" in result.output


@pytest.mark.parametrize("args, message", [
    (["w*x", "--wrt", "q"], "--wrt: 'q' does not appear in the expression"),
    (["w*x", "--at", "x=abc"], "--at: value of 'x' is not a number"),
    (["w*x", "--at", "q=1"], "--at: 'q' does not appear"),
    (["__import__('os')"], "call to unknown function '__import__'"),
    (["w*(x"], "never closed"),
])
def test_cli_bad_input_is_one_line_on_stderr_with_exit_code_2(args, message):
    result = run_cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output and result.stdout == ""


def test_cli_help_shows_an_example():
    result = run_cli("--help")
    assert result.exit_code == 0 and "Example" in result.output


def test_installed_command():
    command = Path(sys.executable).with_name("symgrad")
    if not command.exists():
        pytest.skip("the symgrad command is not installed next to this Python")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    ok = subprocess.run([str(command), "derive", "tanh(w*x)", "--wrt", "w", "--at", "w=0,x=2"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "∂L/∂w = x*(1 - tanh(w*x)**2) = 2"
    bad = subprocess.run([str(command), "derive", "w.x"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
    assert "attribute access 'w.x' at column 1" in bad.stderr


@pytest.mark.parametrize("wrt, message", [
    (5, "wrt must be a name, a comma-separated string or a list of names, not int"),
    ([5], "wrt: every name must be a string, got 5"),
])
def test_derive_names_wrt_when_it_is_not_names(wrt, message):
    with pytest.raises(TypeError, match=f"^{message}$"):
        sg.derive("x**2", wrt=wrt)
