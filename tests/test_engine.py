"""The reverse-mode engine against independent oracles.

Every primitive's gradient is compared with complex-step (analytic code) or central
(kinked code) differences of plain NumPy evaluations in float64 at random points;
losses against their closed forms; graph bookkeeping (accumulation, freeing,
retain_graph) and bad input against what the contract promises.
"""
from __future__ import annotations

import operator
import subprocess
import sys
import weakref

import numpy as np
import pytest

import symgrad as sg
from symgrad.rules import RULES, defrule
from symgrad.tensor import apply

RNG = np.random.default_rng(20240601)


def rand(*shape, low=-2.0, high=2.0):
    """Random float64 values; a () shape gives a 0-d array."""
    return RNG.uniform(low, high, size=shape)


def away_from_zero(*shape, low=0.3, high=2.0):
    """Random values with |x| in [low, high] and a random sign."""
    return rand(*shape, low=low, high=high) * RNG.choice([-1.0, 1.0], size=shape)


def as_operand(value: np.ndarray):
    """A 0-d array becomes a Python float (a scalar operand), others stay arrays."""
    return float(value) if np.ndim(value) == 0 else value


# --- elementwise functions -----------------------------------------------------------

def sigmoid_reference(x):
    return 1 / (1 + np.exp(-x))


UNARY = {  # name: (NumPy reference, its derivative in NumPy, random points in its smooth domain)
    "exp": (np.exp, np.exp, lambda *s: rand(*s)),
    "log": (np.log, lambda x: 1 / x, lambda *s: rand(*s, low=0.2, high=3.0)),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2, lambda *s: rand(*s)),
    "sigmoid": (sigmoid_reference, lambda x: sigmoid_reference(x) * (1 - sigmoid_reference(x)),
                lambda *s: rand(*s, low=-4.0, high=4.0)),
    "relu": (lambda x: np.maximum(x, 0), lambda x: np.where(x > 0, 1.0, 0.0), away_from_zero),
    "sin": (np.sin, np.cos, lambda *s: rand(*s, low=-3.0, high=3.0)),
    "cos": (np.cos, lambda x: -np.sin(x), lambda *s: rand(*s, low=-3.0, high=3.0)),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), lambda *s: rand(*s, low=0.2, high=3.0)),
    "abs": (np.abs, np.sign, away_from_zero),
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)])
def test_unary_gradient_matches_complex_step(gradcheck, name, shape):
    gradcheck(getattr(sg, name), UNARY[name][2](*shape))


@pytest.mark.parametrize("name", UNARY)
def test_unary_method_and_function_agree(name):
    x = sg.tensor(UNARY[name][2](4), requires_grad=True)
    np.testing.assert_array_equal(getattr(x, name)().data, getattr(sg, name)(x).data)
    assert getattr(x, name)().op == name


@pytest.mark.parametrize("name", UNARY)
def test_unary_on_numpy_input_equals_numpy_reference(name):
    reference, _, points = UNARY[name]
    x = points(3, 4)
    out = getattr(sg, name)(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, reference(x), rtol=1e-14, atol=1e-15)
    assert isinstance(getattr(sg, name)(float(x[0, 0])), (float, np.floating))


@pytest.mark.parametrize("name", UNARY)
def test_complex_input_gives_complex_step_derivative_of_engine(name):
    """Im f(x + ih) / h on plain NumPy input equals the engine's gradient to ~1e-13."""
    x = UNARY[name][2](6)
    h = 1e-40
    complex_step = np.imag(getattr(sg, name)(x + 1j * h)) / h
    t = sg.tensor(x, requires_grad=True)
    getattr(sg, name)(t).sum().backward()
    np.testing.assert_allclose(t.grad, complex_step, rtol=1e-13, atol=0)


