"""The engine's backward rules checked against SymPy's derivatives of the same functions.

Each rule's forward is compared with the SymPy form that ``sg.*`` uses for
symbols (:mod:`symgrad.symbolic.ops`), and each vector-Jacobian product with
``g * sympy.diff(form, input)`` — or, for array rules, with the gradient of
``sum(g * form)`` — evaluated by ``sympy.lambdify`` at random points and at the
kinks, where the conventions of the engine (``relu'(0) = 0``, ``|x|'(0) = 0``,
ties of ``maximum`` split in half) must be those of the SymPy forms.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy

from symgrad.rules import RULES
from symgrad.symbolic import ops

RNG = np.random.default_rng(1234)
X, Y = sympy.symbols("x y", real=True)


def uniform(low, high, size=40):
    return RNG.uniform(low, high, size)


# name: (SymPy form of its inputs, sampler of input arrays)
ELEMENTWISE = {
    "exp": (lambda x: ops.exp(x), lambda: [uniform(-3, 3)]),
    "log": (lambda x: ops.log(x), lambda: [uniform(0.1, 4)]),
    "tanh": (lambda x: ops.tanh(x), lambda: [uniform(-3, 3)]),
    "sigmoid": (lambda x: ops.sigmoid(x), lambda: [uniform(-6, 6)]),
    "relu": (lambda x: ops.relu(x), lambda: [np.append(uniform(-3, 3), [0.0, -0.0])]),
    "sin": (lambda x: ops.sin(x), lambda: [uniform(-4, 4)]),
    "cos": (lambda x: ops.cos(x), lambda: [uniform(-4, 4)]),
    "sqrt": (lambda x: ops.sqrt(x), lambda: [uniform(0.1, 4)]),
    "abs": (lambda x: ops.abs(x), lambda: [np.append(uniform(-3, 3), [0.0])]),
    "neg": (lambda x: -x, lambda: [uniform(-3, 3)]),
    "add": (lambda x, y: x + y, lambda: [uniform(-3, 3), uniform(-3, 3)]),
    "sub": (lambda x, y: x - y, lambda: [uniform(-3, 3), uniform(-3, 3)]),
    "mul": (lambda x, y: x * y, lambda: [uniform(-3, 3), uniform(-3, 3)]),
    "div": (lambda x, y: x / y, lambda: [uniform(-3, 3), uniform(0.2, 3) * RNG.choice([-1, 1], 40)]),
    "pow": (lambda x, y: x ** y, lambda: [uniform(0.1, 3), uniform(-2.5, 2.5)]),
    "maximum": (lambda x, y: ops.maximum(x, y), lambda: _with_ties()),
    "minimum": (lambda x, y: ops.minimum(x, y), lambda: _with_ties()),
}

# Array rules: (SymPy form of object arrays, the input shapes, rule parameters).
ARRAY = {
    "sum": (lambda a: ops.sum(a, axis=1), [(3, 4)], {"axis": 1}),
    "mean": (lambda a: ops.mean(a, axis=0, keepdims=True), [(3, 4)], {"axis": 0, "keepdims": True}),
    "max": (lambda a: ops.max(a, axis=-1), [(2, 3)], {"axis": -1}),
    "softmax": (lambda a: ops.softmax(a, axis=-1), [(2, 4)], {"axis": -1}),
    "log_softmax": (lambda a: ops.log_softmax(a, axis=0), [(3, 2)], {"axis": 0}),
    "reshape": (lambda a: ops.reshape(a, (4, 3)), [(3, 4)], {"shape": (4, 3)}),
    "transpose": (lambda a: ops.transpose(a, (1, 0)), [(3, 4)], {"axes": (1, 0)}),
    "matmul": (ops.matmul, [(3, 4), (4, 2)], {}),
    "mse_loss": (lambda a, b: ops.mse_loss(a, b), [(2, 3), (2, 3)], {"reduction": "mean"}),
    "cross_entropy": (lambda a, b: ops.cross_entropy(a, b, reduction="sum"), [(2, 3), (2, 3)],
                      {"reduction": "sum"}),
}

# Rules that only route values (selection, indexing, joining): no derivative to
# compare; the engine tests check them against numerical oracles.
ROUTING = {"where", "getitem", "concatenate", "stack"}


def _with_ties():
    x, y = uniform(-3, 3), uniform(-3, 3)
    y[:5] = x[:5]                                # ties: each side gets half the gradient
    return [x, y]


def test_every_rule_is_checked_here_or_listed_as_routing():
    assert set(RULES) == set(ELEMENTWISE) | set(ARRAY) | ROUTING


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_rule_matches_sympy(name):
    form, sample = ELEMENTWISE[name]
    symbols = [X, Y][:len(sample())]
    expr = form(*symbols)
    inputs = sample()
    rule = RULES[name]
    forward = sympy.lambdify(symbols, expr, "numpy")
    out = rule.forward(*inputs)
    np.testing.assert_allclose(out, np.broadcast_to(forward(*inputs), out.shape), rtol=1e-13, atol=1e-14)
    g = RNG.normal(size=out.shape)
    for i, symbol in enumerate(symbols):
        derivative = sympy.lambdify(symbols, sympy.diff(expr, symbol), "numpy")
        expected = g * np.broadcast_to(derivative(*inputs), out.shape)
        got = rule.vjps[i](g, out, *inputs)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13, err_msg=f"{name}: input {i}")


def test_pow_exponent_rule_matches_sympy_for_negative_bases_with_integer_exponents():
    base, exponent = uniform(-3, -0.2), RNG.integers(-3, 4, 40).astype(float)
    g = RNG.normal(size=40)
    derivative = sympy.lambdify([X, Y], sympy.diff(X ** Y, X), "numpy")
    out = RULES["pow"].forward(base, exponent)
    np.testing.assert_allclose(RULES["pow"].vjps[0](g, out, base, exponent), g * derivative(base, exponent),
                               rtol=1e-12, atol=1e-13)


def _symbol_arrays(shapes: list) -> list:
    arrays, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        arrays.append(np.array(sympy.symbols(f"a{start}:{start + size}", real=True), dtype=object).reshape(shape))
        start += size
    return arrays


def _check_vjps(rule, form, symbols: list, values: list, params: dict, differentiated: range) -> None:
    """The rule's forward and VJPs against the SymPy form and the gradient of sum(g * form).

    ``symbols`` stand for the first values; the others (labels) are passed as they are.
    """
    flat = [s for array in symbols for s in array.flat]
    numbers = [v for array in values[:len(symbols)] for v in np.asarray(array, dtype=float).flat]
    out, vjp_inputs = rule.run(*values, **params)
    expr = np.asarray(form(*symbols), dtype=object)
    evaluate = sympy.lambdify(flat, list(expr.flat), "numpy")
    np.testing.assert_allclose(np.reshape(evaluate(*numbers), np.shape(out)), out, rtol=1e-12, atol=1e-13)
    g = RNG.normal(size=np.shape(out))
    pairing = sympy.Add(*(float(gi) * e for gi, e in zip(np.ravel(g), expr.flat)))
    for i in differentiated:
        gradient = sympy.lambdify(flat, [sympy.diff(pairing, s) for s in symbols[i].flat], "numpy")
        expected = np.reshape(gradient(*numbers), symbols[i].shape)
        got = rule.vjps[i](g, out, *vjp_inputs, **params)
        np.testing.assert_allclose(np.broadcast_to(got, expected.shape), expected, rtol=1e-11, atol=1e-12,
                                   err_msg=f"{rule.name}: input {i}")


@pytest.mark.parametrize("name", sorted(ARRAY))
def test_array_rule_matches_the_gradient_of_its_sympy_form(name):
    form, shapes, params = ARRAY[name]
    values = [RNG.normal(size=shape) for shape in shapes]
    if name == "max":
        values[0][0, 1] = values[0][0, 0]         # a tie: the maxima share the gradient
    if name == "cross_entropy":
        values[1] = np.abs(values[1]) / np.abs(values[1]).sum(axis=-1, keepdims=True)   # probabilities
    _check_vjps(RULES[name], form, _symbol_arrays(shapes), values, params, range(len(shapes)))


def test_cross_entropy_with_labels_matches_sympy():
    labels = np.array([2, 0])
    form = lambda logits: ops.cross_entropy(logits, labels, reduction="mean")  # noqa: E731
    _check_vjps(RULES["cross_entropy"], form, _symbol_arrays([(2, 3)]), [RNG.normal(size=(2, 3)), labels],
                {"reduction": "mean"}, range(1))


def test_sympy_forms_keep_the_engine_conventions_at_kinks():
    assert sympy.diff(ops.relu(X), X).subs(X, 0) == 0
    assert sympy.diff(ops.abs(X), X).subs(X, 0) == 0
    assert sympy.diff(ops.maximum(X, Y), X).subs({X: 1, Y: 1}) == sympy.Rational(1, 2)
    assert sympy.diff(ops.minimum(X, Y), Y).subs({X: 1, Y: 1}) == sympy.Rational(1, 2)