def test_sigmoid_is_stable_for_huge_inputs():
    x = np.array([-1e4, -800.0, 0.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = sg.sigmoid(x)
        t = sg.tensor(x, requires_grad=True)
        sg.sigmoid(t).sum().backward()
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(t.grad, [0.0, 0.0, 0.25, 0.0, 0.0])


# --- binary operators with broadcasting ------------------------------------------------

OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
             "**": operator.pow}
SHAPE_PAIRS = [((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (3,)), ((3,), ()), ((2, 3), (2, 3)), ((4,), (2, 1, 4))]
SIDES = {"both": (0, 1), "left": (0,), "right": (1,)}   # which operands are tensors


def operands(symbol, shape_a, shape_b):
    if symbol == "**":                 # positive base: real powers and a real log for the exponent's gradient
        return rand(*shape_a, low=0.3, high=2.0), rand(*shape_b)
    if symbol == "/":
        return rand(*shape_a), away_from_zero(*shape_b)
    return rand(*shape_a), rand(*shape_b)


@pytest.mark.parametrize("symbol", OPERATORS)
@pytest.mark.parametrize("shape_a, shape_b", SHAPE_PAIRS)
@pytest.mark.parametrize("side", SIDES)
def test_binary_operator_gradients_with_broadcasting(gradcheck, symbol, shape_a, shape_b, side):
    """Tensors on one or both sides; a scalar non-tensor operand is passed as a Python float."""
    a, b = operands(symbol, shape_a, shape_b)
    wrt = SIDES[side]
    a = a if 0 in wrt else as_operand(a)
    b = b if 1 in wrt else as_operand(b)
    gradcheck(OPERATORS[symbol], a, b, wrt=wrt)


@pytest.mark.parametrize("constant", [2, 2.5, np.float64(2.5), np.int64(3), np.array(2.5), np.array([1.0, 2.0, 3.0])])
def test_operators_accept_every_kind_of_constant_on_either_side(constant):
    x = np.array([0.5, 1.5, 2.5])
    for symbol, op in OPERATORS.items():
        for left in (True, False):
            t = sg.tensor(x, requires_grad=True)
            out = op(t, constant) if left else op(constant, t)
            assert isinstance(out, sg.Tensor)
            np.testing.assert_allclose(out.data, op(x, constant) if left else op(constant, x), rtol=1e-15)
            out.sum().backward()
            assert t.grad.shape == x.shape and np.all(np.isfinite(t.grad))


def test_unary_minus_and_plus(gradcheck):
    gradcheck(operator.neg, rand(2, 3))
    t = sg.tensor(rand(3), requires_grad=True)
    assert +t is t


def test_integer_power_of_negative_base(gradcheck):
    gradcheck(lambda x: x ** 3 + x ** 2 + x ** -1, away_from_zero(6))


def test_power_gradient_for_exponent_at_zero_base():
    base = sg.tensor([0.0, 2.0], requires_grad=True)
    exponent = sg.tensor(2.0, requires_grad=True)
    (base ** exponent).sum().backward()
    np.testing.assert_allclose(base.grad, [0.0, 4.0])
    np.testing.assert_allclose(exponent.grad, 4 * np.log(2.0))       # the 0**b term contributes 0


@pytest.mark.filterwarnings("error")
def test_power_with_a_zero_exponent_has_a_zero_gradient_even_at_zero(gradcheck):
    x = sg.tensor([0.0, 0.0, 2.0], requires_grad=True)
    (x ** np.array([0.0, 1.0, 2.0])).sum().backward()              # polynomial features at 0
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 4.0])
    y = sg.tensor([0.0, 3.0], requires_grad=True)
    (y ** 0).sum().backward()
    np.testing.assert_array_equal(y.grad, [0.0, 0.0])
    gradcheck(lambda v: v ** np.array([[0.0], [1.0], [3.0]]), rand(4))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("shape_a, shape_b", SHAPE_PAIRS)
def test_maximum_minimum_gradients(gradcheck, name, shape_a, shape_b):
    gradcheck(getattr(sg, name), rand(*shape_a), rand(*shape_b))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_against_a_constant_and_on_ties(gradcheck, name):
    gradcheck(lambda x: getattr(sg, name)(x, 0.25), away_from_zero(5) + 0.25, method="central")
    t = sg.tensor([1.0, 2.0], requires_grad=True)
    getattr(sg, name)(t, np.array([1.0, 0.0])).sum().backward()
    assert t.grad[0] == 0.5                                        # a tie splits the gradient
    u = sg.tensor([1.0, 3.0], requires_grad=True)
    getattr(sg, name)(u, u).sum().backward()
    np.testing.assert_array_equal(u.grad, [1.0, 1.0])


def test_where_gradients_with_broadcasting(gradcheck):
    condition = RNG.random((3, 4)) > 0.5
    gradcheck(lambda a, b: sg.where(condition, a, b), rand(3, 1), rand(1, 4))
    gradcheck(lambda a: sg.where(condition, a, 0.0), rand(4))
    t = sg.tensor(rand(3, 4), requires_grad=True)
    sg.where(t > 0, t, 0.0).sum().backward()                        # a Tensor comparison as condition
    np.testing.assert_array_equal(t.grad, (t.data > 0).astype(float))


# --- matmul ---------------------------------------------------------------------------------

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                 ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (5, 3, 4)), ((3,), (5, 3, 4)),
                 ((5, 2, 3), (3,)), ((1, 2, 3), (4, 1, 3, 2))]


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES)
@pytest.mark.parametrize("side", SIDES)
def test_matmul_gradients(gradcheck, shape_a, shape_b, side):
    a, b = rand(*shape_a), rand(*shape_b)
    gradcheck(operator.matmul, a, b, wrt=SIDES[side])
    gradcheck(sg.matmul, a, b, wrt=SIDES[side])


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES)
def test_matmul_on_numpy_input_equals_np_matmul(shape_a, shape_b):
    a, b = rand(*shape_a), rand(*shape_b)
    np.testing.assert_allclose(sg.matmul(a, b), np.matmul(a, b), rtol=1e-15)


# --- reductions -------------------------------------------------------------------------------

AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2)]


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradients(gradcheck, name, axis, keepdims):
    x = rand(2, 3, 4)                                              # distinct values: max has no ties
    gradcheck(lambda v: getattr(sg, name)(v, axis=axis, keepdims=keepdims), x)
    t = sg.tensor(x, requires_grad=True)
    method_out = getattr(t, name)(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(method_out.data, getattr(np, name)(x, axis=axis, keepdims=keepdims), rtol=1e-15)
    np.testing.assert_allclose(getattr(sg, name)(x, axis=axis, keepdims=keepdims),
                               getattr(np, name)(x, axis=axis, keepdims=keepdims), rtol=1e-15)


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_reductions_of_a_scalar(gradcheck, name):
    gradcheck(lambda v: getattr(sg, name)(v), rand())


def test_max_ties_share_the_gradient_equally():
    t = sg.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    t.max(axis=1).sum().backward()
    np.testing.assert_allclose(t.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


# --- shapes -------------------------------------------------------------------------------------

RESHAPES = {
    "reshape(4, 6)": lambda x: x.reshape(4, 6),
    "reshape((6, -1))": lambda x: x.reshape((6, -1)),
    "sg.reshape": lambda x: sg.reshape(x, (24,)),
    "T": lambda x: x.T,
    "transpose()": lambda x: x.transpose(),
    "transpose(1, 0, 2)": lambda x: x.transpose(1, 0, 2),
    "transpose((2, 0, 1))": lambda x: x.transpose((2, 0, 1)),
    "transpose(0, -1, 1)": lambda x: x.transpose(0, -1, 1),
    "transpose(-1, -3, -2)": lambda x: x.transpose(-1, -3, -2),
    "sg.transpose": lambda x: sg.transpose(x, (1, 2, 0)),
    "sg.transpose negative": lambda x: sg.transpose(x, (-2, 0, -1)),
}


@pytest.mark.parametrize("name", RESHAPES)
def test_reshape_and_transpose_gradients(gradcheck, name):
    gradcheck(RESHAPES[name], rand(2, 3, 4))


# --- indexing -------------------------------------------------------------------------------------

MASK = RNG.random((4, 5)) > 0.4
INDEXES = {
    "int": 1, "negative int": -1, "slice": slice(1, 3), "strided": (slice(None, None, 2), slice(1, None)),
    "repeated ints": [0, 0, 3, 0], "int array 2-D": np.array([[1, 1], [2, 1]]),
    "pairs with repeats": ([0, 0, 1], [2, 2, 4]), "column repeats": (slice(None), [4, 4, 0]),
    "bool mask": MASK, "bool rows": np.array([True, False, True, True]),
    "newaxis and ellipsis": (None, Ellipsis, 2), "mixed": (slice(1, None), np.array([3, 3, 3])),
}


@pytest.mark.parametrize("name", INDEXES)
def test_indexing_gradients(gradcheck, name):
    index = INDEXES[name]
    gradcheck(lambda x: x[index], rand(4, 5))


def test_repeated_indices_accumulate():
    t = sg.tensor(np.arange(5.0), requires_grad=True)
    t[[0, 0, 1, 0, 4]].sum().backward()
    np.testing.assert_array_equal(t.grad, [3, 1, 0, 0, 1])
    u = sg.tensor(np.zeros((3, 2)), requires_grad=True)
    (u[np.array([2, 2, 0])] * np.array([[1.0, 2.0]])).sum().backward()
    np.testing.assert_array_equal(u.grad, [[1, 2], [0, 0], [2, 4]])


def test_index_given_as_tensor_or_mask_of_tensor():
    t = sg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    t[sg.tensor(np.array([2, 2]))].sum().backward()
    np.testing.assert_array_equal(t.grad, [0, 0, 2])
    t.zero_grad()
    t[t > 0].sum().backward()
    np.testing.assert_array_equal(t.grad, [1, 0, 1])


# --- concatenate / stack --------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_gradients(gradcheck, axis):
    shapes = {0: [(2, 3), (4, 3), (1, 3)], 1: [(2, 3), (2, 1), (2, 2)], -1: [(2, 3), (2, 1), (2, 2)]}[axis]
    gradcheck(lambda a, b, c: sg.concatenate([a, b, c], axis=axis), *(rand(*s) for s in shapes))
    gradcheck(lambda a, b, c: sg.concatenate([a, b, c], axis=axis), *(rand(*s) for s in shapes), wrt=(1,))


def test_concatenate_flattened_with_axis_none(gradcheck):
    gradcheck(lambda a, b: sg.concatenate([a, b], axis=None), rand(2, 3), rand(4))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack_gradients(gradcheck, axis):
    gradcheck(lambda a, b: sg.stack([a, b], axis=axis), rand(3, 2), rand(3, 2))
    gradcheck(lambda a, b: sg.stack([a, b], axis=axis), rand(3, 2), rand(3, 2), wrt=(0,))


def test_concatenate_and_stack_the_same_tensor_twice():
    t = sg.tensor([1.0, 2.0], requires_grad=True)
    (sg.concatenate([t, t]) * np.array([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(t.grad, [4.0, 6.0])
    t.zero_grad()
    sg.stack([t, t, t], axis=1).sum().backward()
    np.testing.assert_array_equal(t.grad, [3.0, 3.0])


def test_concatenate_and_stack_on_numpy_input():
    a, b = rand(2, 3), rand(2, 3)
    np.testing.assert_array_equal(sg.concatenate([a, b], axis=1), np.concatenate([a, b], axis=1))
    np.testing.assert_array_equal(sg.stack([a, b], axis=-1), np.stack([a, b], axis=-1))


# --- softmax and log_softmax -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis", [((5,), -1), ((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1)])
def test_softmax_gradients(gradcheck, name, shape, axis):
    gradcheck(lambda x: getattr(sg, name)(x, axis=axis), rand(*shape))


def softmax_reference(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_on_numpy_input_equals_reference(name):
    x = rand(3, 4)
    expected = softmax_reference(x, 0)
    expected = expected if name == "softmax" else np.log(expected)
    np.testing.assert_allclose(getattr(sg, name)(x, axis=0), expected, rtol=1e-14)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_is_stable_for_huge_logits(name):
    """Logits near ±1e4 overflow exp; the results and gradients equal those of the shifted logits."""
    small = np.array([[0.0, -1.0, -3.0, 2.0], [1.0, 1.0, -2.0, 0.5]])
    cotangent = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, 2.0, -1.0]])
    reference = sg.tensor(small, requires_grad=True)
    getattr(sg, name)(reference).backward(cotangent)
    for shift in (1e4, -1e4):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            t = sg.tensor(small + shift, requires_grad=True)
            out = getattr(sg, name)(t)
            out.backward(cotangent)
        np.testing.assert_allclose(out.data, getattr(sg, name)(small), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(t.grad, reference.grad, rtol=1e-10, atol=1e-12)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        one_hot = sg.softmax(np.array([1e4, 0.0, -1e4]))
    np.testing.assert_array_equal(one_hot, [1.0, 0.0, 0.0])


@pytest.mark.parametrize("spread", [0.5, 5.0, 29.0, 31.0, 80.0, 1e4])
@pytest.mark.parametrize("first_is_max", [True, False])
def test_log_softmax_float32_is_accurate_whatever_the_spread_of_a_row(spread, first_is_max):
    """Rows whose entries spread from 0.5 to 1e4, the largest first or not: float32 results
    stay within a few ulps of a float64 reference."""
    row = np.array([0.0, spread, spread / 3, -spread, 0.25 * spread], dtype=np.float32)
    if first_is_max:
        row[[0, 1]] = row[[1, 0]]
    x = np.stack([row, -row, np.float32(-7.5) + row])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = sg.log_softmax(sg.tensor(x)).data
        probabilities = sg.softmax(x)
    reference = x.astype(np.float64)
    reference = reference - reference.max(axis=-1, keepdims=True)
    reference = reference - np.log(np.exp(reference).sum(axis=-1, keepdims=True))
    assert got.dtype == np.float32
    ulps = np.abs(got - reference) / np.spacing(np.maximum(np.abs(reference), 1).astype(np.float32))
    assert ulps.max() <= 4, ulps
    np.testing.assert_allclose(probabilities, np.exp(reference), rtol=1e-5, atol=1e-30)


# --- losses: closed forms ---------------------------------------------------------------------------

def test_mse_loss_closed_forms():
    pred, target = rand(4, 3), rand(4, 3)
    diff = pred - target
    for reduction, value, scale in (("mean", np.mean(diff ** 2), 1 / 12), ("sum", np.sum(diff ** 2), 1.0)):
        p, y = sg.tensor(pred, requires_grad=True), sg.tensor(target, requires_grad=True)
        loss = sg.mse_loss(p, y, reduction=reduction)
        assert loss.shape == ()
        np.testing.assert_allclose(loss.item(), value, rtol=1e-14)
        loss.backward()
        np.testing.assert_allclose(p.grad, 2 * diff * scale, rtol=1e-14)
        np.testing.assert_allclose(y.grad, -2 * diff * scale, rtol=1e-14)
        np.testing.assert_allclose(sg.mse_loss(pred, target, reduction=reduction), value, rtol=1e-14)
    p = sg.tensor(pred, requires_grad=True)
    cotangent = rand(4, 3)
    loss = sg.mse_loss(p, target, reduction="none")
    np.testing.assert_allclose(loss.data, diff ** 2, rtol=1e-14)
    loss.backward(cotangent)
    np.testing.assert_allclose(p.grad, 2 * diff * cotangent, rtol=1e-14)


def test_mse_loss_broadcast_target(gradcheck):
    gradcheck(lambda p, y: sg.mse_loss(p, y), rand(4, 3), rand(3))
    gradcheck(lambda p, y: sg.mse_loss(p, y, reduction="none"), rand(4, 3), rand(4, 1))


def cross_entropy_closed_form(logits, labels):
    """Per-sample loss and gradient: -log p[label] and p - onehot, p the softmax."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    onehot = np.eye(logits.shape[-1])[labels]
    return -np.log((p * onehot).sum(axis=-1)), p - onehot


@pytest.mark.parametrize("shift", [0.0, 1e4])
def test_cross_entropy_with_integer_labels_closed_forms(shift):
    logits, labels = rand(5, 4) + shift, np.array([0, 3, 3, 1, 2])
    losses, dlogits = cross_entropy_closed_form(logits, labels)
    for reduction, value, scale in (("mean", losses.mean(), 1 / 5), ("sum", losses.sum(), 1.0)):
        z = sg.tensor(logits, requires_grad=True)
        loss = sg.cross_entropy(z, labels, reduction=reduction)
        np.testing.assert_allclose(loss.item(), value, rtol=1e-12)
        loss.backward()
        np.testing.assert_allclose(z.grad, dlogits * scale, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(sg.cross_entropy(logits, labels, reduction=reduction), value, rtol=1e-12)
    z = sg.tensor(logits, requires_grad=True)
    cotangent = rand(5)
    loss = sg.cross_entropy(z, list(labels), reduction="none")
    np.testing.assert_allclose(loss.data, losses, rtol=1e-12)
    loss.backward(cotangent)
    np.testing.assert_allclose(z.grad, cotangent[:, None] * dlogits, rtol=1e-10, atol=1e-14)


def test_cross_entropy_single_sample_and_tensor_labels():
    logits = rand(4)
    loss, dlogits = cross_entropy_closed_form(logits, 2)
    z = sg.tensor(logits, requires_grad=True)
    out = sg.cross_entropy(z, 2)
    np.testing.assert_allclose(out.item(), loss, rtol=1e-14)
    out.backward()
    np.testing.assert_allclose(z.grad, dlogits, rtol=1e-14)
    z2 = sg.tensor(logits[None], requires_grad=True)
    sg.cross_entropy(z2, sg.tensor(np.array([2]))).backward()
    np.testing.assert_allclose(z2.grad[0], dlogits, rtol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradients_by_complex_step(gradcheck, reduction):
    labels = np.array([1, 0, 2])
    gradcheck(lambda z: sg.cross_entropy(z, labels, reduction=reduction), rand(3, 3))
    probabilities = softmax_reference(rand(3, 3))
    gradcheck(lambda z, q: sg.cross_entropy(z, q, reduction=reduction), rand(3, 3), probabilities)


def test_loss_reduction_and_label_errors():
    with pytest.raises(ValueError, match="reduction"):
        sg.mse_loss(sg.tensor([1.0]), [2.0], reduction="avg")
    with pytest.raises(ValueError, match=r"labels of shape \(2,\).*\(3, 4\)"):
        sg.cross_entropy(sg.tensor(np.zeros((3, 4))), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        sg.cross_entropy(sg.tensor(np.zeros((2, 4))), np.array([0, 4]))
    with pytest.raises(ValueError, match="class axis"):
        sg.cross_entropy(sg.tensor(1.0), 0)


# --- graph bookkeeping ---------------------------------------------------------------------------------

def test_course_graph_example():
    """e = a·b, d = e + c, L = d·f at a=2, b=-3, c=10, f=-2."""
    a, b, c, f = (sg.tensor(v, requires_grad=True) for v in (2.0, -3.0, 10.0, -2.0))
    e = a * b
    d = e + c
    loss = d * f
    assert loss.item() == -8.0
    loss.backward()
    assert [float(t.grad) for t in (a, b, c, f)] == [6.0, -4.0, -2.0, 4.0]
    assert (loss.op, d.op, e.op) == ("mul", "add", "mul")
    assert loss.inputs == () and d.inputs == ()            # freed after backward


def test_graph_records_op_inputs_and_params():
    x = sg.tensor(rand(2, 3), requires_grad=True)
    y = x.sum(axis=1, keepdims=True)
    assert y.op == "sum" and y.inputs == (x,) and y.params == {"axis": 1, "keepdims": True}
    assert x.is_leaf and x.op is None and not y.is_leaf


def test_node_used_twice_accumulates(gradcheck):
    gradcheck(lambda x: x * x + sg.tanh(x) * x, rand(4))
    x = sg.tensor(3.0, requires_grad=True)
    y = x * 2.0
    (y * y + y).backward()                                   # y feeds two consumers
    assert float(x.grad) == 2 * (2 * 6.0 + 1)


def test_long_chain_backpropagates_without_recursion():
    x = sg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.backward()
    np.testing.assert_allclose(float(x.grad), 1.0000001 ** 100_000, rtol=1e-9)


def test_dropping_a_long_unwalked_chain_is_fine():
    x = sg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    del y                                                  # deallocating a deep graph must not overflow the C stack


def test_grad_accumulates_across_backward_calls_and_zero_grad_resets():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    first = x.grad.copy()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, first + 3.0)
    x.zero_grad()
    assert x.grad is None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_gradient_arrays_are_not_shared_between_tensors():
    a = sg.tensor(1.0, requires_grad=True)
    b = sg.tensor(2.0, requires_grad=True)
    (a + b).backward()
    assert a.grad is not b.grad
    (a + b).backward()
    assert float(a.grad) == 2.0 and float(b.grad) == 2.0


def test_retain_graph_allows_a_second_backward_and_its_absence_raises():
    x = sg.tensor([1.0, -1.0], requires_grad=True)
    loss = (sg.tanh(x) * x).sum()
    loss.backward(retain_graph=True)
    once = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * once)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        (loss * 2.0).backward()


def test_backward_frees_intermediates_unless_the_graph_is_retained():
    for retain in (False, True):
        x = sg.tensor(rand(100), requires_grad=True)
        hidden = sg.tanh(x)
        alive = weakref.ref(hidden)
        loss = (hidden * hidden).sum()
        del hidden
        loss.backward(retain_graph=retain)
        assert (alive() is not None) == retain


def test_a_failed_backward_leaves_no_partial_gradients_behind():
    failing = defrule("failing_vjp_demo", lambda v: v * 1.0, lambda g, out, v: 1 / 0)
    try:
        x = sg.tensor(1.0, requires_grad=True)
        for loss in (apply(failing, x) + x * 3.0, x * 3.0 + apply(failing, x)):
            with pytest.raises(ZeroDivisionError):
                loss.backward()
        (x * 5.0).backward()
        assert float(x.grad) == 5.0
    finally:
        del RULES["failing_vjp_demo"]


def test_tensor_not_requiring_grad_keeps_grad_none():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    c = sg.tensor([3.0, 4.0])
    y = x * c
    (y * c).sum().backward()
    assert c.grad is None and y.grad is None                 # y is not a leaf and was not retained
    np.testing.assert_array_equal(x.grad, c.data ** 2)
    assert not (c * 2.0).requires_grad and (c * 2.0).op is None


def test_retain_grad_and_detach():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.0).retain_grad()
    z = x.detach()
    assert not z.requires_grad and z.is_leaf
    (y * y + z).sum().backward()
    np.testing.assert_array_equal(y.grad, 2 * y.data)
    np.testing.assert_array_equal(x.grad, 4 * y.data)
    assert z.grad is None


def test_backward_with_explicit_gradient_and_its_shape_check():
    x = sg.tensor(rand(2, 3), requires_grad=True)
    w = rand(2, 3)
    sg.exp(x).backward(w)
    np.testing.assert_allclose(x.grad, w * np.exp(x.data), rtol=1e-15)
    with pytest.raises(ValueError, match=r"grad has shape \(3,\).*\(2, 3\)"):
        sg.exp(x).backward(np.ones(3))


def test_gradients_of_scalars_are_arrays():
    x = sg.tensor(2.0, requires_grad=True)
    (x * x).backward()
    (x * x).backward()
    assert isinstance(x.grad, np.ndarray) and x.grad.shape == () and float(x.grad) == 8.0


# --- dtype -------------------------------------------------------------------------------------

def mlp_loss(w1, b1, w2, x, y):
    hidden = sg.tanh(x @ w1 + b1)
    return sg.cross_entropy(hidden @ w2, y) + 0.01 * sg.sum(w1 ** 2) + sg.mean(sg.relu(hidden)) * 0.5


def mlp_arguments(dtype):
    rng = np.random.default_rng(3)
    params = [rng.standard_normal((4, 5)), rng.standard_normal(5), rng.standard_normal((5, 3))]
    x = rng.standard_normal((6, 4))
    return [p.astype(dtype) for p in params] + [x.astype(dtype), np.array([0, 1, 2, 2, 1, 0])]


def test_mlp_gradients_by_complex_step(gradcheck):
    gradcheck(mlp_loss, *mlp_arguments(np.float64), wrt=(0, 1, 2))


def test_float32_is_kept_end_to_end():
    w1, b1, w2, x, y = mlp_arguments(np.float32)
    leaves = [sg.tensor(p, requires_grad=True) for p in (w1, b1, w2)]
    loss = mlp_loss(*leaves, sg.tensor(x), y)
    assert loss.dtype == np.float32
    nodes, stack = [], [loss]
    while stack:                                             # every recorded intermediate is float32
        node = stack.pop()
        nodes.append(node)
        stack.extend(a for a in node.inputs if isinstance(a, sg.Tensor))
    assert all(n.dtype == np.float32 for n in nodes) and len(nodes) > 10
    loss.backward()
    reference = sg.grad(mlp_loss, argnums=(0, 1, 2))(*mlp_arguments(np.float64))
    for leaf, expected in zip(leaves, reference):
        assert leaf.grad.dtype == np.float32
        np.testing.assert_allclose(leaf.grad, expected, rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("constant", [2.0, np.float64(2.0), np.float32(2.0), 2])
def test_float32_survives_scalar_constants_on_either_side(constant):
    x = sg.tensor(np.array([0.5, 1.5], dtype=np.float32), requires_grad=True)
    out = (x * constant + constant - x / constant) ** constant + constant ** x + constant / (x + 1.0)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("name", ["maximum", "minimum", "mse_loss", "matmul"])
def test_float32_leaf_gets_float32_gradient_even_next_to_float64_data(name):
    """NumPy promotes float32 with a float64 array; the leaf's gradient still has the leaf's dtype."""
    x = sg.tensor(np.array([0.5, 1.5], dtype=np.float32), requires_grad=True)
    out = getattr(sg, name)(x, np.array([1.0, 1.0]))
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_python_numbers_and_lists_become_float64_and_arrays_keep_their_dtype():
    assert sg.tensor(1).dtype == np.float64 and sg.tensor([1, 2]).dtype == np.float64
    assert sg.tensor(np.float32(1.0)).dtype == np.float32
    assert isinstance(sg.tensor(np.float32(1.0)).data, np.ndarray)
    assert sg.tensor(np.arange(3)).dtype == np.int64                # kept, but cannot require grad
    assert sg.tensor([1, 2], dtype=np.float32).dtype == np.float32
    data = np.ones(3)
    assert sg.tensor(data).data is data                              # shares memory


# --- functional transforms -------------------------------------------------------------------------

def test_grad_and_value_and_grad_with_int_and_tuple_argnums():
    def f(w, b, x):
        return sg.sum(sg.tanh(w * x + b) ** 2)

    w, b, x = rand(3), 0.5, rand(3)
    gw = sg.grad(f)(w, b, x)
    gb = sg.grad(f, argnums=1)(w, b, x)
    value, (gw2, gx) = sg.value_and_grad(f, argnums=(0, 2))(w, b, x)
    t = np.tanh(w * x + b)
    dz = 2 * t * (1 - t ** 2)
    np.testing.assert_allclose(value, np.sum(t ** 2), rtol=1e-14)
    np.testing.assert_allclose(gw, dz * x, rtol=1e-14)
    np.testing.assert_allclose(gb, dz.sum(), rtol=1e-14)
    np.testing.assert_allclose(gw2, gw, rtol=0)
    np.testing.assert_allclose(gx, dz * w, rtol=1e-14)
    assert gw.shape == (3,) and np.shape(gb) == ()
    assert sg.grad(f, argnums=-1)(w, b, x).shape == (3,)
    assert sg.grad(f, argnums=(1,))(w, b, x)[0].shape == ()


def test_grad_keeps_dtype_and_handles_unused_and_integer_arguments():
    g = sg.grad(lambda a, b: sg.sum(a * 2.0), argnums=(0, 1))(np.ones(2, np.float32), np.ones(3, np.float32))
    assert g[0].dtype == np.float32 and g[1].dtype == np.float32
    np.testing.assert_array_equal(g[1], 0.0)
    assert sg.grad(lambda a: a * a)(3).dtype == np.float64           # an int becomes float64
    assert float(sg.grad(lambda a: a * a)(3)) == 6.0


def test_value_and_gradients_differentiates_params_only():
    def loss(w, b, x, y):
        return sg.mse_loss(x @ w + b, y)

    x, y = rand(5, 3), rand(5)
    params = {"w": rand(3).astype(np.float32), "b": 0.5}
    value, grads = sg.value_and_gradients(loss, params, {"x": x.astype(np.float32), "y": y.astype(np.float32)})
    residual = x @ params["w"].astype(float) + 0.5 - y
    np.testing.assert_allclose(value, np.mean(residual ** 2), rtol=1e-5)
    assert set(grads) == {"w", "b"} and grads["w"].dtype == np.float32 and np.shape(grads["b"]) == ()
    np.testing.assert_allclose(grads["w"], 2 * x.T @ residual / 5, rtol=1e-4)
    np.testing.assert_allclose(grads["b"], 2 * residual.mean(), rtol=1e-4)


def test_grad_rejects_bad_functions_and_argnums():
    with pytest.raises(ValueError, match="scalar"):
        sg.grad(lambda a: a * 2.0)(np.ones(3))
    with pytest.raises(TypeError, match="must return a number.*sg"):
        sg.grad(lambda a: "1.0")(2.0)
    with pytest.raises(ValueError, match="argnums 2"):
        sg.grad(lambda a, b: a * b, argnums=2)(1.0, 2.0)


# --- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda a, b: a @ b, lambda a, b: sg.matmul(a, b), lambda a, b: a.data @ b, lambda a, b: a @ b.data,
    lambda a, b: sg.matmul(a.data, b.data),
], ids=["@", "sg.matmul", "ndarray @ tensor", "tensor @ ndarray", "sg.matmul on ndarrays"])
def test_matmul_shape_mismatch_names_op_and_shapes(make):
    with pytest.raises(ValueError, match=r"^matmul: .*\(2, 3\) and \(4, 5\)"):
        make(sg.tensor(np.ones((2, 3)), requires_grad=True), sg.tensor(np.ones((4, 5))))


@pytest.mark.parametrize("symbol", OPERATORS)
def test_broadcasting_mismatch_names_op_and_shapes(symbol):
    name = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}[symbol]
    t = sg.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=rf"^{name}: .*\(2, 3\) and \(4,\)"):
        OPERATORS[symbol](t, np.ones(4))
    with pytest.raises(ValueError, match=rf"^{name}: .*\(4,\) and \(2, 3\)"):
        OPERATORS[symbol](np.ones(4), t)
    with pytest.raises(ValueError, match=rf"^{name}: .*\(2, 3\) and \(4,\)"):
        OPERATORS[symbol](t, sg.tensor(np.ones(4)))


@pytest.mark.parametrize("name", ["maximum", "minimum", "mse_loss"])
def test_binary_function_shape_mismatch_names_op_and_shapes(name):
    with pytest.raises(ValueError, match=rf"^{name}: .*\(2, 3\) and \(4,\)"):
        getattr(sg, name)(sg.tensor(np.ones((2, 3))), np.ones(4))


def test_concatenate_and_stack_mismatch_name_op_and_shapes():
    for a, b in ((sg.tensor(np.ones((2, 3)), requires_grad=True), np.ones((2, 4))), (np.ones((2, 3)), np.ones((2, 4)))):
        with pytest.raises(ValueError, match=r"^concatenate: .*\(2, 3\) and \(2, 4\)"):
            sg.concatenate([a, b])
        with pytest.raises(ValueError, match=r"^stack: .*\(2, 3\) and \(2, 4\)"):
            sg.stack([a, b])


def test_other_bad_shapes_say_what_is_wrong():
    t = sg.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^reshape: .*\(2, 3\).*\(4, ?4\)"):
        t.reshape(4, 4)
    with pytest.raises(ValueError, match=r"^sum: .*axis 3"):
        t.sum(axis=3)
    with pytest.raises(IndexError, match="out of bounds"):
        t[5]


def test_backward_on_a_non_scalar_without_grad_says_so():
    x = sg.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one-element.*shape \(2, 3\).*grad"):
        sg.exp(x).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        sg.tensor(1.0).backward()


@pytest.mark.parametrize("data", [np.arange(3), np.array([True, False]), np.array([1, 2], dtype=np.uint8)])
def test_integer_and_boolean_tensors_cannot_require_grad(data):
    with pytest.raises(TypeError, match="floating-point"):
        sg.tensor(data, requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        sg.tensor(data).requires_grad_()


def test_non_numeric_data_and_unknown_devices_are_rejected():
    with pytest.raises(TypeError, match="numbers"):
        sg.tensor(["a", "b"])
    with pytest.raises(TypeError, match="numbers"):
        sg.tensor(np.array([object()]))
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        sg.tensor(1.0, device="tpu")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", UNARY)
def test_nan_and_inf_propagate_as_numpy_does(name):
    """Values and gradients at nan, ±inf, 0 and ±1 are what the NumPy formulas give."""
    reference, derivative, _ = UNARY[name]
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 1.0])
    t = sg.tensor(x, requires_grad=True)
    out = getattr(sg, name)(t)
    out.backward(np.ones(6))
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out.data, reference(x))
        np.testing.assert_array_equal(getattr(sg, name)(x), reference(x))
        expected = derivative(x)
    np.testing.assert_allclose(t.grad, expected, rtol=1e-15)        # relu and abs: slope 0 at 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_infinite_gradients_are_kept():
    t = sg.tensor([0.0, 4.0], requires_grad=True)
    sg.sqrt(t).sum().backward()
    np.testing.assert_array_equal(t.grad, [np.inf, 0.25])
    u = sg.tensor([0.0, 2.0], requires_grad=True)
    sg.log(u).sum().backward()
    np.testing.assert_array_equal(u.grad, [np.inf, 0.5])
    v = sg.tensor([np.nan, 1.0], requires_grad=True)
    (v * 3.0).sum().backward()
    np.testing.assert_array_equal(v.grad, [3.0, 3.0])
    (v * v).sum().backward()
    assert np.isnan(v.grad[0]) and v.grad[1] == 5.0


# --- polymorphism and imports -------------------------------------------------------------------------

def test_functions_on_numpy_input_equal_numpy_references():
    x, y = rand(3, 4), rand(3, 4)
    condition = x > 0
    checks = {
        "maximum": (sg.maximum(x, y), np.maximum(x, y)),
        "minimum": (sg.minimum(x, 0.5), np.minimum(x, 0.5)),
        "where": (sg.where(condition, x, y), np.where(condition, x, y)),
        "reshape": (sg.reshape(x, (4, 3)), x.reshape(4, 3)),
        "transpose": (sg.transpose(x), x.T),
        "mse_loss": (sg.mse_loss(x, y), np.mean((x - y) ** 2)),
        "cross_entropy": (sg.cross_entropy(x, [0, 1, 3]),
                          np.mean(cross_entropy_closed_form(x, np.array([0, 1, 3]))[0])),
        "sum list": (sg.sum([1.0, 2.0]), 3.0),
        "max axis": (sg.max(x, axis=0), x.max(axis=0)),
    }
    for name, (got, expected) in checks.items():
        assert not isinstance(got, sg.Tensor), name
        np.testing.assert_allclose(got, expected, rtol=1e-14, err_msg=name)


def test_composite_loss_on_complex_input_gives_the_engine_gradient():
    """Complex-step through the polymorphic functions reproduces backprop to ~1e-13."""
    w1, b1, w2, x, y = mlp_arguments(np.float64)
    leaf = sg.tensor(w2, requires_grad=True)
    mlp_loss(w1, b1, leaf, x, y).backward()
    h = 1e-40
    for i in np.ndindex(w2.shape):
        probe = w2.astype(complex)
        probe[i] += 1j * h
        np.testing.assert_allclose(np.imag(mlp_loss(w1, b1, probe, x, y)) / h, leaf.grad[i], rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("statement", ["import symgrad", "import symgrad as sg; "
                                       "x = sg.tensor([1.0], requires_grad=True); sg.tanh(x @ x).backward()"])
def test_import_and_engine_use_load_neither_sympy_nor_matplotlib(statement):
    code = (f"{statement}\nimport sys\n"
            "print(sorted(m for m in ('sympy', 'matplotlib', 'click') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("join", [sg.concatenate, sg.stack])
def test_joining_no_array_is_a_clear_value_error(join):
    with pytest.raises(ValueError, match=f"^{join.__name__}: needs at least one array$"):
        join([])
